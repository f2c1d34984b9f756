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
from typing import Dict, List, Optional, Tuple

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from contracts import serving_api as api
from contracts.files import atomic_write_text


def discover_versions(base_path: str) -> List[int]:
  """Numeric subdirectories of `base_path` holding a complete SavedModel, sorted.

  Non-numeric names are ignored, as the stock server's file-system source does. A numeric
  directory without saved_model.pb is also skipped: that is a choice of sidrec's local server,
  not the stock one's. tensorflow_model_server's source aspires to every numeric directory,
  so it tries to load a half-written version, fails, and retries (main.cc:
  --max_num_load_retries 5, --load_retry_interval_micros one minute). Skipping it is safe
  here because the pusher copies saved_model.pb last (TFX's Pusher does the same), so a
  directory holding it is complete.
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
  return atomic_write_text(path, text_format.MessageToString(message))


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
_DEFAULT_MAX_EXECUTION_BATCH_SIZE = 256
_KNOWN_FIELDS = _WRAPPED_INT_FIELDS + ("enable_large_batch_splitting", "max_execution_batch_size",
                                       "allowed_batch_sizes", "pad_variable_length_inputs")


def _parse_bool(value: str) -> bool:
  if value not in ("true", "false", "1", "0", "True", "False"):
    raise ValueError(value)
  return value in ("true", "1", "True")


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
  """The server-side batching settings of --enable_batching (session_bundle_config.proto's
  BatchingParameters).

  The defaults let the stock server accept sidrec's pushed versions: a request may hold up to
  `max_batch_size` (1024) rows (clients send up to 1,000 candidates, warmup records up to
  100); with `enable_large_batch_splitting` such a request is cut into pieces of at most
  `max_execution_batch_size` (256) rows, and no batch runs more rows than that.
  `max_execution_batch_size` left None is the last allowed_batch_sizes entry when there are
  some, else min(256, max_batch_size).
  """
  max_batch_size: int = 1024
  batch_timeout_micros: int = 2000
  max_enqueued_batches: int = 100
  num_batch_threads: int = 2
  allowed_batch_sizes: Tuple[int, ...] = ()
  pad_variable_length_inputs: bool = False
  enable_large_batch_splitting: bool = True
  max_execution_batch_size: Optional[int] = None

  def __post_init__(self):
    object.__setattr__(self, "allowed_batch_sizes", tuple(int(s) for s in self.allowed_batch_sizes))
    object.__setattr__(self, "enable_large_batch_splitting",
                       bool(self.enable_large_batch_splitting))
    for name in _WRAPPED_INT_FIELDS:
      if int(getattr(self, name)) < (0 if name == "batch_timeout_micros" else 1):
        raise ValueError(f"batching parameter {name} = {getattr(self, name)} must be positive")
    sizes = self.allowed_batch_sizes
    if self.max_execution_batch_size is None:
      resolved = (sizes[-1] if sizes and self.enable_large_batch_splitting
                  else min(_DEFAULT_MAX_EXECUTION_BATCH_SIZE, self.max_batch_size))
      object.__setattr__(self, "max_execution_batch_size", int(resolved))
    object.__setattr__(self, "max_execution_batch_size", int(self.max_execution_batch_size))
    if not 1 <= self.max_execution_batch_size <= self.max_batch_size:
      # session_bundle_config.proto: max_batch_size must be >= max_execution_batch_size.
      raise ValueError(f"batching parameter max_execution_batch_size = "
                       f"{self.max_execution_batch_size} must be in [1, max_batch_size "
                       f"({self.max_batch_size})]")
    if sizes and list(sizes) != sorted(set(sizes)):
      raise ValueError(f"allowed_batch_sizes {list(sizes)}: entries must be monotonically "
                       f"increasing")
    # TF Serving's rule (batching_session.cc CreateBasicBatchingSession): with large-batch
    # splitting the last entry equals max_execution_batch_size (and is <= max_batch_size);
    # without it the last entry equals max_batch_size.
    if sizes and self.enable_large_batch_splitting and (
        sizes[-1] != self.max_execution_batch_size):
      raise ValueError(f"allowed_batch_sizes {list(sizes)}: the last entry must be equal to "
                       f"max_execution_batch_size ({self.max_execution_batch_size}) when "
                       f"enable_large_batch_splitting is true")
    if sizes and not self.enable_large_batch_splitting and sizes[-1] != self.max_batch_size:
      raise ValueError(f"allowed_batch_sizes {list(sizes)}: the last entry must match "
                       f"max_batch_size ({self.max_batch_size})")

  @property
  def execution_batch_size(self) -> int:
    """The most rows one batch runs: max_execution_batch_size with splitting, else
    max_batch_size (TF's BasicBatchScheduler)."""
    return (self.max_execution_batch_size if self.enable_large_batch_splitting
            else self.max_batch_size)

  def to_text(self) -> str:
    """The text format tensorflow_model_server's --batching_parameters_file reads."""
    lines = [f"{name} {{ value: {int(getattr(self, name))} }}" for name in _WRAPPED_INT_FIELDS]
    split = "true" if self.enable_large_batch_splitting else "false"
    lines.append(f"enable_large_batch_splitting {{ value: {split} }}")
    # Written either way (TF Serving reads it only with splitting on), so the text round-trips.
    lines.append(f"max_execution_batch_size {{ value: {self.max_execution_batch_size} }}")
    lines += [f"allowed_batch_sizes: {s}" for s in self.allowed_batch_sizes]
    pad = "true" if self.pad_variable_length_inputs else "false"
    lines.append(f"pad_variable_length_inputs: {pad}")
    return "\n".join(lines) + "\n"

  @classmethod
  def parse(cls, text: str, source: str = "batching parameters") -> "BatchingParameters":
    """Reads the text form (wrapped `{ value: N }` or bare `name: N` scalars, # comments).

    A field the file leaves out takes TF Serving's default where the stock server has one
    that differs from sidrec's: enable_large_batch_splitting absent = false, and
    max_execution_batch_size absent = max_batch_size (bundle_factory_util.h GetQueueOptions).
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
      try:
        if name in _WRAPPED_INT_FIELDS or name == "max_execution_batch_size":
          kwargs[name] = int(value)
        elif name == "allowed_batch_sizes":
          sizes.append(int(value))
        elif name in ("pad_variable_length_inputs", "enable_large_batch_splitting"):
          kwargs[name] = _parse_bool(value)
        else:
          raise KeyError(name)
      except KeyError:
        raise ValueError(f"{source}: unknown batching parameter {name!r} (known: "
                         f"{', '.join(_KNOWN_FIELDS)})") from None
      except ValueError:
        raise ValueError(f"{source}: {name} has the invalid value {value!r}") from None
    kwargs.setdefault("enable_large_batch_splitting", False)  # the proto's absent BoolValue
    if kwargs["enable_large_batch_splitting"] and "max_execution_batch_size" not in kwargs:
      kwargs["max_execution_batch_size"] = kwargs.get("max_batch_size",
                                                      cls.max_batch_size)
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
  batching_path = atomic_write_text(os.path.join(serving_dir, api.BATCHING_PARAMETERS_FILE),
                                  batching.to_text())
  return config_path, batching_path
