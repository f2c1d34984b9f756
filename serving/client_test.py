"""ServingClient against sidrec's local model server (both protocols) and small stubs.

The served model is the stand-in ranker (tests/fixtures/serving_models.py): the exported
ranker's signatures, scores from a hash of the item id (items named "new..." are missing from
its tables and are scored from their codes). The codebook is a stand-in too, a SavedModel with
an `assign` signature written here, served beside the ranker and loaded in process.
"""
import argparse
import http.server
import json
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tfx.components.infra_validator import types as infra_types
from tfx.components.infra_validator.model_server_clients import tensorflow_serving_client

from contracts import codebook_io
from contracts import schema as S
from contracts import serving_api as api
from contracts import warmup_io
from serving import client as C
from serving import model_config
from serving import server as local_server
from tests.fixtures import serving_models

RANKER, CODEBOOK = "ranker", "codebook"
HISTORY, CODES, EMBED_DIM = 4, 3, 5
USER = {S.USER_ID: "u1", S.USER_AGE: 30, S.USER_GENDER: "F", S.USER_OCCUPATION: "writer"}
CANDIDATES = [f"item{i}" for i in range(8)]
# Both protocols, and REST's two body forms.
TRANSPORTS = [("grpc", "column"), ("rest", "column"), ("rest", "row")]


class _StandInCodebook(tf.Module):
  """embeddings [n, 5] -> codes [n, 3]: the first three values, scaled to 0..9."""

  @tf.function(input_signature=[tf.TensorSpec([None, EMBED_DIM], tf.float32,
                                              name=codebook_io.EMBEDDINGS_INPUT)])
  def assign(self, embeddings):
    codes = tf.clip_by_value(tf.floor(embeddings[:, :CODES] * 10.0), 0.0, 9.0)
    return {codebook_io.CODES_OUTPUT: tf.cast(codes, tf.int64)}


def _write_codebook(path):
  module = _StandInCodebook()
  tf.saved_model.save(module, path, signatures={
      codebook_io.ASSIGN_SIGNATURE: module.assign.get_concrete_function()})
  return path


def _expected_probability(codes_or_id, age=USER[S.USER_AGE], bias=0.0):
  """The stand-in ranker's score of a new item from its codes."""
  logits = (sum(codes_or_id) % 1000) / 1000.0 + (age % 7) * 0.01 + bias
  return 1.0 / (1.0 + np.exp(-logits))


@pytest.fixture(scope="module")
def serving_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("serving")
  serving_models.write_stand_in_ranker(str(root / RANKER), 1, history_length=HISTORY,
                                       code_columns=CODES)
  serving_models.write_stand_in_ranker(str(root / RANKER), 2, bias=0.5,
                                       history_length=HISTORY, code_columns=CODES)
  _write_codebook(str(root / CODEBOOK / "1"))
  model_config.write_serving_configs(str(root))
  return root


@pytest.fixture(scope="module")
def server(serving_dir):
  with local_server.LocalModelServer(str(serving_dir), grpc_port=0, rest_port=0,
                                     poll_seconds=0.5) as running:
    running.wait_until_ready()
    # Every version the tests name, not only the first one loaded.
    for model, version in ((RANKER, 1), (RANKER, 2), (CODEBOOK, 1)):
      with C.ServingClient(f"127.0.0.1:{running.grpc_port}", model, version=version) as client:
        client.wait_until_available(timeout=60)
    yield running


def _address(server, protocol):
  port = server.grpc_port if protocol == "grpc" else server.rest_port
  return f"127.0.0.1:{port}"


def _client(server, protocol, model=RANKER, **kwargs):
  return C.ServingClient(_address(server, protocol), model, protocol=protocol, **kwargs)


# --- against the local model server --------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_status_and_metadata_describe_the_served_signatures(server, protocol):
  with _client(server, protocol) as client:
    statuses = client.wait_until_available(timeout=30)
    assert {s.version: s.state for s in statuses}[2] == "AVAILABLE"
    signatures = client.metadata()
  default = signatures[api.SERVING_DEFAULT]
  assert default.inputs[S.HISTORY_ITEM_IDS] == C.TensorInfo(S.HISTORY_ITEM_IDS, "string",
                                                             (None, HISTORY))
  assert default.inputs[S.USER_AGE].dtype == "int64"
  assert default.outputs[api.PROBABILITY].dtype == "float32"
  codes = signatures[api.SERVE_NEW_ITEMS].inputs[S.item_codes("rqvae")]
  assert (codes.dtype, codes.shape) == ("int64", (None, CODES))


@pytest.mark.parametrize("protocol,form", TRANSPORTS)
def test_rank_sorts_the_candidates_by_the_models_score(server, protocol, form):
  with _client(server, protocol) as client:
    # A history longer than the model's N: the client keeps the most recent N.
    ranked = client.rank(USER, CANDIDATES, history=[f"item{i}" for i in range(9)], form=form)
    direct = client.predict({
        S.USER_ID: [USER[S.USER_ID]] * len(CANDIDATES),
        S.USER_AGE: [USER[S.USER_AGE]] * len(CANDIDATES),
        S.USER_GENDER: [USER[S.USER_GENDER]] * len(CANDIDATES),
        S.USER_OCCUPATION: [USER[S.USER_OCCUPATION]] * len(CANDIDATES),
        S.ITEM_ID: CANDIDATES,
        S.HISTORY_ITEM_IDS: [["item5", "item6", "item7", "item8"]] * len(CANDIDATES),
    }, form=form)
  assert sorted(r.item_id for r in ranked) == sorted(CANDIDATES)
  scores = [r.score for r in ranked]
  assert scores == sorted(scores, reverse=True)
  want = dict(zip(CANDIDATES, direct[api.PROBABILITY].tolist()))
  assert {r.item_id: r.score for r in ranked} == pytest.approx(want, abs=1e-6)
  assert direct[api.PROBABILITY].dtype == np.float32  # REST answers get the declared dtypes
  assert all(r.in_table and r.source == C.SOURCE_TABLE for r in ranked)


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_a_version_and_a_label_pick_the_version_that_answers(server, protocol):
  def top_score(**which):
    with _client(server, protocol, **which) as client:
      return client.rank(USER, CANDIDATES[:3])[0].score
  # Version 2 adds a bias of 0.5 to every logit: the canary (newest) scores higher.
  assert top_score(version=1) == pytest.approx(top_score(label=api.STABLE_LABEL))
  assert top_score(version=2) == pytest.approx(top_score(label=api.CANARY_LABEL))
  assert top_score(version=2) > top_score(version=1)


@pytest.mark.parametrize("protocol,form", TRANSPORTS)
def test_a_new_item_is_ranked_from_its_sid(server, protocol, form):
  with _client(server, protocol, version=1) as client:
    ranked = client.rank(USER, CANDIDATES[:3], new_items={"new_a": [900, 50, 40]}, form=form)
  by_id = {r.item_id: r for r in ranked}
  assert len(ranked) == 4  # the new item joins the candidates
  assert by_id["new_a"].source == C.SOURCE_SID and not by_id["new_a"].in_table
  assert by_id["new_a"].score == pytest.approx(_expected_probability([900, 50, 40]), abs=1e-6)
  assert ranked[0].item_id == "new_a"  # codes summing to 990: the highest hash score


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_an_embedding_is_ranked_through_the_codebooks_assign(server, serving_dir, protocol):
  embedding = [0.95, 0.42, 0.13, 0.0, 1.0]  # -> codes [9, 4, 1]
  codebook_dir = str(serving_dir / CODEBOOK / "1")
  with _client(server, protocol, version=1) as client, \
       _client(server, protocol, model=CODEBOOK) as served_codebook:
    assert served_codebook.assign_codes([embedding]).tolist() == [[9, 4, 1]]
    for codebook in (codebook_dir, served_codebook):  # in process, and served
      ranked = client.rank(USER, ["item1"], new_items={"new_e": embedding}, codebook=codebook)
      new = next(r for r in ranked if r.item_id == "new_e")
      assert new.source == C.SOURCE_EMBEDDING and not new.in_table
      assert new.score == pytest.approx(_expected_probability([9, 4, 1]), abs=1e-6)


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_request_mistakes_name_the_field_and_what_the_model_expects(server, protocol):
  with _client(server, protocol) as client:
    with pytest.raises(C.ServingError) as short_sid:
      client.rank(USER, ["item1"], new_items={"new_x": [1, 2]})
    with pytest.raises(C.ServingError) as no_codebook:
      client.rank(USER, ["item1"], new_items={"new_x": [0.1] * EMBED_DIM})
    with pytest.raises(C.ServingError) as wrong_dtype:
      client.predict({**serving_models.example_inputs(2, history_length=HISTORY),
                      S.USER_AGE: ["twenty", "thirty"]})
    # Without the client's checks, the server's own answer comes back as a ServingError.
    with pytest.raises(C.ServingError) as server_side:
      client.predict({"not_an_input": [1]}, validate=False)
    with pytest.raises(C.ServingError) as missing_model:
      C.ServingClient(_address(server, protocol), "no_such_model", protocol=protocol).metadata()
  assert short_sid.value.message == ("new item new_x: SID has 2 codes, the model's codebook "
                                     "rqvae takes 3")
  assert "--codebook-dir" in no_codebook.value.message
  assert "user_age" in wrong_dtype.value.message and "int64" in wrong_dtype.value.message
  assert server_side.value.code == "INVALID_ARGUMENT"
  assert "not_an_input" in server_side.value.message
  assert missing_model.value.code == "NOT_FOUND"


def test_predict_main_prints_the_ranking(server, tmp_path, capsys):
  embedding_file = tmp_path / "new_e.txt"
  embedding_file.write_text("0.95, 0.42 0.13\n0.0 1.0\n")
  parser = C.add_predict_arguments(argparse.ArgumentParser())
  args = parser.parse_args([
      "--server", _address(server, "grpc"), "--model", RANKER, "--version", "1",
      "--user-id", "u1", "--user-feature", "age=30", "--user-feature", "user_gender=F",
      "--item-ids", "item1,item2,item3",
      "--history", "item4,item5", "--new-item", "new_s=900,50,40",
      "--new-item-embedding", f"new_e={embedding_file}",
      "--codebook-model", CODEBOOK])
  assert C.predict_main(args) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  rows = [line.split(None, 3) for line in lines[1:]]
  assert [r[1] for r in rows][0] == "new_s"
  assert sorted(r[1] for r in rows) == ["item1", "item2", "item3", "new_e", "new_s"]
  scores = [float(r[2]) for r in rows]
  assert scores == sorted(scores, reverse=True)
  sources = {r[1]: r[3] for r in rows}
  assert sources["new_s"] == C.SOURCE_TEXT[C.SOURCE_SID]
  assert sources["new_e"] == C.SOURCE_TEXT[C.SOURCE_EMBEDDING]
  assert sources["item1"] == C.SOURCE_TEXT[C.SOURCE_TABLE]
  # The stand-in scores age % 7: --user-feature age=30 reached the model as user_age 30.
  item1 = float(next(r for r in rows if r[1] == "item1")[2])
  with _client(server, "grpc", version=1) as client:
    assert item1 == pytest.approx(client.rank(USER, ["item1"])[0].score, abs=1e-5)
    assert item1 != pytest.approx(client.rank({S.USER_ID: "u1"}, ["item1"])[0].score, abs=1e-5)


def test_predict_main_refuses_a_user_feature_the_model_does_not_take(server, capsys):
  parser = C.add_predict_arguments(argparse.ArgumentParser())
  args = parser.parse_args(["--server", _address(server, "grpc"), "--model", RANKER,
                            "--user-id", "u1", "--user-feature", "colour=red",
                            "--item-ids", "item1"])
  with pytest.raises(C.ServingError) as refused:
    C.predict_main(args)
  assert refused.value.code == "INVALID_ARGUMENT"
  err = str(refused.value)
  assert RANKER in err and "'colour'" in err and "user_age" in err and "user_occupation" in err


def test_predict_main_rejects_bad_flags_with_the_fix(tmp_path):
  parser = C.add_predict_arguments(argparse.ArgumentParser())
  base = ["--server", "127.0.0.1:1", "--model", RANKER, "--user-id", "u1",
          "--item-ids", "item1"]
  bad_matrix = tmp_path / "two.npy"
  np.save(bad_matrix, np.zeros([2, 3]))
  cases = {
      "--new-item": ["--new-item", "new1:1,2,3"],
      "does not exist": ["--new-item-embedding", f"new1={tmp_path / 'missing.npy'}"],
      "one vector": ["--new-item-embedding", f"new1={bad_matrix}"],
  }
  for expected, flags in cases.items():
    with pytest.raises(ValueError, match=expected) as error:
      C.predict_main(parser.parse_args(base + flags))
    assert "\n" not in str(error.value)
  with pytest.raises(ValueError, match="--user-feature age: given twice"):
    C.predict_main(parser.parse_args(base + ["--user-feature", "age=1", "--user-feature",
                                             "age=2"]))
  with pytest.raises(ValueError, match="--user-feature id: given twice.*--user-id"):
    C.predict_main(parser.parse_args(base + ["--user-feature", "id=u2"]))


@pytest.mark.parametrize("spec", ["age", "=30", ""])
def test_a_malformed_user_feature_is_an_argparse_error(spec, capsys):
  parser = C.add_predict_arguments(argparse.ArgumentParser(prog="sidrec predict"))
  with pytest.raises(SystemExit) as exit_:
    parser.parse_args(["--server", "h:1", "--model", RANKER, "--user-id", "u1",
                       "--user-feature", spec])
  assert exit_.value.code == 2
  assert "--user-feature" in capsys.readouterr().err
  assert C.parse_user_feature("occupation=a=b") == ("occupation", "a=b")


def test_tfx_infra_validator_client_loads_and_predicts(server):
  # TFX's own client (tfx/components/infra_validator/model_server_clients), not ours.
  tfx_client = tensorflow_serving_client.TensorFlowServingClient(
      endpoint=f"localhost:{server.grpc_port}", model_name=RANKER)
  status = tfx_client._GetServingStatus()  # pylint: disable=protected-access
  assert status == infra_types.ModelServingStatus.READY
  tfx_client.WaitUntilModelLoaded(deadline=time.time() + 30, polling_interval_sec=1)
  request = warmup_io.predict_request(
      api.SERVING_DEFAULT, serving_models.example_inputs(2, history_length=HISTORY), RANKER)
  tfx_client.SendRequests([request])  # raises ValidationFailed if the server refuses it


# --- retries, against stubs that fail on purpose -------------------------------------------


class _HttpStub(http.server.BaseHTTPRequestHandler):
  """A stub REST server: answers the statuses queued in `server.answers`, then 200."""

  def do_POST(self):  # pylint: disable=invalid-name
    self.server.requests += 1
    self.rfile.read(int(self.headers.get("Content-Length", 0)))
    status = self.server.answers.pop(0) if self.server.answers else 200
    body = ({"outputs": {api.PROBABILITY: [0.25]}} if status == 200 else
            {"error": f"stub error {status}"})
    data = json.dumps(body).encode()
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def log_message(self, *args):
    pass


@pytest.fixture
def http_stub():
  stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HttpStub)
  stub.requests, stub.answers = 0, []
  thread = threading.Thread(target=stub.serve_forever, daemon=True)
  thread.start()
  yield stub
  stub.shutdown()
  stub.server_close()


def test_rest_retries_503_and_not_400(http_stub):
  client = C.ServingClient(f"127.0.0.1:{http_stub.server_address[1]}", "m", protocol="rest",
                           retries=3, backoff_seconds=0.01)
  http_stub.answers = [503, 503]
  out = client.predict({"x": [1.0]}, validate=False)
  assert out[api.PROBABILITY].tolist() == [0.25]
  assert http_stub.requests == 3
  http_stub.requests, http_stub.answers = 0, [400, 400]
  with pytest.raises(C.ServingError) as error:
    client.predict({"x": [1.0]}, validate=False)
  assert (error.value.code, error.value.http_status) == ("INVALID_ARGUMENT", 400)
  assert error.value.message == "stub error 400"
  assert http_stub.requests == 1
  http_stub.requests, http_stub.answers = 0, [503] * 10
  with pytest.raises(C.ServingError) as exhausted:
    client.predict({"x": [1.0]}, validate=False)
  assert exhausted.value.code == "UNAVAILABLE" and http_stub.requests == 4  # 1 + 3 retries


class _GrpcStub(prediction_service_pb2_grpc.PredictionServiceServicer):
  """A stub PredictionService: aborts with the queued codes, then answers."""

  def __init__(self):
    self.calls, self.answers = 0, []

  def Predict(self, request, context):  # pylint: disable=invalid-name
    self.calls += 1
    if self.answers:
      context.abort(self.answers.pop(0), "stub says no")
    response = predict_pb2.PredictResponse()
    response.outputs[api.PROBABILITY].CopyFrom(tf.make_tensor_proto(np.float32([0.5])))
    return response


@pytest.fixture
def grpc_stub():
  stub = _GrpcStub()
  server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(stub, server)
  port = server.add_insecure_port("127.0.0.1:0")
  server.start()
  yield stub, port
  server.stop(None)


def test_grpc_retries_unavailable_and_not_invalid_argument(grpc_stub):
  stub, port = grpc_stub
  client = C.ServingClient(f"127.0.0.1:{port}", "m", retries=3, backoff_seconds=0.01)
  stub.answers = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
  assert client.predict({"x": [1.0]}, validate=False)[api.PROBABILITY].tolist() == [0.5]
  assert stub.calls == 3
  stub.calls, stub.answers = 0, [grpc.StatusCode.INVALID_ARGUMENT]
  with pytest.raises(C.ServingError) as error:
    client.predict({"x": [1.0]}, validate=False)
  assert (error.value.code, error.value.message) == ("INVALID_ARGUMENT", "stub says no")
  assert stub.calls == 1


# --- content models, through a fake transport (the stand-in ranker reads codes only) -------


class _ContentModelTransport:
  """A fake transport for a content model: serve_new_items also takes item_embedding [B, 4];
  it scores a new item by the sum of its embedding and codes, and records each request."""

  def __init__(self):
    self.requests = []

  def metadata(self, *unused):
    ids = {n: C.TensorInfo(n, "string", (None,)) for n in
           (S.USER_ID, S.USER_GENDER, S.USER_OCCUPATION, S.ITEM_ID)}
    ids[S.USER_AGE] = C.TensorInfo(S.USER_AGE, "int64", (None,))
    ids[S.HISTORY_ITEM_IDS] = C.TensorInfo(S.HISTORY_ITEM_IDS, "string", (None, 2))
    new = dict(ids, **{S.item_codes("rqkmeans"): C.TensorInfo(S.item_codes("rqkmeans"),
                                                              "int64", (None, 2)),
                       api.ITEM_EMBEDDING_INPUT: C.TensorInfo(api.ITEM_EMBEDDING_INPUT,
                                                              "float32", (None, 4))})
    outputs = {api.PROBABILITY: C.TensorInfo(api.PROBABILITY, "float32", (None,)),
               api.ITEM_IN_TABLE: C.TensorInfo(api.ITEM_IN_TABLE, "bool", (None,))}
    return {api.SERVING_DEFAULT: C.SignatureInfo(api.SERVING_DEFAULT, "", ids, outputs),
            api.SERVE_NEW_ITEMS: C.SignatureInfo(api.SERVE_NEW_ITEMS, "", new, outputs)}

  def predict(self, model, version, label, signature, inputs, form, output_names, timeout):
    self.requests.append((signature, inputs))
    n = len(inputs[S.ITEM_ID])
    score = np.full([n], 0.5, np.float32)
    if signature == api.SERVE_NEW_ITEMS:
      score = (inputs[api.ITEM_EMBEDDING_INPUT].sum(axis=1)
               + inputs[S.item_codes("rqkmeans")].sum(axis=1) / 100).astype(np.float32)
    in_table = np.array([signature == api.SERVING_DEFAULT] * n)
    return {api.PROBABILITY: score, api.ITEM_IN_TABLE: in_table}


def test_a_content_model_gets_the_embedding_and_the_codebooks_codes():
  client = C.ServingClient("unused:1", "content_ranker")
  client._transport = fake = _ContentModelTransport()  # pylint: disable=protected-access
  ranked = client.rank({S.USER_ID: "u1"}, ["item1"], history=["a", "b", "c"],
                       new_items={"new_e": [0.1, 0.2, 0.3, 0.4]},
                       codebook=lambda x: np.array([[7, 3]] * len(x)))
  assert [(r.item_id, r.source) for r in ranked] == [("new_e", C.SOURCE_EMBEDDING),
                                                     ("item1", C.SOURCE_TABLE)]
  (_, default), (_, new) = fake.requests
  assert default[S.HISTORY_ITEM_IDS].tolist() == [[b"b", b"c"]]  # the most recent N = 2
  assert new[api.ITEM_EMBEDDING_INPUT].dtype == np.float32
  assert new[S.item_codes("rqkmeans")].tolist() == [[7, 3]]
  assert ranked[0].score == pytest.approx(1.0 + 0.1)
  with pytest.raises(C.ServingError, match="reads content embeddings"):
    client.rank({S.USER_ID: "u1"}, [], new_items={"new_s": [1, 2]})
  with pytest.raises(C.ServingError, match="embedding has 3 values.*takes 4"):
    client.rank({S.USER_ID: "u1"}, [], new_items={"new_e": [0.1, 0.2, 0.3]})


class _UserFeatureTransport:
  """A fake transport for a model whose data declared other user features: user_country
  (string) and user_tier (int64); records each request."""

  def __init__(self):
    self.requests = []

  def metadata(self, *unused):
    inputs = {n: C.TensorInfo(n, "string", (None,)) for n in
              (S.USER_ID, "user_country", S.ITEM_ID)}
    inputs["user_tier"] = C.TensorInfo("user_tier", "int64", (None,))
    inputs[S.HISTORY_ITEM_IDS] = C.TensorInfo(S.HISTORY_ITEM_IDS, "string", (None, 2))
    outputs = {api.PROBABILITY: C.TensorInfo(api.PROBABILITY, "float32", (None,))}
    return {api.SERVING_DEFAULT: C.SignatureInfo(api.SERVING_DEFAULT, "", inputs, outputs)}

  def predict(self, model, version, label, signature, inputs, form, output_names, timeout):
    self.requests.append(inputs)
    return {api.PROBABILITY: np.full([len(inputs[S.ITEM_ID])], 0.5, np.float32)}


def test_the_user_fields_are_the_models_declared_user_features():
  client = C.ServingClient("unused:1", "country_ranker")
  client._transport = fake = _UserFeatureTransport()  # pylint: disable=protected-access
  assert list(C.user_fields(client.signature(api.SERVING_DEFAULT))) == [
      S.USER_ID, "user_country", "user_tier"]
  # By input name or without the prefix; a string for an int64 feature if it is an integer.
  client.rank({S.USER_ID: "u1", "country": "fr", "user_tier": "2"}, ["i1", "i2"])
  sent = fake.requests[-1]
  assert sent["user_country"].tolist() == [b"fr", b"fr"]
  assert sent["user_tier"].dtype == np.int64 and sent["user_tier"].tolist() == [2, 2]
  # Features not given: the out-of-vocabulary values.
  client.rank({S.USER_ID: "u1"}, ["i1"])
  assert fake.requests[-1]["user_country"].tolist() == [b""]
  assert fake.requests[-1]["user_tier"].tolist() == [S.MISSING_INT64]
  # MovieLens's fields are not this model's: refused, naming the field and listing its own.
  with pytest.raises(C.ServingError) as undeclared:
    client.rank({S.USER_ID: "u1", "user_age": 30}, ["i1"])
  assert undeclared.value.code == "INVALID_ARGUMENT"
  assert undeclared.value.message == (
      "user field 'user_age' is not an input of signature serving_default; its user fields "
      "are ['user_id', 'user_country', 'user_tier'] (the `user_` prefix may be left out)")
  for value in ("abc", 2.5, [2], True):
    with pytest.raises(C.ServingError) as wrong_type:
      client.rank({S.USER_ID: "u1", "tier": value}, ["i1"])
    assert wrong_type.value.message == (
        f"user field user_tier = {value!r}: signature serving_default takes user_tier as "
        f"int64; give an integer")
  with pytest.raises(C.ServingError, match="user_country = 1.5.*as string; give a string"):
    client.rank({S.USER_ID: "u1", "country": 1.5}, ["i1"])
  with pytest.raises(C.ServingError, match="user_tier given twice"):
    client.rank({S.USER_ID: "u1", "tier": 1, "user_tier": 1}, ["i1"])
  with pytest.raises(C.ServingError, match="user needs a user_id"):
    client.rank({"country": "fr"}, ["i1"])
  assert len(fake.requests) == 2  # nothing refused was sent


def test_a_reset_while_sending_a_large_body_is_not_retried():
  import socket  # pylint: disable=g-import-not-at-top
  import struct  # pylint: disable=g-import-not-at-top
  listener = socket.socket()
  listener.bind(("127.0.0.1", 0))
  listener.listen(8)
  accepted = []

  def refuse_bodies():  # reads the headers, then resets the connection (SO_LINGER 0)
    while True:
      try:
        conn, _ = listener.accept()
      except OSError:
        return
      accepted.append(1)
      conn.recv(4096)
      conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
      conn.close()
  thread = threading.Thread(target=refuse_bodies, daemon=True)
  thread.start()
  try:
    client = C.ServingClient(f"127.0.0.1:{listener.getsockname()[1]}", "m", protocol="rest",
                             retries=3, backoff_seconds=0.01)
    with pytest.raises(C.ServingError) as error:
      client.predict({"x": np.zeros(1 << 20, np.float32)}, validate=False)
    assert error.value.code != "UNAVAILABLE" and "too large" in error.value.message
    assert len(accepted) == 1  # asked once
  finally:
    listener.close()


def test_413_is_resource_exhausted_and_not_retried(http_stub):
  client = C.ServingClient(f"127.0.0.1:{http_stub.server_address[1]}", "m", protocol="rest",
                           retries=3, backoff_seconds=0.01)
  http_stub.answers = [413]
  with pytest.raises(C.ServingError) as error:
    client.predict({"x": [1.0]}, validate=False)
  assert (error.value.code, error.value.http_status) == ("RESOURCE_EXHAUSTED", 413)
  assert http_stub.requests == 1
