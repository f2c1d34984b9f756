"""ItemTables: catalog codes in the graph; unknown ids are flagged, never given another's codes."""
import numpy as np
import pytest
import tensorflow as tf

from trainer.item_tables import ItemTables

SIDS = {"a": np.array([1, 2, 3]), "b": np.array([4, 5, 6])}
MOC = {"a": np.array([7, 8]), "b": np.array([9, 10])}
EMB = {"a": np.array([0.5, 1.0], np.float32), "b": np.array([2.0, 3.0], np.float32)}


def test_lookup_by_id_with_unknown_and_padding(tmp_path):
  tables = ItemTables({"rqvae": SIDS, "moc": MOC}, EMB)
  ids = tf.constant([["b", "zzz", ""]])
  _, found = tables.lookup(ids)
  assert found.numpy().tolist() == [[True, False, False]]
  assert tables.codes("rqvae", ids).numpy().tolist() == [[[4, 5, 6], [0, 0, 0], [0, 0, 0]]]
  assert tables.codes("moc", tf.constant(["a"])).numpy().tolist() == [[7, 8]]
  assert tables.content(tf.constant(["b"])).numpy().tolist() == [[2.0, 3.0]]
  assert tables.codebooks == ("moc", "rqvae")
  assert (tables.code_columns("rqvae"), tables.code_columns("moc"), tables.content_dim) == (
      3, 2, 2)
  # Survives a SavedModel round trip (variables + hash table).
  module = tf.Module()
  module.tables = tables
  module.sid = tf.function(lambda ids: tables.codes("rqvae", ids),
                           input_signature=[tf.TensorSpec([None], tf.string)])
  tf.saved_model.save(module, str(tmp_path / "m"))
  loaded = tf.saved_model.load(str(tmp_path / "m"))
  assert loaded.sid(tf.constant(["a", "new"])).numpy().tolist() == [[1, 2, 3], [0, 0, 0]]


def test_codes_of_different_catalogs_are_an_error():
  with pytest.raises(ValueError, match="codebook 'rqvae'.*same catalog"):
    ItemTables({"moc": MOC, "rqvae": {"a": np.array([1, 2, 3])}})
  with pytest.raises(ValueError, match="hold the codebooks \\['rqvae'\\], not 'moc'"):
    ItemTables({"rqvae": SIDS}).codes("moc", tf.constant(["a"]))


def test_aligned_spm_vocabulary_segments_like_the_library_and_survives_export(tmp_path):
  """The Trainer-trained SentencePiece vocabulary of an aligned codebook: items' tokens in the
  graph equal the vocabulary's own segmentation; frequent runs merge into pieces; unknown ids
  and padding get no tokens; the asset travels inside the SavedModel."""
  from trainer.aligned_items import train_aligned_spm  # pylint: disable=g-import-not-at-top
  from trainer.spm.tf_segment import SpmSubIdSegmenter  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  prefixes = rng.integers(0, 16, (12, 2))
  codes = {f"i{j}": np.array([*prefixes[j % 12], rng.integers(0, 16)]) for j in range(300)}
  counts = {f"i{j}": int(rng.integers(1, 50)) for j in range(250)}  # the rest: never trained
  vocab, asset = train_aligned_spm(codes, counts, "aligned_rqkmeans", 16, 200,
                                   str(tmp_path / "spm"))
  with pytest.raises(ValueError, match="ranking.table_budget 40 is below the 49 rows"):
    train_aligned_spm(codes, counts, "aligned_rqkmeans", 16, 40, str(tmp_path / "small"))
  assert vocab.num_tokens <= 200 and any(len(p) > 1 for p in vocab.pieces)
  tables = ItemTables({"aligned_rqkmeans": codes})
  tables.set_segmenter("aligned_rqkmeans", SpmSubIdSegmenter(asset))
  ids = sorted(codes)
  got = tables.spm_tokens("aligned_rqkmeans", tf.constant(ids)).numpy()
  want, _ = vocab.segment_batch(np.stack([codes[i] for i in ids]))
  np.testing.assert_array_equal(got, want)
  assert (got[:, 1:] == 0).any(), "no multi-code piece was used"
  assert tables.spm_tokens("aligned_rqkmeans", tf.constant([["", "nope"]])).numpy().tolist() == [
      [[0, 0, 0], [0, 0, 0]]]
  module = tf.Module()
  module.tables = tables
  module.tokens = tf.function(lambda ids: tables.spm_tokens("aligned_rqkmeans", ids),
                              input_signature=[tf.TensorSpec([None], tf.string)])
  tf.saved_model.save(module, str(tmp_path / "m"))
  (tmp_path / "spm" / "aligned_rqkmeans.spm_subid_vocab.tsv").unlink()  # only the copy remains
  loaded = tf.saved_model.load(str(tmp_path / "m"))
  np.testing.assert_array_equal(loaded.tokens(tf.constant(ids[:5])).numpy(), want[:5])
  with pytest.raises(ValueError, match="segment \\['aligned_rqkmeans'\\], not 'rqvae'"):
    tables.segment("rqvae", tf.zeros([1, 3], tf.int64))
