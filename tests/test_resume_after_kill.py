"""A `sidrec run` killed with SIGKILL during the Transform resumes on the next `sidrec run`:
the finished components come from the cache, the Transform runs again, and what runs after it
reads the new Transform output, never the half-written one of the killed execution."""
import dataclasses
import glob
import os
import signal
import subprocess
import time

import pytest

from tests.fixtures import cli_process
from tests.test_pipeline_e2e import small_synthetic_config

pytestmark = pytest.mark.e2e

FINISHED_BEFORE_TRANSFORM = ("InteractionExampleGen", "CatalogExampleGen", "StatisticsGen",
                             "SchemaGen", "ContentEmbedder", "RqVaeCodebookTrainer",
                             "RqVaeSemanticIdAssigner", "SemanticIdJoiner")


def _sidrec(config_path: str, **kwargs) -> subprocess.Popen:
  return cli_process.start_sidrec(["run", "--config", config_path], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, **kwargs)


def _mlmd_store(config):
  from ml_metadata import metadata_store
  from tfx import v1 as tfx
  return metadata_store.MetadataStore(
      tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))


def test_a_run_killed_during_transform_resumes_from_the_cache(tmp_path):
  from ml_metadata.proto import metadata_store_pb2
  from tfx_pipeline import local_runner
  # One codebook (the one sid_spm reads): the others would only lengthen the run to the kill.
  config = dataclasses.replace(small_synthetic_config(str(tmp_path / "out")),
                               representations=("sid_spm",), codebook_methods=("rqvae",))
  config_path = str(tmp_path / "config.json")
  with open(config_path, "w") as f:
    f.write(config.to_json())

  # Its own process group: SIGKILL reaches every process of the run at once, as on a node that
  # dies, with no chance to clean up.
  first = _sidrec(config_path, start_new_session=True)
  transform_runs = os.path.join(config.pipeline_root, "Transform", ".system",
                                "executor_execution")
  deadline = time.time() + 600
  while not glob.glob(os.path.join(transform_runs, "*")):
    assert first.poll() is None, first.stdout.read()[-3000:]
    assert time.time() < deadline, "the Transform never started"
    time.sleep(0.5)
  # Into the Transform's analysis (its Beam pipeline takes several seconds here), then kill.
  time.sleep(2)
  assert first.poll() is None, "the run finished before it could be killed"
  os.killpg(first.pid, signal.SIGKILL)
  first.wait()
  first.stdout.close()
  assert local_runner.executor_runs(config.pipeline_root, "Transform") == 1
  assert local_runner.executor_runs(config.pipeline_root, "ExamplePacker") == 0
  runs_before = {c: local_runner.executor_runs(config.pipeline_root, c)
                 for c in FINISHED_BEFORE_TRANSFORM}
  assert all(runs_before.values()), runs_before

  second = _sidrec(config_path)
  out, _ = second.communicate(timeout=900)
  assert second.returncode == 0, out[-3000:]
  for component in FINISHED_BEFORE_TRANSFORM:
    assert f"{component} cached in" in out, (component, out[-3000:])
    assert local_runner.executor_runs(config.pipeline_root, component) == runs_before[component]
  assert "Transform done in" in out
  assert local_runner.executor_runs(config.pipeline_root, "Transform") == 2

  store = _mlmd_store(config)
  transforms = sorted(
      (e for e in store.get_executions_by_type("tfx.components.transform.component.Transform")),
      key=lambda e: e.id)
  assert len(transforms) == 2
  killed, resumed = transforms
  Execution = metadata_store_pb2.Execution
  assert killed.last_known_state == Execution.RUNNING  # nobody marked it done
  assert resumed.last_known_state == Execution.COMPLETE
  # The killed execution published nothing: no artifact is registered under its output
  # directories, and what reads the Transform's outputs (Packer, Trainer) reads the resumed
  # execution's.
  killed_dirs = glob.glob(os.path.join(config.pipeline_root, "Transform", "*", str(killed.id)))
  assert killed_dirs, "the killed Transform wrote nothing before it died"
  artifacts = store.get_artifacts()
  assert not [a.uri for a in artifacts if any(a.uri.startswith(d) for d in killed_dirs)]
  resumed_outputs = {ev.artifact_id for ev in store.get_events_by_execution_ids([resumed.id])
                     if ev.type == metadata_store_pb2.Event.OUTPUT}
  by_id = {a.id: a for a in artifacts}
  assert {os.path.basename(by_id[i].uri) for i in resumed_outputs} == {str(resumed.id)}
  transform_uris = os.path.join(config.pipeline_root, "Transform", "")
  read = [by_id[ev.artifact_id].uri for ev in store.get_events_by_artifact_ids(list(by_id))
          if ev.type == metadata_store_pb2.Event.INPUT
          and by_id[ev.artifact_id].uri.startswith(transform_uris)]
  assert read and all(os.path.basename(uri) == str(resumed.id) for uri in read), read
  # The run finished the rest of the DAG: the model is pushed.
  assert glob.glob(os.path.join(config.serving_dir, "sid_spm", "*", "saved_model.pb"))
