"""preprocessing_fn in a real tf.Transform run: analyze on train, transform a new item."""
import functools
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from trainer import preprocessing as P
from trainer.model import features as F
from trainer.spm.vocabulary import SpmSubIdVocabulary

L, K, M, D, N = 3, 8, 2, 4, 3

RAW_SPEC = {
    "user_id": tf.io.FixedLenFeature([], tf.string),
    "user_age": tf.io.FixedLenFeature([], tf.int64),
    "user_gender": tf.io.FixedLenFeature([], tf.string),
    "user_occupation": tf.io.FixedLenFeature([], tf.string),
    "item_id": tf.io.FixedLenFeature([], tf.string),
    "history_item_ids": tf.io.VarLenFeature(tf.string),
    "item_sid": tf.io.FixedLenFeature([L], tf.int64),
    "history_sid": tf.io.VarLenFeature(tf.int64),
    "item_moc_codes": tf.io.FixedLenFeature([M], tf.int64),
    "history_moc_codes": tf.io.VarLenFeature(tf.int64),
    "item_embedding": tf.io.FixedLenFeature([D], tf.float32),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "item_cohort": tf.io.FixedLenFeature([], tf.string),
}

rng = np.random.default_rng(0)
ITEMS = {f"i{j}": [j % 2, j % 4, j % 8] for j in range(12)}   # SIDs share prefixes
ITEMS["new"] = [1, 3, 5]                                       # known codes, new item
MOC = {k: [v[0], v[2]] for k, v in ITEMS.items()}


# The pipeline's layout: histories padded to N with "" (zero codes), fixed shapes throughout.
PADDED_SPEC = dict(RAW_SPEC, **{
    "history_item_ids": tf.io.FixedLenFeature([N], tf.string),
    "history_sid": tf.io.FixedLenFeature([N * L], tf.int64),
    "history_moc_codes": tf.io.FixedLenFeature([N * M], tf.int64),
    "user_id": tf.io.FixedLenFeature([1], tf.string),
})


def _padded(row):
  k = len(row["history_item_ids"])
  return dict(row, user_id=[row["user_id"]],
              history_item_ids=row["history_item_ids"] + [b""] * (N - k),
              history_sid=row["history_sid"] + [0] * (L * (N - k)),
              history_moc_codes=row["history_moc_codes"] + [0] * (M * (N - k)))


def _row(user, item, history, cohort="seen"):
  return {
      "user_id": user.encode(), "user_age": 25, "user_gender": b"F",
      "user_occupation": b"artist", "item_id": item.encode(),
      "history_item_ids": [h.encode() for h in history],
      "item_sid": ITEMS[item], "history_sid": sum((ITEMS[h] for h in history), []),
      "item_moc_codes": MOC[item], "history_moc_codes": sum((MOC[h] for h in history), []),
      "item_embedding": rng.standard_normal(D).astype(np.float32).tolist(),
      "label": int(rng.integers(2)), "item_cohort": cohort.encode(),
  }


TRAIN = [_row(f"u{u}", f"i{j}", [f"i{(j + 1) % 12}", f"i{(j + 2) % 12}"][: u % 3])
         for u in range(6) for j in range(12)]
EVAL = [_row("u1", "new", ["i3", "i4", "i5"], "new"), _row("stranger", "i2", [], "seen")]

CONFIG = P.transform_custom_config(levels=L, codebook_size=K, moc_codebooks=M, content_dim=D,
                                   history_length=N, random_id_rows=5, item_oov_buckets=1,
                                   spm_vocab_size=L * K + 6)


@pytest.fixture(scope="module", params=["varlen_history", "padded_history"])
def transformed(request, tmp_path_factory):
  tmp = str(tmp_path_factory.mktemp("tft"))
  padded = request.param == "padded_history"
  spec = PADDED_SPEC if padded else RAW_SPEC
  train, eval_ = ([_padded(r) for r in TRAIN], [_padded(r) for r in EVAL]) if padded else (
      TRAIN, EVAL)
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
  fn = functools.partial(P.preprocessing_fn, custom_config=CONFIG)
  with tft_beam.Context(temp_dir=os.path.join(tmp, "tmp"), force_tf_compat_v1=False):
    transform_fn = (train, metadata) | tft_beam.AnalyzeDataset(fn)
    (eval_rows, _) = ((eval_, metadata), transform_fn) | tft_beam.TransformDataset()
    (train_rows, _) = ((train, metadata), transform_fn) | tft_beam.TransformDataset()
    _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(tmp, "out"))
  return tft.TFTransformOutput(os.path.join(tmp, "out")), train_rows, eval_rows


def test_new_item_is_outside_the_id_vocab_but_has_sid_pieces(transformed):
  output, _, eval_rows = transformed
  new = eval_rows[0]
  train_items = output.vocabulary_size_by_name(P.ITEM_VOCAB)
  assert train_items == 12
  assert new[F.ITEM_VOCAB_ID] == train_items  # the single OOV bucket
  tokens = np.asarray(new[F.ITEM_SPM_TOKENS])
  assert tokens.shape == (L,) and tokens[0] > 0, "a new item still gets SID pieces"
  asset = glob.glob(os.path.join(output.transform_savedmodel_dir, "assets",
                                 "*" + "spm_subid_vocab.tsv"))
  assert len(asset) == 1
  vocab = SpmSubIdVocabulary.from_asset(asset[0])
  expected = vocab.segment(ITEMS["new"])
  assert tokens[: len(expected)].tolist() == list(expected)
  assert (tokens[len(expected):] == 0).all()


def test_history_is_fixed_length_masked_and_in_the_candidate_representation(transformed):
  _, train_rows, eval_rows = transformed
  new = eval_rows[0]
  assert np.asarray(new[F.HISTORY_MASK]).tolist() == [1.0, 1.0, 1.0]
  assert np.asarray(new[F.history_name(F.ITEM_SID)]).tolist() == [
      ITEMS["i3"], ITEMS["i4"], ITEMS["i5"]]
  assert np.asarray(new[F.history_name(F.ITEM_MOC_CODES)]).tolist() == [
      MOC["i3"], MOC["i4"], MOC["i5"]]
  stranger = eval_rows[1]
  assert np.asarray(stranger[F.HISTORY_MASK]).tolist() == [0.0, 0.0, 0.0]
  assert np.asarray(stranger[F.history_name(F.ITEM_SID)]).tolist() == [[0] * L] * N
  # A history item's tokens equal what the same item gets as a candidate.
  by_item = {}
  for raw, row in zip(TRAIN, train_rows):
    by_item[raw["item_id"]] = (row[F.ITEM_VOCAB_ID], np.asarray(row[F.ITEM_SPM_TOKENS]).tolist())
  hist_vocab = np.asarray(new[F.history_name(F.ITEM_VOCAB_ID)]).tolist()
  hist_spm = np.asarray(new[F.history_name(F.ITEM_SPM_TOKENS)]).tolist()
  for pos, item in enumerate([b"i3", b"i4", b"i5"]):
    assert hist_vocab[pos] == by_item[item][0]
    assert hist_spm[pos] == by_item[item][1]


def test_unseen_user_gets_the_oov_token_and_labels_pass_through(transformed):
  _, train_rows, eval_rows = transformed
  assert eval_rows[1][F.USER_ID] == 0
  assert all(row[F.USER_ID] > 0 for row in train_rows)
  assert eval_rows[0][P.ITEM_COHORT] == b"new"
  # Rows are matched by their item embedding (random per row, passed through), not by
  # position: Beam does not promise to keep the input order.
  def key(row):
    return tuple(np.asarray(row[F.ITEM_EMBEDDING], np.float32).tolist())

  by_embedding = {key(row): row for row in train_rows + eval_rows}
  assert len(by_embedding) == len(TRAIN) + len(EVAL)
  raw_rows = TRAIN + EVAL
  assert {r["label"] for r in raw_rows} == {0, 1}  # both classes, so a constant would fail
  for raw in raw_rows:
    assert by_embedding[key(raw)][F.LABEL] == float(raw["label"]), raw
  assert all(0 <= row[F.ITEM_RANDOM_ID] < 5 for row in train_rows)
