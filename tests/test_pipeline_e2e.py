"""End-to-end: the sidrec DAG in LocalDagRunner on a small synthetic dataset, twice.

Modelled on tfx/examples/penguin/penguin_pipeline_local_e2e_test.py: the first run must
produce every artifact; the second, identical run must be served from the cache (no
component executes again) and leave the outputs unchanged.
"""
import dataclasses
import glob
import json
import os

import pytest

from tfx_pipeline import config as config_lib

pytestmark = pytest.mark.e2e

UPSTREAM = ["InteractionExampleGen", "CatalogExampleGen", "StatisticsGen", "SchemaGen",
            "ExampleValidator"]
EMBEDDING_AND_BELOW = ["ContentEmbedder"] + [
    f"{prefix}{stage}" for prefix in ("RqVae", "MixtureOfCodes", "RqKMeans")
    for stage in ("CodebookTrainer", "SemanticIdAssigner")]
COMPONENTS = UPSTREAM + EMBEDDING_AND_BELOW


def small_synthetic_config(output_dir: str) -> config_lib.PipelineConfig:
  config = config_lib.PipelineConfig(output_dir=output_dir)
  config = config_lib.replace_section(
      config, "data", dataset="synthetic",
      synthetic=config_lib.SyntheticConfig(num_items=300, num_users=120,
                                           num_interactions=6000, num_clusters=8,
                                           embedding_dim=32, seed=3))
  # Small codebooks so the three trainers take seconds: 2 levels x 16 codes.
  config = config_lib.replace_section(
      config, "codebook", levels=2, codebook_size=16, latent_dim=16, hidden_dims=(64,),
      epochs=10, batch_size=128, kmeans_init_samples=300)
  return config_lib.with_dataset_defaults(config)


def _executions(pipeline_root: str, component: str):
  return glob.glob(os.path.join(pipeline_root, component, ".system", "executor_execution", "*"))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
  from tfx_pipeline import local_runner
  output = str(tmp_path_factory.mktemp("e2e"))
  config = small_synthetic_config(output)
  first = local_runner.run(config)
  second = local_runner.run(config)
  return config, first, second


def test_first_run_writes_every_artifact(two_runs):
  config, first, _ = two_runs
  split = first["split"]
  assert split["new_items"] > 0 and split["train_examples"] > 0
  assert split["new_item_eval_examples"] + split["seen_item_eval_examples"] == \
      split["eval_examples"]
  for component in COMPONENTS:
    assert len(_executions(config.pipeline_root, component)) == 1, component

  schema_files = glob.glob(os.path.join(config.pipeline_root, "SchemaGen", "schema", "*",
                                        "schema.pbtxt"))
  assert schema_files, "SchemaGen wrote no schema"
  schema_text = open(schema_files[0]).read()
  for feature in ("item_cohort", "label", "user_id", "item_id", "history_item_ids"):
    assert f'name: "{feature}"' in schema_text

  emb = first["embeddings"]
  assert emb is not None, "report has no embeddings section"
  assert emb["count"] == split["items"], "every catalog item must get an embedding"
  assert emb["dimension"] == 32
  from components.content_embedder import embeddings_io
  ids, vectors = embeddings_io.load_item_embeddings(emb["uri"])
  assert vectors.shape == (split["items"], 32)
  assert len(set(ids)) == len(ids)

  codebooks = first["codebooks"]
  assert set(codebooks) == {"rqvae", "moc", "rqkmeans"}
  for method, m in codebooks.items():
    assert m["levels"] == 2 and m["codebook_size"] == 16, method
    assert 0.0 < m["unique_sid_ratio"] <= 1.0
    # Every catalog item, new ones included, got a SID from the assigner.
    assert m["assignment"]["items"] == split["items"], method
    assert m["assignment"]["unique_sid_ratio"] == pytest.approx(m["unique_sid_ratio"]), method

  with open(os.path.join(config.output_dir, "report.json")) as f:
    on_disk = json.load(f)
  assert on_disk["split"]["eval_examples"] == split["eval_examples"]


def test_second_run_is_served_from_cache(two_runs):
  config, first, second = two_runs
  assert set(second["components"]["cached"]) == set(COMPONENTS)
  for component in COMPONENTS:
    # A cached component does not execute again: still exactly one executor run.
    assert len(_executions(config.pipeline_root, component)) == 1, component
  assert second["embeddings"]["uri"] == first["embeddings"]["uri"]


def test_changed_embedding_setting_reruns_only_the_embedder(two_runs, tmp_path):
  """A changed setting invalidates exactly the components that read it."""
  from tfx_pipeline import local_runner
  config, _, _ = two_runs
  changed = config_lib.replace_section(config, "embedding", batch_size=17)
  report = local_runner.run(changed)
  assert set(report["components"]["cached"]) == set(UPSTREAM)
  for component in EMBEDDING_AND_BELOW:
    assert len(_executions(config.pipeline_root, component)) == 2, component
