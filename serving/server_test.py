"""sidrec's local model server end to end: gRPC stubs and HTTP against a started server over
stand-in ranker versions, exactly as a TF Serving client would call tensorflow_model_server."""

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from contracts import schema as S
from contracts import serving_api as api
from contracts import warmup_io
from serving import model_config as mc
from serving import server as server_lib
from tests.fixtures import serving_models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _wait_for(predicate, timeout=30.0):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      return True
    time.sleep(0.05)
  return predicate()


class Client:
  """gRPC stubs and a small HTTP client for one server."""

  def __init__(self, server):
    self.address = server.grpc_address
    self.channel = grpc.insecure_channel(self.address)
    self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
    self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
    self.url = server.rest_url

  def predict(self, inputs, signature="", model="ranker", version=None, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
      request.model_spec.version.value = version
    if label:
      request.model_spec.version_label = label
    for name, value in inputs.items():
      request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return self.predictions.Predict(request, timeout=30)

  def status(self, model="ranker"):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    response = self.models.GetModelStatus(request, timeout=30)
    return {s.version: (get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
                        s.status.error_message) for s in response.model_version_status}

  def http(self, path, body=None, method=None, headers=None):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=headers or {})
    try:
      with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
      return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
  serving_dir = str(tmp_path_factory.mktemp("serving"))
  serving_models.write_stand_in_ranker(os.path.join(serving_dir, "ranker"), 1)
  with server_lib.LocalModelServer(serving_dir, grpc_port=0, rest_port=0,
                                   max_request_bytes=64 * 1024) as server:
    server.wait_until_ready(60)
    yield Client(server)


def _rows(inputs):
  n = len(inputs[S.ITEM_ID])
  return [{k: (v[i].decode() if isinstance(v[i], bytes) else
               [x.decode() if isinstance(x, bytes) else int(x) for x in v[i]]
               if v.ndim > 1 else int(v[i]))
           for k, v in inputs.items()} for i in range(n)]


def test_predict_over_grpc_and_rest_agree(served):
  inputs = serving_models.example_inputs(3)
  response = served.predict(inputs)
  assert response.model_spec.version.value == 1
  assert response.model_spec.signature_name == api.SERVING_DEFAULT
  probability = tf.make_ndarray(response.outputs[api.PROBABILITY])
  assert probability.shape == (3,) and ((probability > 0) & (probability < 1)).all()
  assert tf.make_ndarray(response.outputs[api.ITEM_IN_TABLE]).tolist() == [True] * 3
  status, body = served.http("/v1/models/ranker:predict", {"instances": _rows(inputs)})
  assert status == 200
  assert [row[api.PROBABILITY] for row in body["predictions"]] == pytest.approx(probability)
  columns = {k: [r[k] for r in _rows(inputs)] for k in inputs}
  status, body = served.http("/v1/models/ranker/versions/1:predict", {"inputs": columns})
  assert status == 200 and body["outputs"][api.PROBABILITY] == pytest.approx(probability)
  assert body["outputs"][api.ITEM_IN_TABLE] == [True] * 3


def test_new_items_are_scored_from_their_codes(served):
  inputs = serving_models.example_inputs(2, new_items=True)
  response = served.predict(inputs, signature=api.SERVE_NEW_ITEMS)
  assert tf.make_ndarray(response.outputs[api.ITEM_IN_TABLE]).tolist() == [False, False]
  status, body = served.http("/v1/models/ranker/labels/canary:predict", {
      "signature_name": api.SERVE_NEW_ITEMS, "instances": _rows(inputs)})
  assert status == 200 and [r[api.ITEM_IN_TABLE] for r in body["predictions"]] == [False] * 2


def test_status_and_metadata(served):
  assert served.status() == {1: ("AVAILABLE", "")}
  status, body = served.http("/v1/models/ranker")
  assert status == 200 and body == {"model_version_status": [
      {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK",
                                                        "error_message": ""}}]}
  assert served.http("/v1/models/ranker/labels/stable")[0] == 200
  request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
  request.model_spec.name = "ranker"
  response = served.predictions.GetModelMetadata(request, timeout=30)
  signatures = get_model_metadata_pb2.SignatureDefMap()
  response.metadata["signature_def"].Unpack(signatures)
  assert set(signatures.signature_def[api.SERVE_NEW_ITEMS].inputs) == {
      S.USER_ID, S.USER_AGE, S.USER_GENDER, S.USER_OCCUPATION, S.ITEM_ID, S.HISTORY_ITEM_IDS,
      S.item_codes("rqvae")}
  status, body = served.http("/v1/models/ranker/metadata")
  assert status == 200 and body["model_spec"]["name"] == "ranker"
  assert body["model_spec"]["version"] == "1"
  default = body["metadata"]["signature_def"]["signature_def"][api.SERVING_DEFAULT]
  assert default["inputs"][S.USER_AGE]["dtype"] == "DT_INT64"
  assert set(default["outputs"]) == {api.PROBABILITY, api.LOGITS, api.ITEM_IN_TABLE}


def _bad(case):
  inputs, signature = serving_models.example_inputs(2), ""
  if case == "extra":
    inputs["colour"] = np.array([b"red", b"blue"], dtype=object)
  elif case == "missing":
    del inputs[S.USER_AGE]
  elif case == "dtype":
    inputs[S.USER_AGE] = np.array([b"a", b"b"], dtype=object)
  elif case == "shape":
    inputs[S.HISTORY_ITEM_IDS] = inputs[S.HISTORY_ITEM_IDS][:, :3]
  elif case == "empty":
    inputs = {k: v[:0] for k, v in inputs.items()}
  elif case == "batch":
    inputs[S.ITEM_ID] = inputs[S.ITEM_ID][:1]
  elif case == "signature":
    signature = "serve_everything"
  return inputs, signature


BAD_CASES = {"extra": "colour", "missing": "user_age", "dtype": "user_age",
             "shape": "history_item_ids", "empty": "empty batch", "batch": "item_id",
             "signature": '"serve_everything" not found'}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_requests_name_the_input_on_both_protocols(served, case):
  inputs, signature = _bad(case)
  with pytest.raises(grpc.RpcError) as e:
    served.predict(inputs, signature=signature)
  expected_code = (grpc.StatusCode.FAILED_PRECONDITION if case == "signature"
                   else grpc.StatusCode.INVALID_ARGUMENT)
  assert e.value.code() == expected_code and BAD_CASES[case] in e.value.details()
  columns = {k: v.tolist() for k, v in inputs.items()}
  columns = json.loads(json.dumps(columns, default=lambda b: b.decode()))
  body = {"inputs": columns, "signature_name": signature}
  status, answer = served.http("/v1/models/ranker:predict", body)
  assert status == 400 and BAD_CASES[case] in answer["error"], answer


@pytest.mark.parametrize("path, message, http_code, code", [
    ("/v1/models/nope:predict", "Servable not found for request: Latest(nope)", 404,
     grpc.StatusCode.NOT_FOUND),
    ("/v1/models/ranker/versions/7:predict", "Servable not found for request: Specific(ranker, 7)",
     404, grpc.StatusCode.NOT_FOUND),
    # server_core.cc GetModelVersionForLabel: INVALID_ARGUMENT, hence 400.
    ("/v1/models/ranker/labels/blue:predict", "Unrecognized servable version label: blue", 400,
     grpc.StatusCode.INVALID_ARGUMENT),
])
def test_unknown_model_version_or_label(served, path, message, http_code, code):
  status, body = served.http(path, {"instances": _rows(serving_models.example_inputs(1))})
  assert status == http_code and body["error"] == message
  with pytest.raises(grpc.RpcError) as e:
    served.predict(serving_models.example_inputs(1), model=path.split("/")[3].split(":")[0],
                   version=7 if "versions" in path else None,
                   label="blue" if "labels" in path else None)
  assert e.value.code() == code and e.value.details() == message


def test_http_errors(served):
  status, body = served.http("/v1/models/ranker:predict", b"{not json")
  assert status == 400 and "JSON Parse error" in body["error"]
  status, body = served.http("/v1/models/ranker:predict", b"x" * (65 * 1024))
  assert status == 413 and "too large" in body["error"]
  # http_rest_api_handler.cc: any other URL is a malformed request, 400.
  assert served.http("/v2/anything") == (400, {"error": "Malformed request: GET /v2/anything"})
  assert served.http("/v1/models/ranker/versions/1/frobnicate") == (
      400, {"error": "Malformed request: GET /v1/models/ranker/versions/1/frobnicate"})
  assert served.http("/v1/models/ranker/versions/x") == (
      400, {"error": "Malformed request: GET /v1/models/ranker/versions/x"})
  assert served.http("/v1/models/ranker", {"instances": []}) == (
      400, {"error": "Malformed request: POST /v1/models/ranker"})
  assert served.http("/v1/models/ranker:predict") == (
      400, {"error": "Malformed request: GET /v1/models/ranker:predict"})
  status, body = served.http("/v1/models/ranker:classify", {"examples": []})
  assert status == 501 and "predict signatures only" in body["error"]
  with pytest.raises(grpc.RpcError) as e:
    served.predictions.Classify(classification_pb2.ClassificationRequest(), timeout=30)
  assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
  assert "predict signatures only" in e.value.details()
  # The server is still fine after all of that.
  assert served.predict(serving_models.example_inputs(1)).model_spec.version.value == 1


def test_http_status_mapping_as_tf_serving():
  from serving import rest_service  # pylint: disable=g-import-not-at-top
  assert rest_service.http_status(grpc.StatusCode.CANCELLED) == 499  # CLIENT_CLOSED_REQUEST
  assert rest_service.http_status(grpc.StatusCode.DATA_LOSS) == 500
  assert rest_service.http_status(grpc.StatusCode.UNKNOWN) == 500


def test_url_encoded_names_and_labels_are_decoded(served):
  status, body = served.http("/v1/models/ran%6Ber/labels/st%61ble")
  assert status == 200 and body["model_version_status"][0]["version"] == "1"
  status, body = served.http("/v1/models/ran%6Ber/labels/st%61ble:predict",
                             {"instances": _rows(serving_models.example_inputs(1))})
  assert status == 200 and len(body["predictions"]) == 1
  assert served.http("/V1/MODELS/ranker")[0] == 200  # TF Serving's regexes are (?i)


def test_a_missing_model_name_gets_tf_servings_codes(served):
  assert served.http("/v1/models") == (400, {"error": "Missing model name in request."})
  assert served.http("/v1/models/metadata")[0] == 404  # a model named "metadata"
  with pytest.raises(grpc.RpcError) as e:
    served.predict(serving_models.example_inputs(1), model="")
  assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                 "ModelSpec has no name specified.")
  with pytest.raises(grpc.RpcError) as e:
    served.predictions.Predict(predict_pb2.PredictRequest(), timeout=30)
  assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                 "Missing ModelSpec")
  with pytest.raises(grpc.RpcError) as e:
    served.predictions.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
        metadata_field=["signature_def"], model_spec={"name": ""}), timeout=30)
  assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  with pytest.raises(grpc.RpcError) as e:
    served.status(model="")
  assert (e.value.code(), e.value.details()) == (grpc.StatusCode.NOT_FOUND,
                                                 "Could not find any versions of model ")
  with pytest.raises(grpc.RpcError) as e:
    served.models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(), timeout=30)
  assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                 "Missing ModelSpec")


def _raw_post(url, path, body, content_length=None):
  """POSTs over a plain socket: sends the whole body, then reads the answer (as most HTTP
  clients do). Returns (status, body) or raises the socket error."""
  import http.client  # pylint: disable=g-import-not-at-top
  host, port = url.split("//")[1].split(":")
  conn = http.client.HTTPConnection(host, int(port), timeout=30)
  try:
    conn.putrequest("POST", path)
    conn.putheader("Content-Length", str(content_length or len(body)))
    conn.putheader("Content-Type", "application/json")
    conn.endheaders()
    conn.send(body)
    response = conn.getresponse()
    return response.status, json.loads(response.read())
  finally:
    conn.close()


@pytest.mark.parametrize("size", [64 * 1024 + 1, 8 << 20])
def test_a_body_over_the_limit_gets_413_not_a_connection_reset(served, size):
  status, body = _raw_post(served.url, "/v1/models/ranker:predict", b" " * size)
  assert status == 413 and f"{size} bytes, the limit is 65536" in body["error"]


def test_rest_connections_are_bounded_and_idle_ones_time_out(tmp_path):
  serving_models.write_stand_in_ranker(str(tmp_path / "ranker"), 1, warmup=False)
  with server_lib.LocalModelServer(str(tmp_path), grpc_port=0, rest_port=0, threads=1,
                                   rest_handler_timeout=1.0) as server:
    client = Client(server.wait_until_ready(60))
    idle = socket.create_connection(("127.0.0.1", server.rest_port), timeout=30)
    try:
      time.sleep(0.2)  # the idle connection holds the only REST slot
      status, body = client.http("/v1/models/ranker")
      assert status == 503 and "maximum of 1 REST connections" in body["error"]
      # The idle keep-alive connection is closed after the handler timeout, freeing the slot.
      assert idle.recv(1) == b""
    finally:
      idle.close()
    assert _wait_for(lambda: client.http("/v1/models/ranker")[0] == 200, timeout=10)


def test_warmup_runs_through_the_batch_scheduler(tmp_path):
  serving_models.write_stand_in_ranker(str(tmp_path / "ranker"), 1)  # a 2-row warmup record
  batching = mc.BatchingParameters(max_batch_size=1, enable_large_batch_splitting=False)
  with server_lib.LocalModelServer(str(tmp_path), grpc_port=0, rest_port=0,
                                   batching=batching, max_num_load_retries=0) as server:
    with pytest.raises(TimeoutError, match="Task size 2 is larger than maximum input batch "
                                           "size 1"):
      server.wait_until_ready(10)
    client = Client(server)
    assert client.status()[1][0] == "END" and "warmup record 0" in client.status()[1][1]
  batching = mc.BatchingParameters(max_batch_size=8, max_execution_batch_size=1)
  with server_lib.LocalModelServer(str(tmp_path), grpc_port=0, rest_port=0,
                                   batching=batching) as server:
    server.wait_until_ready(60)
    assert (1, 1, 1) in server.scheduler.batches_run  # the 2-row record ran as two pieces


def test_the_model_config_file_is_polled_for_new_labels(tmp_path):
  base = str(tmp_path / "ranker")
  serving_models.write_stand_in_ranker(base, 1, warmup=False)
  config_path = str(tmp_path / api.MODELS_CONFIG_FILE)
  mc.write_text_proto(config_path, mc.build_model_server_config(str(tmp_path)))
  with server_lib.LocalModelServer(mc.read_model_server_config(config_path), grpc_port=0,
                                   rest_port=0, poll_seconds=0.05,
                                   model_config_file=config_path,
                                   model_config_file_poll_wait_seconds=0.1) as server:
    client = Client(server.wait_until_ready(60))
    serving_models.write_stand_in_ranker(base, 2, warmup=False)
    assert _wait_for(lambda: client.status().get(2, ("",))[0] == "AVAILABLE")
    assert client.predict(serving_models.example_inputs(1), label="canary"
                          ).model_spec.version.value == 1
    mc.write_text_proto(config_path, mc.build_model_server_config(str(tmp_path)))  # push done
    assert _wait_for(lambda: server.manager.labels.get("ranker") == {"canary": 2, "stable": 1})
    assert client.predict(serving_models.example_inputs(1), label="canary"
                          ).model_spec.version.value == 2


def test_versions_come_and_go_while_the_served_one_keeps_answering(tmp_path):
  base = str(tmp_path / "ranker")
  serving_models.write_stand_in_ranker(base, 1, warmup=False)
  with server_lib.LocalModelServer(str(tmp_path), grpc_port=0, rest_port=0,
                                   poll_seconds=0.05, max_num_load_retries=0) as server:
    client = Client(server.wait_until_ready(60))
    first = tf.make_ndarray(client.predict(serving_models.example_inputs(1)).outputs[api.LOGITS])
    serving_models.write_stand_in_ranker(base, 2, half_written=True)
    os.makedirs(os.path.join(base, "3"))
    with open(os.path.join(base, "3", "saved_model.pb"), "wb") as f:
      f.write(b"garbage")
    assert _wait_for(lambda: client.status().get(3, ("",))[0] == "END")
    serving_models.write_stand_in_ranker(base, 4, fail_warmup=True)
    assert _wait_for(lambda: client.status().get(4, ("",))[0] == "END")
    status = client.status()
    assert 2 not in status  # half-written: neither loaded nor reported
    assert status[1] == ("AVAILABLE", "")
    assert "version 3" in status[3][1] and "warmup record 2" in status[4][1]
    assert client.predict(serving_models.example_inputs(1)).model_spec.version.value == 1
    _, body = client.http("/v1/models/ranker/versions/4")
    assert body["model_version_status"][0]["status"]["error_code"] == "INVALID_ARGUMENT"

    serving_models.write_stand_in_ranker(base, 5, bias=1.0, warmup=False)
    assert _wait_for(lambda: client.status().get(1, ("",))[0] == "END")
    response = client.predict(serving_models.example_inputs(1))
    assert response.model_spec.version.value == 5
    assert tf.make_ndarray(response.outputs[api.LOGITS]) == pytest.approx(first + 1.0)

    # A reloaded config applies its policy and labels.
    config = mc.build_model_server_config(str(tmp_path))
    model = config.model_config_list.config[0]
    model.model_version_policy.specific.versions[:] = [1, 5]
    model.version_labels["stable"], model.version_labels["canary"] = 1, 5
    # As ServerCore::ReloadConfig: the labels are checked before version 1 loads again.
    with pytest.raises(grpc.RpcError) as e:
      client.models.HandleReloadConfigRequest(
          model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "version 1 of model ranker, which is not currently available" in e.value.details()
    assert client.status()[1][0] == "AVAILABLE"
    # The same config again (version 1 now AVAILABLE) is accepted.
    client.models.HandleReloadConfigRequest(
        model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
    assert client.predict(serving_models.example_inputs(1), label="stable"
                          ).model_spec.version.value == 1


def test_batching_merges_concurrent_requests(tmp_path):
  # No warmup: its records, replayed through the scheduler, would each wait the minute-long
  # batch timeout, as they do in the stock server.
  serving_models.write_stand_in_ranker(str(tmp_path / "ranker"), 1, warmup=False)
  batching = mc.BatchingParameters(max_batch_size=4, batch_timeout_micros=60_000_000)
  with server_lib.LocalModelServer(str(tmp_path), grpc_port=0, rest_port=0,
                                   batching=batching) as server:
    client = Client(server.wait_until_ready(60))
    inputs = serving_models.example_inputs(4)
    one = [{k: v[i:i + 1] for k, v in inputs.items()} for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      responses = list(pool.map(client.predict, one))
    assert (4, 4, 4) in server.scheduler.batches_run  # four requests, one signature call
    merged = [float(tf.make_ndarray(r.outputs[api.LOGITS])[0]) for r in responses]
    alone = server.manager.acquire("ranker").loaded.run(api.SERVING_DEFAULT, inputs)
    assert merged == pytest.approx(alone[api.LOGITS].tolist())  # each got its own row


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_serve_main_runs_in_the_foreground_and_stops_on_sigterm(tmp_path):
  serving_models.write_stand_in_ranker(str(tmp_path / "ranker"), 1, warmup=False)
  rest, grpc_port = _free_port(), _free_port()
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PATH="/usr/bin:/bin",
             PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  process = subprocess.Popen(
      [sys.executable, "-m", "serving.server", "--model-dir", str(tmp_path), "--rest-port",
       str(rest), "--grpc-port", str(grpc_port), "--no-batching"],
      cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
  try:
    def available():
      try:
        with urllib.request.urlopen(f"http://127.0.0.1:{rest}/v1/models/ranker", timeout=5) as r:
          return json.loads(r.read())["model_version_status"][0]["state"] == "AVAILABLE"
      except OSError:
        return False
    assert _wait_for(available, timeout=90)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
  finally:
    if process.poll() is None:
      process.kill()
  assert process.returncode == 0, stderr
  assert "local model server (a stand-in for tensorflow_model_server)" in stderr
  assert f"127.0.0.1:{grpc_port}" in stderr and "stopped" in stderr


def _args(*argv):
  import argparse  # pylint: disable=g-import-not-at-top
  return server_lib.add_serve_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def test_print_command_and_the_stock_binary(tmp_path, capsys, monkeypatch):
  serving_models.write_stand_in_ranker(str(tmp_path / "ranker"), 1, warmup=False)
  assert server_lib.serve_main(_args("--model-dir", str(tmp_path), "--print-command")) == 0
  captured = capsys.readouterr()
  lines = captured.out.strip().splitlines()
  assert lines[0] == (f"tensorflow_model_server --port=8500 --rest_api_port=8501 "
                      f"--model_config_file={tmp_path}/models.config "
                      f"--file_system_poll_wait_seconds=1 "
                      # sidrec's models.config labels versions: without it the stock server
                      # refuses the config at startup (server_core.cc checks labels first).
                      f"--allow_version_labels_for_unavailable_models=true "
                      f"--enable_batching=true "
                      f"--batching_parameters_file={tmp_path}/batching_parameters.txt")
  assert lines[1].startswith(f"docker run -p 8500:8500 -p 8501:8501 -v {tmp_path}:"
                             f"/models/serving tensorflow/serving --port=8500")
  assert "--model_config_file=/models/serving/models.docker.config" in lines[1]
  docker_config = mc.read_model_server_config(str(tmp_path / "models.docker.config"))
  assert docker_config.model_config_list.config[0].base_path == "/models/serving/ranker"
  assert mc.read_model_server_config(str(tmp_path / "models.config"))  # what line 0 reads

  assert "cannot bind a single interface" in captured.err  # --host 127.0.0.1 (the default)

  executed = []
  monkeypatch.setattr(server_lib.shutil, "which", lambda name: "/opt/tfs/" + name)
  monkeypatch.setattr(server_lib.os, "execv", lambda path, argv: executed.append(argv))
  server_lib.serve_main(_args("--model-dir", str(tmp_path), "--no-batching", "--rest-port", "9"))
  assert executed[0][0] == "/opt/tfs/tensorflow_model_server"
  assert "--rest_api_port=9" in executed[0] and "--enable_batching=true" not in executed[0]
  warnings = [l for l in capsys.readouterr().err.splitlines() if "warning" in l]
  assert warnings == [
      "sidrec serve: warning: --host 127.0.0.1 is not applied: tensorflow_model_server cannot "
      "bind a single interface (it listens on 0.0.0.0); restrict access with a firewall or "
      "network policy"]
  server_lib.serve_main(_args("--model-dir", str(tmp_path), "--host", "0.0.0.0",
                              "--model-config-file", str(tmp_path / "models.config"),
                              "--model-config-file-poll-wait-seconds", "30",
                              "--allow-version-labels-for-unavailable-models",
                              "--max-num-load-retries", "2"))
  assert "warning" not in capsys.readouterr().err
  argv = executed[1]
  for flag in ("--model_config_file_poll_wait_seconds=30",
               "--allow_version_labels_for_unavailable_models=true", "--max_num_load_retries=2"):
    assert flag in argv
  assert not [a for a in argv if a.startswith("--load_retry_interval_micros")]  # the default
  # With labels the stock server needs the flag (labels are checked before anything loads):
  # turning it off gets the warning.
  server_lib.serve_main(_args("--model-dir", str(tmp_path), "--host", "0.0.0.0",
                              "--no-allow-version-labels-for-unavailable-models"))
  assert "refuses at startup a label naming a version not yet loaded" in (
      capsys.readouterr().err)
  assert "--allow_version_labels_for_unavailable_models=true" not in executed[2]
  assert not [a for a in executed[0] if "poll_wait_seconds=" in a and "model_config" in a]


def test_stock_server_commands_flags(tmp_path):
  commands = server_lib.stock_server_commands(
      str(tmp_path), model_config_file_poll_wait_seconds=60, load_retry_interval_seconds=5)
  for argv in commands.values():
    assert "--model_config_file_poll_wait_seconds=60" in argv
    assert "--load_retry_interval_micros=5000000" in argv
  default = server_lib.stock_server_commands(str(tmp_path))["tensorflow_model_server"]
  assert not [a for a in default if "model_config_file_poll" in a]
  assert "--allow_version_labels_for_unavailable_models=true" in default


@pytest.mark.parametrize("argv, message", [
    (["--model-dir", "/no/such/dir"], "--model-dir /no/such/dir is not a directory"),
    (["--model-dir", "{tmp}", "--model-config-file", "{tmp}/x.config"], "x.config cannot be read"),
    (["--model-dir", "{tmp}", "--batching-parameters-file", "{tmp}/b.txt"], "b.txt cannot be read"),
    (["--model-dir", "{tmp}", "--model-config-file-poll-wait-seconds", "5"],
     "needs --model-config-file"),
    (["--model-dir", "{tmp}", "--max-num-load-retries", "-1"], "must be >= 0"),
])
def test_bad_flags_say_which_and_how_to_fix(tmp_path, argv, message):
  serving_models.write_stand_in_ranker(str(tmp_path / "ranker"), 1, warmup=False)
  with pytest.raises(ValueError, match=message):
    server_lib.serve_main(_args(*[a.format(tmp=tmp_path) for a in argv]))


def test_tfx_infra_validator_client_accepts_the_server(served):
  """TFX's own TF Serving client (written for tensorflow_model_server) validates the model."""
  # Imported here: tfx takes seconds to import and only this test needs it.
  # pylint: disable=g-import-not-at-top
  from tfx.components.infra_validator.model_server_clients import tensorflow_serving_client
  client = tensorflow_serving_client.TensorFlowServingClient(served.address, model_name="ranker")
  client.WaitUntilModelLoaded(deadline=time.time() + 60, polling_interval_sec=0.1)
  client.SendRequests([warmup_io.predict_request(api.SERVING_DEFAULT,
                                                 serving_models.example_inputs(2), "ranker")])
