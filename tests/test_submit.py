"""`sidrec submit` against fake endpoints on 127.0.0.1: what the KFP SDK and the Vertex REST
call send, what the user is shown, and how failures read."""
import contextlib
import http.server
import json
import socket
import threading
import urllib.parse

import pytest

from tfx_pipeline import cli

PIPELINE_ROOT = "gs://bucket/sidrec"


@pytest.fixture(scope="module")
def pipeline_file(tmp_path_factory):
  """A freshly compiled PipelineJob with two declared runtime parameters, as TFX compiles a
  pipeline that takes RuntimeParameters (schema 2.0.0 `type`; one with a compiled default)."""
  from google.protobuf import json_format
  from tfx.orchestration import data_types
  from tfx.orchestration.kubeflow.v2 import compiler_utils
  tmp = tmp_path_factory.mktemp("submit")
  path = tmp / "pipeline.json"
  assert cli.main(["compile-kubeflow", "--dataset", "synthetic", "--output", str(tmp / "out"),
                   "--representations", "sid_spm", "--pipeline-file", str(path),
                   "--pipeline-root", PIPELINE_ROOT, "--data-dir", "gs://bucket/data",
                   "--image", "example.com/sidrec:test", "--no-baselines"]) == 0
  job = json.loads(path.read_text())
  parameters = job["pipelineSpec"]["root"].setdefault("inputDefinitions", {}).setdefault(
      "parameters", {})
  for name, ptype in (("train_steps", int), ("note", str)):
    spec = compiler_utils.build_parameter_type_spec_legacy(
        data_types.RuntimeParameter(name=name, ptype=ptype))
    parameters[name] = json_format.MessageToDict(spec)
  job["runtimeConfig"]["parameters"] = {"note": {"stringValue": "compiled default"}}
  path.write_text(json.dumps(job))
  return path, job


class _Recorder(http.server.BaseHTTPRequestHandler):
  routes = {}  # (method, path) -> (status, body); set per server
  log = None

  def _answer(self):
    url = urllib.parse.urlsplit(self.path)
    length = int(self.headers.get("Content-Length") or 0)
    body = self.rfile.read(length) if length else b""
    self.log.append({"method": self.command, "path": url.path,
                     "query": urllib.parse.parse_qs(url.query),
                     "headers": {k.lower(): v for k, v in self.headers.items()},
                     "body": json.loads(body) if body else None})
    status, answer = self.routes.get((self.command, url.path), (404, {"error": "no route"}))
    data = json.dumps(answer).encode()
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  do_GET = do_POST = _answer

  def log_message(self, *args):
    pass


@contextlib.contextmanager
def _fake_endpoint(routes):
  handler = type("Handler", (_Recorder,), {"routes": routes, "log": []})
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.log
  finally:
    server.shutdown()
    server.server_close()


# The KFP REST API v2beta1 routes kfp.Client.create_run_from_pipeline_package calls (kfp 2.16:
# kfp/client/client.py; kfp_server_api/api/*_service_api.py).
KFP_ROUTES = {
    ("GET", "/apis/v2beta1/healthz"): (200, {"multi_user": False}),
    ("GET", "/apis/v2beta1/experiments"): (200, {}),  # no experiment of that name yet
    ("POST", "/apis/v2beta1/experiments"): (200, {"experiment_id": "exp-7",
                                                   "display_name": "sidrec-dev"}),
    ("POST", "/apis/v2beta1/runs"): (200, {"run_id": "run-42", "experiment_id": "exp-7",
                                           "display_name": "nightly", "state": "PENDING"}),
}


def test_submit_to_kubeflow_creates_a_run_of_the_compiled_spec(pipeline_file, capsys):
  path, job = pipeline_file
  with _fake_endpoint(KFP_ROUTES) as (host, log):
    assert cli.main(["submit", str(path), "--kfp-host", host, "--experiment", "sidrec-dev",
                     "--run-name", "nightly", "--param", "train_steps=500",
                     "--access-token", "kfp-token"]) == 0
  calls = [(c["method"], c["path"]) for c in log]
  assert calls[-2:] == [("POST", "/apis/v2beta1/experiments"), ("POST", "/apis/v2beta1/runs")]
  assert ("GET", "/apis/v2beta1/healthz") in calls
  experiment = next(c for c in log if c["method"] == "POST" and c["path"].endswith("experiments"))
  assert experiment["body"]["display_name"] == "sidrec-dev"
  run = log[-1]
  assert run["headers"]["authorization"] == "Bearer kfp-token"
  body = run["body"]
  assert (body["experiment_id"], body["display_name"]) == ("exp-7", "nightly")
  # The compiled spec itself, every task and executor unchanged.
  assert body["pipeline_spec"] == job["pipelineSpec"]
  # Parameters: the one given, typed as declared, and the compiled default.
  assert body["runtime_config"] == {"pipeline_root": PIPELINE_ROOT,
                                    "parameters": {"train_steps": 500,
                                                   "note": "compiled default"}}
  out = capsys.readouterr().out
  assert out.splitlines() == [f"Run run-42 created on Kubeflow Pipelines at {host}",
                              f"  {host}/#/runs/details/run-42"]


def test_kubeflow_http_error_is_one_line_naming_the_endpoint(pipeline_file, capsys):
  path, _ = pipeline_file
  routes = dict(KFP_ROUTES)
  routes[("POST", "/apis/v2beta1/runs")] = (400, {"error_message": "Invalid input error: "
                                                  "pipeline spec is invalid", "code": 3})
  with _fake_endpoint(routes) as (host, _):
    assert cli.main(["submit", str(path), "--kfp-host", host]) == 2
  captured = capsys.readouterr()
  err = captured.err.strip().splitlines()
  assert err == [f"sidrec: error: submit: Kubeflow Pipelines at {host}: HTTP 400 Bad Request: "
                 "Invalid input error: pipeline spec is invalid"]
  assert "Run " not in captured.out
  # Not a KFP API at all (healthz missing): answered at once, not after kfp's 5 retries.
  with _fake_endpoint({}) as (host, log):
    assert cli.main(["submit", str(path), "--kfp-host", host]) == 2
  assert len(log) == 1
  assert capsys.readouterr().err.strip() == (
      f"sidrec: error: submit: Kubeflow Pipelines at {host}: HTTP 404 Not Found on GET "
      "/apis/v2beta1/healthz: no route")


def _unused_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_unreachable_endpoints_are_one_line_naming_them(pipeline_file, capsys):
  path, _ = pipeline_file
  host = f"http://127.0.0.1:{_unused_port()}"
  assert cli.main(["submit", str(path), "--kfp-host", host]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(
      f"sidrec: error: submit: cannot reach Kubeflow Pipelines at {host}: "), err
  assert cli.main(["submit", str(path), "--vertex-project", "p", "--vertex-region", "r",
                   "--vertex-endpoint", host, "--access-token", "t"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(
      f"sidrec: error: submit: cannot reach Vertex AI at {host}: "), err


VERTEX_PATH = "/v1/projects/sidrec-test/locations/europe-west4/pipelineJobs"
VERTEX_JOB = "projects/123/locations/europe-west4/pipelineJobs/sidrec-20261201120000"


def test_submit_to_vertex_posts_the_pipeline_job(pipeline_file, capsys, monkeypatch):
  path, job = pipeline_file
  monkeypatch.setenv("SIDREC_ACCESS_TOKEN", "ya29.token")
  routes = {("POST", VERTEX_PATH): (200, {"name": VERTEX_JOB, "state": "PIPELINE_STATE_PENDING"})}
  with _fake_endpoint(routes) as (endpoint, log):
    assert cli.main(["submit", str(path), "--vertex-project", "sidrec-test",
                     "--vertex-region", "europe-west4", "--vertex-endpoint", endpoint,
                     "--param", "train_steps=500", "--param", "note=from the CLI",
                     "--service-account", "runner@sidrec-test.iam.gserviceaccount.com"]) == 0
  assert len(log) == 1
  request = log[0]
  assert (request["method"], request["path"]) == ("POST", VERTEX_PATH)
  assert request["headers"]["authorization"] == "Bearer ya29.token"
  assert request["headers"]["content-type"] == "application/json"
  body = request["body"]
  assert body["pipelineSpec"] == job["pipelineSpec"]
  assert (body["displayName"], body["labels"]) == (job["displayName"], job["labels"])
  assert body["serviceAccount"] == "runner@sidrec-test.iam.gserviceaccount.com"
  # Schema 2.0.0 (TFX's default): typed `parameters`, as google-cloud-aiplatform sends them.
  assert job["pipelineSpec"]["schemaVersion"] == "2.0.0"
  assert body["runtimeConfig"] == {
      "gcsOutputDirectory": PIPELINE_ROOT,
      "parameters": {"train_steps": {"intValue": "500"}, "note": {"stringValue": "from the CLI"}}}
  assert capsys.readouterr().out.splitlines() == [
      f"Pipeline job {VERTEX_JOB} created on Vertex AI Pipelines",
      "  https://console.cloud.google.com/vertex-ai/locations/europe-west4/pipelines/runs/"
      "sidrec-20261201120000?project=sidrec-test"]


def test_vertex_errors_and_bad_input_are_one_line(pipeline_file, capsys, monkeypatch):
  path, _ = pipeline_file
  monkeypatch.delenv("SIDREC_ACCESS_TOKEN", raising=False)
  routes = {("POST", VERTEX_PATH): (403, {"error": {
      "code": 403, "status": "PERMISSION_DENIED",
      "message": "Permission 'aiplatform.pipelineJobs.create' denied"}})}
  vertex = ["--vertex-project", "sidrec-test", "--vertex-region", "europe-west4"]
  with _fake_endpoint(routes) as (endpoint, log):
    argv = ["submit", str(path), *vertex, "--vertex-endpoint", endpoint]
    assert cli.main(argv) == 2  # no token: nothing is sent
    assert not log
    assert "needs an access token" in capsys.readouterr().err
    assert cli.main(argv + ["--access-token", "t"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"sidrec: error: submit: Vertex AI at {endpoint}: HTTP 403 Forbidden on POST "
        f"{VERTEX_PATH}: Permission 'aiplatform.pipelineJobs.create' denied")
    # A parameter the pipeline does not declare, a value of the wrong type: caught before
    # anything is sent.
    sent = len(log)
    assert cli.main(argv + ["--access-token", "t", "--param", "epochs=3"]) == 2
    assert "unknown pipeline parameter(s) epochs (the pipeline declares: note, train_steps)" in (
        capsys.readouterr().err)
    assert cli.main(argv + ["--access-token", "t", "--param", "train_steps=many"]) == 2
    assert "parameter train_steps is INT: cannot use 'many'" in capsys.readouterr().err
    assert len(log) == sent


def test_a_spec_with_resolver_tasks_is_refused_for_kubeflow_naming_the_fix(
    pipeline_file, tmp_path, capsys):
  """KFP's open-source backend does not run resolver tasks (its compiler answers "resolver not
  implemented yet" when the run is created); the user learns it before anything is sent."""
  _, job = pipeline_file
  job = json.loads(json.dumps(job))
  job["pipelineSpec"]["deploymentSpec"]["executors"]["SidSpmBaselineResolver-model-resolver_"
                                                     "executor"] = {"resolver": {}}
  path = tmp_path / "with_resolvers.json"
  path.write_text(json.dumps(job))
  assert cli.main(["submit", str(path), "--kfp-host", "http://127.0.0.1:9"]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1
  assert "SidSpmBaselineResolver-model-resolver_executor" in err
  assert "--no-baselines" in err and "Vertex AI" in err
