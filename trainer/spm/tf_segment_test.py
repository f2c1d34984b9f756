"""TF segmentation: equal to the sentencepiece library and to the Python reference on thousands
of SIDs, fallback tokens for unseen codes, SavedModel round trip carrying the asset."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

from trainer.spm import vocabulary as V
from trainer.spm import tf_segment
from trainer.spm.tf_segment import SpmSubIdSegmenter


@pytest.fixture(scope="module")
def segmenters(tmp_path_factory, case_3x256, case_4x64):
  out = {}
  for name, case in (("3x256", case_3x256), ("4x64", case_4x64)):
    path = case.vocab.to_asset(str(tmp_path_factory.mktemp(name) / "vocab.tsv"))
    out[case.levels] = (path, SpmSubIdSegmenter(path))
  return out


def _padded(rows, width):
  out = np.zeros((len(rows), width), np.int64)
  for i, r in enumerate(rows):
    out[i, :len(r)] = r
  return out


def test_tf_equals_library_and_reference_on_thousands_of_sids(case, segmenters):
  vocab, sp = case.vocab, case.vocab.sentencepiece_processor()
  _, seg = segmenters[case.levels]
  sids = case.known_sids
  assert len(sids) > 9000
  fn = tf.function(seg.segment_with_lengths,
                   input_signature=[tf.TensorSpec([None, case.levels], tf.int64)])
  ids, lengths = (t.numpy() for t in fn(tf.constant(sids)))
  library = [sp.encode(vocab.sid_string(s)) for s in sids]
  np.testing.assert_array_equal(lengths, [len(r) for r in library])
  np.testing.assert_array_equal(ids, _padded(library, case.levels))
  ref_ids, ref_len = vocab.segment_batch(sids)
  np.testing.assert_array_equal(ids, ref_ids)
  np.testing.assert_array_equal(lengths, ref_len)
  assert (lengths < case.levels).mean() > 0.3  # multi-code pieces are in use


def test_tf_unseen_codes_give_fallback_tokens(case, segmenters):
  vocab = case.vocab
  _, seg = segmenters[case.levels]
  ids, lengths = (t.numpy() for t in seg.segment_with_lengths(tf.constant(case.unseen_sids)))
  ref_ids, ref_len = vocab.segment_batch(case.unseen_sids)
  np.testing.assert_array_equal(ids, ref_ids)
  np.testing.assert_array_equal(lengths, ref_len)
  fallback = np.array([k == V.KIND_FALLBACK for k in vocab.kinds])
  valid = np.arange(case.levels)[None, :] < lengths[:, None]
  assert (ids[valid] > 0).all() and (ids[~valid] == 0).all()
  assert all(fallback[ids[i, :lengths[i]]].any() for i in range(len(ids)))
  assert int(seg.num_tokens()) == vocab.num_tokens


def test_repeated_sids_in_a_batch_segment_as_each_alone(case_4x64, segmenters):
  # Rows are segmented once per distinct SID and gathered back: a batch of ranking examples
  # repeats its items' SIDs, in any order.
  _, seg = segmenters[4]
  sids = case_4x64.known_sids[:50]
  rng = np.random.default_rng(0)
  batch = sids[rng.integers(0, len(sids), 400)]
  ids, lengths = (t.numpy() for t in seg.segment_with_lengths(tf.constant(batch)))
  alone_ids, alone_lengths = (t.numpy() for t in seg.segment_with_lengths(tf.constant(sids)))
  index = [int(np.flatnonzero((sids == row).all(axis=1))[0]) for row in batch]
  np.testing.assert_array_equal(ids, alone_ids[index])
  np.testing.assert_array_equal(lengths, alone_lengths[index])


def test_ragged_and_int32_inputs(case_4x64, segmenters):
  _, seg = segmenters[4]
  sids = case_4x64.known_sids[:64]
  ragged = seg.segment_ragged(tf.constant(sids, tf.int32))
  assert ragged.to_list() == [case_4x64.vocab.segment(s) for s in sids]
  assert seg(tf.zeros([0, 4], tf.int64)).shape == (0, 4)


def test_invalid_inputs_fail_clearly(segmenters):
  _, seg = segmenters[3]
  with pytest.raises(tf.errors.InvalidArgumentError, match="codebook_size"):
    seg(tf.constant([[1, 2, 256]], tf.int64))
  with pytest.raises(tf.errors.InvalidArgumentError, match=">= 0"):
    seg(tf.constant([[1, -2, 3]], tf.int64))
  with pytest.raises(tf.errors.InvalidArgumentError, match="levels"):
    seg(tf.constant([[1, 2, 3, 4]], tf.int64))
  with pytest.raises(ValueError, match="static"):
    tf.function(seg.__call__).get_concrete_function(tf.TensorSpec([None, None], tf.int64))


def test_saved_model_carries_the_asset(tmp_path, case_3x256):
  vocab = case_3x256.vocab
  asset = vocab.to_asset(str(tmp_path / "src" / "spm_vocab.tsv"))

  class Serving(tf.Module):

    def __init__(self):
      super().__init__()
      self.segmenter = SpmSubIdSegmenter(asset)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.int64, name="sid")])
    def serve(self, sid):
      ids, lengths = self.segmenter.segment_with_lengths(sid)
      return {"tokens": ids, "lengths": lengths}

  export = str(tmp_path / "export")
  module = Serving()
  tf.saved_model.save(module, export, signatures={"serving_default": module.serve})
  assert os.listdir(os.path.join(export, "assets")) == ["spm_vocab.tsv"]
  shutil.rmtree(tmp_path / "src")  # the loaded model must only need its own assets/
  loaded = tf.saved_model.load(export)
  sids = np.concatenate([case_3x256.known_sids[:3000], case_3x256.unseen_sids])
  out = loaded.signatures["serving_default"](sid=tf.constant(sids))
  ref_ids, ref_len = vocab.segment_batch(sids)
  np.testing.assert_array_equal(out["tokens"].numpy(), ref_ids)
  np.testing.assert_array_equal(out["lengths"].numpy(), ref_len)
  # Only core TF ops in the SavedModel (no TF Text ops, no py_function).
  saved = saved_model_pb2.SavedModel()
  with open(os.path.join(export, "saved_model.pb"), "rb") as f:
    saved.ParseFromString(f.read())
  graph = saved.meta_graphs[0].graph_def
  ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
  assert {"UnicodeEncode", "StringJoin", "LookupTableFindV2",
          "InitializeTableFromTextFileV2"} <= ops
  assert not {o for o in ops if "Sentencepiece" in o or "Wordpiece" in o or "PyFunc" in o}
  functions = {f.signature.name for f in graph.library.function}
  assert all(op_def_registry.get(o) is not None for o in ops - functions)


def test_tf1_graph_mode_with_a_path_placeholder(case_4x64, segmenters):
  """tf.Transform's compat-v1 mode builds the tables in a tf.Graph from a path tensor
  (Tensor == is not elementwise there)."""
  path, _ = segmenters[4]
  sids = case_4x64.known_sids[:2000]
  with tf.Graph().as_default():
    path_t = tf.compat.v1.placeholder(tf.string, [])
    x = tf.compat.v1.placeholder(tf.int64, [None, 4])
    ids, _ = tf_segment.segment_with_tables(tf_segment.build_tables(path_t), x)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.tables_initializer(), {path_t: path})
      got = sess.run(ids, {x: sids})
  np.testing.assert_array_equal(got, case_4x64.vocab.segment_batch(sids)[0])
