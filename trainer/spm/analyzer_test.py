"""The analyzer inside a real tf.Transform run, then the transform graph inside a saved serving
model (the asset must travel with it, as TF Serving needs)."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform import beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import schema_utils

from trainer.spm import analyzer
from tests.fixtures.sids import synthetic_sids
from trainer.spm.vocabulary import SpmSubIdVocabulary, SpmVocabularyError, train_spm

L, K, BUDGET = 3, 32, 200


def _dataset():
  """Examples = interactions: an item's SID repeated once per interaction (capped at 5)."""
  sids, counts = synthetic_sids(300, L, K, seed=3, children=4)
  rows = []
  for sid, n in zip(sids, counts):
    rows += [{"sid": sid.astype(np.int64), "label": i % 2} for i in range(min(int(n), 5))]
  spec = {"sid": tf.io.FixedLenFeature([L], tf.int64),
          "label": tf.io.FixedLenFeature([], tf.int64)}
  return rows, dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))


def preprocessing_fn(inputs):
  asset = analyzer.spm_subid_vocabulary(inputs["sid"], levels=L, codebook_size=K,
                                        vocab_size=BUDGET, name="sid_spm")
  tokens = analyzer.segment_sids(inputs["sid"], asset)
  weighted = analyzer.spm_subid_vocabulary(inputs["sid"], levels=L, codebook_size=K,
                                           vocab_size=BUDGET, weights=3 * inputs["label"] + 1,
                                           name="sid_spm_weighted")
  rows = tft.get_num_buckets_for_transformed_feature(tokens)
  return {"sid_tokens": tokens, "sid_table_rows": tf.zeros_like(inputs["label"]) + rows,
          "sid_tokens_weighted": analyzer.segment_sids(inputs["sid"], weighted),
          "label": inputs["label"]}


def test_analyze_transform_write_and_serve(tmp_path):
  rows, metadata = _dataset()
  tft_dir = str(tmp_path / "transform_output")
  with tft_beam.Context(temp_dir=str(tmp_path / "tmp"), force_tf_compat_v1=False):
    (transformed, _), transform_fn = ((rows, metadata)
                                      | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn))
    _ = transform_fn | tft_beam.WriteTransformFn(tft_dir)

  assets = os.listdir(os.path.join(tft_dir, "transform_fn", "assets"))
  assert sorted(assets) == ["sid_spm" + analyzer.ASSET_SUFFIX,
                            "sid_spm_weighted" + analyzer.ASSET_SUFFIX]
  vocab = SpmSubIdVocabulary.from_asset(
      os.path.join(tft_dir, "transform_fn", "assets", "sid_spm" + analyzer.ASSET_SUFFIX))
  sids = np.stack([r["sid"] for r in rows])
  # The analyzer counted each example's SID once = the SIDs weighted by interactions.
  assert vocab.same_tokens(train_spm(sids, L, K, BUDGET))
  assert vocab.num_tokens == BUDGET and vocab.num_multi_code_pieces > 50
  ref, _ = vocab.segment_batch(sids)
  got = np.stack([r["sid_tokens"] for r in transformed])
  np.testing.assert_array_equal(got, ref)
  assert {r["sid_table_rows"] for r in transformed} == {vocab.num_tokens}
  # The weighted analyzer (second asset) = training on the same SIDs with those weights.
  weighted = SpmSubIdVocabulary.from_asset(
      os.path.join(tft_dir, "transform_fn", "assets", "sid_spm_weighted" + analyzer.ASSET_SUFFIX))
  labels = np.array([r["label"] for r in rows])
  assert weighted.same_tokens(train_spm((sids, 3 * labels + 1), L, K, BUDGET))
  assert not weighted.same_tokens(vocab)
  np.testing.assert_array_equal(np.stack([r["sid_tokens_weighted"] for r in transformed]),
                                weighted.segment_batch(sids)[0])

  # Serving: the transform layer inside a saved tf.Module, reloaded without the TFT output dir.
  tf_transform_output = tft.TFTransformOutput(tft_dir)

  class Serving(tf.Module):

    def __init__(self):
      super().__init__()
      self.tft_layer = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None, L], tf.int64, name="sid")])
    def serve(self, sid):
      out = self.tft_layer({"sid": sid, "label": tf.zeros_like(sid[:, 0])})
      return {"sid_tokens": out["sid_tokens"]}

  module = Serving()
  export = str(tmp_path / "serving")
  tf.saved_model.save(module, export, signatures={"serving_default": module.serve})
  assert sorted(os.listdir(os.path.join(export, "assets"))) == sorted(assets)
  shutil.rmtree(tft_dir)
  shutil.rmtree(tmp_path / "tmp")
  loaded = tf.saved_model.load(export)
  new = np.array([[0, 0, 0], [31, 31, 31], [5, 17, 2]], np.int64)  # incl. combinations never seen
  both = np.concatenate([sids, new])
  served = loaded.signatures["serving_default"](sid=tf.constant(both))["sid_tokens"].numpy()
  np.testing.assert_array_equal(served, vocab.segment_batch(both)[0])


def test_analyzer_argument_errors():
  with tf.Graph().as_default():
    sids = tf.compat.v1.placeholder(tf.int64, [None, 3])
    with pytest.raises(SpmVocabularyError, match="97"):
      analyzer.spm_subid_vocabulary(sids, 3, 32, 96)
    with pytest.raises(SpmVocabularyError, match=r"\[batch, 4\]"):
      analyzer.spm_subid_vocabulary(sids, 4, 32, 1000)
    with pytest.raises(SpmVocabularyError, match="exceeds"):
      analyzer.spm_subid_vocabulary(sids, 3, 30000, 100_000)


def test_beam_counting_checks_codes():
  batch = (np.array([[1, 2, 3], [1, 2, 3], [4, 5, 6]]),)
  assert sorted(analyzer._batch_counts(batch, 3, 8)) == [((1, 2, 3), 2.0), ((4, 5, 6), 1.0)]
  weighted = (batch[0], np.array([0.5, 1.0, 2.0], np.float32))
  assert sorted(analyzer._batch_counts(weighted, 3, 8)) == [((1, 2, 3), 1.5), ((4, 5, 6), 2.0)]
  with pytest.raises(SpmVocabularyError, match="codebook_size=4"):
    list(analyzer._batch_counts(batch, 3, 4))
