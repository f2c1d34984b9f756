"""`sidrec run-compiled`: the compiled Kubeflow V2 spec runs, task by task, as the backend runs it.

The e2e test compiles the small synthetic pipeline, runs the PipelineJob JSON with the local
launcher (tfx_pipeline/kubeflow_local_launcher.py: TFX's container entry points in
subprocesses) from the ExampleGens to the Pushers, and compares every trained model and every
Evaluator's metrics with those of the LocalDagRunner run of the same config (the session's
`first_local_run`, shared with test_pipeline_e2e). The unit tests run no TFX process: the
resolvers against TFX's own golden resolver specs and a hand-written ledger, and the tasks the
launcher refuses.
"""
import dataclasses
import filecmp
import glob
import importlib.util
import json
import os

import pytest

from tests.fixtures import cli_process
from tfx_pipeline import kubeflow_local_launcher as launcher
from tfx_pipeline import kubeflow_local_ledger as ledger_lib

TFX_TESTDATA = os.path.join(importlib.util.find_spec("tfx").submodule_search_locations[0],
                            "orchestration", "kubeflow", "v2", "testdata")


def _golden(name: str, message: str) -> dict:
  """One of TFX's expected compiler outputs (a pbtxt) as the JSON dict the spec holds."""
  from google.protobuf import json_format
  from google.protobuf import text_format
  from kfp.pipeline_spec import pipeline_spec_pb2
  with open(os.path.join(TFX_TESTDATA, name)) as f:
    proto = text_format.Parse(f.read(), getattr(pipeline_spec_pb2, message)())
  return json_format.MessageToDict(proto)


def _job(tasks: dict, components: dict, executors: dict, name: str = "sidrec") -> dict:
  return {"pipelineSpec": {"pipelineInfo": {"name": name}, "schemaVersion": "2.0.0",
                           "root": {"dag": {"tasks": tasks}}, "components": components,
                           "deploymentSpec": {"executors": executors}},
          "runtimeConfig": {}}


def _write(tmp_path, job: dict) -> str:
  path = tmp_path / "pipeline.json"
  path.write_text(json.dumps(job))
  return str(path)


def _latest_blessed_model_job() -> dict:
  """TFX's golden LatestBlessedModelStrategy resolver pair (`my_resolver2`), as compiled."""
  prefix = "expected_latest_blessed_model_resolver_"
  tasks = {t["taskInfo"]["name"]: t for t in (
      _golden(prefix + "task_1.pbtxt", "PipelineTaskSpec"),
      _golden(prefix + "task_2.pbtxt", "PipelineTaskSpec"))}
  components = {f"my_resolver2-{kind}-resolver": _golden(f"{prefix}component_{n}.pbtxt",
                                                          "ComponentSpec")
                for n, kind in ((1, "model-blessing"), (2, "model"))}
  executors = _golden(prefix + "executor.pbtxt", "PipelineDeploymentConfig")["executors"]
  return _job(tasks, components, executors)


def _artifact(ledger, title: str, **metadata) -> dict:
  return {"name": ledger.new_name(), "uri": f"/runs/{title}", "metadata": metadata,
          "type": {"instanceSchema": f"title: {title}\ntype: object\n"}}


def _resolved(tmp_path, job_file) -> tuple:
  tasks = launcher.run_compiled(job_file, str(tmp_path / "root"))["tasks"]
  blessing = tasks["my_resolver2-model-blessing-resolver"]["outputs"]["model_blessing"]
  model = tasks["my_resolver2-model-resolver"]["outputs"]["model"]
  return [a["name"] for a in blessing], [a["name"] for a in model]


def test_the_latest_blessed_model_resolvers_answer_from_the_ledger(tmp_path):
  from contracts import artifacts
  job_file = _write(tmp_path, _latest_blessed_model_job())
  root = str(tmp_path / "root")
  # The first run: nothing blessed yet, so no baseline.
  assert _resolved(tmp_path, job_file) == ([], [])

  ledger = ledger_lib.Ledger(root)
  model_a = _artifact(ledger, "tfx.Model")
  ledger.record("sidrec", "job-1", "ATrainer", {"model": [model_a]})
  ledger.record("sidrec", "job-1", "AEvaluator", {"blessing": [_artifact(
      ledger, "tfx.ModelBlessing", blessed=1.0, current_model_id=model_a["name"])]})
  model_b = _artifact(ledger, "tfx.Model")
  ledger.record("sidrec", "job-1", "BTrainer", {"model": [model_b]})
  ledger.record("sidrec", "job-1", "BEvaluator", {"blessing": [_artifact(
      ledger, "tfx.ModelBlessing", blessed=0.0, current_model_id=model_b["name"])]})
  # Another pipeline's blessed model under the same root is out of the query's scope.
  other = _artifact(ledger, "tfx.Model")
  ledger.record("other", "job-2", "Trainer", {"model": [other]})
  ledger.record("other", "job-2", "Evaluator", {"blessing": [_artifact(
      ledger, "tfx.ModelBlessing", blessed=1.0, current_model_id=other["name"])]})
  # The newest blessed ModelBlessing (B's was not blessed), then the Model it names.
  assert _resolved(tmp_path, job_file) == (["2"], [model_a["name"]])

  # TFX's query is scoped to the pipeline, not to one Trainer: with several representations
  # in one pipeline the newest blessed model of any of them is the baseline (the V2 compiler
  # drops the producer filter LocalDagRunner honours) ...
  model_c = _artifact(ledger, "tfx.Model")
  ledger.record("sidrec", "job-3", "BTrainer", {"model": [model_c]})
  ledger.record("sidrec", "job-3", "BEvaluator", {"blessing": [_artifact(
      ledger, "tfx.ModelBlessing", blessed=1.0, current_model_id=model_c["name"],
      **{artifacts.REPRESENTATION_PROPERTY: "b"})]})
  assert _resolved(tmp_path, job_file)[1] == [model_c["name"]]
  # ... which is why sidrec's compiler adds the blessing's representation to the filter
  # (kubeflow_v2_runner.scope_baseline_queries): then A's resolver finds A's model again.
  job = _latest_blessed_model_job()
  query = job["pipelineSpec"]["deploymentSpec"]["executors"][
      "my_resolver2-model-blessing-resolver_executor"]["resolver"]["outputArtifactQueries"][
          "model_blessing"]
  query["filter"] += f' AND metadata.{artifacts.REPRESENTATION_PROPERTY}.string_value="a"'
  a_blessing = _artifact(ledger, "tfx.ModelBlessing", blessed=1.0,
                         current_model_id=model_a["name"],
                         **{artifacts.REPRESENTATION_PROPERTY: "a"})
  ledger.record("sidrec", "job-1", "AEvaluator", {"blessing": [a_blessing]})
  assert _resolved(tmp_path, _write(tmp_path, job)) == ([a_blessing["name"]], [model_a["name"]])


def test_the_latest_artifact_resolver_form_is_answered_too(tmp_path):
  """LatestArtifactStrategy compiles to `schema_title=... AND state=LIVE` per output."""
  task = _golden("expected_latest_artifact_resolver_task.pbtxt", "PipelineTaskSpec")
  component = _golden("expected_latest_artifact_resolver_component.pbtxt", "ComponentSpec")
  executors = _golden("expected_latest_artifact_resolver_executor.pbtxt",
                      "PipelineDeploymentConfig")["executors"]
  job_file = _write(tmp_path, _job({"my_resolver": task}, {"my_resolver": component}, executors))
  ledger = ledger_lib.Ledger(str(tmp_path / "root"))
  older, newer = _artifact(ledger, "tfx.Examples"), _artifact(ledger, "tfx.Examples")
  ledger.record("sidrec", "job-1", "ExampleGen", {"examples": [older]})
  ledger.record("sidrec", "job-2", "ExampleGen", {"examples": [newer]})
  outputs = launcher.run_compiled(job_file, str(tmp_path / "root"))["tasks"]["my_resolver"][
      "outputs"]
  assert [a["name"] for a in outputs["examples"]] == [newer["name"]]
  assert outputs["model"] == []


def _container(args=("--executor_class_path", "x.Executor",
                     "--json_serialized_invocation_args", "{{$}}"),
               command=("python", "-m", "tfx.orchestration.kubeflow.v2.container."
                        "kubeflow_v2_run_executor")):
  return {"container": {"image": "example.com/sidrec:test", "command": list(command),
                        "args": list(args)}}


@pytest.mark.parametrize("executor, task_extra, message", [
    ({"importer": {"artifactUri": {"constantValue": {"stringValue": "gs://x"}}}}, {},
     "executor kind 'importer' is not supported"),
    ({"resolver": {"outputArtifactQueries": {"model": {
        "filter": 'schema_title="tfx.Model" AND in_context("projects/p/contexts/c")'}}}}, {},
     "cannot evaluate the artifact query clause 'in_context(\"projects/p/contexts/c\")'"),
    (_container(args=("--uri", "{{$.outputs.artifacts['model'].uri}}")), {},
     "has a placeholder the local launcher does not fill"),
    (_container(command=("/bin/sh", "-c", "run")), {}, "is not a `python ...` entry point"),
    (_container(), {"triggerPolicy": {"condition": "x > 1"}}, "`triggerPolicy` is not supported"),
])
def test_a_task_the_launcher_cannot_run_fails_naming_it_before_anything_runs(
    tmp_path, executor, task_extra, message):
  tasks = {"Upstream": {"taskInfo": {"name": "Upstream"}, "componentRef": {"name": "Upstream"}},
           "Odd": dict({"taskInfo": {"name": "Odd"}, "componentRef": {"name": "Odd"},
                        "dependentTasks": ["Upstream"]}, **task_extra)}
  components = {"Upstream": {"executorLabel": "Upstream_executor"},
                "Odd": {"executorLabel": "Odd_executor",
                        "outputDefinitions": {"artifacts": {"model": {"artifactType": {
                            "instanceSchema": "title: tfx.Model\ntype: object\n"}}}}}}
  executors = {"Upstream_executor": _container(), "Odd_executor": executor}
  root = tmp_path / "root"
  with pytest.raises(launcher.LaunchError, match="^task Odd: ") as error:
    launcher.run_compiled(_write(tmp_path, _job(tasks, components, executors)), str(root))
  assert message in str(error.value)
  assert not root.exists()  # checked before the first task (Upstream) ran


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("{not json", "is not JSON"),
    ('{"displayName": "x"}', "is not a Kubeflow PipelineJob JSON"),
])
def test_a_file_that_is_not_a_pipeline_job_is_one_line_of_error(tmp_path, capsys, content,
                                                                 message):
  from tfx_pipeline import cli
  path = tmp_path / "pipeline.json"
  if content is not None:
    path.write_text(content)
  assert cli.main(["run-compiled", str(path), "--pipeline-root", str(tmp_path / "root")]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("sidrec: error: run-compiled: ") and message in err
  assert "\n" not in err


def test_custom_artifact_types_load_in_a_task_by_their_schema_title():
  """TFX's container entry point imports a custom type's schema title as its class path:
  `sidrec.ItemEmbeddings` must import (sidrec/__init__.py)."""
  from kfp.pipeline_spec import pipeline_spec_pb2
  from tfx.orchestration.kubeflow.v2 import compiler_utils
  from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
  from contracts import artifacts
  types = [artifacts.ItemEmbeddings, artifacts.ItemVectors, artifacts.Codebook,
           artifacts.SemanticIds, artifacts.PackedExamples]
  assert {t.TYPE_NAME for t in types} == {
      v.TYPE_NAME for v in vars(artifacts).values()
      if isinstance(v, type) and getattr(v, "TYPE_NAME", "").startswith("sidrec.")}
  for cls in types:
    runtime = pipeline_spec_pb2.RuntimeArtifact(uri="/x", type=pipeline_spec_pb2.ArtifactTypeSchema(
        instance_schema=compiler_utils.get_artifact_schema(cls)))
    parsed = kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(
        {"a": pipeline_spec_pb2.ArtifactList(artifacts=[runtime])})
    assert type(parsed["a"][0]) is cls


@pytest.mark.e2e
def test_the_compiled_spec_runs_and_its_evaluators_match_the_local_run(first_local_run,
                                                                      tmp_path):
  """The e2e config compiled for Kubeflow V2 and run task by task by the local launcher, on
  the data the LocalDagRunner run read: every Trainer's model is the local run's bit for bit
  (the training is seeded), every Evaluator's figures are the local run's, and every blessed
  model is pushed."""
  from tfx_pipeline import kubeflow_v2_runner
  from tfx_pipeline import local_runner
  from tfx_pipeline import pipeline
  from tfx_pipeline import report as report_lib
  from tfx_pipeline.pipeline import component_prefix
  config, local = first_local_run.config, first_local_run.report
  # With the Beam arguments the local run used (an in-process worker image: nothing staged),
  # and two of its representations, one reading SIDs and one content embeddings: every task
  # is a fresh process importing TensorFlow (~13 s), and the stages up to the Packer do not
  # depend on the representation list, so the two models must still be the local run's.
  # Without RQ-KMeans too: its codes are trained for the report only (never joined), so the
  # Joiner's and Transform's inputs are the local run's. (So no compiled run here has a task
  # whose outputs nothing downstream reads; LocalDagRunner runs them in test_pipeline_e2e.)
  assert "rqkmeans" not in pipeline.joined_codebooks(config)
  compiled = dataclasses.replace(config, beam_pipeline_args=local_runner.local_beam_args(config),
                                 representations=("sid_spm", "dense_content"),
                                 codebook_methods=tuple(pipeline.joined_codebooks(config)))
  root, serving = str(tmp_path / "kfp-root"), str(tmp_path / "kfp-serving")
  job_file = kubeflow_v2_runner.compile_pipeline(
      compiled, output_file=str(tmp_path / "pipeline.json"), image="example.com/sidrec:test",
      pipeline_root=root, data_dir=os.path.abspath(config.data_dir), serving_dir=serving)
  result = launcher.run_compiled(job_file, root, parallelism=2)

  with open(job_file) as f:
    assert set(result["tasks"]) == set(json.load(f)["pipelineSpec"]["root"]["dag"]["tasks"])
  outputs = {name: task["outputs"] for name, task in result["tasks"].items()}
  recorded = ledger_lib.Ledger(root).records
  assert len(recorded) == sum(len(artifacts) for t in result["tasks"].values()
                              if t["kind"] == "container" for artifacts in t["outputs"].values())
  assert {r["uri"] for r in recorded} >= {outputs["Transform"]["transform_graph"][0]["uri"]}
  assert set(local["representations"]) == set(config.representations)
  for representation in compiled.representations:
    expected = local["representations"][representation]
    prefix = component_prefix(representation)
    # The first run under this root: nothing is blessed yet, so no baseline.
    assert outputs[f"{prefix}BaselineResolver-model-blessing-resolver"]["model_blessing"] == []
    assert outputs[f"{prefix}BaselineResolver-model-resolver"]["model"] == []
    (blessing,) = outputs[f"{prefix}Evaluator"]["blessing"]
    assert "baseline_model_id" not in blessing["metadata"]
    # The Evaluator got the Trainer's model under its ledger name (TFX wrote it back).
    assert blessing["metadata"]["current_model_id"] == \
        outputs[f"{prefix}Trainer"]["model"][0]["name"]
    assert bool(blessing["metadata"]["blessed"]) == expected["blessed"], representation
    # What the compiled baseline query selects by (kubeflow_v2_runner.scope_baseline_queries).
    assert blessing["metadata"]["representation"] == representation
    assert outputs[f"{prefix}Trainer"]["model"][0]["metadata"]["representation"] == representation
    (pushed,) = outputs[f"{prefix}Pusher"]["pushed_model"]
    assert bool(pushed["metadata"]["pushed"]) == (expected["pushed_to"] is not None)
    if expected["pushed_to"] is not None:
      destination = pushed["metadata"]["pushed_destination"]
      assert os.path.dirname(destination) == os.path.join(serving, expected["model_name"])
      assert os.path.exists(os.path.join(destination, "saved_model.pb"))
    # The same model, bit for bit: the training is seeded and reads the same chunks.
    local_model = min(glob.glob(os.path.join(config.pipeline_root, f"{prefix}Trainer", "model",
                                             "*")), key=lambda p: int(os.path.basename(p)))
    for name in ("variables.index", "variables.data-00000-of-00001"):
      path = os.path.join("Format-Serving", "variables", name)
      assert filecmp.cmp(os.path.join(local_model, path), os.path.join(
          outputs[f"{prefix}Trainer"]["model"][0]["uri"], path), shallow=False), representation
    # TFMA's figures, every slice and metric, as the local run's Evaluator computed them
    # (measured: AUC and GAUC equal to the last bit; mean prediction, calibration and
    # cross-entropy of some models differ around 1e-9). Not `no_item`: it scores all of a
    # user's examples alike, so its AUC and GAUC rank ties that only the last bits of float32
    # scores break, and those differ between runs of one and the same Evaluator task (re-run
    # three times on identical inputs: AUC 0.61702 / 0.61705 / 0.61705, GAUC 0.4962 / 0.5 / 0.5).
    got = report_lib.load_slice_metrics(outputs[f"{prefix}Evaluator"]["evaluation"][0]["uri"])
    want = report_lib.load_slice_metrics(expected["evaluation_uri"])
    assert set(got) == set(want), representation
    for key in want:
      assert set(got[key]) == set(want[key]), (representation, key)
      for metric in want[key]:
        assert got[key][metric] == pytest.approx(
            want[key][metric], nan_ok=True, abs=1e-6), (
                representation, key, metric)




# A task that reports back what the launcher handed it, as its executor output's metadata.
_ECHO = ("import json, os, sys; ei = json.loads(sys.argv[1]); "
         "seen = {'parameters': ei['inputs'].get('parameterValues', {}), "
         "'legacy': ei['inputs'].get('parameters', {}), "
         "'inputs': ei['inputs'].get('artifacts', {}), 'cwd': os.getcwd(), "
         "'keras': os.environ.get('TF_USE_LEGACY_KERAS')}; "
         "json.dump({'artifacts': {k: {'artifacts': [{'metadata': dict(seen, dir=os.path.isdir("
         "v['artifacts'][0]['uri']))}]} for k, v in ei['outputs']['artifacts'].items()}}, "
         "open(ei['outputs']['outputFile'], 'w'))")
_EXAMPLES = {"artifactType": {"instanceSchema": "title: tfx.Examples\ntype: object\n"}}


def _echo_job(consumer_code: str = _ECHO) -> dict:
  tasks = {
      "Producer": {"taskInfo": {"name": "Producer"}, "componentRef": {"name": "Producer"},
                   "inputs": {"parameters": {
                       "a": {"componentInputParameter": "given"},
                       "b": {"componentInputParameter": "defaulted"},
                       "c": {"runtimeValue": {"constantValue": {"intValue": "6"}}}}}},
      "Consumer": {"taskInfo": {"name": "Consumer"}, "componentRef": {"name": "Consumer"},
                   "dependentTasks": ["Producer"],
                   "inputs": {"artifacts": {"examples": {"taskOutputArtifact": {
                       "producerTask": "Producer", "outputArtifactKey": "out"}}}}}}
  components = {
      "Producer": {"executorLabel": "Producer_executor",
                   "inputDefinitions": {"parameters": {"a": {"type": "INT"},
                                                       "b": {"type": "STRING"},
                                                       "c": {"type": "INT"}}},
                   "outputDefinitions": {"artifacts": {"out": _EXAMPLES}}},
      "Consumer": {"executorLabel": "Consumer_executor",
                   "inputDefinitions": {"artifacts": {"examples": _EXAMPLES}},
                   "outputDefinitions": {"artifacts": {"echo": _EXAMPLES}}}}
  executors = {"Producer_executor": _container(args=("{{$}}",), command=("python", "-c", _ECHO)),
               "Consumer_executor": _container(args=("{{$}}",),
                                               command=("python", "-c", consumer_code))}
  job = _job(tasks, components, executors)
  job["pipelineSpec"]["root"]["inputDefinitions"] = {"parameters": {
      "given": {"type": "INT"}, "defaulted": {"type": "STRING", "defaultValue": "fallback"}}}
  job["runtimeConfig"] = {"parameters": {"given": {"intValue": "3"}}}
  return job


def test_a_container_task_gets_its_executor_input_and_hands_its_outputs_on(tmp_path):
  root = tmp_path / "root"
  result = launcher.run_compiled(_write(tmp_path, _echo_job()), str(root))
  (out,) = result["tasks"]["Producer"]["outputs"]["out"]
  seen = out["metadata"]
  # Runtime parameters from the job's runtimeConfig, else their default; constants as given.
  assert seen["parameters"] == {"a": 3, "b": "fallback", "c": 6}
  assert seen["legacy"] == {"a": {"intValue": "3"}, "b": {"stringValue": "fallback"},
                            "c": {"intValue": "6"}}
  # KFP's layout, created beforehand; the task runs in its own directory, with the image's env.
  assert out["uri"] == os.path.join(result["job_dir"], "Producer", "out") and seen["dir"]
  assert seen["cwd"] == os.path.join(result["job_dir"], "Producer") and seen["keras"] == "1"
  # Downstream, the artifact comes with its name, uri and the metadata its task wrote.
  (given,) = result["tasks"]["Consumer"]["outputs"]["echo"][0]["metadata"]["inputs"][
      "examples"]["artifacts"]
  assert (given["name"], given["uri"], given["metadata"]) == (out["name"], out["uri"], seen)
  assert [r["task"] for r in ledger_lib.Ledger(str(root)).records] == ["Producer", "Consumer"]


def test_a_failing_task_stops_the_run_naming_it_and_its_log(tmp_path):
  root = tmp_path / "root"
  job = _echo_job(consumer_code="import sys; print('something broke'); sys.exit(3)")
  with pytest.raises(launcher.LaunchError,
                     match=r"^task Consumer: the executor exited with status 3 "
                           r"\(something broke\); log: .*Consumer\.log$"):
    launcher.run_compiled(_write(tmp_path, job), str(root))
  # What finished before is in the ledger (as it would be in the metadata store).
  assert [r["task"] for r in ledger_lib.Ledger(str(root)).records] == ["Producer"]


def test_a_ledger_cut_off_mid_line_by_a_killed_run_keeps_its_whole_records(tmp_path):
  with open(tmp_path / ledger_lib.LEDGER_FILE, "w") as f:
    f.write(json.dumps({"id": 1, "name": "1"}) + "\n" + '{"id": 2, "na')
  ledger = ledger_lib.Ledger(str(tmp_path))
  assert [r["id"] for r in ledger.records] == [1] and ledger.new_name() == "2"
  # The partial line is gone from the file, so the next append starts a line of its own.
  assert (tmp_path / ledger_lib.LEDGER_FILE).read_text() == json.dumps({"id": 1, "name": "1"}) + "\n"
  with open(tmp_path / ledger_lib.LEDGER_FILE, "w") as f:
    f.write('{"id": 2, "na\n' + json.dumps({"id": 3, "name": "3"}) + "\n")
  with pytest.raises(ledger_lib.LaunchError, match=r"line 1 is not a ledger record"):
    ledger_lib.Ledger(str(tmp_path))


# A task that sleeps, and reports when it started and ended, as its output's metadata.
_TIMED = ("import json, sys, time; ei = json.loads(sys.argv[1]); start = time.time(); "
          "time.sleep(float(sys.argv[2])); "
          "json.dump({'artifacts': {k: {'artifacts': [{'metadata': {'start': start, "
          "'end': time.time()}}]} for k in ei['outputs']['artifacts']}}, "
          "open(ei['outputs']['outputFile'], 'w'))")


def _timed_job(fail: str = "") -> dict:
  """Left and Right depend on nothing, Join on both; `fail` names a task that exits 3."""
  def task(name, after=()):
    return {"taskInfo": {"name": name}, "componentRef": {"name": name},
            "dependentTasks": list(after)}
  def executor(name, seconds):
    code = "import sys; sys.exit(3)" if name == fail else _TIMED
    return _container(args=("{{$}}", str(seconds)), command=("python", "-c", code))
  names = {"Left": (), "Right": (), "Join": ("Left", "Right")}
  components = {n: {"executorLabel": f"{n}_executor",
                    "outputDefinitions": {"artifacts": {"out": _EXAMPLES}}} for n in names}
  executors = {"Left_executor": executor("Left", 3.0), "Right_executor": executor("Right", 0.2),
               "Join_executor": executor("Join", 0)}
  return _job({n: task(n, after) for n, after in names.items()}, components, executors)


def _span(result, task):
  metadata = result["tasks"][task]["outputs"]["out"][0]["metadata"]
  return metadata["start"], metadata["end"]


def test_independent_tasks_run_at_once_and_a_task_waits_for_all_it_depends_on(tmp_path):
  job_file = _write(tmp_path, _timed_job())
  result = launcher.run_compiled(job_file, str(tmp_path / "root"), parallelism=2)
  (left_start, left_end), (right_start, right_end) = _span(result, "Left"), _span(result, "Right")
  assert right_start < left_end and left_start < right_end  # they overlapped
  assert _span(result, "Join")[0] >= max(left_end, right_end)
  # Recorded as they finished: the short Right before the long Left.
  assert [r["task"] for r in ledger_lib.Ledger(str(tmp_path / "root")).records] == [
      "Right", "Left", "Join"]
  # One at a time: in dependency order, none overlapping.
  serial = launcher.run_compiled(job_file, str(tmp_path / "serial"), parallelism=1)
  spans = [_span(serial, t) for t in ("Left", "Right", "Join")]
  assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_a_task_failing_beside_a_running_one_lets_it_finish_and_be_recorded(tmp_path):
  root = tmp_path / "root"
  with pytest.raises(launcher.LaunchError, match=r"^task Right: the executor exited with "
                                                 r"status 3"):
    launcher.run_compiled(_write(tmp_path, _timed_job(fail="Right")), str(root), parallelism=2)
  # Left was running when Right failed: it finished and is in the ledger; Join never started.
  assert [r["task"] for r in ledger_lib.Ledger(str(root)).records] == ["Left"]
  (job_dir,) = [p for p in root.iterdir() if p.is_dir()]
  assert (job_dir / "Left").is_dir() and not (job_dir / "Join").exists()


def test_an_interrupted_run_stops_its_running_tasks(tmp_path):
  """SIGINT to `sidrec run-compiled` alone (not its process group): the task processes it
  started are stopped, not left running, and the command exits."""
  import signal
  import subprocess
  import time
  pid_file = tmp_path / "task.pid"
  code = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
          "time.sleep(120)")
  job = _job({"Slow": {"taskInfo": {"name": "Slow"}, "componentRef": {"name": "Slow"}}},
             {"Slow": {"executorLabel": "Slow_executor"}},
             {"Slow_executor": _container(args=("{{$}}",), command=("python", "-c", code))})
  run = cli_process.start_sidrec(["run-compiled", _write(tmp_path, job), "--pipeline-root",
                                   str(tmp_path / "root")], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 120
  while not pid_file.exists() or not pid_file.read_text():
    assert run.poll() is None and time.time() < deadline, run.stdout.read()
    time.sleep(0.2)
  task_pid = int(pid_file.read_text())
  run.send_signal(signal.SIGINT)
  run.communicate(timeout=60)
  assert run.returncode != 0
  with pytest.raises(ProcessLookupError):
    os.kill(task_pid, 0)  # the task's process is gone
