"""The stock model server's config files for a serving directory.

tensorflow_model_server reads two text files: a `ModelServerConfig` (--model_config_file: which
models, where their versions live, which versions to serve, their labels) and a
`BatchingParameters` (--batching_parameters_file). sidrec writes both beside the model
directories of a serving directory (contracts/serving_api.py names them), so the stock server,
its Docker image and sidrec's local model server (a stand-in for tensorflow_model_server, this
package) all serve the same models the same way.

The ModelServerConfig proto ships in tensorflow-serving-api; BatchingParameters does not
(it lives in the server's C++ session_bundle_config.proto), so its text form is written and
parsed here by hand, with the same field names and wrapper (`{ value: N }`) syntax.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from typing import Dict, List, Optional, Tuple

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from contracts import serving_api as api


def discover_versions(base_path: str) -> List[int]:
  """Numeric subdirectories of `base_path` holding a complete SavedModel, sorted.

  As the stock server's file-system source: non-numeric names are ignored, and so is a
  version directory without saved_model.pb (still being written).
  """
  if not os.path.isdir(base_path):
    return []
  versions = []
  for name in os.listdir(base_path):
    if name.isdigit() and os.path.isfile(os.path.join(base_path, name, "saved_model.pb")):
      versions.append(int(name))
  return sorted(versions)


def discover_models(serving_dir: str) -> Dict[str, List[int]]:
  """{model name: versions} of every model directory under `serving_dir` with a version."""
  if not os.path.isdir(serving_dir):
    raise ValueError(f"serving directory {serving_dir} does not exist (pass the directory "
                     f"holding one folder per model, each with numeric version folders)")
  models = {}
  for name in sorted(os.listdir(serving_dir)):
    path = os.path.join(serving_dir, name)
    if os.path.isdir(path) and not name.startswith("."):
      versions = discover_versions(path)
      if versions:
        models[name] = versions
  return models


def build_model_server_config(serving_dir: str, base_path_root: Optional[str] = None,
                              num_versions: int = 2
                              ) -> model_server_config_pb2.ModelServerConfig:
  """One ModelConfig per model of `serving_dir`.

  `base_path_root` replaces the serving directory in the base paths (e.g. `/models/serving`
  inside the tensorflow/serving container). Labels: canary = the newest version, stable =
  the one before it (the newest while there is only one); `latest{num_versions}` keeps both
  loaded so either label resolves.
  """
  root = base_path_root or os.path.abspath(serving_dir)
  config = model_server_config_pb2.ModelServerConfig()
  for name, versions in discover_models(serving_dir).items():
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = os.path.join(root, name)
    model.model_platform = "tensorflow"
    model.model_version_policy.latest.num_versions = num_versions
    model.version_labels[api.CANARY_LABEL] = versions[-1]
    model.version_labels[api.STABLE_LABEL] = versions[-2] if len(versions) > 1 else versions[-1]
  return config


def write_text_proto(path: str, message) -> str:
  """Writes `message` in text format atomically (a temporary file, then renamed)."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text_format.MessageToString(message))
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def read_model_server_config(path: str) -> model_server_config_pb2.ModelServerConfig:
  """Parses a text ModelServerConfig; a parse error -> ValueError naming the file and line."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError as e:
    raise ValueError(f"model config file {path} cannot be read ({e.strerror}); pass an "
                     f"existing --model-config-file") from None
  try:
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
  except text_format.ParseError as e:
    line = f"line {e.GetLine()}" if e.GetLine() else "a line"
    raise ValueError(f"{path}: {line} is not a valid ModelServerConfig text proto: {e}") from None


# --- BatchingParameters (tensorflow.serving.BatchingParameters, text form) -------------------

_WRAPPED_INT_FIELDS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                       "num_batch_threads")


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
  """The server-side batching settings of --enable_batching (the stock server's defaults for
  a CPU ranker with small requests)."""
  max_batch_size: int = 64
  batch_timeout_micros: int = 2000
  max_enqueued_batches: int = 100
  num_batch_threads: int = 2
  allowed_batch_sizes: Tuple[int, ...] = ()
  pad_variable_length_inputs: bool = False

  def __post_init__(self):
    object.__setattr__(self, "allowed_batch_sizes", tuple(int(s) for s in self.allowed_batch_sizes))
    for name in _WRAPPED_INT_FIELDS:
      if int(getattr(self, name)) < (0 if name == "batch_timeout_micros" else 1):
        raise ValueError(f"batching parameter {name} = {getattr(self, name)} must be positive")
    sizes = self.allowed_batch_sizes
    if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != self.max_batch_size):
      # The stock server's rule: increasing, and the last one equals max_batch_size.
      raise ValueError(f"allowed_batch_sizes {list(sizes)} must increase and end with "
                       f"max_batch_size ({self.max_batch_size})")

  def to_text(self) -> str:
    """The text format tensorflow_model_server's --batching_parameters_file reads."""
    lines = [f"{name} {{ value: {int(getattr(self, name))} }}" for name in _WRAPPED_INT_FIELDS]
    lines += [f"allowed_batch_sizes: {s}" for s in self.allowed_batch_sizes]
    pad = "true" if self.pad_variable_length_inputs else "false"
    lines.append(f"pad_variable_length_inputs: {pad}")
    return "\n".join(lines) + "\n"

  @classmethod
  def parse(cls, text: str, source: str = "batching parameters") -> "BatchingParameters":
    """Reads the text form (wrapped `{ value: N }` or bare `name: N` scalars, # comments).

    An unknown field -> ValueError naming it (the stock server would refuse to start).
    """
    kwargs, sizes = {}, []
    body = re.sub(r"#[^\n]*", "", text)
    pattern = re.compile(r"\s*([A-Za-z_]\w*)\s*(?::\s*([^\s{}]+)|\{\s*value\s*:\s*([^\s{}]+)\s*\})")
    pos = 0
    while body[pos:].strip():
      match = pattern.match(body, pos)
      if not match:
        line = body.count("\n", 0, pos) + 1
        bad = body[pos:].strip().splitlines()[0]
        raise ValueError(f"{source}: line {line}: cannot parse {bad!r} (expected "
                         f"`name {{ value: N }}` or `name: N`)")
      name, value = match.group(1), match.group(2) or match.group(3)
      pos = match.end()
      known = ", ".join(_WRAPPED_INT_FIELDS + ("allowed_batch_sizes",
                                                "pad_variable_length_inputs"))
      try:
        if name in _WRAPPED_INT_FIELDS:
          kwargs[name] = int(value)
        elif name == "allowed_batch_sizes":
          sizes.append(int(value))
        elif name == "pad_variable_length_inputs":
          if value not in ("true", "false", "1", "0"):
            raise ValueError(value)
          kwargs[name] = value in ("true", "1")
        else:
          raise KeyError(name)
      except KeyError:
        raise ValueError(f"{source}: unknown batching parameter {name!r} (known: "
                         f"{known})") from None
      except ValueError:
        raise ValueError(f"{source}: {name} has the invalid value {value!r}") from None
    return cls(allowed_batch_sizes=tuple(sizes), **kwargs)

  @classmethod
  def read(cls, path: str) -> "BatchingParameters":
    try:
      with open(path) as f:
        return cls.parse(f.read(), source=path)
    except OSError as e:
      raise ValueError(f"batching parameters file {path} cannot be read ({e.strerror}); pass an "
                       f"existing --batching-parameters-file or --no-batching") from None


def write_serving_configs(serving_dir: str, batching: BatchingParameters = BatchingParameters(),
                          base_path_root: Optional[str] = None,
                          num_versions: int = 2) -> Tuple[str, str]:
  """Writes `<serving_dir>/models.config` and `<serving_dir>/batching_parameters.txt`.

  Returns (model config path, batching parameters path).
  """
  config_path = os.path.join(serving_dir, api.MODELS_CONFIG_FILE)
  write_text_proto(config_path, build_model_server_config(serving_dir, base_path_root,
                                                         num_versions))
  batching_path = os.path.join(serving_dir, api.BATCHING_PARAMETERS_FILE)
  fd, tmp = tempfile.mkstemp(dir=serving_dir, prefix="." + api.BATCHING_PARAMETERS_FILE)
  with os.fdopen(fd, "w") as f:
    f.write(batching.to_text())
  os.replace(tmp, batching_path)
  return config_path, batching_path
