"""The version manager over stand-in ranker versions on disk: policy, labels, failures."""

import os
import time

import grpc
import pytest
from tensorflow_serving.config import model_server_config_pb2

from contracts import serving_api as api
from serving import servables
from serving import tensors
from tests.fixtures import serving_models

State = servables.State


def _config(base, policy=None, labels=None):
  config = model_server_config_pb2.ModelServerConfig()
  model = config.model_config_list.config.add(name="ranker", base_path=base,
                                              model_platform="tensorflow")
  if policy == "all":
    model.model_version_policy.all.SetInParent()
  elif isinstance(policy, int):
    model.model_version_policy.latest.num_versions = policy
  elif isinstance(policy, list):
    model.model_version_policy.specific.versions.extend(policy)
  for label, version in (labels or {}).items():
    model.version_labels[label] = version
  return config


def _states(manager):
  return {v: State.Name(s) for v, s, _, _ in manager.status("ranker")}


def _score(manager, version=None, label=None):
  _, _, out = servables.predict(manager, "ranker", version, label, "",
                                serving_models.example_inputs(1))
  return float(out[api.LOGITS][0])


@pytest.fixture
def base(tmp_path):
  return str(tmp_path / "ranker")


def test_default_policy_serves_the_newest_and_unloads_the_old(base):
  serving_models.write_stand_in_ranker(base, 1, bias=0.0)
  manager = servables.VersionManager(_config(base))
  manager.poll_once()
  assert _states(manager) == {1: "AVAILABLE"}
  first = _score(manager)
  serving_models.write_stand_in_ranker(base, 2, bias=1.0)
  manager.poll_once()
  assert _states(manager) == {2: "AVAILABLE", 1: "END"}
  assert _score(manager) == pytest.approx(first + 1.0)  # version 2 answers
  with pytest.raises(tensors.ServingError, match=r"Servable not found for request: "
                     r"Specific\(ranker, 1\)") as e:
    _score(manager, version=1)
  assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_half_written_version_is_ignored(base):
  serving_models.write_stand_in_ranker(base, 1)
  serving_models.write_stand_in_ranker(base, 2, half_written=True)
  manager = servables.VersionManager(_config(base))
  manager.poll_once()
  assert _states(manager) == {1: "AVAILABLE"}  # 2 is not even reported


def test_corrupt_version_is_reported_and_the_old_one_keeps_serving(base):
  serving_models.write_stand_in_ranker(base, 1)
  manager = servables.VersionManager(_config(base))
  manager.poll_once()
  os.makedirs(os.path.join(base, "2"))
  with open(os.path.join(base, "2", "saved_model.pb"), "wb") as f:
    f.write(b"not a SavedModel")
  manager.poll_once()
  status = {v: (State.Name(s), code, msg) for v, s, code, msg in manager.status("ranker")}
  assert status[1][0] == "AVAILABLE"
  state, code, message = status[2]
  assert state == "END" and code != grpc.StatusCode.OK
  assert "model ranker version 2" in message
  assert servables.predict(manager, "ranker", None, None, "",
                           serving_models.example_inputs(1))[0] == 1
  manager.poll_once()  # not retried while the file is unchanged
  assert _states(manager) == {2: "END", 1: "AVAILABLE"}


def test_failing_warmup_fails_the_version_naming_the_record(base):
  serving_models.write_stand_in_ranker(base, 1)
  serving_models.write_stand_in_ranker(base, 2, fail_warmup=True)
  manager = servables.VersionManager(_config(base, policy=2))
  manager.poll_once()
  status = {v: (State.Name(s), code, msg) for v, s, code, msg in manager.status("ranker")}
  assert status[1][0] == "AVAILABLE"
  assert status[2][0] == "END" and status[2][1] == grpc.StatusCode.INVALID_ARGUMENT
  assert "Failed to warm up model ranker version 2" in status[2][2]
  assert "warmup record 2" in status[2][2] and "user_age" in status[2][2]


def test_policies_and_labels(base):
  for version in (1, 2, 3):
    serving_models.write_stand_in_ranker(base, version, bias=float(version), warmup=False)
  manager = servables.VersionManager(_config(base, policy="all"))
  manager.poll_once()
  assert _states(manager) == {3: "AVAILABLE", 2: "AVAILABLE", 1: "AVAILABLE"}
  manager.reload(_config(base, policy=[1, 3], labels={"stable": 1, "canary": 3}))
  assert _states(manager) == {3: "AVAILABLE", 2: "END", 1: "AVAILABLE"}
  assert _score(manager, label="canary") == pytest.approx(_score(manager, label="stable") + 2)
  with pytest.raises(tensors.ServingError, match="Unrecognized servable version label: blue"):
    _score(manager, label="blue")
  with pytest.raises(tensors.ServingError, match=r"Servable not found for request: Latest\(x\)"):
    servables.predict(manager, "x", None, None, "", serving_models.example_inputs(1))
  with pytest.raises(tensors.ServingError, match="Could not find version 9 of model ranker"):
    manager.status("ranker", 9)
  manager.reload(model_server_config_pb2.ModelServerConfig())  # model removed
  with pytest.raises(tensors.ServingError, match="Could not find any versions of model ranker"):
    manager.status("ranker")


def test_a_pinned_version_is_released_only_after_its_request(base):
  serving_models.write_stand_in_ranker(base, 1, warmup=False)
  manager = servables.VersionManager(_config(base))
  manager.poll_once()
  with manager.acquire("ranker") as loaded:
    serving_models.write_stand_in_ranker(base, 2, warmup=False)
    manager.poll_once()
    assert _states(manager) == {2: "AVAILABLE", 1: "UNLOADING"}
    # The request still completes on the version it pinned.
    assert loaded.version == 1
    servables.predict_on(loaded, "", serving_models.example_inputs(1))
  assert _states(manager) == {2: "AVAILABLE", 1: "END"}


def test_the_poll_thread_picks_up_a_new_version(base):
  serving_models.write_stand_in_ranker(base, 1, warmup=False)
  manager = servables.VersionManager(_config(base), poll_seconds=0.05)
  manager.start()
  try:
    assert manager.wait_until_ready(30)
    serving_models.write_stand_in_ranker(base, 2, warmup=False)
    deadline = time.monotonic() + 30
    while _states(manager).get(2) != "AVAILABLE" and time.monotonic() < deadline:
      time.sleep(0.05)
    assert _states(manager)[2] == "AVAILABLE"
  finally:
    manager.stop()
