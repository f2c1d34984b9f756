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
      num_batch_threads=8, enable_large_batch_splitting=False)  # absent = the proto's false


def test_batching_defaults_accept_sidrecs_requests_with_large_batch_splitting():
  params = mc.BatchingParameters()
  assert (params.max_batch_size, params.enable_large_batch_splitting,
          params.max_execution_batch_size) == (1024, True, 256)
  text = params.to_text()
  assert "enable_large_batch_splitting { value: true }" in text
  assert "max_execution_batch_size { value: 256 }" in text
  assert mc.BatchingParameters.parse(text) == params
  off = mc.BatchingParameters(max_batch_size=64, enable_large_batch_splitting=False)
  assert "enable_large_batch_splitting { value: false }" in off.to_text()
  assert mc.BatchingParameters.parse(off.to_text()) == off
  odd = mc.BatchingParameters(enable_large_batch_splitting=False, max_execution_batch_size=100)
  assert mc.BatchingParameters.parse(odd.to_text()) == odd
  assert odd.execution_batch_size == 1024  # without splitting a batch holds max_batch_size
  # As bundle_factory_util.h: splitting on without max_execution_batch_size = max_batch_size.
  parsed = mc.BatchingParameters.parse("max_batch_size { value: 512 }\n"
                                       "enable_large_batch_splitting { value: true }")
  assert parsed.max_execution_batch_size == 512 and parsed.execution_batch_size == 512
  assert mc.BatchingParameters.parse(
      "max_execution_batch_size: 32\nenable_large_batch_splitting: true"
  ).max_execution_batch_size == 32
  # A smaller max_batch_size caps the default piece size.
  assert mc.BatchingParameters(max_batch_size=64).max_execution_batch_size == 64


def test_allowed_batch_sizes_follow_tfs_rule_for_splitting():
  ok = mc.BatchingParameters(max_batch_size=1024, max_execution_batch_size=256,
                             allowed_batch_sizes=(64, 128, 256))
  assert mc.BatchingParameters.parse(ok.to_text()) == ok
  with pytest.raises(ValueError, match="must be equal to max_execution_batch_size"):
    mc.BatchingParameters(max_batch_size=1024, max_execution_batch_size=256,
                          allowed_batch_sizes=(64, 1024))
  with pytest.raises(ValueError, match="must match max_batch_size"):
    mc.BatchingParameters(max_batch_size=1024, enable_large_batch_splitting=False,
                          allowed_batch_sizes=(64, 256))
  with pytest.raises(ValueError, match="max_execution_batch_size = 2048 must be in"):
    mc.BatchingParameters(max_batch_size=1024, max_execution_batch_size=2048)


@pytest.mark.parametrize("text, message", [
    ("max_batch_size { value: 8 }\nmax_batch_sise { value: 8 }",
     "unknown batching parameter 'max_batch_sise'"),
    ("max_batch_size { value: eight }", "max_batch_size has the invalid value"),
    ("max_batch_size 8", "line 1: cannot parse"),
    ("max_batch_size { value: 0 }", "max_batch_size = 0 must be positive"),
    ("max_batch_size { value: 16 }\nallowed_batch_sizes: 8", "must match max_batch_size"),
    ("allowed_batch_sizes: 8\nallowed_batch_sizes: 4", "monotonically increasing"),
    ("enable_large_batch_splitting { value: yes }",
     "enable_large_batch_splitting has the invalid value"),
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


def test_write_serving_configs_leaves_no_temporary_file_on_failure(tmp_path, monkeypatch):
  _version(str(tmp_path / "ranker"), 1)

  def broken(*_):
    raise OSError("disk full")
  monkeypatch.setattr(mc.os, "replace", broken)
  with pytest.raises(OSError, match="disk full"):
    mc.write_serving_configs(str(tmp_path))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["ranker"]
  monkeypatch.undo()
  mc.write_serving_configs(str(tmp_path))
  with pytest.raises(OSError, match="disk full"):
    monkeypatch.setattr(mc.os, "replace", broken)
    mc.atomic_write_text(str(tmp_path / api.BATCHING_PARAMETERS_FILE), "x")
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
