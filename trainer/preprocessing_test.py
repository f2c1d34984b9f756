"""preprocessing_fn in a real tf.Transform run: analyze on train, transform a new item; the
user features are whatever the data declares."""
import functools
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from contracts import schema as S
from contracts.transform_settings import TransformSettings
from trainer import preprocessing as P
from trainer.model import features as F
from trainer.spm.vocabulary import SpmSubIdVocabulary

L, K, M, D, N = 3, 8, 2, 4, 3

# The pipeline's layout (SemanticIdJoiner over padded histories): "" pads a history to N
# items, with zero codes; every feature has a fixed shape.
RAW_SPEC = {
    "user_id": tf.io.FixedLenFeature([1], tf.string),
    "user_age": tf.io.FixedLenFeature([], tf.int64),
    "user_gender": tf.io.FixedLenFeature([], tf.string),
    "user_occupation": tf.io.FixedLenFeature([], tf.string),
    "item_id": tf.io.FixedLenFeature([], tf.string),
    "history_item_ids": tf.io.FixedLenFeature([N], tf.string),
    "item_codes_rqvae": tf.io.FixedLenFeature([L], tf.int64),
    "history_codes_rqvae": tf.io.FixedLenFeature([N * L], tf.int64),
    "item_codes_moc": tf.io.FixedLenFeature([M], tf.int64),
    "history_codes_moc": tf.io.FixedLenFeature([N * M], tf.int64),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "item_cohort": tf.io.FixedLenFeature([], tf.string),
}

ITEMS = {f"i{j}": [j % 2, j % 4, j % 8] for j in range(12)}   # SIDs share prefixes
ITEMS["new"] = [1, 3, 5]                                       # known codes, new item
MOC = {k: [v[0], v[2]] for k, v in ITEMS.items()}


def _row(user, item, history, cohort="seen"):
  pad = N - len(history)
  return {
      "user_id": [user.encode()], "user_age": 25, "user_gender": b"F",
      "user_occupation": b"artist", "item_id": item.encode(),
      "history_item_ids": [h.encode() for h in history] + [b""] * pad,
      "item_codes_rqvae": ITEMS[item],
      "history_codes_rqvae": sum((ITEMS[h] for h in history), []) + [0] * (L * pad),
      "item_codes_moc": MOC[item],
      "history_codes_moc": sum((MOC[h] for h in history), []) + [0] * (M * pad),
      # A function of the item and its history length, so that a test can tell each row's
      # label without relying on the row order.
      "label": (sum(ITEMS[item]) + len(history)) % 2, "item_cohort": cohort.encode(),
  }


TRAIN = [_row(f"u{u}", f"i{j}", [f"i{(j + 1) % 12}", f"i{(j + 2) % 12}"][: u % 3])
         for u in range(6) for j in range(12)]
EVAL = [_row("u1", "new", ["i3", "i4", "i5"], "new"), _row("stranger", "i2", [], "seen")]

SETTINGS = TransformSettings(random_id_rows=5, item_oov_buckets=1, spm_vocab_size=L * K + 6,
                             codebook_sizes={"rqvae": K, "moc": K}, spm_codebooks=("rqvae",))
SID_CODES, SPM_TOKENS = F.item_codes("rqvae"), F.item_spm_tokens("rqvae")
MOC_CODES = F.item_codes("moc")


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
  tmp = str(tmp_path_factory.mktemp("tft"))
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
  fn = functools.partial(P.preprocessing_fn, custom_config=SETTINGS.custom_config())
  with tft_beam.Context(temp_dir=os.path.join(tmp, "tmp"), force_tf_compat_v1=False):
    transform_fn = (TRAIN, metadata) | tft_beam.AnalyzeDataset(fn)
    (eval_rows, _) = ((EVAL, metadata), transform_fn) | tft_beam.TransformDataset()
    (train_rows, _) = ((TRAIN, metadata), transform_fn) | tft_beam.TransformDataset()
    _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(tmp, "out"))
  return tft.TFTransformOutput(os.path.join(tmp, "out")), train_rows, eval_rows


def test_new_item_is_outside_the_id_vocab_but_has_sid_pieces(transformed):
  output, _, eval_rows = transformed
  new = eval_rows[0]
  train_items = output.vocabulary_size_by_name(P.ITEM_VOCAB)
  assert train_items == 12
  assert new[F.ITEM_VOCAB_ID] == train_items  # the single OOV bucket
  tokens = np.asarray(new[SPM_TOKENS])
  assert tokens.shape == (L,) and tokens[0] > 0, "a new item still gets SID pieces"
  asset = glob.glob(os.path.join(output.transform_savedmodel_dir, "assets",
                                 P.spm_analyzer_name("rqvae") + ".spm_subid_vocab.tsv"))
  assert len(asset) == 1
  vocab = SpmSubIdVocabulary.from_asset(asset[0])
  expected = vocab.segment(ITEMS["new"])
  assert tokens[: len(expected)].tolist() == list(expected)
  assert (tokens[len(expected):] == 0).all()


def test_history_is_fixed_length_masked_and_in_the_candidate_representation(transformed):
  _, train_rows, eval_rows = transformed
  new = eval_rows[0]
  assert np.asarray(new[F.HISTORY_MASK]).tolist() == [1.0, 1.0, 1.0]
  assert np.asarray(new[F.history_name(SID_CODES)]).tolist() == [
      ITEMS["i3"], ITEMS["i4"], ITEMS["i5"]]
  assert np.asarray(new[F.history_name(MOC_CODES)]).tolist() == [
      MOC["i3"], MOC["i4"], MOC["i5"]]
  stranger = eval_rows[1]
  assert np.asarray(stranger[F.HISTORY_MASK]).tolist() == [0.0, 0.0, 0.0]
  assert np.asarray(stranger[F.history_name(SID_CODES)]).tolist() == [[0] * L] * N
  # A history item's tokens equal what the same item gets as a candidate.
  by_item = {}
  for raw, row in zip(TRAIN, train_rows):
    by_item[raw["item_id"]] = (row[F.ITEM_VOCAB_ID], np.asarray(row[SPM_TOKENS]).tolist())
  hist_vocab = np.asarray(new[F.history_name(F.ITEM_VOCAB_ID)]).tolist()
  hist_spm = np.asarray(new[F.history_name(SPM_TOKENS)]).tolist()
  for pos, item in enumerate([b"i3", b"i4", b"i5"]):
    assert hist_vocab[pos] == by_item[item][0]
    assert hist_spm[pos] == by_item[item][1]


def test_movielens_user_features_keep_their_token_and_vocabulary_names(transformed):
  output, train_rows, eval_rows = transformed
  tokens = {F.USER_ID, "user_age_token", "user_gender_token", "user_occupation_token"}
  assert {k for k in train_rows[0] if k.startswith("user_")} == tokens
  # One value each in TRAIN (age 25 as its text, "F", "artist"): rows 1 + OOV 0.
  for raw in ("user_age", "user_gender", "user_occupation"):
    assert P.user_vocab_name(raw) == raw + "_vocab"
    assert output.vocabulary_by_name(P.user_vocab_name(raw)) in ([b"25"], [b"F"], [b"artist"])
    assert all(row[F.user_token(raw)] == 1 for row in train_rows + eval_rows)
  assert output.vocabulary_size_by_name(P.user_vocab_name("user_id")) == 6


def _run_transform(tmp, spec, train, test):
  """preprocessing_fn analyzed on `train` (no codebooks), applied to `test`."""
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
  settings = TransformSettings(random_id_rows=5, item_oov_buckets=1, spm_vocab_size=8,
                               codebook_sizes={})
  fn = functools.partial(P.preprocessing_fn, custom_config=settings.custom_config())
  with tft_beam.Context(temp_dir=os.path.join(tmp, "tmp"), force_tf_compat_v1=False):
    transform_fn = (train, metadata) | tft_beam.AnalyzeDataset(fn)
    (rows, _) = ((test, metadata), transform_fn) | tft_beam.TransformDataset()
    _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(tmp, "out"))
  return tft.TFTransformOutput(os.path.join(tmp, "out")), rows


# The spec of data without codebooks nor MovieLens's user columns.
BASE_SPEC = {k: v for k, v in RAW_SPEC.items()
             if k in ("user_id", "item_id", "history_item_ids", "label", "item_cohort")}


def _base_row(user, item):
  return {"user_id": [user.encode()], "item_id": item.encode(),
          "history_item_ids": [b""] * N, "label": 1, "item_cohort": b"seen"}


def test_the_data_declares_the_user_features_bytes_and_int64(tmp_path):
  spec = dict(BASE_SPEC, user_country=tf.io.FixedLenFeature([], tf.string),
              user_tier=tf.io.FixedLenFeature([], tf.int64))
  countries, tiers = [b"fr", b"de", b"jp"], [0, 1, 2, 3]  # 0: a real tier of this data
  train = [dict(_base_row(f"u{u}", f"i{u % 3}"), user_country=countries[u % 3],
                user_tier=tiers[u % 4]) for u in range(12)]
  train.append(dict(_base_row("u99", "i0"), user_country=b"", user_tier=S.MISSING_INT64))
  test = [dict(_base_row("u0", "i0"), user_country=b"fr", user_tier=1),
          dict(_base_row("u0", "i0"), user_country=b"br", user_tier=9),  # unseen values
          dict(_base_row("u0", "i0"), user_country=b"fr", user_tier=0),
          dict(_base_row("u0", "i0"), user_country=b"", user_tier=S.MISSING_INT64)]
  output, (known, unseen, zero, missing) = _run_transform(str(tmp_path), spec, train, test)
  assert {k for k in known if k.startswith("user_")} == {
      F.USER_ID, "user_country_token", "user_tier_token"}
  assert F.user_token("user_country") == "user_country_token"
  assert output.vocabulary_size_by_name(P.user_vocab_name("user_country")) == 3
  assert output.vocabulary_size_by_name(P.user_vocab_name("user_tier")) == 4
  # int64 values are counted as their decimal text.
  # "Not given" (MISSING_INT64, "") never enters a vocabulary.
  assert sorted(output.vocabulary_by_name("user_tier_vocab")) == [b"0", b"1", b"2", b"3"]
  vocab = output.vocabulary_by_name("user_country_vocab")
  assert known["user_country_token"] == vocab.index(b"fr") + 1
  tier_vocab = output.vocabulary_by_name("user_tier_vocab")
  assert known["user_tier_token"] == tier_vocab.index(b"1") + 1
  assert zero["user_tier_token"] == tier_vocab.index(b"0") + 1  # a category, not "missing"
  assert unseen["user_country_token"] == 0 and unseen["user_tier_token"] == 0  # OOV
  assert missing["user_country_token"] == 0 and missing["user_tier_token"] == 0
  assert output.transformed_feature_spec()["user_tier_token"].dtype == tf.int64


def test_data_without_user_features_gets_the_user_id_token_only(tmp_path):
  train = [_base_row(f"u{u}", f"i{u % 3}") for u in range(4)]
  output, rows = _run_transform(str(tmp_path), BASE_SPEC, train, train[:1])
  assert {k for k in rows[0] if k.startswith("user_")} == {F.USER_ID}
  assert {k for k in output.transformed_feature_spec() if k.startswith("user_")} == {F.USER_ID}
  assert output.vocabulary_size_by_name(P.user_vocab_name("user_id")) == 4


def test_a_float_user_feature_is_refused_with_the_fix():
  spec = dict(BASE_SPEC, user_score=tf.io.FixedLenFeature([], tf.float32))
  inputs = {k: tf.zeros([2] + list(v.shape), v.dtype) for k, v in spec.items()}
  with pytest.raises(ValueError, match="user feature user_score is float32.*bytes or int64"):
    P.preprocessing_fn(inputs, SETTINGS.custom_config())


def test_unseen_user_gets_the_oov_token_and_labels_pass_through(transformed):
  _, train_rows, eval_rows = transformed
  assert eval_rows[1][F.USER_ID] == 0
  assert all(row[F.USER_ID] > 0 for row in train_rows)
  assert eval_rows[0]["item_cohort"] == b"new"
  # Rows are matched by what determines their label (the item and its history length, see
  # _row), not by position: Beam does not promise to keep the input order.
  def key(item, history_length):
    return item, int(history_length)

  expected = {key(r["item_id"], sum(h != b"" for h in r["history_item_ids"])): r["label"]
              for r in TRAIN + EVAL}
  assert set(expected.values()) == {0, 1}  # both classes, so a constant would fail
  for row in train_rows + eval_rows:
    got = key(row[F.ITEM_KEY], np.asarray(row[F.HISTORY_MASK]).sum())
    assert row[F.LABEL] == float(expected[got]), got
  assert all(0 <= row[F.ITEM_RANDOM_ID] < 5 for row in train_rows)


def test_only_the_spm_codebooks_get_sentencepiece_tokens_and_every_codebook_its_codes(
    transformed):
  _, train_rows, _ = transformed
  row = next(r for r in train_rows if r[F.ITEM_KEY] == b"i0")
  assert SPM_TOKENS in row and F.item_spm_tokens("moc") not in row
  assert np.asarray(row[MOC_CODES]).tolist() == MOC["i0"]
  assert np.asarray(row[SID_CODES]).tolist() == ITEMS["i0"]


def test_a_history_without_a_fixed_shape_is_refused_with_the_fix():
  spec = dict(RAW_SPEC, history_item_ids=tf.io.VarLenFeature(tf.string))
  inputs = {k: (tf.sparse.from_dense(tf.zeros([2, 1], v.dtype)) if isinstance(
      v, tf.io.VarLenFeature) else tf.zeros([2] + list(v.shape), v.dtype))
      for k, v in spec.items()}
  with pytest.raises(ValueError, match="history_item_ids has no fixed shape.*pads histories"):
    P.preprocessing_fn(inputs, SETTINGS.custom_config())
