"""SavedModel export: signature, identical codes after reload, atomic replacement."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components.codebook import CodebookInputError
from components.codebook import export as export_lib
from components.codebook.conftest import METHODS


@pytest.mark.parametrize("method", METHODS)
def test_saved_model_round_trip_gives_identical_codes(method, trained, clustered_data, tmp_path):
  codebook, metrics = trained(method)
  x_train, _, x_new, _ = clustered_data
  path = codebook.export(str(tmp_path / "codebook"))
  loaded = export_lib.load_codebook(path)
  for x in (x_train, x_new):
    np.testing.assert_array_equal(loaded.assign(x), codebook.assign(x))
    np.testing.assert_allclose(loaded.reconstruct(x), codebook.reconstruct(x), rtol=1e-5,
                               atol=1e-6)
  # The raw serving signature, as TF Serving would call it.
  raw = tf.saved_model.load(path)
  fn = raw.signatures["serving_default"]
  spec = fn.structured_input_signature[1]["embeddings"]
  assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, 384]
  out = fn(embeddings=tf.constant(x_new[:5]))
  assert set(out) == {"codes", "reconstruction"}
  assert out["codes"].dtype == tf.int64 and out["codes"].shape == (5, codebook.num_code_columns)
  assert out["reconstruction"].dtype == tf.float32 and out["reconstruction"].shape == (5, 384)
  np.testing.assert_array_equal(out["codes"].numpy(), codebook.assign(x_new[:5]))
  meta = json.loads((tmp_path / "codebook" / "assets.extra" / "codebook.json").read_text())
  assert meta["method"] == method and meta["input_dim"] == 384
  with pytest.raises(CodebookInputError, match="dimension"):
    loaded.assign(np.zeros((2, 10), np.float32))


def test_export_replaces_atomically_and_leaves_no_temp_dirs(trained, tmp_path):
  codebook, metrics = trained("rqkmeans")
  target = tmp_path / "out" / "codebook"
  export_lib.export_codebook(codebook, str(target))
  (target / "stale_marker").write_text("old")
  export_lib.export_codebook(codebook, str(target), metrics=metrics)
  assert sorted(os.listdir(tmp_path / "out")) == ["codebook"]  # no .tmp-* / .old-* left
  assert not (target / "stale_marker").exists()
  assert tf.saved_model.contains_saved_model(str(target))
  meta = json.loads((target / "assets.extra" / "codebook.json").read_text())
  assert meta["metrics"]["unique_sid_ratio"] == metrics["unique_sid_ratio"]


def test_failed_export_keeps_previous_model(trained, tmp_path, monkeypatch):
  codebook, _ = trained("rqkmeans")
  target = tmp_path / "codebook"
  export_lib.export_codebook(codebook, str(target))

  def boom(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(tf.saved_model, "save", boom)
  with pytest.raises(OSError):
    export_lib.export_codebook(codebook, str(target))
  assert sorted(os.listdir(tmp_path)) == ["codebook"]
  assert tf.saved_model.contains_saved_model(str(target))


def test_unfitted_codebook_cannot_export(tmp_path):
  from components.codebook.rqkmeans import RqKMeansCodebook  # pylint: disable=g-import-not-at-top
  from components.codebook.base import NotFittedError  # pylint: disable=g-import-not-at-top
  with pytest.raises(NotFittedError):
    RqKMeansCodebook().export(str(tmp_path / "x"))
