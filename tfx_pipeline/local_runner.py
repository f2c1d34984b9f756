"""Runs the sidrec pipeline on this machine: LocalDagRunner (its nodes up to 2 at a time,
parallel_dag_runner.py), SQLite metadata, Beam DirectRunner."""
import dataclasses
import json
import logging
import os
import re
import sys
import time
from typing import Dict, Optional

from absl import logging as absl_logging
from tfx import v1 as tfx

from contracts import config as config_lib
from contracts import schema
from tfx_pipeline import parallel_dag_runner
from tfx_pipeline import pipeline as pipeline_lib
from tfx_pipeline import report as report_lib

# Beside the prepared data: the settings it was prepared with (see ensure_data).
PREPARED_WITH = "prepared_with.json"
# Bumped whenever prepare_data writes different features, so old prepared data is redone.
DATA_FORMAT_VERSION = 3  # 2: item_popularity; 3: fixed-length padded history

_RUNNING = re.compile(r"^Component (\S+) is running\.$")
_FINISHED = re.compile(r"^Component (\S+) is finished\.$")


def executor_runs(pipeline_root: str, component: str) -> int:
  """How many times a component's executor ran under this pipeline root (cache hits add none)."""
  path = os.path.join(pipeline_root, component, ".system", "executor_execution")
  return len(os.listdir(path)) if os.path.isdir(path) else 0


class ComponentProgress(logging.Handler):
  """Turns LocalDagRunner's per-component log lines into one progress line per component.

  LocalDagRunner runs components in topological order and logs "Component X is running."
  and "... is finished." (tfx/orchestration/local/local_dag_runner.py). Hooking the log keeps
  us on the stock runner instead of a fork of it. Whether a component was served from the
  cache is read from the file system, not the log: an executor run adds a directory under
  `<root>/<component>/.system/executor_execution/`, a cache hit does not.
  """

  def __init__(self, total: int, pipeline_root: str, stream=None, resolvers=()):
    super().__init__(level=logging.INFO)
    # Resolver nodes query MLMD and run no executor: "resolved", never "cached".
    self.resolvers = set(resolvers)
    self.total = total
    self.pipeline_root = pipeline_root
    self.stream = stream or sys.stdout
    self.done = 0
    self.started: Dict[str, float] = {}
    # A component's number is its place in the start order, on both of its lines: with two
    # components running at once, a count of finished ones gave two "[k/n] ..." lines one k.
    self.number: Dict[str, int] = {}
    self.runs_before: Dict[str, int] = {}
    self.cached = set()
    self.seconds: Dict[str, float] = {}

  def emit(self, record: logging.LogRecord) -> None:
    message = record.getMessage()
    if match := _RUNNING.match(message):
      name = match.group(1)
      self.started[name] = time.time()
      self.runs_before[name] = executor_runs(self.pipeline_root, name)
      self.number.setdefault(name, len(self.number) + 1)
      self._print(f"[{self.number[name]}/{self.total}] {name} ...")
    elif match := _FINISHED.match(message):
      name = match.group(1)
      self.done += 1
      self.seconds[name] = time.time() - self.started.get(name, time.time())
      if name in self.resolvers:
        how = "resolved"
      elif executor_runs(self.pipeline_root, name) == self.runs_before.get(name, -1):
        self.cached.add(name)
        how = "cached"
      else:
        how = "done"
      number = self.number.setdefault(name, len(self.number) + 1)
      self._print(f"[{number}/{self.total}] {name} {how} in {self.seconds[name]:.1f}s")

  def _print(self, line: str) -> None:
    print(line, file=self.stream, flush=True)


def default_parallelism() -> int:
  """Nodes run at once by `sidrec run`: one per core, at most 2 (each loads TensorFlow, ~1.5 GB,
  and a Trainer's own threads use every core)."""
  return max(1, min(2, len(os.sched_getaffinity(0))))


def local_beam_args(config: config_lib.PipelineConfig) -> tuple:
  """Beam args for the local run: declare that workers need nothing staged.

  Without a dependency flag, TFX's BaseBeamExecutor builds an sdist of TFX itself before every
  Beam component (~4 s each) so that remote workers could install it; `--setup_file` instead
  makes Beam build an sdist of sidrec per component. The local DirectRunner runs in this
  process, or (MULTI_PROCESS_COMPONENTS) in worker processes started from this environment,
  which already has everything, so the local runner names the process's own environment as
  the workers' image: TFX then adds no package and Beam stages nothing.
  On Kubeflow, `beam_pipeline_args` must name the real image (or a setup file) instead.
  """
  args = tuple(config.beam_pipeline_args)
  if not any(a.startswith(pipeline_lib.WORKER_IMAGE_FLAGS) for a in args):
    args += ("--sdk_container_image=in-process",)
  return args


# Beam components that run faster with one DirectRunner worker process per core, because their
# work spreads over the shards: on `sidrec run --dataset ml-1m` (2 cores) Transform 44.2 ->
# 35.1 s and ExamplePacker 48.8 -> 36.2 s (the packer alone, two pairs: 0.72x, 0.85x). The
# others pay more for starting workers, each importing TensorFlow, than they gain
# (ContentEmbedder 15 -> 36 s, each SemanticIdAssigner 1 -> 9-11 s, each Evaluator 32-35 ->
# 40-46 s, StatisticsGen 29 -> 40 s), so they run in the process.
MULTI_PROCESS_COMPONENTS = ("Transform", "ExamplePacker")
# Below this many interactions the workers' start (each imports TensorFlow, several seconds)
# costs more than the ~20 s per 10^6 interactions the two components gain.
MULTI_PROCESS_MIN_INTERACTIONS = 500_000
_RUNNING_MODE_FLAGS = ("--direct_running_mode", "--direct_num_workers")


def multi_process_beam_args(config: config_lib.PipelineConfig, interactions: int) -> tuple:
  """Beam args that give MULTI_PROCESS_COMPONENTS one DirectRunner worker per core (at most 2):
  none with one core, under MULTI_PROCESS_MIN_INTERACTIONS, or when the config's beam args
  name a runner or a running mode other than the default's (the user's choice stands)."""
  args = list(config.beam_pipeline_args)
  workers = default_parallelism()
  default = config_lib.PipelineConfig.__dataclass_fields__["beam_pipeline_args"].default
  if (workers < 2 or interactions < MULTI_PROCESS_MIN_INTERACTIONS
      or any(a.startswith("--runner") for a in args)  # `--runner=X` or `--runner X`
      or any(a.startswith(_RUNNING_MODE_FLAGS) and a not in default for a in args)):
    return ()
  return ("--direct_running_mode=multi_processing", f"--direct_num_workers={workers}")


def add_multi_process_args(pipeline, config: config_lib.PipelineConfig, stats: dict) -> None:
  """Adds multi_process_beam_args to the pipeline's MULTI_PROCESS_COMPONENTS (before it is
  compiled; Beam reads the last of repeated flags, and these come after the pipeline's).
  `stats`: the prepared data's split statistics (ensure_data)."""
  interactions = int(stats.get("train_examples") or 0) + int(stats.get("eval_examples") or 0)
  args = multi_process_beam_args(config, interactions)
  for component in pipeline.components:
    if args and component.id in MULTI_PROCESS_COMPONENTS:
      component.with_beam_pipeline_args(list(args))


def metadata_config(config: config_lib.PipelineConfig):
  return tfx.orchestration.metadata.sqlite_metadata_connection_config(
      os.path.abspath(config.metadata_path))


def ensure_data(config: config_lib.PipelineConfig, force: bool = False) -> dict:
  """Prepares DIR/data unless it already holds data prepared with the same settings."""
  from tfx_pipeline.data import prepare
  stats_path = os.path.join(config.data_dir, schema.SPLIT_STATS_FILE)
  stamp_path = os.path.join(config.data_dir, PREPARED_WITH)
  fingerprint = data_fingerprint(config)
  if not force and os.path.exists(stats_path) and os.path.exists(stamp_path):
    with open(stamp_path) as f:
      same = f.read() == fingerprint
    if same:
      print(f"Using prepared data in {config.data_dir} (same settings; --force-prepare redoes it)")
      with open(stats_path) as f:
        return json.load(f)
  print(f"Preparing {config.data.dataset} into {config.data_dir} ...", flush=True)
  start = time.time()
  stats = prepare.prepare_data(config)
  # Written last: a stamp exists only beside data that was completely prepared.
  report_lib.atomic_write_text(stamp_path, fingerprint)
  print(f"Prepared in {time.time() - start:.1f}s")
  return stats


def data_fingerprint(config: config_lib.PipelineConfig) -> str:
  """The settings the prepared data depends on, as one comparable string; for your own data
  also every input file's size and modification time (a file rewritten in place is new data)."""
  inputs = {}
  if config.data.dataset == "files":
    from tfx_pipeline.data import files  # pylint: disable=g-import-not-at-top
    inputs = {"inputs": files.input_fingerprint(config.data.files),
              "text_required": config.embedding.encoder != "precomputed"}
  return json.dumps({"format": DATA_FORMAT_VERSION,
                     "data": json.loads(config_lib.to_json(config.data)),
                     "split": json.loads(config_lib.to_json(config.split)), **inputs},
                    sort_keys=True)


def write_serving_files(config: config_lib.PipelineConfig) -> list:
  """What the model server reads beside the pushed models (DIR/serving): models.config and
  batching_parameters.txt for `sidrec serve` / tensorflow_model_server on this machine, and
  DIR/serving/deploy/ (the same with the container's paths, a Dockerfile FROM
  tensorflow/serving and Kubernetes manifests). Rewritten after every run: the labels follow
  the pushed versions (canary = the newest, stable = the one before)."""
  from serving import deploy  # pylint: disable=g-import-not-at-top
  from serving import model_config  # pylint: disable=g-import-not-at-top
  serving_dir = os.path.abspath(config.serving_dir)
  if not os.path.isdir(serving_dir) or not model_config.discover_models(serving_dir):
    return []
  s = config.serving
  batching = model_config.BatchingParameters(
      max_batch_size=s.max_batch_size, enable_large_batch_splitting=True,
      max_execution_batch_size=s.max_execution_batch_size,
      batch_timeout_micros=s.batch_timeout_micros, num_batch_threads=s.num_batch_threads)
  written = list(model_config.write_serving_configs(serving_dir, batching,
                                                    num_versions=s.num_versions))
  return written + deploy.write_deploy_files(serving_dir, num_versions=s.num_versions)


def run(config: config_lib.PipelineConfig, force_prepare: bool = False,
        quiet_tfx_logs: bool = True, parallelism: Optional[int] = None) -> dict:
  """Prepares the data, runs the pipeline, writes DIR/report.json and prints the summary.

  `parallelism`: DAG nodes launched at once (tfx_pipeline/parallel_dag_runner.py; default
  `default_parallelism()`); 1 runs TFX's LocalDagRunner as it is.
  """
  parallelism = default_parallelism() if parallelism is None else parallelism
  from tfx_pipeline.data import prepare
  os.makedirs(config.output_dir, exist_ok=True)
  stats = ensure_data(config, force=force_prepare)
  print(prepare.format_split_stats(stats), flush=True)

  run_config = dataclasses.replace(config, beam_pipeline_args=local_beam_args(config))
  pipeline = pipeline_lib.create_pipeline(run_config, metadata_config(config))
  add_multi_process_args(pipeline, config, stats)
  progress = ComponentProgress(
      total=len(pipeline.components), pipeline_root=os.path.abspath(config.pipeline_root),
      resolvers=[c.id for c in pipeline.components if isinstance(c, tfx.dsl.Resolver)])
  absl_logger = absl_logging.get_absl_logger()
  previous_verbosity = absl_logging.get_verbosity()
  previous_propagate = absl_logger.propagate
  # The full INFO log of TFX, Beam and our executors goes to a file; the terminal gets one
  # line per component plus warnings. Verbosity is set through absl's flag, not
  # Logger.setLevel: TensorFlow's SavedModel writer sets verbosity to FATAL and back to the
  # *flag's* value, which would silently undo a plain setLevel
  # (tensorflow/python/trackable/autotrackable.py).
  log_path = os.path.join(config.output_dir, "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  file_handler = logging.FileHandler(log_path)
  file_handler.setFormatter(logging.Formatter(parallel_dag_runner.LOG_FORMAT))
  warnings_handler = logging.StreamHandler(sys.stderr)
  warnings_handler.setLevel(logging.WARNING)
  warnings_handler.addFilter(parallel_dag_runner.drop_known_noise)
  handlers = [progress, file_handler] + ([warnings_handler] if quiet_tfx_logs else [])
  for handler in handlers:
    absl_logger.addHandler(handler)
  absl_logging.set_verbosity(absl_logging.INFO)
  if quiet_tfx_logs:
    absl_logger.propagate = False
  print(f"Running pipeline '{config.name}' ({progress.total} components"
        + (f", up to {parallelism} at a time" if parallelism > 1 else "")
        + f"), root {config.pipeline_root}; full log: {log_path}", flush=True)
  start = time.time()
  try:
    parallel_dag_runner.ParallelLocalDagRunner(parallelism, log_path, quiet_tfx_logs).run(pipeline)
  finally:
    for handler in handlers:
      absl_logger.removeHandler(handler)
    file_handler.close()
    absl_logger.propagate = previous_propagate
    absl_logging.set_verbosity(previous_verbosity)
  elapsed = time.time() - start
  report = report_lib.build_report(config, stats, component_seconds=progress.seconds,
                                   cached=sorted(progress.cached), pipeline_seconds=elapsed)
  path = report_lib.write_report(report, config.output_dir)
  serving_files = write_serving_files(config)
  from tfx_pipeline import report_markdown
  markdown = report_markdown.write_markdown(report, config.output_dir)
  print(report_lib.format_summary(report))
  print(f"\nPipeline finished in {elapsed:.1f}s; report: {path} (readable: {markdown})")
  if serving_files:
    print(f"Model server files: {serving_files[0]} (labels: canary = newest push, stable = the "
          f"one before), {serving_files[1]}; deployment: "
          f"{os.path.dirname(serving_files[-1])}/ (Dockerfile, kubernetes.yaml). Serve with "
          f"`sidrec serve --model-dir {os.path.abspath(config.serving_dir)}`")
  return report


if __name__ == "__main__":
  # Same as `sidrec run` with defaults (MovieLens 1M).
  run(config_lib.with_dataset_defaults(config_lib.PipelineConfig()))
