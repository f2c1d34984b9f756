"""The pipeline image (tfx_pipeline/image/Dockerfile) can run what a compiled spec asks of it.

Docker is not available here, so the image is checked from both ends: the Dockerfile installs
the lock the tests run on (--no-deps, as `make` does) and sidrec into the interpreter the
tasks call `python`, with Keras 2 selected; and the command, executors and Beam plugins of a
freshly compiled spec load in that installation, run from outside the repository with the
image's environment.
"""
import ast
import fnmatch
import json
import os
import shlex
import subprocess
import sys

import pytest

from tfx_pipeline import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(ROOT, "tfx_pipeline", "image", "Dockerfile")
IMAGE = "example.com/sidrec:test"


def dockerfile_steps(path=DOCKERFILE):
  """[(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
  steps, pending = [], ""
  for line in open(path).read().splitlines():
    if not pending and (not line.strip() or line.lstrip().startswith("#")):
      continue
    if line.rstrip().endswith("\\"):
      pending += line.rstrip()[:-1] + " "
      continue
    instruction, _, rest = (pending + line).strip().partition(" ")
    steps.append((instruction.upper(), rest.strip()))
    pending = ""
  assert not pending, "a dangling line continuation"
  return steps


def _copies(steps):
  """[(sources, destination)] of the COPY steps."""
  out = []
  for op, args in steps:
    if op == "COPY":
      parts = json.loads(args) if args.startswith("[") else shlex.split(args)
      assert not any(p.startswith("--from") for p in parts), "one stage, copied from the context"
      out.append((parts[:-1], parts[-1]))
  return out


def _pip_installs(steps):
  """The token lists of every `pip install` in a RUN step (commands split at &&)."""
  out = []
  for op, args in steps:
    if op != "RUN":
      continue
    for command in args.split("&&"):
      tokens = shlex.split(command)
      if "pip" in tokens and tokens[tokens.index("pip") + 1:][:1] == ["install"]:
        out.append(tokens)
  return out


def _lock_version(name):
  for line in open(os.path.join(ROOT, "requirements.lock")):
    if line.lower().startswith(name.lower() + "=="):
      return line.strip().split("==")[1]
  raise AssertionError(f"{name} is not in requirements.lock")


def _setup_packages():
  """The top-level packages setup.py installs (its find_packages(include=[...]))."""
  tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
  for node in ast.walk(tree):
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "find_packages":
      include = next(k.value for k in node.keywords if k.arg == "include")
      return sorted({ast.literal_eval(e).rstrip("*").rstrip(".") for e in include.elts})
  raise AssertionError("setup.py has no find_packages(include=...)")


def _ignored(path, patterns):
  """Docker's .dockerignore rule: the last pattern matching the path or a parent decides."""
  parents = [path[:i] for i in range(len(path)) if path[i] == "/"] + [path]
  ignored = False
  for pattern in patterns:
    negated = pattern.startswith("!")
    pattern = pattern.lstrip("!")
    candidates = {pattern, pattern[3:]} if pattern.startswith("**/") else {pattern}
    if any(fnmatch.fnmatchcase(p, c) for p in parents for c in candidates):
      ignored = not negated
  return ignored


def test_the_dockerfile_installs_the_lock_and_sidrec_for_python_3_11():
  steps = dockerfile_steps()
  assert [op for op, _ in steps].count("FROM") == 1
  base = dict(steps)["FROM"]
  # Python 3.11 (tfx 1.21's only Python; setup.py says so too) on Debian 12 (bookworm), the
  # platform the lock was resolved and tested on.
  assert base.startswith("python:3.11") and "bookworm" in base, base
  assert '">=3.11,<3.12"' in open(os.path.join(ROOT, "setup.py")).read()
  env = {}
  for op, args in steps:
    if op == "ENV":
      env.update(pair.split("=", 1) for pair in shlex.split(args))
  assert env["TF_USE_LEGACY_KERAS"] == "1"
  # Kubernetes' `command` replaces ENTRYPOINT, but `docker run IMAGE python -m ...` (the same
  # task, by hand) would be prefixed by one: the image sets none.
  assert "ENTRYPOINT" not in [op for op, _ in steps]

  copies = _copies(steps)
  lock_destination = next(dst for srcs, dst in copies if srcs == ["requirements.lock"])
  installs = _pip_installs(steps)
  # Every install goes through `python -m pip`: the interpreter the tasks' `python` is.
  assert installs and all(t[:3] == ["python", "-m", "pip"] for t in installs), installs
  lock_install, sidrec_install = installs[0], installs[-1]
  assert "--no-deps" in lock_install
  assert lock_install[lock_install.index("-r") + 1] == lock_destination
  # sidrec: setup.py, pyproject.toml and every package setup.py names, copied into one
  # directory that is then pip-installed --no-deps (a regular install, not -e).
  source_dir = next(dst for srcs, dst in copies if "setup.py" in srcs).rstrip("/")
  assert "pyproject.toml" in next(srcs for srcs, dst in copies if "setup.py" in srcs)
  copied = {srcs[0]: dst.rstrip("/") for srcs, dst in copies if len(srcs) == 1}
  for package in _setup_packages():
    assert copied.get(package) == f"{source_dir}/{package}", package
  assert "--no-deps" in sidrec_install and sidrec_install[-1] == source_dir
  assert "-e" not in sidrec_install and "--editable" not in sidrec_install
  # The lock is installed before the code is copied (its layer survives code changes).
  order = [args for op, args in steps if op in ("COPY", "RUN")]
  assert order.index(next(a for a in order if "requirements.lock" in a and "pip" in a)) < (
      order.index(next(a for a in order if a.startswith("setup.py"))))


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_more():
  """The context is the repository root; /.dockerignore keeps .venv, outputs and .git out."""
  patterns = [l.strip() for l in open(os.path.join(ROOT, ".dockerignore"))
              if l.strip() and not l.startswith("#")]
  for sources, _ in _copies(dockerfile_steps()):
    for source in sources:
      assert os.path.exists(os.path.join(ROOT, source)), source
      assert not _ignored(source, patterns), source
  for package in _setup_packages():
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
      for name in files:
        rel = os.path.relpath(os.path.join(folder, name), ROOT)
        if name.endswith(".py") and not name.endswith("_test.py") and (
            "__pycache__" not in rel):
          assert not _ignored(rel, patterns), rel
  for kept_out in (".venv/bin/python", ".git/HEAD", "sidrec_output/report.json",
                   "tests/test_cli.py", "components/__pycache__/x.pyc"):
    assert _ignored(kept_out, patterns), kept_out


@pytest.fixture(scope="module")
def compiled_job(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("image")
  path = tmp / "pipeline.json"
  assert cli.main(["compile-kubeflow", "--dataset", "synthetic", "--output", str(tmp / "out"),
                   "--representations", "sid_spm", "--pipeline-file", str(path),
                   "--pipeline-root", "gs://bucket/sidrec", "--data-dir",
                   "gs://bucket/sidrec-data", "--image", IMAGE]) == 0
  return json.loads(path.read_text())


def _containers(job):
  """Every container a task or its lifecycle hook runs: (image, command, args)."""
  out = []
  for executor in job["pipelineSpec"]["deploymentSpec"]["executors"].values():
    container = executor.get("container")
    if not container:
      continue  # resolvers: run by the orchestrator, no container
    out.append((container.get("image"), container["command"], container.get("args", [])))
    for hook in container.get("lifecycle", {}).values():
      out.append((container.get("image"), hook["command"], hook.get("args", [])))
  return out


def test_compile_kubeflow_takes_the_data_dir_and_requires_an_image(compiled_job, capsys):
  text = json.dumps(compiled_job["pipelineSpec"])
  assert "gs://bucket/sidrec-data" in text  # where the ExampleGens read the prepared data
  with pytest.raises(SystemExit) as exit_info:
    cli.make_parser().parse_args(["compile-kubeflow", "--dataset", "synthetic"])
  assert exit_info.value.code == 2
  assert "--image" in capsys.readouterr().err
  from tfx_pipeline import kubeflow_v2_runner
  with pytest.raises(ValueError, match="image"):
    kubeflow_v2_runner.compile_pipeline(None, output_file="unused.json", image="")


_LOAD_IN_IMAGE = r"""
import importlib, importlib.util, json, runpy, sys
want = json.loads(sys.argv[1])
found = {"modules": [m for m in want["modules"] if importlib.util.find_spec(m)],
         "executors": [], "plugins": []}
for path in want["executors"]:
  module, _, name = path.rpartition(".")
  getattr(importlib.import_module(module), name)
  found["executors"].append(path)
for plugin in want["plugins"]:
  importlib.import_module(plugin)
  found["plugins"].append(plugin)
# What TFX's entry point does with an artifact type it does not know: import its schema title.
found["artifact_types"] = [t for t in want["artifact_types"]
                           if getattr(importlib.import_module(t.rpartition(".")[0]),
                                      t.rpartition(".")[2], None)]
print("FOUND " + json.dumps(found), flush=True)
# The task command itself, as `python -m MODULE`: its flags parse and it exits 0 on --help.
sys.argv = [want["run"], "--help"]
runpy.run_module(want["run"], run_name="__main__", alter_sys=True)
"""


def _custom_artifact_types(job):
  """Schema titles of the spec's artifact types that are not TFX's or KFP's own."""
  titles = set()
  for component in job["pipelineSpec"]["components"].values():
    for side in ("inputDefinitions", "outputDefinitions"):
      for artifact in component.get(side, {}).get("artifacts", {}).values():
        schema = artifact["artifactType"].get("instanceSchema", "")
        titles.update(l.split(":", 1)[1].strip() for l in schema.splitlines()
                      if l.startswith("title:"))
  return sorted(t for t in titles if not t.startswith(("tfx.", "system.")))


def test_every_container_command_of_the_compiled_spec_runs_in_the_image(compiled_job, tmp_path):
  containers = _containers(compiled_job)
  assert containers and {image for image, _, _ in containers} == {IMAGE}
  modules, executors, plugins = set(), set(), set()
  for _, command, args in containers:
    # `python -m MODULE`: the image's python (the one the Dockerfile pip-installs into).
    assert command[:2] == ["python", "-m"] and len(command) == 3, command
    modules.add(command[2])
    if "--executor_class_path" in args:
      executors.add(args[args.index("--executor_class_path") + 1])
    plugins.update(a.split("=", 1)[1] for a in args if a.startswith("--beam_plugins="))
  run_executor = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
  assert run_executor in modules and plugins == {"components.beam_worker"}
  assert any(e.startswith("components.") for e in executors)  # sidrec's own executors
  # The image installs the lock these tests run on: the tfx that compiled the spec.
  from importlib import metadata
  assert compiled_job["pipelineSpec"]["sdkVersion"] == f"tfx-{_lock_version('tfx')}"
  for name in ("tfx", "kfp-pipeline-spec", "tensorflow"):
    assert metadata.version(name) == _lock_version(name), name

  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
  for op, args in dockerfile_steps():
    if op == "ENV":
      env.update(pair.split("=", 1) for pair in shlex.split(args))
  artifact_types = _custom_artifact_types(compiled_job)
  assert "sidrec.ItemEmbeddings" in artifact_types
  want = {"modules": sorted(modules), "executors": sorted(executors),
          "plugins": sorted(plugins), "artifact_types": artifact_types, "run": run_executor}
  # From outside the repository, so sidrec comes from the installation, not the work tree.
  done = subprocess.run([sys.executable, "-c", _LOAD_IN_IMAGE, json.dumps(want)],
                        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  found = json.loads(next(l for l in done.stdout.splitlines() if l.startswith("FOUND "))[6:])
  assert found["modules"] == want["modules"]
  assert found["executors"] == want["executors"] and found["plugins"] == want["plugins"]
  assert found["artifact_types"] == want["artifact_types"]
  assert "--executor_class_path" in done.stdout and "--json_serialized_invocation_args" in (
      done.stdout)


def test_the_beam_worker_image_adds_the_boot_of_the_locked_beam_release():
  """Dataflow, Flink and Spark start a worker by the image's ENTRYPOINT: Beam's boot from the
  SDK image of the Beam release and Python the lock installs, over the pipeline image."""
  steps = dockerfile_steps(os.path.join(ROOT, "tfx_pipeline", "image", "beam_worker.Dockerfile"))
  beam = next(line.split("==")[1].strip() for line in open(os.path.join(ROOT, "requirements.lock"))
              if line.startswith("apache-beam=="))
  froms = [args for op, args in steps if op == "FROM"]
  assert froms[0] == f"apache/beam_python3.11_sdk:{beam} AS beam_sdk", froms
  assert froms[1] == "${PIPELINE_IMAGE}"
  assert ("COPY", "--from=beam_sdk /opt/apache/beam /opt/apache/beam") in steps
  assert steps[-1] == ("ENTRYPOINT", '["/opt/apache/beam/boot"]')
