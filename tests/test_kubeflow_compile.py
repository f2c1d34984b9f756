"""The same DAG compiles for Kubeflow Pipelines V2 (no cluster needed)."""
import json

from tests.test_pipeline_e2e import small_synthetic_config


def test_pipeline_compiles_to_kubeflow_v2_spec(tmp_path):
  from tfx_pipeline import kubeflow_v2_runner
  from tfx_pipeline import pipeline
  config = small_synthetic_config(str(tmp_path / "out"))
  path = kubeflow_v2_runner.compile_pipeline(
      config, output_file=str(tmp_path / "pipeline.json"), image="example.com/sidrec:test",
      pipeline_root="gs://bucket/sidrec", data_dir="gs://bucket/sidrec-data")
  with open(path) as f:
    job = json.load(f)
  spec = job["pipelineSpec"]
  tasks = spec["root"]["dag"]["tasks"]
  text = json.dumps(spec)
  assert {"InteractionExampleGen", "CatalogExampleGen", "ContentEmbedder", "SemanticIdJoiner",
          "Transform"} <= set(tasks)
  for representation in config.representations:
    prefix = pipeline.component_prefix(representation)
    assert {f"{prefix}Trainer", f"{prefix}Evaluator", f"{prefix}Pusher"} <= set(tasks)
  # Transform and the Trainer get their functions as dotted paths (nothing is packaged).
  assert pipeline.PREPROCESSING_FN in text and pipeline.RUN_FN in text
  assert "gs://bucket/sidrec/serving/sid_spm" in text
  text = json.dumps(spec)
  # Custom artifact types keep their Kubeflow-valid schema title.
  assert "sidrec.ItemEmbeddings" in text
  assert "example.com/sidrec:test" in text
  assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/sidrec"
