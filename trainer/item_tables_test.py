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
