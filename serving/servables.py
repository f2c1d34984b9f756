"""The version manager: which versions of which models are loaded, as TF Serving manages them.

tensorflow_model_server's file-system source polls each model's base path, its version
policy picks the aspired versions, and its manager loads them (replaying the version's warmup
requests) before they are served. sidrec's local model server (a stand-in for
tensorflow_model_server) does the same here:

- every `poll_seconds` each model's base path is listed (model_config.discover_versions). A
  numeric directory without saved_model.pb is skipped and not reported: that is this
  server's choice, safe because the pusher copies saved_model.pb last. The stock server does
  not skip it: it tries to load the half-written version, fails, and retries;
- the policy of the ModelServerConfig picks the wanted versions (`latest{N}`, default N = 1
  when no policy is set; `all{}`; `specific{versions}`);
- a new version goes START -> LOADING (tf.saved_model.load, then its warmup records,
  contracts/warmup_io, through the batch scheduler when batching is on, as the stock server
  replays them through its batching session) -> AVAILABLE. A failed load is retried up to
  `max_num_load_retries` times, `load_retry_interval_seconds` apart (TF Serving's
  --max_num_load_retries 5 and --load_retry_interval_micros one minute); after the last
  attempt the version ends in END with the error and is not served (a rewritten
  saved_model.pb starts it over); between attempts it stays LOADING, as in TF Serving;
- availability is preserved: a version leaves the policy (UNLOADING -> END) only once a wanted
  version is AVAILABLE, so a broken push never takes a model down;
- version labels are resolved from a label map that, as server_core.cc's
  UpdateModelVersionLabelMap, only takes a label naming an AVAILABLE version (else the whole
  new map is refused with FAILED_PRECONDITION "... not currently available for inference"
  and the previous map stays), unless `allow_version_labels_for_unavailable_models` (then a
  new label, or one keeping its version, may name any version). The map is recomputed after
  each config (re)load and each poll;
- a request pins one AVAILABLE version for its whole duration (`acquire`), and an unloading
  version is released only when its last request is done.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import message as proto_message
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2

from contracts import serving_api as api
from contracts import warmup_io
from serving import model_config as mc
from serving import tensors

State = get_model_status_pb2.ModelVersionStatus.State
log = logging.getLogger(__name__)


class LoadedVersion:
  """One loaded version: the SavedModel object and its SignatureDefs (from saved_model.pb)."""

  def __init__(self, model_name: str, version: int, path: str):
    self.model_name, self.version, self.path = model_name, version, path
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
      saved_model.ParseFromString(f.read())
    self.signature_defs = dict(saved_model.meta_graphs[0].signature_def)
    self.module = tf.saved_model.load(path)

  def run(self, signature_name: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Calls a signature on validated inputs; graph errors keep their TF error code."""
    try:
      outputs = self.module.signatures[signature_name](
          **{k: tf.constant(v) for k, v in inputs.items()})
    except tf.errors.OpError as e:
      raise tensors.ServingError(_grpc_code(e.error_code), e.message) from None
    except (TypeError, ValueError) as e:
      raise tensors.invalid(str(e)) from None
    return {k: v.numpy() for k, v in outputs.items()}


def _grpc_code(code: int) -> grpc.StatusCode:
  # TF's error codes and gRPC's share one numbering (tensorflow/core/protobuf/error_codes.proto).
  return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)


def warm_up(loaded: LoadedVersion, runner: Optional["Runner"] = None) -> int:
  """Replays the version's warmup records (none when there is no file); returns how many.

  `runner` (the batch scheduler's `run` when batching is on) replaces the direct signature
  call. Raises ServingError naming the version and the failing record (0-based, as
  contracts/warmup_io numbers them).
  """
  path = warmup_io.warmup_path(loaded.path)
  if not os.path.exists(path):
    return 0
  index = 0  # the 0-based index of the record being read or replayed
  try:
    for index, (signature, inputs) in enumerate(warmup_io.read_warmup(path)):
      if index >= api.MAX_WARMUP_RECORDS:
        raise tensors.invalid(f"more than {api.MAX_WARMUP_RECORDS} warmup records (TF "
                              f"Serving's maximum); write fewer")
      name, sig = tensors.find_signature(loaded.signature_defs, signature)
      valid = tensors.validate_inputs(name, sig, inputs, loaded.model_name)
      if runner is not None:
        runner(loaded, name, valid)
      else:
        loaded.run(name, valid)
      index += 1
  except tensors.ServingError as e:
    raise tensors.ServingError(e.code, f"Failed to warm up model {loaded.model_name} version "
                                       f"{loaded.version} ({path}): warmup record {index}: "
                                       f"{e.message}") from None
  except Exception as e:  # pylint: disable=broad-except  (a corrupt TFRecord, a bad record)
    raise tensors.ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Failed to warm up model "
                               f"{loaded.model_name} version {loaded.version} ({path}): "
                               f"warmup record {index}: {e}") from None
  return index


class _Version:
  """The manager's record of one version (state, error, the loaded object, its pins)."""

  def __init__(self, version: int, mtime: float):
    self.version, self.mtime = version, mtime
    self.state, self.code, self.message = State.START, grpc.StatusCode.OK, ""
    self.loaded: Optional[LoadedVersion] = None
    self.pins = 0
    self.attempts, self.retry_at = 0, 0.0  # failed load attempts; when the next may start
    # Between attempts a version stays LOADING with an OK status, as in TF Serving (whose
    # loader retries inside the load); the last failure is kept here for logs and timeouts.
    self.retrying, self.last_error = False, ""


def wanted_versions(model, on_disk: Sequence[int]) -> List[int]:
  """The versions a ModelConfig's model_version_policy aspires to, of those on disk."""
  policy = model.model_version_policy
  which = policy.WhichOneof("policy_choice")
  if which == "all":
    return list(on_disk)
  if which == "specific":
    return [v for v in on_disk if v in set(policy.specific.versions)]
  n = policy.latest.num_versions if which == "latest" else 1
  return list(on_disk)[-max(n, 1):]


MAX_NUM_LOAD_RETRIES = 5  # TF Serving's --max_num_load_retries default (main.cc)
LOAD_RETRY_INTERVAL_SECONDS = 60.0  # --load_retry_interval_micros: one minute


class VersionManager:
  """Polls, loads, serves and unloads the versions of the models of a ModelServerConfig."""

  def __init__(self, config, poll_seconds: float = 1.0,
               load_version: Callable[[str, int, str], LoadedVersion] = LoadedVersion,
               allow_version_labels_for_unavailable_models: bool = False,
               max_num_load_retries: int = MAX_NUM_LOAD_RETRIES,
               load_retry_interval_seconds: float = LOAD_RETRY_INTERVAL_SECONDS,
               runner: Optional["Runner"] = None):
    self._lock, self._reconcile_lock = threading.Condition(), threading.Lock()
    self._config = config
    self._versions: Dict[str, Dict[int, _Version]] = {}
    self._poll_seconds, self._load_version = poll_seconds, load_version
    self._stop, self._thread = threading.Event(), None
    self.allow_version_labels_for_unavailable_models = allow_version_labels_for_unavailable_models
    if max_num_load_retries < 0 or load_retry_interval_seconds < 0:
      raise ValueError(f"max_num_load_retries ({max_num_load_retries}) and "
                       f"load_retry_interval_seconds ({load_retry_interval_seconds}) must be >= 0")
    self.max_num_load_retries = max_num_load_retries
    self.load_retry_interval_seconds = load_retry_interval_seconds
    # The batch scheduler's run when batching is on: warmup replays through it.
    self.runner = runner
    self._labels: Dict[str, Dict[str, int]] = {}
    self.label_error: Optional[tensors.ServingError] = None  # the last refused label map

  # --- lifecycle ------------------------------------------------------------------------

  def start(self) -> None:
    self._thread = threading.Thread(target=self._poll_loop, name="sidrec-version-poll",
                                    daemon=True)
    self._thread.start()

  def stop(self) -> None:
    self._stop.set()
    if self._thread:
      self._thread.join(timeout=30)

  def _poll_loop(self) -> None:
    while not self._stop.is_set():
      try:
        self.poll_once()
      except Exception:  # pylint: disable=broad-except  (keep polling; the next poll retries)
        log.exception("version poll failed")
      self._stop.wait(self._poll_seconds)

  def reload(self, config) -> None:
    """Swaps in a new ModelServerConfig and applies it before returning (as
    HandleReloadConfigRequest waits for added models).

    As ServerCore::ReloadConfig, the new labels are checked before the new versions load: a
    label naming a version that is not AVAILABLE yet -> FAILED_PRECONDITION (raised after the
    models are applied; the previous label map stays until a later poll can take the new one).
    """
    with self._lock:
      self._config = config
      error = self._update_labels_locked()
    self.poll_once()
    if error is not None:
      raise error

  @property
  def config(self):
    return self._config

  def _models(self):
    return {m.name: m for m in self._config.model_config_list.config}

  # --- reconciliation -------------------------------------------------------------------

  def poll_once(self) -> None:
    """One pass of the file-system source + manager over every model."""
    with self._reconcile_lock:
      models = self._models()
      for name in list(self._versions):
        if name not in models:  # removed by a config reload: unload everything
          self._unload(name, [v for v in self._versions[name]])
      for name, model in models.items():
        self._reconcile(name, model)
      with self._lock:
        self._update_labels_locked()

  def _update_labels_locked(self) -> Optional[tensors.ServingError]:
    """server_core.cc UpdateModelVersionLabelMap: all labels of the config, or none."""
    new_map: Dict[str, Dict[str, int]] = {}
    for model in self._config.model_config_list.config:
      records = self._versions.get(model.name, {})
      for label, version in model.version_labels.items():
        allowed = False
        if self.allow_version_labels_for_unavailable_models:
          existing = self._labels.get(model.name, {}).get(label)
          allowed = existing is None or existing == version
        record = records.get(version)
        if not allowed and (record is None or record.state != State.AVAILABLE):
          error = tensors.ServingError(
              grpc.StatusCode.FAILED_PRECONDITION,
              f"Request to assign label to version {version} of model {model.name}, which is "
              f"not currently available for inference")
          if self.label_error is None or self.label_error.message != error.message:
            log.warning("%s (the labels stay as they were until it is AVAILABLE; "
                        "--allow-version-labels-for-unavailable-models lifts this)",
                        error.message)
          self.label_error = error
          return error
        new_map.setdefault(model.name, {})[label] = version
    self._labels, self.label_error = new_map, None
    return None

  def _reconcile(self, name: str, model) -> None:
    on_disk = mc.discover_versions(model.base_path)
    wanted = wanted_versions(model, on_disk)
    records = self._versions.setdefault(name, {})
    for version in sorted(wanted, reverse=True):  # newest first: it is what clients want
      path = os.path.join(model.base_path, str(version))
      mtime = _mtime(path)
      record = records.get(version)
      if record and record.retrying:
        # A failed load with retries left: again once the interval has passed (from scratch
        # when saved_model.pb was rewritten meanwhile).
        if record.mtime != mtime:
          self._load(name, version, path, mtime)
        elif time.monotonic() >= record.retry_at:
          self._load(name, version, path, mtime, record.attempts)
        continue
      if record and record.state != State.END:
        continue
      if record and record.code != grpc.StatusCode.OK and record.mtime == mtime:
        continue  # every retry failed, and not rewritten since
      self._load(name, version, path, mtime)
    with self._lock:
      wanted_available = any(records[v].state == State.AVAILABLE for v in wanted if v in records)
    if wanted_available or not wanted:
      self._unload(name, [v for v in records if v not in wanted])

  def _load(self, name: str, version: int, path: str, mtime: float, attempts: int = 0) -> None:
    record = _Version(version, mtime)
    record.attempts = attempts
    with self._lock:
      self._versions[name][version] = record
      record.state = State.LOADING
    try:
      loaded = self._load_version(name, version, path)
      count = warm_up(loaded, self.runner)
    except tensors.ServingError as e:
      self._fail(record, e.code, e.message)
      return
    except Exception as e:  # pylint: disable=broad-except  (a corrupt or unreadable SavedModel)
      code = (_grpc_code(e.error_code) if isinstance(e, tf.errors.OpError)
              else grpc.StatusCode.DATA_LOSS if isinstance(e, (OSError, proto_message.DecodeError))
              else grpc.StatusCode.UNKNOWN)
      self._fail(record, code, f"Failed to load model {name} version {version} from {path}: "
                               f"{str(e).strip() or type(e).__name__} (push the version again "
                               f"as a complete SavedModel)")
      return
    with self._lock:
      record.loaded, record.state = loaded, State.AVAILABLE
      self._update_labels_locked()  # a label waiting for this version takes it now
      self._lock.notify_all()
    log.info("model %s version %d is AVAILABLE (%d warmup records replayed)", name, version,
             count)

  def _fail(self, record: _Version, code: grpc.StatusCode, message: str) -> None:
    record.attempts += 1
    left = self.max_num_load_retries - record.attempts + 1
    log.error("%s (%s)", message, f"retrying in {self.load_retry_interval_seconds:g}s, "
              f"{left} retries left" if left > 0 else "no retries left")
    with self._lock:
      record.last_error = message
      if left > 0:
        record.state, record.retrying = State.LOADING, True
        record.retry_at = time.monotonic() + self.load_retry_interval_seconds
      else:
        record.state, record.code, record.message = State.END, code, message
        record.retrying = False
      self._lock.notify_all()

  def load_errors(self, name: str) -> List[str]:
    """The last error of each version of `name` still being retried."""
    with self._lock:
      return [f"version {r.version} (retrying after {r.attempts} failed attempts): "
              f"{r.last_error}" for r in self._versions.get(name, {}).values() if r.retrying]

  def _unload(self, name: str, versions: List[int]) -> None:
    with self._lock:
      for version in versions:
        record = self._versions[name][version]
        if record.retrying:  # no longer wanted: its retries are cancelled
          record.state, record.retrying = State.END, False
          record.code, record.message = grpc.StatusCode.CANCELLED, record.last_error
        if record.state == State.AVAILABLE:
          record.state = State.UNLOADING
          log.info("unloading model %s version %d", name, version)
        if record.state == State.UNLOADING and record.pins == 0:
          record.state, record.loaded = State.END, None
        if record.state == State.END and record.loaded is None and (
            name not in self._models()):
          del self._versions[name][version]
      if name not in self._models() and not self._versions[name]:
        del self._versions[name]

  # --- serving --------------------------------------------------------------------------

  def resolve_label(self, name: str, label: str) -> int:
    """The version a label names (server_core.cc: an unknown label -> INVALID_ARGUMENT)."""
    with self._lock:
      version = self._labels.get(name, {}).get(label)
    if version is None:
      raise tensors.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"Unrecognized servable version label: {label}")
    return version

  @property
  def labels(self) -> Dict[str, Dict[str, int]]:
    """The label map requests resolve against: {model: {label: version}}."""
    with self._lock:
      return {m: dict(v) for m, v in self._labels.items()}

  def acquire(self, name: str, version: Optional[int] = None,
              label: Optional[str] = None) -> "Pin":
    """Pins an AVAILABLE version: the latest, a specific one or the one a label names."""
    if label:
      version = self.resolve_label(name, label)
    with self._lock:
      records = self._versions.get(name, {})
      if version is None:
        available = [v for v, r in records.items() if r.state == State.AVAILABLE]
        if not available:
          raise tensors.ServingError(grpc.StatusCode.NOT_FOUND,
                                     f"Servable not found for request: Latest({name})")
        version = max(available)
      record = records.get(version)
      if record is None or record.state != State.AVAILABLE:
        raise tensors.ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Servable not found for request: Specific({name}, {version})")
      record.pins += 1
      return Pin(self, name, record)

  def _release(self, name: str, record: _Version) -> None:
    with self._lock:
      record.pins -= 1
      if record.state == State.UNLOADING and record.pins == 0:
        record.state, record.loaded = State.END, None

  def status(self, name: str, version: Optional[int] = None, label: Optional[str] = None
             ) -> List[Tuple[int, int, grpc.StatusCode, str]]:
    """[(version, state, error code, error message)], newest first (GetModelStatus).

    As get_model_status_impl.cc: only a version number narrows the list; with a label (which
    it ignores) or nothing, every version of the model is listed.
    """
    del label  # TF Serving's GetModelStatus looks only at model_spec.version
    with self._lock:
      records = self._versions.get(name, {})
      if not records:
        raise tensors.ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find any versions of model {name}")
      if version is not None and version not in records:
        raise tensors.ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find version {version} of model {name}")
      return [(r.version, r.state, r.code, r.message)
              for v, r in sorted(records.items(), reverse=True)
              if version is None or v == version]

  def wait_until_ready(self, timeout: float) -> bool:
    """True once every configured model has an AVAILABLE version and every configured label
    is in the label map (False on timeout)."""
    def ready():
      models = self._models()
      return all(any(r.state == State.AVAILABLE for r in self._versions.get(n, {}).values())
                 and dict(m.version_labels) == self._labels.get(n, {})
                 for n, m in models.items())
    with self._lock:
      return self._lock.wait_for(ready, timeout=timeout)


class Pin:
  """A request's hold on one loaded version (a context manager; released on exit)."""

  def __init__(self, manager: VersionManager, name: str, record: _Version):
    self._manager, self._name, self._record = manager, name, record
    self.loaded: LoadedVersion = record.loaded

  def __enter__(self) -> LoadedVersion:
    return self.loaded

  def __exit__(self, *exc) -> None:
    self._manager._release(self._name, self._record)  # pylint: disable=protected-access


def _mtime(version_dir: str) -> float:
  try:
    return os.path.getmtime(os.path.join(version_dir, "saved_model.pb"))
  except OSError:
    return 0.0


Runner = Callable[[LoadedVersion, str, Dict[str, np.ndarray]], Dict[str, np.ndarray]]


def predict(manager: VersionManager, model: str, version: Optional[int], label: Optional[str],
            signature_name: str, inputs: Dict[str, np.ndarray], output_filter: Sequence[str] = (),
            runner: Optional[Runner] = None) -> Tuple[int, str, Dict[str, np.ndarray]]:
  """Predict on one pinned version: (version, signature name, outputs).

  `runner` (the batch scheduler's `run`) replaces the direct signature call.
  """
  with manager.acquire(model, version, label) as loaded:
    return predict_on(loaded, signature_name, inputs, output_filter, runner)


def predict_on(loaded: LoadedVersion, signature_name: str, inputs: Dict[str, np.ndarray],
               output_filter: Sequence[str] = (), runner: Optional[Runner] = None
               ) -> Tuple[int, str, Dict[str, np.ndarray]]:
  """Predict on a version the caller has pinned."""
  name, signature = tensors.find_signature(loaded.signature_defs, signature_name)
  valid = tensors.validate_inputs(name, signature, inputs, loaded.model_name)
  outputs = runner(loaded, name, valid) if runner else loaded.run(name, valid)
  return loaded.version, name, tensors.filter_outputs(name, signature, outputs, output_filter)
