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
  manager = servables.VersionManager(_config(base), max_num_load_retries=0)
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
  manager.poll_once()  # not retried (no retries) while the file is unchanged
  assert _states(manager) == {2: "END", 1: "AVAILABLE"}


def test_failing_warmup_fails_the_version_naming_the_record(base):
  serving_models.write_stand_in_ranker(base, 1)
  serving_models.write_stand_in_ranker(base, 2, fail_warmup=True)
  manager = servables.VersionManager(_config(base, policy=2), max_num_load_retries=0)
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


def test_a_label_names_only_an_available_version_as_tf_serving(base):
  serving_models.write_stand_in_ranker(base, 1, bias=1.0, warmup=False)
  serving_models.write_stand_in_ranker(base, 2, bias=2.0, warmup=False)
  manager = servables.VersionManager(_config(base, policy=[1, 2]))
  manager.poll_once()
  # Version 3 is not on disk: the whole new label map is refused, the old one stays.
  manager.reload(_config(base, policy=[1, 2], labels={"stable": 1}))
  with pytest.raises(tensors.ServingError) as e:
    manager.reload(_config(base, policy=[1, 2], labels={"stable": 2, "canary": 3}))
  assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
  assert e.value.message == ("Request to assign label to version 3 of model ranker, which is "
                             "not currently available for inference")
  assert manager.labels == {"ranker": {"stable": 1}}
  assert _score(manager, label="stable") == pytest.approx(_score(manager, version=1))
  with pytest.raises(tensors.ServingError, match="Unrecognized servable version label: canary"):
    _score(manager, label="canary")
  # A reload that adds version 3 and labels it fails as in TF Serving (the labels are checked
  # before the new version loads); once version 3 is AVAILABLE the labels take it.
  serving_models.write_stand_in_ranker(base, 3, bias=3.0, warmup=False)
  with pytest.raises(tensors.ServingError, match="version 3 of model ranker, which is not"):
    manager.reload(_config(base, policy=[1, 2, 3], labels={"stable": 2, "canary": 3}))
  assert _states(manager)[3] == "AVAILABLE"
  assert manager.labels == {"ranker": {"stable": 2, "canary": 3}}
  assert manager.label_error is None


def test_allow_version_labels_for_unavailable_models(base):
  serving_models.write_stand_in_ranker(base, 1, warmup=False)
  manager = servables.VersionManager(_config(base, labels={"stable": 1}),
                                     allow_version_labels_for_unavailable_models=True)
  manager.poll_once()
  # A new label may name a version not loaded yet ...
  manager.reload(_config(base, labels={"stable": 1, "canary": 5}))
  assert manager.labels == {"ranker": {"stable": 1, "canary": 5}}
  with pytest.raises(tensors.ServingError, match=r"Specific\(ranker, 5\)"):
    _score(manager, label="canary")
  # ... but an existing label moves only to an AVAILABLE version (server_core.cc).
  with pytest.raises(tensors.ServingError, match="not currently available") as e:
    manager.reload(_config(base, labels={"stable": 7, "canary": 5}))
  assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_an_unknown_label_is_invalid_argument_and_status_ignores_labels(base):
  serving_models.write_stand_in_ranker(base, 1, warmup=False)
  serving_models.write_stand_in_ranker(base, 2, warmup=False)
  manager = servables.VersionManager(_config(base, policy=2, labels={"stable": 1}))
  manager.poll_once()
  with pytest.raises(tensors.ServingError, match="Unrecognized servable version label: blue") as e:
    _score(manager, label="blue")
  assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
  # get_model_status_impl.cc narrows only by version number: a label lists every version.
  assert [v for v, *_ in manager.status("ranker", label="stable")] == [2, 1]
  assert [v for v, *_ in manager.status("ranker", label="blue")] == [2, 1]


def test_a_failed_load_is_retried_a_bounded_number_of_times(base):
  serving_models.write_stand_in_ranker(base, 1, warmup=False)
  attempts = []

  def flaky(name, version, path):
    attempts.append(version)
    if len(attempts) <= 2:
      raise OSError(5, "Input/output error")
    return servables.LoadedVersion(name, version, path)
  manager = servables.VersionManager(_config(base), load_version=flaky,
                                     load_retry_interval_seconds=0)
  for _ in range(3):
    manager.poll_once()
  assert attempts == [1, 1, 1] and _states(manager) == {1: "AVAILABLE"}

  def broken(name, version, path):
    attempts.append(version)
    raise OSError(5, "Input/output error")
  attempts.clear()
  manager = servables.VersionManager(_config(base), load_version=broken, max_num_load_retries=2,
                                     load_retry_interval_seconds=0)
  for _ in range(6):
    manager.poll_once()
  assert attempts == [1, 1, 1]  # the first attempt and 2 retries, then never again
  assert _states(manager) == {1: "END"}
  # The retry interval is honoured between attempts.
  attempts.clear()
  manager = servables.VersionManager(_config(base), load_version=broken,
                                     load_retry_interval_seconds=3600)
  manager.poll_once()
  manager.poll_once()
  assert attempts == [1]
  # Between attempts the version is LOADING with an OK status, as TF Serving reports it.
  (_, state, code, message), = manager.status("ranker")
  assert (State.Name(state), code, message) == ("LOADING", grpc.StatusCode.OK, "")
  assert "Input/output error" in manager.load_errors("ranker")[0]
  manager.reload(model_server_config_pb2.ModelServerConfig())  # no longer wanted: cancelled
  with pytest.raises(tensors.ServingError, match="Could not find any versions of model ranker"):
    manager.status("ranker")
  assert (servables.MAX_NUM_LOAD_RETRIES, servables.LOAD_RETRY_INTERVAL_SECONDS) == (5, 60.0)


def test_warmup_replays_through_the_runner_and_names_the_record_0_based(base):
  serving_models.write_stand_in_ranker(base, 1)  # two warmup records
  calls = []

  def runner(loaded, signature, inputs):
    calls.append(signature)
    if len(calls) == 2:
      raise RuntimeError("boom")  # a generic failure on record 1
    return loaded.run(signature, inputs)
  manager = servables.VersionManager(_config(base), runner=runner, max_num_load_retries=0)
  manager.poll_once()
  (_, state, code, message), = manager.status("ranker")
  assert State.Name(state) == "END" and code == grpc.StatusCode.INVALID_ARGUMENT
  assert "warmup record 1: boom" in message and len(calls) == 2

  def refusing(loaded, signature, inputs):
    raise tensors.invalid("Task size 2 is larger than maximum input batch size 1")
  manager = servables.VersionManager(_config(base), runner=refusing, max_num_load_retries=0)
  manager.poll_once()
  (_, state, code, message), = manager.status("ranker")
  assert State.Name(state) == "END" and code == grpc.StatusCode.INVALID_ARGUMENT
  assert ("warmup record 0: Task size 2 is larger than maximum input batch size 1") in message
