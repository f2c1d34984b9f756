"""ContentAligner's executor over tiny artifacts written at test time."""
import json
import os

import numpy as np
import pytest
from tfx.types import standard_artifacts  # noqa: F401 (registers the TFX types first)

from components.content_aligner import executor
from components.content_aligner import export
from components.content_aligner import spec
from contracts import alignment_io
from contracts import artifacts
from contracts import config as config_lib
from contracts import embeddings_io
from contracts import item_vectors_io


def _artifact(cls, uri):
  a = cls()
  a.uri = uri
  os.makedirs(uri, exist_ok=True)
  return a


@pytest.fixture()
def inputs(tmp_path):
  rng = np.random.default_rng(0)
  ids = [f"m{j:03d}" for j in range(200)]
  content = rng.normal(size=(200, 16)).astype(np.float32)
  learned = (content @ rng.normal(size=(16, 8))).astype(np.float32)
  raw = _artifact(artifacts.ItemEmbeddings, str(tmp_path / "content"))
  embeddings_io.write_tfrecord_embeddings(
      os.path.join(raw.uri, "embeddings", "part"), ids, content)
  vectors = _artifact(artifacts.ItemVectors, str(tmp_path / "vectors"))
  # The first 150 items were trained on, the last 50 are new.
  item_vectors_io.write_item_vectors(vectors.uri, ids[:150], learned[:150],
                                     [30] * 150, representation="item_id_vocab")
  return ids, content, learned, raw, vectors


def _run(tmp_path, raw, vectors, **alignment):
  out = _artifact(artifacts.ItemEmbeddings, str(tmp_path / "aligned"))
  executor.Executor().Do(
      {spec.ITEM_EMBEDDINGS_KEY: [raw], spec.ITEM_VECTORS_KEY: [vectors]},
      {spec.ALIGNED_EMBEDDINGS_KEY: [out]},
      {spec.ALIGNMENT_CONFIG_KEY: config_lib.to_json(config_lib.AlignmentConfig(**alignment)),
       spec.SEED_KEY: 0})
  return out


def test_every_catalog_item_is_aligned_and_the_exported_map_aligns_new_items(tmp_path, inputs):
  ids, content, learned, raw, vectors = inputs
  out = _run(tmp_path, raw, vectors, ridge_alphas=(0.01,))
  got_ids, aligned = embeddings_io.load_item_embeddings(out.uri)
  assert list(got_ids) == ids and aligned.shape == (200, 8)
  report = alignment_io.read_report(out.uri)
  assert report["fit_items"] == 150 and report["catalog_items"] == 200
  assert report["r2_held_out"] > 0.99
  # New items: the exported map's output, which is what the served ranker computes.
  loaded = export.LoadedAlignment(alignment_io.map_dir(out.uri))
  np.testing.assert_allclose(loaded.align(content[150:]), aligned[150:], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(aligned[150:], learned[150:], atol=0.05)
  meta = json.loads((tmp_path / "aligned" / "metadata.json").read_text())
  assert meta["dimension"] == 8 and meta["count"] == 200
  assert out.get_string_custom_property("encoder") == "aligned:ridge"
  # The training counts travel on for the aligned SentencePiece vocabulary; new items have none.
  assert item_vectors_io.read_train_interactions(out.uri) == {i: 30 for i in ids[:150]}
  assert not [p for p in os.listdir(out.uri) if p.endswith(".tmp")]


def test_the_mlp_map_exports_and_aligns_like_its_fit(tmp_path, inputs):
  ids, content, learned, raw, vectors = inputs
  out = _run(tmp_path, raw, vectors, method="mlp", mlp_epochs=50, folds=2)
  _, aligned = embeddings_io.load_item_embeddings(out.uri)
  loaded = export.LoadedAlignment(alignment_io.map_dir(out.uri))
  np.testing.assert_allclose(loaded.align(content[150:]), aligned[150:], rtol=1e-4, atol=1e-4)
  assert alignment_io.read_report(out.uri)["method"] == "mlp"
