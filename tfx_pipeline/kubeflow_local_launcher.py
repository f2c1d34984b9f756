"""`sidrec run-compiled`: a local stand-in for the Kubeflow Pipelines backend.

Runs the PipelineJob JSON that `sidrec compile-kubeflow` writes (KubeflowV2DagRunner) on this
machine, the way the KFP backend runs it: each task of `root.dag` starts once the tasks it
depends on have finished, as many at once as `parallelism` allows (default: one per core, at
most 4; KFP starts every ready task at once). Resolvers are answered as soon as they are
ready, so the blessing resolvers, which depend on nothing, run before anything else.

- A **container** task runs its container's command and arguments in a subprocess, with
  `{{$}}` replaced by the ExecutorInput JSON (TFX's
  `python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`). The image is
  not used: `python` is this machine's interpreter (sys.executable, the venv that has sidrec
  installed), with the image's `TF_USE_LEGACY_KERAS=1`. The ExecutorInput holds the input
  artifacts (name, uri, type, metadata), the parameters (constants, and runtime parameters from
  the job's runtimeConfig or their defaults), both as legacy `parameters` and as
  `parameterValues`, and the outputs: one artifact per declared output at
  `<root>/<job>/<task>/<output>` (KFP's layout; the directory is created first, as a bucket
  needs no directories) and `outputFile` `<root>/<job>/<task>/executor_output.json`.
- A container with a `lifecycle.preCacheCheck` hook (TFX's FileBasedExampleGen driver,
  `python -m tfx.orchestration.kubeflow.v2.file_based_example_gen.driver`) runs the hook first
  with the same ExecutorInput; the parameters and artifact metadata of its ExecutorOutput are
  applied to the executor's ExecutorInput, as the backend updates the task before the executor.
- After the executor, the artifacts of its `executor_output.json` are merged into the task's
  outputs (uri if set, metadata keys: KFP's mergeRuntimeArtifacts), recorded in the ledger and
  handed to the downstream tasks.
- A **resolver** task is answered from the ledger of the artifacts produced by earlier tasks
  and runs under the same pipeline root (tfx_pipeline/kubeflow_local_ledger.py).

What it does not do: no containers or images, no caching (every task runs, as with caching
off), no retries, no resource limits. Importer and custom-job executors, sub-DAGs,
conditions, loops, exit handlers, output parameters, placeholders other than `{{$}}` and
commands other than `python ...` fail before anything runs, naming the task; so does a
resolver query of a form the ledger does not evaluate (kubeflow_local_ledger.py lists them).
Per-task logs: `<root>/<job>/logs/<task>.log`.
"""
import collections
import concurrent.futures
import json
import os
import signal
import sys
import threading
import time
from typing import Dict, List, Optional

from tfx_pipeline import kubeflow_local_container
from tfx_pipeline import kubeflow_local_ledger
from tfx_pipeline.kubeflow_local_ledger import LaunchError, Ledger, resolve

_UNSUPPORTED_TASK_FIELDS = ("triggerPolicy", "iteratorPolicy", "parameterIterator",
                            "artifactIterator")


def load_job(path: str) -> dict:
  """The PipelineJob dict; ValueError (one line) when the file is not one."""
  try:
    with open(path) as f:
      job = json.load(f)
  except OSError as e:
    raise ValueError(f"cannot read {path}: {e.strerror}") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not JSON ({e.msg} at line {e.lineno})") from None
  spec = job.get("pipelineSpec") if isinstance(job, dict) else None
  if not isinstance(spec, dict) or "tasks" not in spec.get("root", {}).get("dag", {}):
    raise ValueError(f"{path} is not a Kubeflow PipelineJob JSON (no pipelineSpec.root.dag."
                     "tasks; `sidrec compile-kubeflow` writes one)")
  return job


def _upstream(tasks: Dict[str, dict]) -> Dict[str, set]:
  """Each task's upstream tasks: its `dependentTasks` and the producers of its inputs."""
  return {name: set(task.get("dependentTasks", [])) | {
      a["taskOutputArtifact"]["producerTask"]
      for a in task.get("inputs", {}).get("artifacts", {}).values() if "taskOutputArtifact" in a}
      for name, task in tasks.items()}


def dependency_order(tasks: Dict[str, dict]) -> List[str]:
  """Kahn's order, first come first served: tasks ready at the start run first."""
  upstream = _upstream(tasks)
  for name, ups in upstream.items():
    if ups - set(tasks):
      raise LaunchError(f"task {name}: depends on unknown task(s) {sorted(ups - set(tasks))}")
  ready = collections.deque(sorted(n for n, ups in upstream.items() if not ups))
  order, done = [], set()
  while ready:
    name = ready.popleft()
    order.append(name)
    done.add(name)
    ready.extend(sorted(n for n, ups in upstream.items()
                        if n not in done and n not in ready and ups <= done))
  if len(order) != len(tasks):
    raise LaunchError(f"tasks in a dependency cycle: {sorted(set(tasks) - done)}")
  return order


class _Job:
  """One run of a compiled PipelineJob under a local pipeline root."""

  def __init__(self, job: dict, pipeline_root: str, parameter_values: Optional[dict],
               stream):
    self.spec = job["pipelineSpec"]
    self.pipeline = self.spec.get("pipelineInfo", {}).get("name", "pipeline")
    self.root = os.path.abspath(pipeline_root)
    self.runtime = dict(_runtime_values(job.get("runtimeConfig", {})), **(parameter_values or {}))
    self.stream = stream or sys.stdout
    self.ledger = Ledger(self.root)
    self.task_processes: set = set()  # of the tasks running now (kubeflow_local_container)
    stamp = time.strftime("%Y%m%d%H%M%S")
    self.name = f"{self.pipeline}-{stamp}"
    n = 1
    while os.path.exists(os.path.join(self.root, self.name)):
      n += 1
      self.name = f"{self.pipeline}-{stamp}-{n}"
    self.dir = os.path.join(self.root, self.name)

  def plan(self) -> List[tuple]:
    """(task name, task, component, executor kind, executor body), checked before any runs."""
    tasks = self.spec["root"]["dag"]["tasks"]
    plan = []
    for name in dependency_order(tasks):
      task = tasks[name]
      component = self.spec.get("components", {}).get(
          task.get("componentRef", {}).get("name", ""))
      if component is None:
        raise LaunchError(f"task {name}: its component is not in the spec")
      for field in _UNSUPPORTED_TASK_FIELDS:
        if field in task:
          raise LaunchError(f"task {name}: `{field}` is not supported by the local launcher")
      if "dag" in component:
        raise LaunchError(f"task {name}: sub-DAGs are not supported by the local launcher")
      if component.get("outputDefinitions", {}).get("parameters"):
        raise LaunchError(f"task {name}: output parameters are not supported by the local "
                          "launcher")
      executor = self.spec.get("deploymentSpec", {}).get("executors", {}).get(
          component.get("executorLabel", ""))
      if not executor or len(executor) != 1:
        raise LaunchError(f"task {name}: no executor {component.get('executorLabel')!r}")
      (kind, body), = executor.items()
      if kind == "container":
        kubeflow_local_container.check(name, body)
      elif kind == "resolver":
        kubeflow_local_ledger.check(name, body)
      else:
        raise LaunchError(f"task {name}: executor kind {kind!r} is not supported by the local "
                          "launcher (it runs container and resolver tasks)")
      for key, source in task.get("inputs", {}).get("artifacts", {}).items():
        if "taskOutputArtifact" not in source:
          raise LaunchError(f"task {name}: input artifact {key!r} from {sorted(source)} is not "
                            "supported by the local launcher (only task outputs)")
      self.parameters(name, task, component)  # every parameter has a value
      plan.append((name, task, component, kind, body))
    return plan

  def parameters(self, name: str, task: dict, component: dict):
    """(legacy `parameters`, `parameterValues`) of a task's ExecutorInput."""
    legacy, values = {}, {}
    declared = component.get("inputDefinitions", {}).get("parameters", {})
    for key, source in task.get("inputs", {}).get("parameters", {}).items():
      constant = source.get("runtimeValue", {})
      if "constantValue" in constant:
        legacy[key] = constant["constantValue"]
        values[key] = kubeflow_local_container.from_legacy(constant["constantValue"])
      elif "constant" in constant:
        values[key] = constant["constant"]
      elif "componentInputParameter" in source:
        runtime = source["componentInputParameter"]
        if runtime in self.runtime:
          values[key] = self.runtime[runtime]
        elif "defaultValue" in self._root_parameter(runtime):
          values[key] = self._root_parameter(runtime)["defaultValue"]
        else:
          raise LaunchError(f"task {name}: runtime parameter {runtime!r} has no value and no "
                            "default")
      else:
        raise LaunchError(f"task {name}: parameter {key!r} from {sorted(source)} is not "
                          "supported by the local launcher")
      if key not in legacy:
        legacy[key] = kubeflow_local_container.to_legacy(values[key], declared.get(key, {}))
    return legacy, values

  def _root_parameter(self, name: str) -> dict:
    return self.spec["root"].get("inputDefinitions", {}).get("parameters", {}).get(name, {})

  def run(self, parallelism: int = 1) -> dict:
    """Runs the plan: a task starts once every task it depends on has finished, at most
    `parallelism` container tasks at a time (each a blocking subprocess, so threads suffice);
    a resolver is answered as soon as it is ready. With 1 the tasks run one at a time in
    dependency order. After a task fails nothing new starts: the tasks still running finish
    and are recorded, then the first failure is raised. An interrupt (or any error here) stops
    the running tasks' processes."""
    schedule = _Schedule(self, self.plan(), parallelism)
    print(f"Running {self.pipeline} ({len(schedule.plan)} tasks) as job {self.name} under "
          f"{self.root}" + (f", up to {parallelism} tasks at a time" if parallelism > 1 else ""),
          file=self.stream, flush=True)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallelism)
    # Ctrl-C only sets a flag, which the loop reads between waits: a KeyboardInterrupt raised
    # at an arbitrary point could leave a future's lock held (inside futures.wait or
    # pool.submit), and the task threads, then pool.shutdown, would block on it for ever.
    interrupts = []
    handles_sigint = threading.current_thread() is threading.main_thread()
    if handles_sigint:
      previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupts.append(signum))
    try:
      while True:
        if interrupts:
          raise KeyboardInterrupt
        if not schedule.failures:
          schedule.start_ready(pool)
        if not schedule.running:
          break
        schedule.collect(concurrent.futures.wait(
            schedule.running, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED)[0])
    except BaseException:
      kubeflow_local_container.stop_all(self)
      raise
    finally:
      pool.shutdown(wait=True, cancel_futures=True)
      if handles_sigint:
        signal.signal(signal.SIGINT, previous)
    if schedule.failures:
      raise schedule.failures[0]
    assert not schedule.pending, \
        f"tasks never became ready: {[step[0] for step in schedule.pending]}"
    return schedule.result


class _Schedule:
  """What `_Job.run` has started, finished and still waits for."""

  def __init__(self, job: _Job, plan: list, parallelism: int):
    self.job, self.plan, self.parallelism = job, plan, parallelism
    self.position = {step[0]: i for i, step in enumerate(plan)}
    self.upstream = _upstream(job.spec["root"]["dag"]["tasks"])
    self.produced: Dict[str, Dict[str, List[dict]]] = {}
    self.result = {"job": job.name, "job_dir": job.dir, "tasks": {}}
    self.pending = list(plan)
    self.running: Dict[concurrent.futures.Future, tuple] = {}
    self.failures: List[BaseException] = []

  def _ready(self, step: tuple) -> bool:
    name, kind = step[0], step[3]
    return self.upstream[name] <= set(self.produced) and (
        kind != "container" or len(self.running) < self.parallelism)

  def start_ready(self, pool: concurrent.futures.Executor) -> None:
    """Answers every ready resolver and submits ready container tasks, until none is ready
    (a resolver answered can make others ready)."""
    step = next((s for s in self.pending if self._ready(s)), None)
    while step is not None:
      self.pending.remove(step)
      name, task, component, kind, body = step
      start, job = time.time(), self.job
      inputs = _input_artifacts(task, component, self.produced)
      if kind == "resolver":
        outputs = resolve(name, body, component, job.ledger, job.pipeline, inputs)
        self._finish(name, kind, "resolved " + (
            ", ".join(f"{k}: {len(v)}" for k, v in outputs.items()) or "-"), outputs, start)
      else:
        legacy, values = job.parameters(name, task, component)
        self.running[pool.submit(kubeflow_local_container.run_task, job, name, component,
                                 body, inputs, legacy, values)] = (name, start)
      step = next((s for s in self.pending if self._ready(s)), None)

  def collect(self, finished) -> None:
    """Records the finished container tasks in plan order; a failure is kept, not raised."""
    for future in sorted(finished, key=lambda f: self.position[self.running[f][0]]):
      name, start = self.running.pop(future)
      try:
        outputs = future.result()
      except Exception as e:  # pylint: disable=broad-except
        self.failures.append(e)
        print(f"{name} failed: {e}", file=self.job.stream, flush=True)
        continue
      self.job.ledger.record(self.job.pipeline, self.job.name, name, outputs)
      self._finish(name, "container", "done", outputs, start)

  def _finish(self, name: str, kind: str, how: str, outputs: dict, start: float) -> None:
    self.produced[name] = outputs
    seconds = time.time() - start
    self.result["tasks"][name] = {"outputs": outputs, "seconds": round(seconds, 2), "kind": kind}
    print(f"[{len(self.produced)}/{len(self.plan)}] {name} {how} in {seconds:.1f}s",
          file=self.job.stream, flush=True)


def _runtime_values(runtime_config: dict) -> dict:
  values = {k: kubeflow_local_container.from_legacy(v)
            for k, v in runtime_config.get("parameters", {}).items()}
  values.update(runtime_config.get("parameterValues", {}))
  return values


def _input_artifacts(task: dict, component: dict, produced: dict) -> Dict[str, List[dict]]:
  """The task's input artifacts from its producers' outputs, typed as the task declares them."""
  declared = component.get("inputDefinitions", {}).get("artifacts", {})
  inputs = {}
  for key, source in task.get("inputs", {}).get("artifacts", {}).items():
    producer = source["taskOutputArtifact"]
    artifacts = produced[producer["producerTask"]].get(producer["outputArtifactKey"], [])
    artifact_type = declared.get(key, {}).get("artifactType")
    inputs[key] = [dict(a, type=artifact_type or a["type"]) for a in artifacts]
  return inputs


def run_compiled(job_file: str, pipeline_root: Optional[str] = None,
                 parameter_values: Optional[dict] = None, stream=None,
                 parallelism: Optional[int] = None) -> dict:
  """Runs a compiled PipelineJob JSON; returns {job, job_dir, tasks: {name: {outputs,
  seconds, kind}}}. `pipeline_root` defaults to the job's runtimeConfig.gcsOutputDirectory
  (a local directory); `parallelism`, the most container tasks at a time, to this machine's
  cores. Raises ValueError for a file that is not a PipelineJob, LaunchError for a task that
  cannot run or fails."""
  parallelism = default_parallelism() if parallelism is None else parallelism
  if parallelism < 1:
    raise ValueError(f"the parallelism must be at least 1 task at a time (got {parallelism})")
  job = load_job(job_file)
  root = pipeline_root or job.get("runtimeConfig", {}).get("gcsOutputDirectory", "")
  if not root or "://" in root:
    raise ValueError(f"the pipeline root must be a local directory (got {root!r}): give "
                     "--pipeline-root DIR")
  return _Job(job, root, parameter_values, stream).run(parallelism)


# KFP starts every ready task at once, but each task here is a process on this machine, and
# one of a real pipeline's Trainers or Transforms holds 1-3 GB.
MAX_DEFAULT_PARALLELISM = 4


def default_parallelism() -> int:
  """One container task per core this process may use (most of a small task is one core
  importing TensorFlow, ~13 s), at most MAX_DEFAULT_PARALLELISM."""
  return max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_PARALLELISM))
