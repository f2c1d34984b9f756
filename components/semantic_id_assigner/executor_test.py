"""CodebookTrainer + SemanticIdAssigner executors over a tiny ItemEmbeddings fixture."""
import json
import os

import numpy as np
import pytest
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.codebook import executor as codebook_executor
from components.codebook import export
from tests.fixtures import embeddings as synthetic
from components.semantic_id_assigner import executor as assigner_executor
from contracts import artifacts
from contracts import codebook_io
from contracts import config as config_lib
from contracts import embeddings_io
from contracts import semantic_ids_io


def _write_item_embeddings(uri, ids, vectors, num_shards=2):
  embeddings_io.write_tfrecord_embeddings(
      os.path.join(uri, embeddings_io.EMBEDDINGS_DIR, embeddings_io.SHARD_PREFIX), ids, vectors,
      num_shards=num_shards)
  with open(os.path.join(uri, embeddings_io.METADATA_FILE), "w") as f:
    json.dump({"dimension": int(vectors.shape[1]), "count": len(ids), "encoder": "test"}, f)
  artifact = artifacts.ItemEmbeddings()
  artifact.uri = uri
  return artifact


@pytest.fixture(scope="module")
def trained_codebook(tmp_path_factory):
  """RQ-KMeans (fast, deterministic) trained on 600 of 700 clustered items."""
  root = tmp_path_factory.mktemp("codebook")
  x, labels = synthetic.clustered(n=700, num_clusters=8, dim=48, spread=0.4, seed=1)
  ids = np.array([f"item{i:04d}" for i in range(len(x))])
  train_emb = _write_item_embeddings(str(root / "train_emb"), ids[:600], x[:600])
  all_emb = _write_item_embeddings(str(root / "all_emb"), ids, x, num_shards=3)
  codebook = artifacts.Codebook()
  codebook.uri = str(root / "codebook")
  os.makedirs(codebook.uri)
  config = config_lib.CodebookConfig(method="rqkmeans", levels=2, codebook_size=8, seed=0)
  codebook_executor.Executor().Do(
      {"item_embeddings": [train_emb]}, {"codebook": [codebook]},
      {"codebook_config": config_lib.to_json(config)})
  return root, ids, x, labels, all_emb, codebook


def test_codebook_artifact_holds_savedmodel_and_metrics(trained_codebook):
  _, _, x, _, _, codebook = trained_codebook
  with open(os.path.join(codebook.uri, codebook_io.METRICS_FILE)) as f:
    metrics = json.load(f)
  for key in ("relative_reconstruction_error", "unique_sid_ratio", "code_usage", "perplexity",
              "prefix_cosine"):
    assert key in metrics, key
  loaded = export.load_codebook(os.path.join(codebook.uri, codebook_io.SAVED_MODEL_DIR))
  codes = loaded.assign(x[:600])
  assert codes.shape == (600, 2) and codes.min() >= 0 and codes.max() < 8
  assert codebook.get_string_custom_property("method") == "rqkmeans"
  assert codebook.get_int_custom_property("code_columns") == 2


def test_assigner_gives_every_item_codes_new_items_included(trained_codebook, tmp_path):
  _, ids, x, labels, all_emb, codebook = trained_codebook
  output = artifacts.SemanticIds()
  output.uri = str(tmp_path / "sids")
  os.makedirs(output.uri)
  assigner_executor.Executor().Do(
      {"item_embeddings": [all_emb], "codebook": [codebook]}, {"semantic_ids": [output]},
      {"batch_size": 64})
  sids = semantic_ids_io.read_sids(output.uri)
  assert set(sids) == set(ids), "every item, the 100 never trained on included, gets a SID"
  loaded = export.load_codebook(os.path.join(codebook.uri, codebook_io.SAVED_MODEL_DIR))
  expected = loaded.assign(x)
  got = np.stack([sids[i] for i in ids])
  np.testing.assert_array_equal(got, expected)
  # Held-out items land in their cluster's first-level code like the training items do.
  first = got[:, 0]
  majority = {c: np.bincount(first[:600][labels[:600] == c]).argmax() for c in range(8)}
  held_out_agree = np.mean([first[i] == majority[labels[i]] for i in range(600, 700)])
  assert held_out_agree > 0.9

  with open(os.path.join(output.uri, semantic_ids_io.STATS_FILE)) as f:
    stats = json.load(f)
  assert stats["items"] == 700
  unique = len({tuple(r) for r in got})
  assert stats["unique_sids"] == unique
  assert stats["unique_sid_ratio"] == pytest.approx(unique / 700)
  assert sum(int(k) * v for k, v in stats["items_per_sid_histogram"].items()) == 700
  # What the Joiner and the Trainer read the code shape from, and the codebook's name.
  assert semantic_ids_io.code_shape(output) == (2, 8)
  assert semantic_ids_io.codebook_name(output) == "rqkmeans"
  assert not [p for p in os.listdir(output.uri) if p.startswith(".tmp")]
