"""The stock Pusher's executor, minus pushing a model that is already the newest version.

With a baseline, a second identical run re-evaluates the cached model (it is now its own
baseline) and blesses it again, and the stock Pusher then copies it to a new version
directory: the serving directory fills with copies, and `canary` and `stable` (models.config)
name the same model. Here the push is skipped when the newest complete version under the
destination holds exactly the files of the model to push (same SavedModel, variables and
warmup requests); the PushedModel artifact then points at that version, as if pushed. Any
other case is the stock executor's, including its copy order (saved_model.pb last, so a model
server never loads a version still being copied).
"""
import hashlib
import os
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils


def tree_fingerprint(path: str) -> str:
  """A hash of every file's relative path and bytes under `path`."""
  digest = hashlib.sha256()
  for folder, dirs, files in sorted(fileio.walk(path)):
    dirs.sort()
    for name in sorted(files):
      full = os.path.join(folder, name)
      digest.update(os.path.relpath(full, path).encode() + b"\0")
      with fileio.open(full, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
  return digest.hexdigest()


def newest_version(base_directory: str) -> Optional[str]:
  """The newest numeric version directory holding a saved_model.pb, if any."""
  if not fileio.exists(base_directory):
    return None
  versions = [int(n) for n in fileio.listdir(base_directory) if n.strip("/").isdigit()
              and fileio.exists(os.path.join(base_directory, n.strip("/"), "saved_model.pb"))]
  return os.path.join(base_directory, str(max(versions))) if versions else None


class Executor(pusher_executor.Executor):
  """Skips the copy when the newest pushed version is this model."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
    if (destination.WhichOneof("destination") == "filesystem"
        and self.CheckBlessing(input_dict)):
      newest = newest_version(destination.filesystem.base_directory)
      model_path = self.GetModelPath(input_dict)
      if newest and tree_fingerprint(newest) == tree_fingerprint(model_path):
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        io_utils.copy_dir(model_path, model_push.uri)  # archived, as the stock Pusher does
        self._MarkPushed(model_push, pushed_destination=newest,
                         pushed_version=os.path.basename(newest))
        logging.info("Pusher: %s is already the newest version (%s); not pushed again",
                     model_path, newest)
        return
    super().Do(input_dict, output_dict, exec_properties)
