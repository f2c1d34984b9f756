"""ParallelLocalDagRunner: TFX's LocalDagRunner, launching every ready node in a worker process,
up to `parallelism` at a time.

LocalDagRunner (tfx/orchestration/local/local_dag_runner.py) launches the nodes one after the
other in topological order, in its own process; on 2 cores the DAG's independent branches (the
item path beside StatisticsGen, the representations' Trainer / Evaluator / ServingGate chains)
then leave a core idle. This runner does what LocalDagRunner does per node, unchanged: the same
pipeline IR with the same run id, the same `launcher.Launcher(...).launch()` with the node's
executor and driver specs and the same ML Metadata connection, so caching, lineage and the
pipeline-run context are the ones LocalDagRunner records. It only changes when and where a node
is launched:

- a node is ready when every node in its `upstream_nodes` has finished (a node launched earlier
  would find no inputs in this run's context and be skipped silently by the launcher);
- ready nodes are launched in the pipeline's own order, so `parallelism=1` is LocalDagRunner's
  order exactly (and then runs LocalDagRunner itself);
- each runs in one of `parallelism` worker processes (spawned, never forked: the parent has
  TensorFlow and gRPC loaded), which load TensorFlow once and keep it for the next node;
- ML Metadata on SQLite: each call is a short transaction; a writer that finds the database
  locked waits and retries (ml-metadata's busy handler, then MetadataStore's retries), so two
  processes share the file. The schema is created here, before any worker connects.
- the first failure stops new launches; the nodes still running finish, then the failed
  node's own exception is raised, as LocalDagRunner raises it (one that cannot cross the
  process boundary comes as a RuntimeError with its type, message and traceback). A worker
  that dies (killed for memory, a crash) takes the pool down: the nodes running then are
  named in a RuntimeError.
- Ctrl-C (or any exception in this process) terminates the workers; a worker also ends when
  this process dies. As with LocalDagRunner, an interrupted node's execution stays RUNNING in
  ML Metadata and the next run executes it again.

It logs "Component X is running." / "Component X is finished." as LocalDagRunner does (what
local_runner.ComponentProgress reads). Workers write their INFO log to `log_path`, warnings
(without TFX's known per-input noise) to stderr. Partial runs (`run_options`) go to
LocalDagRunner.
"""
import concurrent.futures
import concurrent.futures.process
import ctypes
import datetime
import logging
import multiprocessing
import pickle
import signal
import sys
import traceback
from typing import List, Optional

from absl import logging as absl_logging
from tfx import v1 as tfx
from tfx.dsl.compiler import constants
from tfx.orchestration import metadata
from tfx.orchestration.local import runner_utils
from tfx.orchestration.portable import launcher
from tfx.orchestration.portable import runtime_parameter_utils
from tfx.proto.orchestration import pipeline_pb2
from tfx.utils import telemetry_utils

# Warnings TFX 1.21 logs for every component input on the local runner (its channel resolver
# ignores property predicates it does not need here); kept in the log file, not the terminal.
_KNOWN_NOISE = ("property_predicate is not supported",)
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def drop_known_noise(record: logging.LogRecord) -> bool:
  return not any(noise in record.getMessage() for noise in _KNOWN_NOISE)


def _connection_config(pipeline: pipeline_pb2.Pipeline):
  config = runner_utils.extract_local_deployment_config(pipeline).metadata_connection_config
  return getattr(config, config.WhichOneof("connection_config"))


def _init_worker(log_path: Optional[str], quiet: bool) -> None:
  """A worker's absl log: INFO to the run's log file, warnings to stderr (as the parent's); the
  parent handles Ctrl-C, and the worker dies with it."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  try:  # Linux: SIGTERM when the parent exits, so no worker outlives a killed run
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
  except (OSError, AttributeError):
    pass
  logger = absl_logging.get_absl_logger()
  if log_path:
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
  terminal = logging.StreamHandler(sys.stderr)
  terminal.setLevel(logging.WARNING if quiet else logging.INFO)
  terminal.addFilter(drop_known_noise)
  logger.addHandler(terminal)
  logger.propagate = False
  # Through absl's flag: TensorFlow's SavedModel writer resets verbosity to the flag's value.
  absl_logging.set_verbosity(absl_logging.INFO)


def _started() -> int:
  return 0


def launch_node(pipeline_bytes: bytes, node_id: str) -> None:
  """In a worker: what LocalDagRunner.run_with_ir does for one node."""
  try:
    _launch(pipeline_bytes, node_id)
  except Exception as error:  # pylint: disable=broad-except
    try:
      pickle.loads(pickle.dumps(error))
    except Exception:  # pylint: disable=broad-except
      # An exception the parent could not rebuild would break the pool (and kill the sibling).
      raise RuntimeError(f"component {node_id} failed with {type(error).__name__}: {error}\n"
                         + traceback.format_exc()) from None
    raise


def _launch(pipeline_bytes: bytes, node_id: str) -> None:
  pipeline = pipeline_pb2.Pipeline.FromString(pipeline_bytes)
  deployment_config = runner_utils.extract_local_deployment_config(pipeline)
  node = next(n.pipeline_node for n in pipeline.nodes if n.pipeline_node.node_info.id == node_id)
  with telemetry_utils.scoped_labels({telemetry_utils.LABEL_TFX_RUNNER: "local"}):
    launcher.Launcher(
        pipeline_node=node,
        mlmd_connection=metadata.Metadata(_connection_config(pipeline)),
        pipeline_info=pipeline.pipeline_info,
        pipeline_runtime_spec=pipeline.runtime_spec,
        executor_spec=runner_utils.extract_executor_spec(deployment_config, node_id),
        custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment_config, node_id),
    ).launch()


class ParallelLocalDagRunner(tfx.orchestration.LocalDagRunner):
  """`ParallelLocalDagRunner(parallelism=2, log_path=None, quiet=True).run(pipeline)`."""

  def __init__(self, parallelism: int = 2, log_path: Optional[str] = None, quiet: bool = True):
    super().__init__()
    if parallelism < 1:
      raise ValueError(f"parallelism must be at least 1, got {parallelism}")
    self._parallelism, self._log_path, self._quiet = parallelism, log_path, quiet

  def run_with_ir(self, pipeline: pipeline_pb2.Pipeline,
                  run_options: Optional[pipeline_pb2.RunOptions] = None) -> None:
    if self._parallelism == 1 or run_options:
      return super().run_with_ir(pipeline, run_options)
    runtime_parameter_utils.substitute_runtime_parameter(
        pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: datetime.datetime.now().isoformat()})
    with metadata.Metadata(_connection_config(pipeline)):
      pass  # creates the store's schema before two workers could race to
    order = [n.pipeline_node for n in pipeline.nodes]
    done = {n.node_info.id for n in order if n.execution_options.HasField("skip")}
    waiting = [n for n in order if n.node_info.id not in done]
    pipeline_bytes = pipeline.SerializeToString()
    running, failures = {}, []
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=self._parallelism, mp_context=context, initializer=_init_worker,
        initargs=(self._log_path, self._quiet)) as pool:
      # The pool starts a worker only when no idle one can take a task: one task per worker
      # starts them all now (on demand, the second would start loading TensorFlow only when
      # two nodes are ready, ~10 s late).
      for _ in range(self._parallelism):
        pool.submit(_started)
      try:
        while waiting or running:
          for node in ready(waiting, done) if not failures else []:
            if len(running) == self._parallelism:
              break
            node_id = node.node_info.id
            waiting.remove(node)
            absl_logging.info("Component %s is running.", node_id)
            running[pool.submit(launch_node, pipeline_bytes, node_id)] = node_id
          if not running:
            break  # after a failure, or nodes whose upstream can never finish
          finished, _ = concurrent.futures.wait(running,
                                                return_when=concurrent.futures.FIRST_COMPLETED)
          for future in finished:
            error = future.exception()
            if isinstance(error, concurrent.futures.process.BrokenProcessPool):
              raise error
            node_id = running.pop(future)
            if error is None:
              done.add(node_id)
              absl_logging.info("Component %s is finished.", node_id)
            else:
              failures.append((node_id, error))
      except concurrent.futures.process.BrokenProcessPool:
        raise RuntimeError(
            f"a worker process died while components {sorted(running.values())} ran (killed "
            f"for memory? see the log); run again, or with --parallelism 1") from None
      except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        # Private, but the pool has no public way to stop a running task.
        for process in list(getattr(pool, "_processes", {}).values()):
          process.terminate()
        raise
    if failures:
      node_id, error = failures[0]
      absl_logging.error("Component %s failed: %s", node_id, error)
      raise error  # as LocalDagRunner would: the executor's own exception
    if waiting:
      raise RuntimeError(f"components {[n.node_info.id for n in waiting]} never became ready: "
                         f"their upstream nodes are not in the pipeline")


def ready(waiting: List[pipeline_pb2.PipelineNode], done: set) -> List[pipeline_pb2.PipelineNode]:
  """The waiting nodes whose upstream nodes have all finished, in the pipeline's order."""
  return [n for n in waiting if all(u in done for u in n.upstream_nodes)]
