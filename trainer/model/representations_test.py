"""Shapes, table sizes and behaviour of each item-representation layer (eager, no training)."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from contracts.config import RankingConfig, from_json, to_json
from trainer.model import features as F
from trainer.model import representations as R
from trainer.model.conftest import fast_config

E = 8
T = 6
SIZES = F.VocabSizes(user_id=11, user_features={F.user_token("user_age"): 8,
                                                 F.user_token("user_gender"): 3,
                                                 F.user_token("user_occupation"): 22},
                     num_items=50,
                     codebooks={"rqvae": F.CodebookSizes(4, 256, spm_vocab_size=40),
                                "moc": F.CodebookSizes(3, 16),
                                "aligned_rqkmeans": F.CodebookSizes(3, 32, spm_vocab_size=30),
                                "aligned_moc": F.CodebookSizes(3, 16)}, content_dim=12)
SID, MOC, SPM = F.item_codes("rqvae"), F.item_codes("moc"), F.item_spm_tokens("rqvae")
ALIGNED_SID, ALIGNED_MOC = F.item_codes("aligned_rqkmeans"), F.item_codes("aligned_moc")
ALIGNED_SPM = F.item_spm_tokens("aligned_rqkmeans")


def item_inputs(t=T, seed=0):
  rng = np.random.default_rng(seed)
  spm = rng.integers(1, 40, (t, 4))
  spm[:, 3] = 0
  return {F.ITEM_RANDOM_ID: tf.constant(rng.integers(0, 64, t), tf.int64),
          F.ITEM_VOCAB_ID: tf.constant(rng.integers(0, 51, t), tf.int64),
          F.ITEM_EMBEDDING: tf.constant(rng.standard_normal((t, 12)), tf.float32),
          SID: tf.constant(rng.integers(0, 256, (t, 4)), tf.int64),
          MOC: tf.constant(rng.integers(0, 16, (t, 3)), tf.int64),
          SPM: tf.constant(spm, tf.int64),
          ALIGNED_SID: tf.constant(rng.integers(0, 32, (t, 3)), tf.int64),
          ALIGNED_MOC: tf.constant(rng.integers(0, 16, (t, 3)), tf.int64),
          ALIGNED_SPM: tf.constant(spm[:, :3] % 30, tf.int64)}


EXPECTED_ROWS = {
    "random_id": 64,
    "item_id_vocab": 50 + 1,
    "no_item": 0,
    "dense_content": 0,
    "sid_unigram": 4 * 256,
    "sid_bigram": 2 * 4096,  # K^2 = 65,536 > budget 4,096: hashed
    "sid_prefix_ngram": 256 + 4096 * 3,
    "sid_spm": 40,
    "moc": 3 * 16,
    "sid_spm+item_id_vocab": 40 + 51,
    "sid_prefix_ngram+item_id_vocab": 256 + 4096 * 3 + 51,
    # The aligned SIDs: 3 levels x 32 codes (prefix 3 has 32^3 > 4,096: hashed).
    "aligned_sid_prefix_ngram": 32 + 32 ** 2 + 4096,
    "aligned_sid_unigram": 3 * 32,
    "aligned_sid_spm": 30,
    "aligned_moc": 3 * 16,
    "aligned_dense": 0,
    "aligned_sid_prefix_ngram+aligned_dense": 32 + 32 ** 2 + 4096,
}


@pytest.mark.parametrize("name", RankingConfig.REPRESENTATIONS)
def test_factory_shapes_and_table_rows(name):
  rep = R.make_item_representation(name, fast_config(name, embedding_dim=E), SIZES)
  out = rep(item_inputs())
  assert out.shape == (T, 0 if name == "no_item" else E)
  if name in EXPECTED_ROWS:  # a newly registered representation is checked for the rest
    assert rep.table_rows == EXPECTED_ROWS[name]
  assert set(rep.feature_names) <= set(item_inputs())
  # Every table variable holds exactly the reported rows.
  rows = sum(w.shape[0] for w in rep.weights if "table" in w.name)
  assert rows == rep.table_rows
  assert np.all(np.isfinite(out.numpy()))


def test_factory_knows_exactly_the_config_names():
  assert R.REPRESENTATIONS == RankingConfig.REPRESENTATIONS
  with pytest.raises(ValueError, match="unknown representation"):
    R.make_item_representation("sid_trigram", fast_config(), SIZES)
  with pytest.raises(ValueError, match="representation must be one of"):
    RankingConfig(representation="sid_trigram")


def test_missing_sizes_are_named():
  with pytest.raises(ValueError, match="'sid_bigram' reads codebook 'rqvae', but the data has "
                                       "the codebooks \\[\\]"):
    R.make_item_representation("sid_bigram", fast_config(), F.VocabSizes())
  no_spm = F.VocabSizes(codebooks={"rqvae": F.CodebookSizes(4, 256)})
  with pytest.raises(ValueError, match="spm_vocab_size"):
    R.make_item_representation("sid_spm", fast_config(), no_spm)


def test_sid_representations_read_the_configured_codebook():
  sizes = dataclasses.replace(SIZES, codebooks=dict(SIZES.codebooks,
                                                    aligned=F.CodebookSizes(2, 8)))
  rep = R.make_item_representation("sid_prefix_ngram",
                                   fast_config(sid_codebook="aligned", embedding_dim=E), sizes)
  assert rep.feature_names == (F.item_codes("aligned"),)
  assert rep.table_rows == 8 + 64
  moc = R.make_item_representation("moc", fast_config(sid_codebook="aligned"), sizes)
  assert moc.feature_names == (MOC,)  # moc reads the codebook named moc


def _ngram(n, levels, k, budget, name):
  return R.SidNgramEmbedding(n, levels, k, E, budget, None, SID, name=name)


def _prefix(levels, k, budget, name):
  return R.SidPrefixNgramEmbedding(levels, k, E, budget, None, SID, name=name)


def test_bigram_table_exact_under_budget_hashed_over():
  k, levels = 256, 4
  exact = _ngram(2, levels, k, k**2, "exact")
  assert exact.table_rows == (levels // 2) * k**2 == 131_072
  assert exact.group_hashed == [False, False]
  hashed = _ngram(2, levels, k, 1000, "hashed")
  assert hashed.table_rows == 2 * 1000 and hashed.group_hashed == [True, True]
  codes = tf.constant([[1, 2, 3, 4], [1, 2, 9, 9], [2, 1, 3, 4]], tf.int64)
  ids = exact.token_ids(codes).numpy()
  # Exact: token = c1*K + c2 in group 0, offset K^2 for group 1; equal pairs share a row.
  np.testing.assert_array_equal(ids[:, 0], [1 * k + 2, 1 * k + 2, 2 * k + 1])
  np.testing.assert_array_equal(ids[:, 1], [k**2 + 3 * k + 4, k**2 + 9 * k + 9, k**2 + 3 * k + 4])
  hids = hashed.token_ids(codes).numpy()
  assert hids[0, 0] == hids[1, 0] and hids[0, 1] == hids[2, 1]
  assert np.all((hids[:, 0] >= 0) & (hids[:, 0] < 1000)) and np.all(hids[:, 1] >= 1000)
  # Odd L: the last group holds the single remaining code (K rows).
  odd = _ngram(2, 3, k, k**2, "odd")
  assert odd.group_rows == [k**2, k]


def test_unigram_is_one_k_table_per_level():
  uni = _ngram(1, 3, 16, 4, "uni")  # K=16 > budget 4: hashed
  assert uni.group_rows == [4, 4, 4]
  uni = _ngram(1, 3, 16, 4096, "uni2")
  assert uni.group_rows == [16, 16, 16] and uni.table_rows == 48


def test_prefix_ngram_tokens_share_prefixes():
  k = 16
  prefix = _prefix(3, k, 300, "prefix")
  assert prefix.group_rows == [16, 256, 300] and prefix.group_hashed == [False, False, True]
  assert prefix.tables() == {"prefix/prefix1": 16, "prefix/prefix2": 256, "prefix/prefix3": 300}
  codes = tf.constant([[3, 5, 7], [3, 5, 8], [3, 6, 7]], tf.int64)
  ids = prefix.token_ids(codes).numpy()
  np.testing.assert_array_equal(ids[:, 0], [3, 3, 3])
  np.testing.assert_array_equal(ids[:, 1], [16 + 3 * k + 5, 16 + 3 * k + 5, 16 + 3 * k + 6])
  assert len(set(ids[:, 2])) == 3 and np.all((ids[:, 2] >= 272) & (ids[:, 2] < 572))
  # Large L*log K does not overflow: K=2048, L=8 hashes every prefix beyond the budget.
  big = _prefix(8, 2048, 65536, "big")
  assert big.group_rows == [2048] + [65536] * 7
  out = big({SID: tf.constant(np.full((2, 8), 2047), tf.int64)})
  assert out.shape == (2, E)


_HASH_SCRIPT = r"""
import json, sys
import tensorflow as tf
from trainer.model import representations as R
codes, all_rows = json.loads(sys.stdin.read())
print("BUCKETS", json.dumps([R.hash_codes(tf.constant(codes, tf.int64), rows).numpy().tolist()
                             for rows in all_rows]))
"""


def test_hash_is_stable():
  h = R.hash_codes(tf.constant([[1, 2], [1, 2], [2, 1]], tf.int64), 1_000_003).numpy()
  assert h[0] == h[1] != h[2]
  again = R.hash_codes(tf.constant([[1, 2]], tf.int64), 1_000_003).numpy()
  assert again[0] == h[0]
  # Training and serving hash in different processes: a fresh interpreter must give the same
  # buckets as this one.
  codes = np.random.default_rng(0).integers(0, 2**40, (64, 3)).tolist()
  all_rows = [1_000_003, 4096]
  here = [R.hash_codes(tf.constant(codes, tf.int64), rows).numpy().tolist() for rows in all_rows]
  assert all(len(set(b)) > 50 for b in here)  # spread out, so equality below says something
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  proc = subprocess.run([sys.executable, "-c", _HASH_SCRIPT], cwd=root,
                        input=json.dumps([codes, all_rows]), capture_output=True, text=True,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("BUCKETS ")]
  assert line, proc.stdout[-2000:]
  assert json.loads(line[0].split(" ", 1)[1]) == here


def test_spm_pools_over_non_padding_pieces():
  spm = R.SidSpmEmbedding(10, E, "mean", None, SPM, name="spm")
  table = spm.table.numpy()
  tokens = tf.constant([[3, 4, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0], [3, 4, 99, -1]], tf.int64)
  out = spm({SPM: tokens}).numpy()
  np.testing.assert_allclose(out[0], (table[3] + table[4]) / 2, rtol=1e-6)
  np.testing.assert_allclose(out[1], table[3], rtol=1e-6)
  np.testing.assert_array_equal(out[2], np.zeros(E))  # no piece -> zero vector
  np.testing.assert_allclose(out[3], out[0], rtol=1e-6)  # out-of-range ids count as padding
  total = R.SidSpmEmbedding(10, E, "sum", None, SPM, name="spm_sum")
  s = total({SPM: tokens}).numpy()
  np.testing.assert_allclose(s[0], total.table.numpy()[3] + total.table.numpy()[4], rtol=1e-6)


def test_moc_fusion_gate_in_unit_interval_and_shapes():
  moc = R.MixtureOfCodesEmbedding(3, 16, E, code_dim=6, bottleneck_dim=4, feature=MOC, name="moc")
  inputs = item_inputs(t=32)
  out, gate = moc.fuse(inputs)
  assert out.shape == (32, E) and gate.shape == (32, 3 * 6)
  g = gate.numpy()
  assert np.all(g > 0) and np.all(g < 1)
  assert g.std(axis=0).max() > 1e-4  # the gate depends on the item (self-gating)
  # The fusion network: down (18 -> 4), up (4 -> 18), projection (18 -> E).
  assert moc.fusion.down.kernel.shape == (18, 4) and moc.fusion.up.kernel.shape == (4, 18)
  assert moc.projection.kernel.shape == (18, E)
  # Output = projection(concat * gate).
  codes = tf.clip_by_value(inputs[MOC], 0, 15) + tf.constant([0, 16, 32], tf.int64)
  z = tf.reshape(tf.gather(moc.table, codes), [32, 18])
  np.testing.assert_allclose(out.numpy(), moc.projection(z * gate).numpy(), rtol=1e-5, atol=1e-6)
  assert moc.table_rows == 48 and len(moc.tables()) == 3


def test_item_id_oov_and_random_id_wrap():
  item = R.ItemIdEmbedding(5, 2, E, name="item")
  table = item.table.numpy()
  out = item({F.ITEM_VOCAB_ID: tf.constant([0, 4, 5, 6, 1000, -3], tf.int64)}).numpy()
  np.testing.assert_array_equal(out[0], table[0])
  np.testing.assert_array_equal(out[2], table[5])  # OOV bucket rows 5, 6
  np.testing.assert_array_equal(out[4], table[5 + 1000 % 2])  # out of range -> an OOV bucket
  rand = R.RandomIdEmbedding(7, E, name="rand")
  r = rand({F.ITEM_RANDOM_ID: tf.constant([3, 10], tf.int64)}).numpy()
  np.testing.assert_array_equal(r[1], rand.table.numpy()[3])


def test_hybrid_sum_and_concat():
  cfg = fast_config(embedding_dim=E)
  a = R.make_item_representation("sid_spm", cfg, SIZES)
  b = R.make_item_representation("item_id_vocab", cfg, SIZES)
  inputs = item_inputs()
  s = R.Hybrid(a, b, "sum", name="h_sum")
  np.testing.assert_allclose(s(inputs).numpy(), (a(inputs) + b(inputs)).numpy(), rtol=1e-6)
  c = R.Hybrid(a, b, "concat", name="h_cat")
  assert c(inputs).shape == (T, 2 * E) and c.output_dim == 2 * E
  assert s.table_rows == c.table_rows == a.table_rows + b.table_rows
  assert s.feature_names == (SPM, F.ITEM_VOCAB_ID)
  with pytest.raises(ValueError, match="equal output dims"):
    R.Hybrid(a, R.RandomIdEmbedding(4, E + 1, name="r"), "sum")


def test_dense_content_projects():
  rep = R.make_item_representation("dense_content", fast_config(embedding_dim=E), SIZES)
  inputs = item_inputs()
  out = rep(inputs)
  assert out.shape == (T, E) and rep.projection.kernel.shape == (12, E)
  # A nonzero bias, so that dropping it would show.
  rng = np.random.default_rng(3)
  rep.projection.bias.assign(rng.standard_normal(E).astype(np.float32))
  x = inputs[F.ITEM_EMBEDDING].numpy().astype(np.float64)
  expected = x @ rep.projection.kernel.numpy() + rep.projection.bias.numpy()
  np.testing.assert_allclose(rep(inputs).numpy(), expected, rtol=1e-5, atol=1e-5)
  # Only the content embedding is read.
  others = dict(inputs, **{k: v + 1 for k, v in inputs.items() if k != F.ITEM_EMBEDDING})
  np.testing.assert_allclose(rep(others).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_same_seed_same_initial_tables():
  cfg = fast_config(embedding_dim=E)
  a = R.make_item_representation("moc", cfg, SIZES)
  b = R.make_item_representation("moc", cfg, SIZES)
  c = R.make_item_representation("moc", dataclasses.replace(cfg, seed=1), SIZES)
  inputs = item_inputs()
  np.testing.assert_array_equal(a(inputs).numpy(), b(inputs).numpy())
  assert not np.allclose(a(inputs).numpy(), c(inputs).numpy())


def test_ranking_config_json_round_trip():
  cfg = fast_config("moc", mlp_dims=(16, 8), cross_projection_dim=4)
  assert from_json(RankingConfig, to_json(cfg)) == cfg
  assert RankingConfig().batch_size == 1024
  with pytest.raises(ValueError):
    RankingConfig(hybrid_combiner="max")
  with pytest.raises(ValueError, match="unknown RankingConfig"):
    from_json(RankingConfig, '{"embeding_dim": 3}')


def test_input_signature_names_and_dtypes():
  specs = F.input_signature([SID, F.ITEM_EMBEDDING], SIZES, history_length=5)
  assert specs[SID].shape.as_list() == [None, 4]
  assert specs["history_item_codes_rqvae"].shape.as_list() == [None, 5, 4]
  assert specs["history_item_embedding"].dtype == tf.float32
  assert specs[F.HISTORY_MASK].shape.as_list() == [None, 5]
  assert {F.USER_ID, "user_age_token", "user_gender_token", "user_occupation_token"} <= set(specs)
  for name, spec in specs.items():
    assert spec.dtype.name == F.feature_dtype(name)


def test_user_features_are_the_datas_and_round_trip_through_json():
  from trainer.model import ranking  # pylint: disable=g-import-not-at-top
  # Another dataset's user features, listed out of order: the tower's order is sorted.
  sizes = F.VocabSizes(user_id=5, user_features={"user_tier_token": 3,
                                                 "user_country_token": 4})
  assert list(sizes.user_vocab().items()) == [
      (F.USER_ID, 5), ("user_country_token", 4), ("user_tier_token", 3)]
  assert F.VocabSizes(**json.loads(json.dumps(dataclasses.asdict(sizes)))) == sizes
  model = ranking.SidRankingModel(fast_config("no_item"), sizes)
  copy = ranking.SidRankingModel.from_config(json.loads(json.dumps(model.get_config())))
  assert copy.sizes == sizes
  assert set(copy.input_signature()) == {F.USER_ID, "user_country_token", "user_tier_token"}
  features = {F.USER_ID: tf.constant([1, 4]), "user_country_token": tf.constant([3, 0]),
              "user_tier_token": tf.constant([2, 7])}  # 7: outside the table, read as OOV 0
  assert copy(features).shape == (2,)
  # Data without user features: the user id alone; an absent size adds no input.
  assert F.VocabSizes(user_id=3).user_vocab() == {F.USER_ID: 3}
  assert F.VocabSizes(user_id=3, user_features={"user_x_token": 0}).user_vocab() == {
      F.USER_ID: 3}
  for bad in ("user_age", F.USER_ID):
    with pytest.raises(ValueError, match=r"token name, user_token\('user_<name>'\)"):
      F.VocabSizes(user_features={bad: 8})
