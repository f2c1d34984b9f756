"""ServingGate executor over tiny fixtures: a stand-in ranker and joined eval examples."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.serving_gate import executor
from components.serving_gate import spec
from contracts import config as config_lib
from contracts import schema as S
from contracts import serving_api as api
from contracts import warmup_io
from tests.fixtures import serving_models

HISTORY, CODES = 10, 3


def _joined_examples(uri: str, n: int = 40) -> None:
  """Eval examples in the joined layout; every fourth item is new."""
  os.makedirs(os.path.join(uri, "Split-eval"))
  with tf.io.TFRecordWriter(os.path.join(uri, "Split-eval", "data.gz"), "GZIP") as writer:
    for i in range(n):
      bytes_f = lambda *v: tf.train.Feature(bytes_list=tf.train.BytesList(value=list(v)))
      int_f = lambda *v: tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))
      history = [f"i{j}".encode() for j in range(i % 4)] + [b""] * (HISTORY - i % 4)
      features = {
          S.USER_ID: bytes_f(f"u{i % 5}".encode()), S.USER_AGE: int_f(20 + i % 30),
          S.USER_GENDER: bytes_f(b"F"), S.USER_OCCUPATION: bytes_f(b"writer"),
          S.ITEM_ID: bytes_f(f"i{i}".encode()), S.HISTORY_ITEM_IDS: bytes_f(*history),
          S.item_codes("rqvae"): int_f(i % 16, (i * 3) % 16, (i * 7) % 16),
          S.ITEM_COHORT: bytes_f(S.COHORT_NEW.encode() if i % 4 == 0 else b"seen"),
          S.LABEL: int_f(i % 2)}
      writer.write(tf.train.Example(
          features=tf.train.Features(feature=features)).SerializeToString())


class _PythonOpRanker(tf.Module):
  """Has the ranker's signatures but scores through tf.py_function: a Python-defined op,
  which loads and runs in the process that saved it and nowhere else (TF Serving runs no
  Python)."""

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=S.ITEM_ID)])
  def score(self, item_id):
    value = tf.py_function(lambda x: np.float32(len(x.numpy())) * np.ones(len(x.numpy()),
                                                                          np.float32),
                           [item_id], tf.float32)
    return {api.PROBABILITY: tf.reshape(value, [-1])}


def _run(tmp_path, write_model, config=config_lib.ServingConfig(warmup_requests=3)):
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / "model")
  write_model(os.path.join(model.uri, "Format-Serving"))
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "examples")
  examples.split_names = '["eval"]'
  _joined_examples(examples.uri)
  blessing = standard_artifacts.InfraBlessing()
  blessing.uri = str(tmp_path / "blessing")
  os.makedirs(blessing.uri)
  executor.Executor().Do(
      {spec.MODEL_KEY: [model], spec.EXAMPLES_KEY: [examples]},
      {spec.BLESSING_KEY: [blessing]},
      {spec.SERVING_CONFIG_KEY: config_lib.to_json(config), spec.EXAMPLES_SPLIT_KEY: "eval"})
  with open(os.path.join(blessing.uri, spec.CHECK_RESULT_FILE)) as f:
    return blessing, json.load(f)


def _stand_in(path):
  base, version = os.path.split(path)
  serving_models.write_stand_in_ranker(base, version, warmup=False)


def test_a_servable_model_is_blessed_and_stamped_with_warmup_requests(tmp_path):
  blessing, result = _run(tmp_path, _stand_in)
  assert blessing.get_int_custom_property(spec.BLESSED_PROPERTY) == 1
  assert blessing.get_int_custom_property(spec.HAS_MODEL_PROPERTY) == 1
  assert os.path.exists(os.path.join(blessing.uri, spec.BLESSED_FILE))
  # What the stock Pusher pushes: the model with its warmup requests.
  stamped = os.path.join(blessing.uri, "stamped_model")
  records = list(warmup_io.read_warmup(warmup_io.warmup_path(stamped)))
  assert [s for s, _ in records] == [api.SERVING_DEFAULT] * 3 + [api.SERVE_NEW_ITEMS] * 3
  # One user per request (user fields tiled), 1 / 10 / 100 candidates capped at the pool.
  sizes = [len(inputs[S.ITEM_ID]) for _, inputs in records]
  assert sizes == [1, 10, 40, 1, 10, 40]
  for _, inputs in records:
    assert len(set(inputs[S.USER_ID])) == 1
    assert inputs[S.HISTORY_ITEM_IDS].shape == (len(inputs[S.ITEM_ID]), HISTORY)
  new_items = records[3][1]
  assert new_items[S.item_codes("rqvae")].shape == (1, CODES)
  assert new_items[S.ITEM_ID][0] == b"i0"  # the new-item cohort first
  # Replayed in the fresh process, which loaded no sidrec module.
  assert result["error"] is None and result["records"] == 6
  assert result["by_signature"] == {api.SERVING_DEFAULT: 3, api.SERVE_NEW_ITEMS: 3}
  assert result["sidrec_modules"] == [] and "tensorflow" in result["modules"]


def test_a_model_with_a_python_defined_op_is_not_blessed(tmp_path):
  def write(path):
    module = _PythonOpRanker()
    tf.saved_model.save(module, path, signatures={
        api.SERVING_DEFAULT: module.score.get_concrete_function(),
        api.SERVE_NEW_ITEMS: module.score.get_concrete_function()})
  blessing, result = _run(tmp_path, write)
  assert blessing.get_int_custom_property(spec.BLESSED_PROPERTY) == 0
  assert not blessing.has_custom_property(spec.HAS_MODEL_PROPERTY)
  assert os.path.exists(os.path.join(blessing.uri, spec.NOT_BLESSED_FILE))
  assert "warmup record 0 (serving_default) failed" in result["error"]
  assert "Could not find callback" in result["error"]  # the Python function is not in the model


def test_a_model_without_the_client_signatures_fails_with_their_names(tmp_path):
  def write(path):
    module = _PythonOpRanker()
    tf.saved_model.save(module, path, signatures={
        api.SERVING_DEFAULT: module.score.get_concrete_function()})
  with pytest.raises(ValueError, match="no signature.*serve_new_items"):
    _run(tmp_path, write)
