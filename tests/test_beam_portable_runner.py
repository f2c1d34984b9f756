"""SID assignment, the Joiner and the Transform through Beam's PortableRunner, the submission
path Flink and Spark use: a job service (`local_job_service_main`) and SDK workers in separate
processes started by a worker pool (`worker_pool_main`, `--environment_type=EXTERNAL`) through
`sidrec-beam-boot` (components/beam_sdk_boot.py, a stand-in for the SDK container's boot).
Their outputs must equal the DirectRunner's.

The pipeline is the real DAG cut after the Transform. The first run is all DirectRunner; the
second reuses its metadata, so the components upstream come from the cache and only the three
whose Beam arguments changed (TFX's cache key includes them) run again, on the portable runner.
The second run is a subprocess with a time limit: a Beam job whose workers die waits for them
forever.
"""
import dataclasses
import glob
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.test_pipeline_e2e import small_synthetic_config

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# StatisticsGen too: its DoFns import TFDV, which fails in a fresh worker process without the
# worker plugin (components/beam_worker.py). Its statistics are checked for presence only
# (approximate quantiles may be merged in another order); the others' outputs for equality.
COMPARED = ("RqVaeSemanticIdAssigner", "SemanticIdJoiner", "Transform")
PORTABLE = COMPARED + ("StatisticsGen",)
# The transform graph's SavedModel is rebuilt per run (its bytes carry object ids); Transform
# only analyses, so what it computes is checked through its assets (vocabularies, SentencePiece
# pieces). The per-record transform runs in the ExamplePacker, which this cut DAG leaves out.
_NOT_COMPARED = ("saved_model.pb", "variables", "fingerprint.pb")


def _config(output_dir):
  config = small_synthetic_config(output_dir)
  return dataclasses.replace(config, representations=("sid_spm",))


def run_partial(output_dir: str, portable_args: tuple = ()) -> None:
  """The DAG up to the Transform (RQ-KMeans's stages feed the report only and are cut off);
  `portable_args` go to PORTABLE only."""
  from tests.fixtures import partial_pipeline
  partial_pipeline.run_partial(_config(output_dir), PORTABLE,
                               {c: portable_args for c in PORTABLE} if portable_args else None)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _wait_for_port(port: int, process, seconds: float = 60) -> None:
  deadline = time.time() + seconds
  while time.time() < deadline:
    assert process.poll() is None, "a Beam service exited at start-up"
    with socket.socket() as s:
      if s.connect_ex(("127.0.0.1", port)) == 0:
        return
    time.sleep(0.2)
  raise TimeoutError(f"nothing listens on {port}")


def _latest_outputs(pipeline_root: str, component: str) -> dict:
  """{output key: its newest artifact directory}."""
  out = {}
  for key_dir in glob.glob(os.path.join(pipeline_root, component, "*")):
    if os.path.basename(key_dir) == ".system":
      continue
    runs = sorted(glob.glob(os.path.join(key_dir, "*")), key=lambda p: int(os.path.basename(p)))
    if runs:
      out[os.path.basename(key_dir)] = runs[-1]
  return out


def _records(path: str) -> list:
  """The records of a TFRecord file, tf.Examples serialized deterministically: a process writes a
  feature map in its own hash order, so equal examples from two processes differ in bytes."""
  import tensorflow as tf
  from google.protobuf import message
  compression = "GZIP" if path.endswith(".gz") else ""
  out = []
  for record in tf.data.TFRecordDataset(path, compression_type=compression):
    try:
      out.append(tf.train.Example.FromString(record.numpy()).SerializeToString(deterministic=True))
    except message.DecodeError:  # not a tf.Example: its bytes
      out.append(record.numpy())
  return out


def _contents(artifact_dir: str) -> dict:
  """{relative directory or file: content}: TFRecord shards as one sorted list of examples per
  directory (runners may shard and order differently), other files byte for byte."""
  out = {}
  for folder, dirs, files in os.walk(artifact_dir):
    dirs[:] = [d for d in dirs if d not in _NOT_COMPARED]
    rel = os.path.relpath(folder, artifact_dir)
    for name in files:
      path = os.path.join(folder, name)
      if name in _NOT_COMPARED:
        continue
      if ".tfrecord" in name or name.endswith(".gz"):
        out.setdefault(("records", rel), []).extend(_records(path))
      else:
        with open(path, "rb") as f:
          out[("file", os.path.join(rel, name))] = f.read()
  return {k: sorted(v) if k[0] == "records" else v for k, v in out.items()}


@pytest.fixture(scope="module")
def beam_services(tmp_path_factory):
  """A job service and a worker pool, each its own process, as on a Flink or Spark cluster."""
  logs = tmp_path_factory.mktemp("beam-services")
  job_port, pool_port = _free_port(), _free_port()
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
  bin_dir = os.path.dirname(sys.executable)
  boot = os.path.join(bin_dir, "sidrec-beam-boot")
  assert os.access(boot, os.X_OK), f"{boot} missing: reinstall sidrec (make install)"
  commands = {
      "job_service": [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                      "--port", str(job_port)],
      "worker_pool": [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                      "--service_port", str(pool_port), f"--container_executable={boot}"],
  }
  processes, log_paths = {}, {}
  for name, command in commands.items():
    log_paths[name] = str(logs / f"{name}.log")
    processes[name] = subprocess.Popen(command, env=env, stdout=open(log_paths[name], "w"),
                                       stderr=subprocess.STDOUT)
  try:
    _wait_for_port(job_port, processes["job_service"])
    _wait_for_port(pool_port, processes["worker_pool"])
    yield {"args": ("--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
                    "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}"),
           "logs": log_paths}
  finally:
    for process in processes.values():
      process.terminate()
      process.wait(timeout=30)


def test_assigner_joiner_and_transform_on_the_portable_runner_equal_the_direct_runner(
    beam_services, tmp_path):
  from tfx_pipeline import local_runner
  output = str(tmp_path / "out")
  run_partial(output)
  config = _config(output)
  direct = {c: _latest_outputs(config.pipeline_root, c) for c in COMPARED}
  runs_before = {c: local_runner.executor_runs(config.pipeline_root, c) for c in PORTABLE}

  script = (f"from tests.test_beam_portable_runner import run_partial; "
            f"run_partial({output!r}, {tuple(beam_services['args'])!r})")
  result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env=dict(os.environ, TF_USE_LEGACY_KERAS="1"))
  assert result.returncode == 0, result.stderr[-3000:]

  for component in PORTABLE:
    # It ran again (not from the cache), so the outputs below are the portable runner's.
    assert local_runner.executor_runs(config.pipeline_root, component) == (
        runs_before[component] + 1), component
  with open(beam_services["logs"]["worker_pool"]) as f:
    pool_log = f.read()
  # Each SDK worker was a process the worker pool started through the boot stand-in.
  assert pool_log.count("sidrec-beam-boot") >= len(PORTABLE), pool_log[-2000:]
  with open(beam_services["logs"]["job_service"]) as f:
    assert f.read().count("Running job") >= len(PORTABLE)

  stats = _latest_outputs(config.pipeline_root, "StatisticsGen")["statistics"]
  for split in ("train", "eval"):
    assert os.path.getsize(os.path.join(stats, f"Split-{split}", "FeatureStats.pb")) > 0
  for component in COMPARED:
    portable = _latest_outputs(config.pipeline_root, component)
    # Transform's analyzer cache is keyed by its input's location, which differs per run.
    portable.pop("updated_analyzer_cache", None)
    direct[component].pop("updated_analyzer_cache", None)
    assert set(portable) == set(direct[component]), component
    for key, directory in portable.items():
      assert directory != direct[component][key]
      got, want = _contents(directory), _contents(direct[component][key])
      assert set(got) == set(want), (component, key, set(got) ^ set(want))
      for part in want:
        assert got[part] == want[part], (component, key, part)
      assert any(k[0] == "records" for k in want) or key.endswith("schema") or (
          key == "transform_graph"), (component, key, sorted(want))
