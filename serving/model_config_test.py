"""The stock server's config files: discovery, ModelServerConfig, BatchingParameters."""

import os

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from contracts import serving_api as api
from serving import model_config as mc


def _version(base, number, complete=True):
  path = os.path.join(base, str(number))
  os.makedirs(path, exist_ok=True)
  if complete:
    open(os.path.join(path, "saved_model.pb"), "wb").close()


def test_versions_are_complete_numeric_directories(tmp_path):
  base = str(tmp_path / "ranker")
  for n in (3, 10, 1):
    _version(base, n)
  _version(base, 11, complete=False)  # still being copied
  os.makedirs(os.path.join(base, "tmp-12"))
  assert mc.discover_versions(base) == [1, 3, 10]  # numeric order, not "10" < "3"
  assert mc.discover_versions(str(tmp_path / "missing")) == []


def test_models_need_a_version(tmp_path):
  _version(str(tmp_path / "a"), 1)
  _version(str(tmp_path / "b"), 2, complete=False)
  assert mc.discover_models(str(tmp_path)) == {"a": [1]}
  with pytest.raises(ValueError, match="does not exist"):
    mc.discover_models(str(tmp_path / "nope"))


def test_config_labels_canary_newest_and_stable_the_one_before(tmp_path):
  for n in (1, 2, 5):
    _version(str(tmp_path / "ranker"), n)
  _version(str(tmp_path / "single"), 7)
  config = mc.build_model_server_config(str(tmp_path))
  models = {m.name: m for m in config.model_config_list.config}
  ranker = models["ranker"]
  assert ranker.base_path == os.path.join(str(tmp_path), "ranker")
  assert ranker.model_platform == "tensorflow"
  assert ranker.model_version_policy.latest.num_versions == 2
  assert dict(ranker.version_labels) == {api.CANARY_LABEL: 5, api.STABLE_LABEL: 2}
  assert dict(models["single"].version_labels) == {api.CANARY_LABEL: 7, api.STABLE_LABEL: 7}
  docker = mc.build_model_server_config(str(tmp_path), base_path_root="/models/serving")
  assert docker.model_config_list.config[0].base_path == "/models/serving/ranker"


def test_config_round_trips_through_the_text_file(tmp_path):
  _version(str(tmp_path / "ranker"), 1)
  config = mc.build_model_server_config(str(tmp_path))
  path = mc.write_text_proto(str(tmp_path / "models.config"), config)
  assert mc.read_model_server_config(path) == config
  assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
  # The stock server's own parser (the proto's text format) reads it too.
  text_format.Parse(open(path).read(), model_server_config_pb2.ModelServerConfig())


def test_a_broken_config_names_the_file_and_line(tmp_path):
  path = tmp_path / "models.config"
  path.write_text("model_config_list {\n  config {\n    nmae: 'x'\n  }\n}\n")
  with pytest.raises(ValueError, match=r"models.config: line 3"):
    mc.read_model_server_config(str(path))
  with pytest.raises(ValueError, match="cannot be read"):
    mc.read_model_server_config(str(tmp_path / "absent.config"))


def test_batching_parameters_text_form():
  params = mc.BatchingParameters(max_batch_size=32, allowed_batch_sizes=(8, 16, 32))
  text = params.to_text()
  assert "max_batch_size { value: 32 }" in text
  assert "batch_timeout_micros { value: 2000 }" in text
  assert text.count("allowed_batch_sizes:") == 3
  assert "pad_variable_length_inputs: false" in text
  assert mc.BatchingParameters.parse(text) == params


def test_batching_parameters_parse_the_stock_examples():
  text = """# from the TF Serving docs
  max_batch_size { value: 128 }
  batch_timeout_micros { value: 0 }
  max_enqueued_batches { value: 1000000 }
  num_batch_threads { value: 8 }
  """
  assert mc.BatchingParameters.parse(text) == mc.BatchingParameters(
      max_batch_size=128, batch_timeout_micros=0, max_enqueued_batches=1000000,
      num_batch_threads=8)


@pytest.mark.parametrize("text, message", [
    ("max_batch_size { value: 8 }\nmax_batch_sise { value: 8 }",
     "unknown batching parameter 'max_batch_sise'"),
    ("max_batch_size { value: eight }", "max_batch_size has the invalid value"),
    ("max_batch_size 8", "line 1: cannot parse"),
    ("max_batch_size { value: 0 }", "max_batch_size = 0 must be positive"),
    ("max_batch_size { value: 16 }\nallowed_batch_sizes: 8", "must increase and end with"),
])
def test_bad_batching_parameters_name_the_field(text, message):
  with pytest.raises(ValueError, match=message):
    mc.BatchingParameters.parse(text)


def test_write_serving_configs(tmp_path):
  _version(str(tmp_path / "ranker"), 1)
  config_path, batching_path = mc.write_serving_configs(
      str(tmp_path), mc.BatchingParameters(max_batch_size=16))
  assert config_path == str(tmp_path / api.MODELS_CONFIG_FILE)
  assert batching_path == str(tmp_path / api.BATCHING_PARAMETERS_FILE)
  assert mc.read_model_server_config(config_path).model_config_list.config[0].name == "ranker"
  assert mc.BatchingParameters.read(batching_path).max_batch_size == 16
