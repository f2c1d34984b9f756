"""ServingPusher's executor: the stock push, except for a model that is already the newest
version."""
import os

from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.pusher import executor
from tests.fixtures import serving_models


def _push(tmp_path, model_dir, base, n):
  model = standard_artifacts.Model()
  model.uri = model_dir
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / f"blessing{n}")
  blessing.set_int_custom_property("blessed", 1)
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / f"pushed{n}")
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base))
  executor.Executor().Do({"model": [model], "model_blessing": [blessing]},
                         {"pushed_model": [pushed]},
                         {"push_destination": proto_utils.proto_to_json(destination)})
  return pushed


def _model(tmp_path, name, bias):
  path = str(tmp_path / name)
  serving_models.write_stand_in_ranker(path, "Format-Serving", bias=bias)
  return path


def test_the_same_model_is_pushed_once_and_a_changed_one_again(tmp_path, monkeypatch):
  base = str(tmp_path / "serving" / "ranker")
  a, b = _model(tmp_path, "a", 0.0), _model(tmp_path, "b", 1.0)
  clock = iter([1000, 2000, 3000])
  # The stock executor names versions by time.time(): a clock of its own, nobody else's.
  monkeypatch.setattr(executor.pusher_executor, "time",
                      type("Clock", (), {"time": staticmethod(lambda: next(clock))}))
  first = _push(tmp_path, a, base, 1)
  assert os.listdir(base) == ["1000"]
  # The same files again (a re-run blessing the cached model): no new version, and the
  # PushedModel names the version that serves it.
  again = _push(tmp_path, a, base, 2)
  assert os.listdir(base) == ["1000"]
  assert again.get_int_custom_property("pushed") == 1
  assert again.get_string_custom_property("pushed_destination") == os.path.join(base, "1000")
  assert first.get_string_custom_property("pushed_version") == "1000"
  # A different model is pushed as a new version, by the stock executor.
  _push(tmp_path, b, base, 3)
  assert sorted(os.listdir(base)) == ["1000", "2000"]


def test_an_unblessed_model_is_not_pushed(tmp_path):
  base = str(tmp_path / "serving" / "ranker")
  model = standard_artifacts.Model()
  model.uri = _model(tmp_path, "a", 0.0)
  blessing = standard_artifacts.ModelBlessing()
  blessing.set_int_custom_property("blessed", 0)
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / "pushed")
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base))
  executor.Executor().Do({"model": [model], "model_blessing": [blessing]},
                         {"pushed_model": [pushed]},
                         {"push_destination": proto_utils.proto_to_json(destination)})
  assert pushed.get_int_custom_property("pushed") == 0 and not os.path.exists(base)
