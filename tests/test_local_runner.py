"""The local runner's terminal output: one progress line per component, the full log in a file."""
import io
import logging
import os
import re

from absl import logging as absl_logging

from contracts import config as config_lib
from tfx_pipeline import local_runner


def _ran_executor(root, component, run_id):
  """What an executor run leaves behind (a cache hit leaves nothing)."""
  os.makedirs(os.path.join(root, component, ".system", "executor_execution", str(run_id)))


def _progress_logger(handler):
  logger = logging.getLogger("test_local_runner.progress")
  logger.handlers = [handler]
  logger.setLevel(logging.INFO)
  logger.propagate = False
  return logger


def test_progress_lines_count_components_and_tell_done_from_cached(tmp_path):
  root = str(tmp_path / "pipeline")
  _ran_executor(root, "SchemaGen", 1)  # ran in an earlier run; this run is a cache hit
  stream = io.StringIO()
  progress = local_runner.ComponentProgress(total=3, pipeline_root=root, stream=stream)
  log = _progress_logger(progress)
  log.info("Component StatisticsGen is running.")
  log.info("Running executor for StatisticsGen")  # other lines print nothing
  _ran_executor(root, "StatisticsGen", 7)
  log.info("Component StatisticsGen is finished.")
  log.info("Component SchemaGen is running.")
  log.info("Component SchemaGen is finished.")
  log.info("Component Transform is running.")  # never ran before, and not now either
  log.info("Component %s is finished.", "Transform")  # absl/TFX log with %-arguments
  lines = stream.getvalue().splitlines()
  pattern = [r"\[1/3\] StatisticsGen \.\.\.", r"\[1/3\] StatisticsGen done in \d+\.\ds",
             r"\[2/3\] SchemaGen \.\.\.", r"\[2/3\] SchemaGen cached in \d+\.\ds",
             r"\[3/3\] Transform \.\.\.", r"\[3/3\] Transform cached in \d+\.\ds"]
  assert len(lines) == len(pattern), lines
  for line, expected in zip(lines, pattern):
    assert re.fullmatch(expected, line), (line, expected)
  assert progress.cached == {"SchemaGen", "Transform"}
  assert set(progress.seconds) == {"StatisticsGen", "SchemaGen", "Transform"}
  assert all(s >= 0 for s in progress.seconds.values())


def test_two_components_running_at_once_have_a_number_each(tmp_path):
  stream = io.StringIO()
  progress = local_runner.ComponentProgress(total=3, pipeline_root=str(tmp_path), stream=stream)
  log = _progress_logger(progress)
  for message in ("Component A is running.", "Component B is running.",
                  "Component B is finished.", "Component C is running.",
                  "Component A is finished.", "Component C is finished."):
    log.info(message)
  numbers = [re.match(r"\[(\d)/3\] (\w)", line).groups()
             for line in stream.getvalue().splitlines()]
  assert numbers == [("1", "A"), ("2", "B"), ("2", "B"), ("3", "C"), ("1", "A"), ("3", "C")]
  assert progress.done == 3


def test_run_prints_progress_and_writes_the_full_log_to_a_file(tmp_path, monkeypatch, capsys):
  """`local_runner.run` with the pipeline replaced by a fake LocalDagRunner that logs like
  TFX's: the terminal gets the progress lines, the log file gets every INFO line."""
  config = config_lib.PipelineConfig(output_dir=str(tmp_path / "out"))
  root = os.path.abspath(config.pipeline_root)
  got = {}

  class FakePipeline:
    components = ["InteractionExampleGen", "StatisticsGen"]

  def create_pipeline(run_config, metadata_connection_config):
    del metadata_connection_config
    got["beam_pipeline_args"] = run_config.beam_pipeline_args
    return FakePipeline()

  class FakeLocalDagRunner:

    def __init__(self, parallelism, log_path, quiet):
      got["runner"] = (parallelism, log_path, quiet)

    def run(self, pipeline):
      for i, name in enumerate(pipeline.components):
        absl_logging.info("Component %s is running.", name)
        absl_logging.info("executor detail of %s", name)
        if name == "InteractionExampleGen":
          _ran_executor(root, name, i)
        absl_logging.info("Component %s is finished.", name)

  monkeypatch.setattr(local_runner, "ensure_data", lambda config, force=False: {
      "dataset": "synthetic", "train_examples": 1234})
  monkeypatch.setattr(local_runner.pipeline_lib, "create_pipeline", create_pipeline)
  monkeypatch.setattr(local_runner.parallel_dag_runner, "ParallelLocalDagRunner",
                      FakeLocalDagRunner)
  monkeypatch.setattr(local_runner.report_lib, "build_report",
                      lambda config, stats, component_seconds, cached, pipeline_seconds: {
                          "split": stats, "components": {"cached": cached}})
  from tfx_pipeline import report_markdown
  monkeypatch.setattr(report_markdown, "write_markdown", lambda report, output_dir: "report.md")
  absl_logger = absl_logging.get_absl_logger()
  handlers_before = list(absl_logger.handlers)

  report = local_runner.run(config)

  out = capsys.readouterr().out
  logs = os.listdir(os.path.join(config.output_dir, "logs"))
  assert len(logs) == 1 and re.fullmatch(r"run-\d{8}-\d{6}\.log", logs[0]), logs
  log_path = os.path.join(config.output_dir, "logs", logs[0])
  assert f"full log: {log_path}" in out
  # The runner's workers log to the same file.
  assert got["runner"] == (local_runner.default_parallelism(), log_path, True)
  assert re.search(r"^\[1/2\] InteractionExampleGen done in \d+\.\ds$", out, re.M), out
  assert re.search(r"^\[2/2\] StatisticsGen cached in \d+\.\ds$", out, re.M), out
  assert "executor detail" not in out  # the terminal gets progress, not the TFX log
  with open(log_path) as f:
    log_lines = f.read().splitlines()
  for name in FakePipeline.components:
    for message in (f"Component {name} is running.", f"executor detail of {name}",
                    f"Component {name} is finished."):
      assert any(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO " + re.escape(message),
                              line) for line in log_lines), (message, log_lines)
  assert report["components"]["cached"] == ["StatisticsGen"]
  assert "train examples" in out and "1,234" in out  # the split table comes first
  # The local run tells Beam that workers need nothing staged.
  assert got["beam_pipeline_args"][-1] == "--sdk_container_image=in-process"
  # The handlers go when the run ends: a second run in this process (sidrec experiment)
  # must not print every progress line twice nor write into this run's log.
  assert absl_logger.handlers == handlers_before
  absl_logging.info("Component Later is running.")
  assert "Later" not in capsys.readouterr().out
  with open(log_path) as f:
    assert "Later" not in f.read()


def test_transform_and_the_packer_get_a_worker_per_core_on_large_data_only(tmp_path, monkeypatch):
  from tfx_pipeline import pipeline as pipeline_lib
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
  config = config_lib.PipelineConfig(output_dir=str(tmp_path))
  large = {"train_examples": 863_287, "eval_examples": 136_922}
  mp = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")
  assert local_runner.multi_process_beam_args(config, 1_000_209) == mp
  assert local_runner.multi_process_beam_args(config, 100_000) == ()  # start-up > gain
  for args in (["--direct_running_mode=in_memory", "--direct_num_workers=2"],
               ["--direct_running_mode=multi_processing", "--direct_num_workers=4"],
               ["--runner=FlinkRunner", "--sdk_container_image=x"],
               ["--runner", "DirectRunner"]):
    chosen = config_lib.PipelineConfig(output_dir=str(tmp_path), beam_pipeline_args=tuple(args))
    assert local_runner.multi_process_beam_args(chosen, 1_000_209) == (), args
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
  assert local_runner.multi_process_beam_args(config, 1_000_209) == ()
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
  pipeline = pipeline_lib.create_pipeline(config, local_runner.metadata_config(config))
  local_runner.add_multi_process_args(pipeline, config, large)
  with_mp = sorted(c.id for c in pipeline.components
                   if "--direct_running_mode=multi_processing" in
                   getattr(c.executor_spec, "beam_pipeline_args", []))
  assert with_mp == ["ExamplePacker", "Transform"]
  packer = next(c for c in pipeline.components if c.id == "ExamplePacker")
  assert list(packer.executor_spec.beam_pipeline_args[-2:]) == list(mp)  # last: they win
