"""Compiles the same sidrec DAG for Kubeflow Pipelines V2 (KubeflowV2DagRunner).

The local and the Kubeflow runs share `pipeline.create_pipeline`; only locations and the Beam
runner differ. Beam arguments for a distributed runner (Dataflow, Flink, Spark) go in
`PipelineConfig.beam_pipeline_args`. The container image must have sidrec installed (the
components are referenced by dotted path) and `TF_USE_LEGACY_KERAS=1` in its environment:
tfx_pipeline/image/Dockerfile builds it. `sidrec submit` (tfx_pipeline/submit.py) starts a run.
"""
import json
import os
from typing import Optional

from tfx import v1 as tfx

from contracts import artifacts
from contracts import config as config_lib
from contracts import files
from tfx_pipeline import pipeline as pipeline_lib


def compile_pipeline(config: config_lib.PipelineConfig, output_file: str, image: str,
                     pipeline_root: Optional[str] = None, data_dir: Optional[str] = None,
                     serving_dir: Optional[str] = None, baselines: bool = True) -> str:
  """Writes the PipelineJob JSON and returns its path.

  `image` runs every task; it is required: without one TFX falls back to its own image
  (gcr.io/tfx-oss-public/tfx), which has no sidrec and fails on the first sidrec component.
  `data_dir` is where the tasks read the prepared data (`sidrec data`'s DIR/data, copied to
  remote storage). `serving_dir` is where the Pushers write `<model>/<version>/` (the
  directory TF Serving watches); default `<pipeline_root>/serving`. `baselines=False` compiles
  no BaselineResolvers: Kubeflow Pipelines' open-source backend refuses resolver tasks
  ("resolver not implemented yet"); Vertex AI Pipelines runs them.
  """
  if not image:
    raise ValueError("a container image with sidrec installed is required "
                     "(tfx_pipeline/image/Dockerfile builds one)")
  pipeline_root = pipeline_root or os.path.abspath(config.pipeline_root)
  pipeline = pipeline_lib.create_pipeline(
      config, metadata_connection_config=None,
      data_dir=data_dir or os.path.abspath(config.data_dir),
      pipeline_root=pipeline_root,
      serving_dir=serving_dir or pipeline_root.rstrip("/") + "/serving", baselines=baselines)
  runner_config = tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
      default_image=image, display_name=config.name)
  output_dir = os.path.dirname(os.path.abspath(output_file))
  os.makedirs(output_dir, exist_ok=True)
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=runner_config, output_dir=output_dir,
      output_filename=os.path.basename(output_file))
  runner.run(pipeline, write_out=True)
  path = os.path.join(output_dir, os.path.basename(output_file))
  with open(path) as f:
    job = json.load(f)
  if baselines:
    scope_baseline_queries(job, config)
  files.atomic_write_text(path, json.dumps(job, indent=2, sort_keys=True))
  return path


def scope_baseline_queries(job: dict, config: config_lib.PipelineConfig) -> None:
  """Gives each `<R>BaselineResolver`'s blessing query the scope TFX's V2 compiler drops.

  LatestBlessedModelStrategy compiles to two KFP resolver tasks: the latest LIVE ModelBlessing
  with `blessed=1`, then the Model its `current_model_id` names. The local runner restricts
  the first to blessings of `<R>Evaluator`; the compiled filter has no producer, so any
  representation's blessing would do. The blessings name their model's representation
  (components/representation_evaluator), and the filter gets that condition here.
  """
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  for representation in config.representations:
    label = (f"{pipeline_lib.component_prefix(representation)}BaselineResolver"
             "-model-blessing-resolver_executor")
    if label not in executors:
      raise ValueError(f"the compiled spec has no {label}: TFX compiled the baseline "
                       "resolver differently; update scope_baseline_queries")
    query = executors[label]["resolver"]["outputArtifactQueries"]["model_blessing"]
    query["filter"] += (f' AND metadata.{artifacts.REPRESENTATION_PROPERTY}.string_value='
                        f'"{representation}"')
