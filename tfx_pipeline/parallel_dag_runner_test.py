"""ParallelLocalDagRunner over a small diamond DAG of Python-function components: a node waits
for its upstream nodes, independent ones run at once in two workers, a second run is served
from the cache as LocalDagRunner's is, and a failing node's own error stops the run."""
import json
import os
import signal
import time

import pytest
from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from tfx_pipeline import parallel_dag_runner


def _record(log_dir: str, name: str, start: float):
  with open(os.path.join(log_dir, f"{name}-{os.getpid()}-{time.time_ns()}.json"), "w") as f:
    json.dump({"name": name, "start": start, "end": time.time(), "pid": os.getpid()}, f)


@component
def Source(log_dir: Parameter[str], out: OutputArtifact[standard_artifacts.Model]):
  start = time.time()
  os.makedirs(out.uri, exist_ok=True)
  with open(os.path.join(out.uri, "value"), "w") as f:
    f.write("source")
  _record(log_dir, "Source", start)


@component
def Branch(log_dir: Parameter[str], name: Parameter[str], seconds: Parameter[float],
           fail: Parameter[int], source: InputArtifact[standard_artifacts.Model],
           out: OutputArtifact[standard_artifacts.Model]):
  start = time.time()
  if fail == 2:
    os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
  if fail:
    raise ValueError(f"branch {name} was told to fail")
  time.sleep(seconds)
  os.makedirs(out.uri, exist_ok=True)
  with open(os.path.join(source.uri, "value")) as f, open(os.path.join(out.uri, "value"), "w") as g:
    g.write(f.read() + "+" + name)
  _record(log_dir, name, start)


@component
def Join(log_dir: Parameter[str], left: InputArtifact[standard_artifacts.Model],
         right: InputArtifact[standard_artifacts.Model],
         out: OutputArtifact[standard_artifacts.Model]):
  start = time.time()
  values = []
  for artifact in (left, right):
    with open(os.path.join(artifact.uri, "value")) as f:
      values.append(f.read())
  os.makedirs(out.uri, exist_ok=True)
  with open(os.path.join(out.uri, "value"), "w") as f:
    f.write("|".join(values))
  _record(log_dir, "Join", start)


def _pipeline(root, log_dir, fail_right=0):
  source = Source(log_dir=log_dir)
  left = Branch(log_dir=log_dir, name="left", seconds=4.0, fail=0,
                source=source.outputs["out"]).with_id("Left")
  right = Branch(log_dir=log_dir, name="right", seconds=4.0, fail=fail_right,
                 source=source.outputs["out"]).with_id("Right")
  join = Join(log_dir=log_dir, left=left.outputs["out"], right=right.outputs["out"])
  return tfx.dsl.Pipeline(
      pipeline_name="diamond", pipeline_root=str(root / "pipeline"),
      components=[source, left, right, join], enable_cache=True,
      metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
          str(root / "metadata.sqlite")))


def _runs(log_dir):
  out = []
  for name in sorted(os.listdir(log_dir)):
    with open(os.path.join(log_dir, name)) as f:
      out.append(json.load(f))
  return {r["name"]: r for r in out}, len(out)


def _output(root, component):
  base = root / "pipeline" / component / "out"
  (version,) = os.listdir(base)
  return (base / version / "value").read_text()


def test_independent_nodes_run_at_once_after_their_upstream_and_the_cache_holds(tmp_path):
  log_dir = tmp_path / "log"
  log_dir.mkdir()
  parallel_dag_runner.ParallelLocalDagRunner(2).run(_pipeline(tmp_path, str(log_dir)))
  runs, count = _runs(log_dir)
  assert count == 4
  assert runs["left"]["start"] >= runs["Source"]["end"]
  assert runs["right"]["start"] >= runs["Source"]["end"]
  assert runs["Join"]["start"] >= max(runs["left"]["end"], runs["right"]["end"])
  # The two branches, 4 s each, overlapped in two different worker processes.
  assert runs["left"]["pid"] != runs["right"]["pid"]
  assert runs["left"]["start"] < runs["right"]["end"] and runs["right"]["start"] < runs["left"]["end"]
  assert _output(tmp_path, "Join") == "source+left|source+right"

  # Same pipeline again: every node is a cache hit, as with LocalDagRunner; no executor runs.
  parallel_dag_runner.ParallelLocalDagRunner(2).run(_pipeline(tmp_path, str(log_dir)))
  tfx.orchestration.LocalDagRunner().run(_pipeline(tmp_path, str(log_dir)))
  assert _runs(log_dir)[1] == 4


def test_a_failing_node_raises_its_own_error_and_nothing_downstream_runs(tmp_path):
  log_dir = tmp_path / "log"
  log_dir.mkdir()
  with pytest.raises(ValueError, match="branch right was told to fail"):
    parallel_dag_runner.ParallelLocalDagRunner(2).run(
        _pipeline(tmp_path, str(log_dir), fail_right=1))
  runs, _ = _runs(log_dir)
  assert set(runs) == {"Source", "left"}  # the running sibling finished; Join never started


def test_a_worker_that_dies_is_named_and_the_run_stops(tmp_path):
  log_dir = tmp_path / "log"
  log_dir.mkdir()
  with pytest.raises(RuntimeError, match=r"worker process died while components \[.*'Right'"):
    parallel_dag_runner.ParallelLocalDagRunner(2).run(
        _pipeline(tmp_path, str(log_dir), fail_right=2))
  assert "Join" not in _runs(log_dir)[0]


def test_parallelism_must_be_positive():
  with pytest.raises(ValueError, match="at least 1"):
    parallel_dag_runner.ParallelLocalDagRunner(0)
