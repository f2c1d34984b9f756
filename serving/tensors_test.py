"""Requests against the stand-in ranker's real SignatureDefs: validation and REST JSON."""

import os

import grpc
import numpy as np
import pytest
from tensorflow.core.protobuf import saved_model_pb2

from contracts import schema as S
from contracts import serving_api as api
from serving import tensors
from tests.fixtures import serving_models


@pytest.fixture(scope="module")
def signatures(tmp_path_factory):
  path = serving_models.write_stand_in_ranker(str(tmp_path_factory.mktemp("m")), 1, warmup=False)
  saved = saved_model_pb2.SavedModel()
  with open(os.path.join(path, "saved_model.pb"), "rb") as f:
    saved.ParseFromString(f.read())
  return dict(saved.meta_graphs[0].signature_def)


def _check(signatures, inputs, signature=api.SERVING_DEFAULT):
  name, sig = tensors.find_signature(signatures, signature)
  return tensors.validate_inputs(name, sig, inputs, "ranker")


def test_valid_inputs_pass(signatures):
  assert set(_check(signatures, serving_models.example_inputs(3))) == set(
      signatures[api.SERVING_DEFAULT].inputs)
  _check(signatures, serving_models.example_inputs(2, new_items=True), api.SERVE_NEW_ITEMS)


def test_unknown_signature(signatures):
  with pytest.raises(tensors.ServingError, match='Serving signature name: "nope" not found') as e:
    tensors.find_signature(signatures, "nope")
  assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
  assert tensors.find_signature(signatures, "")[0] == api.SERVING_DEFAULT


def test_extra_input_is_named_with_the_expected_set(signatures):
  inputs = serving_models.example_inputs(1)
  inputs["colour"] = np.array([b"red"], dtype=object)
  with pytest.raises(tensors.ServingError) as e:
    _check(signatures, inputs)
  assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
  assert e.value.message == (
      "input tensor alias not found in signature: colour. Inputs expected to be in the set "
      "{history_item_ids,item_id,user_age,user_gender,user_id,user_occupation}.")


def test_missing_input_is_named(signatures):
  inputs = serving_models.example_inputs(1)
  del inputs[S.USER_AGE]
  with pytest.raises(tensors.ServingError, match=r"Missing but required: \{user_age\}"):
    _check(signatures, inputs)


@pytest.mark.parametrize("name, value, message", [
    (S.USER_AGE, np.array([b"x", b"y"], dtype=object),
     "input user_age of signature 'serving_default' has dtype string but the signature "
     "expects int64"),
    (S.HISTORY_ITEM_IDS, np.array([[b"a"] * 4] * 2, dtype=object),
     r"input history_item_ids .* has shape \[2,4\] but the signature expects \[\?,10\]"),
    (S.ITEM_ID, np.array([[b"a"], [b"b"]], dtype=object),
     r"input item_id .* has shape \[2,1\] but the signature expects \[\?\]"),
    (S.ITEM_ID, np.array([b"a", b"b", b"c"], dtype=object),
     "inconsistent batch sizes: input item_id has 3 rows"),
])
def test_bad_tensors_name_the_input_and_the_expectation(signatures, name, value, message):
  inputs = serving_models.example_inputs(2)
  inputs[name] = value
  with pytest.raises(tensors.ServingError, match=message) as e:
    _check(signatures, inputs)
  assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_empty_batch(signatures):
  inputs = {k: v[:0] for k, v in serving_models.example_inputs(2).items()}
  with pytest.raises(tensors.ServingError, match="empty batch"):
    _check(signatures, inputs)


def test_output_filter(signatures):
  sig = signatures[api.SERVING_DEFAULT]
  outputs = {api.PROBABILITY: np.zeros(1), api.LOGITS: np.zeros(1)}
  assert list(tensors.filter_outputs("s", sig, outputs, [api.LOGITS])) == [api.LOGITS]
  with pytest.raises(tensors.ServingError, match="output tensor alias not found in signature: x"):
    tensors.filter_outputs("s", sig, outputs, ["x"])


def _row(n=2):
  return [{S.USER_ID: f"u{i}", S.USER_AGE: 30 + i, S.USER_GENDER: "F",
           S.USER_OCCUPATION: {"b64": "d3JpdGVy"}, S.ITEM_ID: "i1",
           S.HISTORY_ITEM_IDS: ["i2"] + [""] * 9} for i in range(n)]


def test_json_row_form(signatures):
  sig = signatures[api.SERVING_DEFAULT]
  form, inputs = tensors.json_to_inputs({"instances": _row(2)}, sig)
  assert form == tensors.ROW
  assert inputs[S.USER_AGE].dtype == np.int64 and inputs[S.USER_AGE].tolist() == [30, 31]
  assert inputs[S.USER_OCCUPATION].tolist() == [b"writer", b"writer"]  # b64 decoded
  assert inputs[S.HISTORY_ITEM_IDS].shape == (2, 10)
  _check(signatures, inputs)


def test_json_column_form(signatures):
  sig = signatures[api.SERVING_DEFAULT]
  columns = {k: [row[k] for row in _row(2)] for k in _row(1)[0]}
  form, inputs = tensors.json_to_inputs({"inputs": columns}, sig)
  assert form == tensors.COLUMN and inputs[S.USER_ID].tolist() == [b"u0", b"u1"]


@pytest.mark.parametrize("body, message", [
    ({"instances": [], "inputs": {}}, "only one of"),
    ({"signature_name": "x"}, 'Missing "inputs" or "instances"'),
    ({"instances": [1, 2]}, "bare values but the signature has 6 inputs"),
    ({"instances": [{S.USER_AGE: "old"}]}, "input user_age: JSON value 'old' is not a int64"),
    ({"instances": [{S.USER_AGE: 1.5}]}, "is not a int64"),
    ({"inputs": {S.HISTORY_ITEM_IDS: [["a", "b"], ["c"]]}}, "input history_item_ids: .* ragged"),
    ({"inputs": {S.USER_ID: [{"b64": "%%%"}]}}, "not valid base64"),
])
def test_bad_json_is_invalid_argument(signatures, body, message):
  with pytest.raises(tensors.ServingError, match=message) as e:
    tensors.json_to_inputs(body, signatures[api.SERVING_DEFAULT])
  assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_json_outputs_as_tf_serving_writes_them():
  outputs = {api.PROBABILITY: np.array([0.1, 0.25], np.float32),
             api.ITEM_IN_TABLE: np.array([True, False]),
             "count": np.array([3, 4], np.int64),
             "name": np.array([b"ok", b"\xff"], dtype=object)}
  rows = tensors.outputs_to_json(tensors.ROW, outputs)["predictions"]
  assert rows[0] == {api.PROBABILITY: 0.1, api.ITEM_IN_TABLE: True, "count": 3, "name": "ok"}
  assert rows[1]["name"] == {"b64": "/w=="}  # not utf-8
  assert isinstance(rows[1]["count"], int)
  columns = tensors.outputs_to_json(tensors.COLUMN, outputs)["outputs"]
  assert columns[api.PROBABILITY] == [0.1, 0.25]
  one = {api.PROBABILITY: np.array([0.5], np.float32)}
  assert tensors.outputs_to_json(tensors.ROW, one) == {"predictions": [0.5]}
  assert tensors.outputs_to_json(tensors.COLUMN, one) == {"outputs": [0.5]}
