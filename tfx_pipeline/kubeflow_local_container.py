"""How `sidrec run-compiled` runs a container task (see tfx_pipeline/kubeflow_local_launcher.py).

The task's command and arguments run in a subprocess of this machine's Python instead of the
image's: `{{$}}` becomes the ExecutorInput JSON that TFX's entry points parse
(tfx/orchestration/kubeflow/v2/container/kubeflow_v2_run_executor.py, and for the
FileBasedExampleGen's `lifecycle.preCacheCheck` hook file_based_example_gen/driver.py). The
working directory is the task's directory, so only installed packages are importable, as in
the image.
"""
import json
import os
import subprocess
import sys
import threading
import time
from typing import Dict, List

from tfx_pipeline.kubeflow_local_ledger import LaunchError

OUTPUT_FILE = "executor_output.json"
EXECUTOR_INPUT = "{{$}}"
_PYTHON = ("python", "python3")
# What the image sets for every process (tfx_pipeline/kubeflow_v2_runner.py).
IMAGE_ENV = {"TF_USE_LEGACY_KERAS": "1"}
# Guards every job's `task_processes`, the processes an interrupted run stops (stop_all).
_RUNNING_LOCK = threading.Lock()


def check(task: str, container: dict) -> None:
  """Fails, naming the task, on what the launcher cannot run."""
  lifecycle = container.get("lifecycle", {})
  if set(lifecycle) - {"preCacheCheck"}:
    raise LaunchError(f"task {task}: lifecycle hook(s) {sorted(set(lifecycle) - {'preCacheCheck'})}"
                      " are not supported by the local launcher")
  for step, spec in (("executor", container), ("driver", lifecycle.get("preCacheCheck"))):
    if spec is None:
      continue
    command = spec.get("command", [])
    if not command or command[0] not in _PYTHON:
      raise LaunchError(f"task {task}: the {step} command {command!r} is not a `python ...` "
                        "entry point; the local launcher runs Python commands with this "
                        "machine's interpreter instead of the image")
    for arg in list(command) + list(spec.get("args", [])):
      if "{{" in arg and arg != EXECUTOR_INPUT:
        raise LaunchError(f"task {task}: the {step} argument {arg!r} has a placeholder the "
                          f"local launcher does not fill (only {EXECUTOR_INPUT})")


def from_legacy(value: dict):
  """A pipeline_spec `Value` (intValue / doubleValue / stringValue) as a Python value."""
  if "intValue" in value:
    return int(value["intValue"])
  if "doubleValue" in value:
    return float(value["doubleValue"])
  if "stringValue" in value:
    return value["stringValue"]
  raise LaunchError(f"unsupported parameter value {value!r}")


def to_legacy(value, declared: dict) -> dict:
  """A Python value as a pipeline_spec `Value`, by the component's declared parameter type."""
  kind = declared.get("type") or declared.get("parameterType")
  if kind in ("INT", "NUMBER_INTEGER") or (
      kind is None and isinstance(value, (int, float)) and not isinstance(value, bool)
      and float(value).is_integer()):
    return {"intValue": str(int(value))}
  if kind in ("DOUBLE", "NUMBER_DOUBLE") or (kind is None and isinstance(value, float)):
    return {"doubleValue": float(value)}
  return {"stringValue": value if isinstance(value, str) else json.dumps(value)}


def run_task(job, task: str, component: dict, container: dict, inputs: Dict[str, List[dict]],
             legacy: dict, values: dict) -> Dict[str, List[dict]]:
  """Runs the (driver and) executor of one task; returns its output artifacts."""
  task_root = os.path.join(job.dir, task)
  os.makedirs(task_root, exist_ok=True)
  outputs = {}
  for key, definition in sorted(component.get("outputDefinitions", {}).get(
      "artifacts", {}).items()):
    uri = os.path.join(task_root, key)
    os.makedirs(uri, exist_ok=True)
    outputs[key] = [{"name": job.ledger.new_name(), "uri": uri,
                     "type": definition["artifactType"], "metadata": {}}]
  output_file = os.path.join(task_root, OUTPUT_FILE)
  log_path = os.path.join(job.dir, "logs", f"{task}.log")
  declared = component.get("inputDefinitions", {}).get("parameters", {})

  def executor_input() -> dict:
    return {"inputs": {"artifacts": {k: {"artifacts": v} for k, v in sorted(inputs.items())},
                       "parameters": legacy, "parameterValues": values},
            "outputs": {"artifacts": {k: {"artifacts": v} for k, v in outputs.items()},
                        "outputFile": output_file}}

  hook = container.get("lifecycle", {}).get("preCacheCheck")
  if hook:
    _execute(job, task, "driver", hook, executor_input(), task_root, log_path, container)
    driver_output = _read_output(output_file)
    for key, value in driver_output.get("parameterValues", {}).items():
      values[key] = value
      legacy[key] = to_legacy(value, declared.get(key, {}))
    legacy.update(driver_output.get("parameters", {}))
    _merge(outputs, driver_output)
  _execute(job, task, "executor", container, executor_input(), task_root, log_path, container)
  _merge(outputs, _read_output(output_file))
  return outputs


def _execute(job, task: str, step: str, spec: dict, executor_input: dict, cwd: str,
             log_path: str, container: dict) -> None:
  payload = json.dumps(executor_input, sort_keys=True)
  argv = [sys.executable] + list(spec["command"][1:]) + [
      payload if arg == EXECUTOR_INPUT else arg for arg in spec.get("args", [])]
  env = dict(os.environ, **IMAGE_ENV)
  env.update({e["name"]: e["value"] for e in container.get("env", [])})
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  with open(log_path, "a") as log:
    log.write(f"==== {step}: {json.dumps(argv)}\n")
    log.flush()
    with _RUNNING_LOCK:
      process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
      job.task_processes.add(process)
    try:
      code = process.wait()
    finally:
      with _RUNNING_LOCK:
        job.task_processes.discard(process)
  if code:
    raise LaunchError(f"task {task}: the {step} exited with status {code} "
                      f"({_last_line(log_path)}); log: {log_path}")


def stop_all(job, grace_seconds: float = 10.0) -> None:
  """Terminates the job's running task processes (then kills what outlives the grace)."""
  with _RUNNING_LOCK:
    processes = list(job.task_processes)
  for process in processes:
    process.terminate()
  deadline = time.time() + grace_seconds
  for process in processes:
    try:
      process.wait(max(0.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


def _last_line(path: str) -> str:
  with open(path, errors="replace") as f:
    lines = [line.strip() for line in f if line.strip()]
  return lines[-1][:300] if lines else "no output"


def _read_output(path: str) -> dict:
  """The task's ExecutorOutput JSON; {} when the process wrote none (as KFP treats it)."""
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def _merge(outputs: Dict[str, List[dict]], executor_output: dict) -> None:
  """KFP's mergeRuntimeArtifacts: the uri if the process set one, its metadata keys on top."""
  for key, listed in executor_output.get("artifacts", {}).items():
    if key in outputs and listed.get("artifacts"):
      source, target = listed["artifacts"][0], outputs[key][0]
      if source.get("uri"):
        target["uri"] = source["uri"]
      target["metadata"].update(source.get("metadata", {}))
