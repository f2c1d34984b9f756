"""A client for a pushed sidrec ranker served by TF Serving (or sidrec's local server).

It speaks the stock server's two protocols (DESIGN.md §5):
  gRPC  `PredictionService.Predict` / `GetModelMetadata`, `ModelService.GetModelStatus`
        (tensorflow-serving-api + grpcio); model_spec.version or version_label
  REST  `GET /v1/models/{m}[/versions/{n}|/labels/{l}][/metadata]`,
        `POST ...:predict` with `inputs` (column form) or `instances` (row form)

`ServingClient.rank()` is the call users want: a user, candidate item ids and their history in,
the candidates sorted by score out. Items the model has never seen (`new_items`) are ranked
from their semantic ID (SID) or from their content embedding through `serve_new_items`; an
embedding for a SID model is first turned into codes by the codebook's `assign` signature
(contracts/codebook_io.py), in process or on a served codebook model.

Names, dtypes and widths (history length N, code columns C, embedding size D) are read from
the model's metadata, never assumed, so one client serves every representation the pipeline
trains. So are the user fields: `user_id` and every other `user_*` input of serving_default,
the user features the model's data declared (MovieLens: user_age, user_gender,
user_occupation; another dataset its own), each optional. `predict_main` / `add_predict_arguments` are the `sidrec predict` command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from contracts import codebook_io
from contracts import schema as S
from contracts import serving_api as api

PROTOCOLS = ("grpc", "rest")
FORMS = ("column", "row")
# What a user who gives only an id gets for a user feature not given, by the input's dtype:
# values the transform graph maps to the out-of-vocabulary token (vocabularies never hold "";
# int64 features map MISSING_INT64 to "" before the vocabulary).
STRING_USER_DEFAULT, NUMERIC_USER_DEFAULT = "", S.MISSING_INT64

# How each ranked item was scored (RankedItem.source).
SOURCE_TABLE = "table"  # the item is in the model's tables: its own codes
SOURCE_SID = "sid"  # a new item, ranked from the SID the caller gave
SOURCE_EMBEDDING = "embedding"  # a new item, ranked from its content embedding
SOURCE_UNKNOWN = "unknown"  # not in the tables and nothing given: scored with zero codes
SOURCE_TEXT = {
    SOURCE_TABLE: "in the model's tables",
    SOURCE_SID: "new item, ranked from its SID",
    SOURCE_EMBEDDING: "new item, ranked from its embedding",
    SOURCE_UNKNOWN: "NOT in the model's tables (scored with zero codes; give --new-item)",
}

# TF Serving's REST status mapping (http_rest_api_util.cc), inverted: the canonical code of an
# HTTP status, so both protocols raise the same ServingError codes.
_HTTP_TO_CODE = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 409: "ABORTED", 413: "RESOURCE_EXHAUSTED",
                 429: "RESOURCE_EXHAUSTED",
                 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
                 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
# Only a server that is (re)starting or overloaded is worth asking again; a bad request stays
# bad (400) and a missing model stays missing (404).
RETRIABLE_CODES = frozenset({"UNAVAILABLE"})
# A reset of a connection this far into sending a body is the server refusing the body (a
# 413 lost to the reset), not a server that is down: it is not retried.
LARGE_BODY_BYTES = 64 << 10


class ServingError(Exception):
  """A failed call to the model server, or a request the model's signature would reject.

  Attributes:
    code: the canonical gRPC status name (`INVALID_ARGUMENT`, `NOT_FOUND`, `UNAVAILABLE`, ...),
      for REST derived from the HTTP status.
    message: what went wrong, naming the field and what the signature expected.
    http_status: the HTTP status of a REST call (None for gRPC and client-side checks).
  """

  def __init__(self, code: str, message: str, http_status: Optional[int] = None):
    super().__init__(f"{code}: {message}")
    self.code, self.message, self.http_status = code, message, http_status


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  """One input or output of a signature: TF dtype name (`string`, `int64`, `float32`, `bool`)
  and shape (None for an unknown dimension; None for the whole shape if the rank is unknown)."""
  name: str
  dtype: str
  shape: Optional[Tuple[Optional[int], ...]]

  def describe(self) -> str:
    """`int64 [B, 3]`: B for a free batch dimension, ? for another free one."""
    if self.shape is None:
      return f"{self.dtype} [?]"
    dims = ["B" if i == 0 and d is None else "?" if d is None else str(d)
            for i, d in enumerate(self.shape)]
    return f"{self.dtype} [{', '.join(dims)}]"


@dataclasses.dataclass(frozen=True)
class SignatureInfo:
  name: str
  method_name: str
  inputs: Dict[str, TensorInfo]
  outputs: Dict[str, TensorInfo]


@dataclasses.dataclass(frozen=True)
class VersionStatus:
  """One entry of GetModelStatusResponse.model_version_status."""
  version: int
  state: str  # START, LOADING, AVAILABLE, UNLOADING, END
  error_code: str
  error_message: str


@dataclasses.dataclass(frozen=True)
class RankedItem:
  """A ranked candidate: its score (the model's probability), whether the model's tables held
  it, and how it was scored (SOURCE_TABLE / SOURCE_SID / SOURCE_EMBEDDING / SOURCE_UNKNOWN)."""
  item_id: str
  score: float
  in_table: bool
  source: str


def _tf():
  # TensorFlow is imported only when a request is built: `sidrec predict --help` stays fast.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf


def _dtype_name(enum_value: int) -> str:
  if not enum_value:  # DT_INVALID: e.g. the outputs of __saved_model_init_op
    return "invalid"
  return _tf().dtypes.as_dtype(enum_value).name


def _np_dtype(dtype: str):
  return object if dtype == "string" else np.dtype(dtype)


def _signatures_from_proto(signature_def_map) -> Dict[str, SignatureInfo]:
  """SignatureDefMap proto -> {name: SignatureInfo}."""
  def tensors(infos):
    out = {}
    for name, info in infos.items():
      shape = None if info.tensor_shape.unknown_rank else tuple(
          None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
      out[name] = TensorInfo(name, _dtype_name(info.dtype), shape)
    return out
  # "__saved_model_init_op" and the like are the loader's, not callable signatures.
  return {name: SignatureInfo(name, sig.method_name, tensors(sig.inputs), tensors(sig.outputs))
          for name, sig in signature_def_map.signature_def.items() if not name.startswith("__")}


# --- the two transports: one call each for status, metadata and predict --------------------


class _GrpcTransport:
  """PredictionService / ModelService over one insecure channel."""

  def __init__(self, address: str):
    import grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import model_service_pb2_grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
    self._grpc = grpc
    # Model servers sit next to their clients: never route them through an HTTP proxy.
    self._channel = grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)])
    self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
    self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

  def close(self):
    self._channel.close()

  def _spec(self, spec, model, version, label, signature=None):
    spec.name = model
    if version is not None:
      spec.version.value = int(version)
    elif label is not None:
      spec.version_label = label
    if signature is not None:
      spec.signature_name = signature

  def _call(self, method, request, timeout):
    try:
      return method(request, timeout=timeout)
    except self._grpc.RpcError as e:
      raise ServingError(e.code().name, e.details() or str(e)) from None

  def status(self, model, version, label, timeout) -> List[VersionStatus]:
    from tensorflow_serving.apis import get_model_status_pb2  # pylint: disable=g-import-not-at-top
    request = get_model_status_pb2.GetModelStatusRequest()
    self._spec(request.model_spec, model, version, label)
    response = self._call(self._models.GetModelStatus, request, timeout)
    states = get_model_status_pb2.ModelVersionStatus.State
    out = []
    for s in response.model_version_status:
      # error_code's enum lives in TF's error_codes proto; its descriptor names it.
      code = s.status.DESCRIPTOR.fields_by_name["error_code"].enum_type.values_by_number[
          s.status.error_code].name
      out.append(VersionStatus(int(s.version), states.Name(s.state), code,
                               s.status.error_message))
    return out

  def metadata(self, model, version, label, timeout) -> Dict[str, SignatureInfo]:
    from tensorflow_serving.apis import get_model_metadata_pb2  # pylint: disable=g-import-not-at-top
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    self._spec(request.model_spec, model, version, label)
    response = self._call(self._predict.GetModelMetadata, request, timeout)
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_defs)
    return _signatures_from_proto(signature_defs)

  def predict(self, model, version, label, signature, inputs: Dict[str, np.ndarray], form,
              output_names, timeout) -> Dict[str, np.ndarray]:
    del form, output_names  # gRPC has one (tensor) form and always names its outputs
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
    tf = _tf()
    request = predict_pb2.PredictRequest()
    self._spec(request.model_spec, model, version, label, signature)
    for name, value in inputs.items():
      request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    response = self._call(self._predict.Predict, request, timeout)
    return {name: tf.make_ndarray(t) for name, t in response.outputs.items()}


def _to_json(value: np.ndarray):
  if value.dtype == object or value.dtype.kind in "SU":
    return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v),
                        otypes=[object])(value).tolist() if value.size else value.tolist()
  return value.tolist()


def _raise_if_body_refused(url: str, data: Optional[bytes], reason) -> None:
  """A broken pipe, or a reset while sending a large body: the server stopped reading it
  (typically a body over its size limit), so asking again would fail the same way."""
  if data is None:
    return
  if isinstance(reason, BrokenPipeError) or (
      isinstance(reason, ConnectionResetError) and len(data) >= LARGE_BODY_BYTES):
    raise ServingError("UNKNOWN", f"{url}: the server closed the connection while the "
                                  f"{len(data)}-byte request body was being sent ({reason}); "
                                  f"it likely refused the body as too large (HTTP 413): send "
                                  f"fewer examples per request") from None


class _RestTransport:
  """TF Serving's REST API with urllib (no extra dependency)."""

  def __init__(self, address: str):
    self._base = address if "://" in address else "http://" + address
    self._base = self._base.rstrip("/")

  def close(self):
    pass

  def _url(self, model, version, label, suffix=""):
    url = f"{self._base}/v1/models/{urllib.parse.quote(model, safe='')}"
    if version is not None:
      url += f"/versions/{int(version)}"
    elif label is not None:
      url += f"/labels/{urllib.parse.quote(label, safe='')}"
    return url + suffix

  def _call(self, url, body, timeout):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode() or "{}")
    except urllib.error.HTTPError as e:
      text = e.read().decode(errors="replace")
      try:
        message = json.loads(text).get("error", text)
      except (ValueError, AttributeError):
        message = text or e.reason
      raise ServingError(_HTTP_TO_CODE.get(e.code, "UNKNOWN"), str(message), e.code) from None
    except (socket.timeout, TimeoutError):
      raise ServingError("DEADLINE_EXCEEDED", f"{url}: no answer within {timeout} s") from None
    except urllib.error.URLError as e:
      if isinstance(e.reason, (socket.timeout, TimeoutError)):
        raise ServingError("DEADLINE_EXCEEDED",
                           f"{url}: no answer within {timeout} s") from None
      _raise_if_body_refused(url, data, e.reason)
      # Connection refused / reset: what gRPC reports as UNAVAILABLE (server not up yet).
      raise ServingError("UNAVAILABLE", f"{url}: {e.reason}") from None
    except ConnectionError as e:
      _raise_if_body_refused(url, data, e)
      raise ServingError("UNAVAILABLE", f"{url}: {e}") from None

  def status(self, model, version, label, timeout) -> List[VersionStatus]:
    body = self._call(self._url(model, version, label), None, timeout)
    return [VersionStatus(int(s.get("version", 0)), s.get("state", "UNKNOWN"),
                          s.get("status", {}).get("error_code", "OK"),
                          s.get("status", {}).get("error_message", ""))
            for s in body.get("model_version_status", [])]

  def metadata(self, model, version, label, timeout) -> Dict[str, SignatureInfo]:
    from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import get_model_metadata_pb2  # pylint: disable=g-import-not-at-top
    body = self._call(self._url(model, version, label, "/metadata"), None, timeout)
    try:
      signature_defs = json_format.ParseDict(body["metadata"]["signature_def"],
                                             get_model_metadata_pb2.SignatureDefMap(),
                                             ignore_unknown_fields=True)
    except (KeyError, json_format.ParseError) as e:
      raise ServingError("INTERNAL", f"metadata of {model} has no signature_def: {e}") from None
    return _signatures_from_proto(signature_defs)

  def predict(self, model, version, label, signature, inputs: Dict[str, np.ndarray], form,
              output_names, timeout) -> Dict[str, np.ndarray]:
    body: Dict[str, Any] = {"signature_name": signature}
    if form == "column":
      body["inputs"] = {name: _to_json(v) for name, v in inputs.items()}
    else:
      sizes = {name: (len(v) if v.ndim else None) for name, v in inputs.items()}
      if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ServingError("INVALID_ARGUMENT",
                           f"row form needs every input batched to one size, got {sizes}; "
                           "use form='column'")
      columns = {name: _to_json(v) for name, v in inputs.items()}
      body["instances"] = [{name: columns[name][i] for name in columns}
                           for i in range(next(iter(sizes.values())))]
    answer = self._call(self._url(model, version, label, ":predict"), body, timeout)
    if form == "column":
      outputs = answer.get("outputs")
      # One output: TF Serving sends the bare value, unnamed.
      if not isinstance(outputs, dict):
        outputs = {output_names()[0]: outputs}
      return {name: np.asarray(v) for name, v in outputs.items()}
    rows = answer.get("predictions", [])
    if rows and isinstance(rows[0], dict):
      return {name: np.asarray([r[name] for r in rows]) for name in rows[0]}
    return {output_names()[0]: np.asarray(rows)}


# --- the client -----------------------------------------------------------------------------


Codebook = Union[str, "ServingClient", Callable[..., Any],
                 Mapping[str, Union[str, "ServingClient", Callable[..., Any]]]]


class ServingClient:
  """One served model (optionally one version or label of it) over gRPC or REST.

  Args:
    address: `host:port` of the server's gRPC port (protocol="grpc") or REST port ("rest";
      `http://host:port` also accepted).
    model_name: the model's name in models.config.
    protocol: "grpc" or "rest".
    version: ask for this version (model_spec.version / `/versions/{n}`) ...
    label: ... or for the version under this label (`stable`, `canary`); neither: the latest.
    timeout_seconds: the deadline of each call.
    retries: how many times a call answered UNAVAILABLE (gRPC) / 503 (REST) or refused is
      repeated, after waiting backoff_seconds * 2**attempt. Nothing else is retried.
  """

  def __init__(self, address: str, model_name: str, protocol: str = "grpc",
               version: Optional[int] = None, label: Optional[str] = None,
               timeout_seconds: float = 10.0, retries: int = 3, backoff_seconds: float = 0.2):
    if protocol not in PROTOCOLS:
      raise ValueError(f"protocol {protocol!r}: use one of {PROTOCOLS}")
    if version is not None and label is not None:
      raise ValueError("give a version or a label, not both")
    self.address, self.model_name, self.protocol = address, model_name, protocol
    self.version, self.label = version, label
    self.timeout_seconds, self.retries, self.backoff_seconds = (
        timeout_seconds, int(retries), backoff_seconds)
    self._transport = _GrpcTransport(address) if protocol == "grpc" else _RestTransport(address)
    self._signatures: Optional[Dict[str, SignatureInfo]] = None

  def __repr__(self):
    which = (f", version={self.version}" if self.version is not None else
             f", label={self.label!r}" if self.label is not None else "")
    return f"ServingClient({self.address!r}, {self.model_name!r}, {self.protocol}{which})"

  def close(self):
    self._transport.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def _with_retries(self, call: Callable[[], Any]):
    for attempt in range(self.retries + 1):
      try:
        return call()
      except ServingError as e:
        if e.code not in RETRIABLE_CODES or attempt == self.retries:
          raise
        time.sleep(self.backoff_seconds * 2 ** attempt)

  # --- the three RPCs ---

  def status(self) -> List[VersionStatus]:
    """The model's versions and their states (GetModelStatus)."""
    return self._with_retries(lambda: self._transport.status(
        self.model_name, self.version, self.label, self.timeout_seconds))

  def metadata(self) -> Dict[str, SignatureInfo]:
    """The signatures (inputs/outputs with dtypes and shapes) of the version asked for, fetched
    fresh (and remembered for the checks of predict() and rank())."""
    self._signatures = self._with_retries(lambda: self._transport.metadata(
        self.model_name, self.version, self.label, self.timeout_seconds))
    return self._signatures

  def signature(self, name: str) -> SignatureInfo:
    """One signature from the remembered metadata (fetched once)."""
    signatures = self._signatures if self._signatures is not None else self.metadata()
    if name not in signatures:
      raise ServingError("INVALID_ARGUMENT",
                         f"model {self.model_name} has no signature {name!r}; it has "
                         f"{sorted(signatures)}")
    return signatures[name]

  def predict(self, inputs: Mapping[str, Any], signature: str = api.SERVING_DEFAULT,
              form: str = "column", validate: bool = True) -> Dict[str, np.ndarray]:
    """Calls `signature` with `inputs` (name -> array-like, batch first); returns its outputs.

    With validate (the default), the inputs are checked against the signature's metadata first
    (names, dtypes, fixed dimensions) and cast to its dtypes, so a mistake is reported with
    the field and what the signature expected instead of as a server-side graph error.
    form: "column" (REST `inputs`) or "row" (REST `instances`); gRPC sends tensors either way.
    """
    if form not in FORMS:
      raise ValueError(f"form {form!r}: use one of {FORMS}")
    arrays = {name: np.asarray(v) for name, v in inputs.items()}
    sig = None
    if validate:
      sig = self.signature(signature)
      arrays = _checked_inputs(sig, arrays)

    def output_names():
      return list((sig or self.signature(signature)).outputs)
    outputs = self._with_retries(lambda: self._transport.predict(
        self.model_name, self.version, self.label, signature, arrays, form, output_names,
        self.timeout_seconds))
    if self._signatures is not None and signature in self._signatures:
      declared = self._signatures[signature].outputs
      # REST answers are JSON: give them the declared dtypes, as gRPC's tensors have.
      outputs = {n: _as_declared(v, declared[n]) if n in declared else v
                 for n, v in outputs.items()}
    return outputs

  def wait_until_available(self, timeout: float = 60.0, poll_seconds: float = 0.2
                           ) -> List[VersionStatus]:
    """Polls status() until a version asked for is AVAILABLE; returns the statuses.

    Raises ServingError: DEADLINE_EXCEEDED after `timeout` seconds (with the last state seen),
    or the load error when every version ended (state END) with one.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
      statuses = []
      try:
        statuses = self._transport.status(self.model_name, self.version, self.label,
                                          self.timeout_seconds)
        last = ", ".join(f"version {s.version} {s.state}" for s in statuses) or "no versions"
      except ServingError as e:
        # Not up yet, or the model (version) not loaded yet: keep polling.
        if e.code not in ("UNAVAILABLE", "NOT_FOUND", "DEADLINE_EXCEEDED"):
          raise
        last = str(e)
      if any(s.state == "AVAILABLE" for s in statuses):
        return statuses
      failed = [s for s in statuses if s.state == "END" and s.error_code != "OK"]
      if statuses and len(failed) == len(statuses):
        raise ServingError(failed[0].error_code,
                           f"model {self.model_name} version {failed[0].version} failed to "
                           f"load: {failed[0].error_message}")
      if time.monotonic() >= deadline:
        raise ServingError("DEADLINE_EXCEEDED",
                           f"model {self.model_name} not AVAILABLE at {self.address} after "
                           f"{timeout} s ({last})")
      time.sleep(poll_seconds)

  # --- codebook models ---

  def assign_codes(self, embeddings) -> np.ndarray:
    """A served codebook's `assign`: embeddings float32 [n, d] -> codes int64 [n, C]."""
    out = self.predict({codebook_io.EMBEDDINGS_INPUT: np.asarray(embeddings, np.float32)},
                       signature=codebook_io.ASSIGN_SIGNATURE)
    return np.asarray(out[codebook_io.CODES_OUTPUT], np.int64)

  # --- ranking ---

  def rank(self, user: Mapping[str, Any], candidate_ids: Sequence[str],
           history: Optional[Sequence[str]] = None,
           new_items: Optional[Mapping[str, Any]] = None,
           codebook: Optional[Codebook] = None, form: str = "column") -> List[RankedItem]:
    """Scores `candidate_ids` for `user`; returns them sorted by score, highest first.

    Args:
      user: user_id (required) and any of the model's user features: the `user_*` inputs of
        its serving_default (MovieLens: user_age, user_gender, user_occupation), each by its
        input name or without the `user_` prefix (`age`); one not given is sent as 0 (int64
        inputs) or "" (string inputs), the out-of-vocabulary token. A field the model does
        not take, or a value of the wrong type, is a ServingError naming it.
      candidate_ids: the item ids to rank.
      history: the user's past item ids, most recent last; padded with "" / cut to the
        model's history length N (the most recent N kept), read from its metadata.
      new_items: item id -> a SID (sequence of ints: the codes of the codebook the model
        reads), a content embedding (sequence of floats), or {codebook: codes} for a model
        reading several codebooks. New items missing from candidate_ids are ranked too.
      codebook: turns embeddings into codes for SID models: a codebook SavedModel directory
        (or Codebook artifact URI), a ServingClient of a served codebook model, a callable
        embeddings -> codes, or {codebook name: one of these}.
      form: REST request form ("column" / "row").

    Two requests at most: serving_default for the candidates without new-item data, so their
    scores are exactly what any other serving_default call gives (the client never needs
    catalog codes), and one serve_new_items request for all new items.
    """
    candidates = [str(c) for c in candidate_ids]
    new_items = {str(k): v for k, v in (new_items or {}).items()}
    candidates += [k for k in new_items if k not in candidates]
    if not candidates:
      return []
    if len(set(candidates)) != len(candidates):
      raise ServingError("INVALID_ARGUMENT", "candidate_ids holds duplicates")
    default_sig = self.signature(api.SERVING_DEFAULT)
    user_inputs = _user_inputs(default_sig, user)
    history_row = _history_row(default_sig, history)
    known = [c for c in candidates if c not in new_items]
    fresh = [c for c in candidates if c in new_items]
    scored: Dict[str, Tuple[float, bool, str]] = {}

    def batch(ids):
      inputs = {name: np.repeat(v[None], len(ids), axis=0) for name, v in user_inputs.items()}
      inputs[S.ITEM_ID] = np.asarray(ids, object)
      inputs[S.HISTORY_ITEM_IDS] = np.repeat(history_row[None], len(ids), axis=0)
      return inputs

    if known:
      out = self.predict(batch(known), api.SERVING_DEFAULT, form)
      for item, score, in_table in zip(known, _scores(out), _in_table(out, len(known))):
        scored[item] = (score, in_table, SOURCE_TABLE if in_table else SOURCE_UNKNOWN)
    if fresh:
      new_sig = self.signature(api.SERVE_NEW_ITEMS)
      extra, sources = _new_item_inputs(new_sig, fresh, new_items, codebook, self.model_name)
      inputs = batch(fresh)
      inputs.update(extra)
      out = self.predict(inputs, api.SERVE_NEW_ITEMS, form)
      for item, score, in_table in zip(fresh, _scores(out), _in_table(out, len(fresh))):
        # serve_new_items keeps the table codes of items the model knows.
        scored[item] = (score, in_table, SOURCE_TABLE if in_table else sources[item])
    order = sorted(range(len(candidates)), key=lambda i: (-scored[candidates[i]][0], i))
    return [RankedItem(candidates[i], *scored[candidates[i]]) for i in order]


# --- request building and checking ---------------------------------------------------------


def _as_declared(value: np.ndarray, info: TensorInfo) -> np.ndarray:
  if info.dtype == "string":
    return np.vectorize(lambda v: v if isinstance(v, bytes) else str(v).encode(),
                        otypes=[object])(value) if value.size else value.astype(object)
  return np.asarray(value, _np_dtype(info.dtype))


def _checked_inputs(sig: SignatureInfo, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """The inputs cast to the signature's dtypes; ServingError naming the first mismatch."""
  expected = ", ".join(f"{n} ({i.describe()})" for n, i in sorted(sig.inputs.items()))
  unknown = sorted(set(arrays) - set(sig.inputs))
  if unknown:
    raise ServingError("INVALID_ARGUMENT",
                       f"input {unknown[0]!r} is not in signature {sig.name}, which takes "
                       f"{expected}")
  missing = sorted(set(sig.inputs) - set(arrays))
  if missing:
    raise ServingError("INVALID_ARGUMENT",
                       f"signature {sig.name} needs input {missing[0]!r} "
                       f"({sig.inputs[missing[0]].describe()}); it takes {expected}")
  out = {}
  for name, value in arrays.items():
    info = sig.inputs[name]
    is_text = value.dtype == object or value.dtype.kind in "SU"
    if (info.dtype == "string") != is_text and value.size:
      raise ServingError("INVALID_ARGUMENT",
                         f"input {name!r}: got {value.dtype} values, signature {sig.name} "
                         f"takes {info.describe()}")
    if info.dtype.startswith("int") and value.dtype.kind == "f":
      if not np.all(np.equal(np.mod(value, 1), 0)):
        raise ServingError("INVALID_ARGUMENT",
                           f"input {name!r}: got fractional values, signature {sig.name} "
                           f"takes {info.describe()}")
    if info.shape is not None:
      fixed = [(i, d) for i, d in enumerate(info.shape) if d is not None]
      if value.ndim != len(info.shape) or any(value.shape[i] != d for i, d in fixed):
        raise ServingError("INVALID_ARGUMENT",
                           f"input {name!r}: shape {list(value.shape)}, signature {sig.name} "
                           f"takes {info.describe()}")
    out[name] = _as_declared(value, info)
  return out


def user_fields(sig: SignatureInfo) -> Dict[str, TensorInfo]:
  """The user inputs of a signature by name: user_id first, then every other `user_*` input
  (the user features the model's data declared), sorted."""
  names = sorted(n for n in sig.inputs if n.startswith(S.USER_FEATURE_PREFIX))
  names.sort(key=lambda n: n != S.USER_ID)
  return {n: sig.inputs[n] for n in names}


def _user_field_name(key: str, fields: Mapping[str, TensorInfo]) -> Optional[str]:
  """A user field as given (`user_age`, or `age` without the prefix) -> its input name."""
  if key in fields or key == S.USER_ID:
    return key
  prefixed = S.user_feature(key)
  return prefixed if prefixed in fields else None


def _user_value(name: str, info: TensorInfo, value: Any, sig_name: str) -> np.ndarray:
  """One user field's value as the input's dtype; ServingError naming the input otherwise."""
  if info.dtype == "string":
    if isinstance(value, (str, bytes)) or (isinstance(value, (int, np.integer))
                                          and not isinstance(value, bool)):
      return np.asarray(value if isinstance(value, bytes) else str(value), object)
  else:
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    try:
      if isinstance(text, bool):
        raise ValueError
      if isinstance(text, str):
        number = int(text.strip())
      elif isinstance(text, (int, np.integer)):
        number = int(text)
      elif isinstance(text, (float, np.floating)) and float(text).is_integer():
        number = int(text)
      else:
        raise ValueError
      return np.asarray(number, _np_dtype(info.dtype))
    except (TypeError, ValueError, OverflowError):
      pass
  kind = "a string" if info.dtype == "string" else "an integer"
  raise ServingError("INVALID_ARGUMENT",
                     f"user field {name} = {value!r}: signature {sig_name} takes {name} as "
                     f"{info.dtype}; give {kind}")


def _user_inputs(sig: SignatureInfo, user: Mapping[str, Any]) -> Dict[str, np.ndarray]:
  """The user fields of `sig` as [] arrays of their dtypes: `user`'s values by name (with or
  without the `user_` prefix), the out-of-vocabulary default for each one not given."""
  if not user or user.get(S.USER_ID) in (None, ""):
    raise ServingError("INVALID_ARGUMENT", f"user needs a {S.USER_ID}")
  fields = user_fields(sig)
  known = list(dict.fromkeys([S.USER_ID, *fields]))
  given: Dict[str, Any] = {}
  for key, value in user.items():
    name = _user_field_name(str(key), fields)
    if name is None:
      raise ServingError("INVALID_ARGUMENT",
                         f"user field {key!r} is not an input of signature {sig.name}; its "
                         f"user fields are {known} (the `user_` prefix may be left out)")
    if name in given:
      raise ServingError("INVALID_ARGUMENT",
                         f"user field {name} given twice (as {name} and without the `user_` "
                         f"prefix); give it once")
    given[name] = value
  out = {}
  for name, info in fields.items():
    if name in given:
      out[name] = _user_value(name, info, given[name], sig.name)
    else:
      out[name] = np.asarray(STRING_USER_DEFAULT, object) if info.dtype == "string" else (
          np.asarray(NUMERIC_USER_DEFAULT, _np_dtype(info.dtype)))
  return out


def _history_row(sig: SignatureInfo, history: Optional[Sequence[str]]) -> np.ndarray:
  """The history as the model's [N] row: the most recent N ids, then "" padding."""
  history = [str(h) for h in (history or [])]
  info = sig.inputs.get(S.HISTORY_ITEM_IDS)
  length = info.shape[1] if info is not None and info.shape and len(info.shape) > 1 else None
  if length is None:  # a signature with a free history width: send what was given
    length = max(len(history), 1)
  history = history[-length:] if length else []
  return np.asarray(history + [S.HISTORY_PAD] * (length - len(history)), object)


def _scores(outputs: Mapping[str, np.ndarray]) -> List[float]:
  if api.PROBABILITY in outputs:
    return [float(v) for v in np.ravel(outputs[api.PROBABILITY])]
  if api.LOGITS in outputs:
    return [float(v) for v in np.ravel(outputs[api.LOGITS])]
  raise ServingError("INTERNAL", f"the model answered {sorted(outputs)}: no "
                     f"{api.PROBABILITY} or {api.LOGITS} to rank by")


def _in_table(outputs: Mapping[str, np.ndarray], n: int) -> List[bool]:
  if api.ITEM_IN_TABLE not in outputs:
    return [True] * n
  return [bool(v) for v in np.ravel(outputs[api.ITEM_IN_TABLE])]


def _code_inputs(sig: SignatureInfo) -> Dict[str, Optional[int]]:
  """{codebook: code columns C (None if free)} of the serve_new_items signature."""
  out = {}
  for name, info in sig.inputs.items():
    if name.startswith(S.ITEM_CODES_PREFIX):
      width = info.shape[1] if info.shape and len(info.shape) > 1 else None
      out[name[len(S.ITEM_CODES_PREFIX):]] = width
  return out


def _assigner(codebook, name: str) -> Callable[[np.ndarray], np.ndarray]:
  """codebook argument -> embeddings float32 [n, d] -> codes int64 [n, C]."""
  if isinstance(codebook, Mapping):
    if name not in codebook:
      raise ServingError("INVALID_ARGUMENT",
                         f"no codebook for {name!r} among {sorted(codebook)}: the model reads "
                         f"{S.item_codes(name)}")
    codebook = codebook[name]
  if isinstance(codebook, ServingClient):
    return codebook.assign_codes
  if isinstance(codebook, (str, os.PathLike)):
    return _cached_codebook_assign(os.path.abspath(os.fspath(codebook)))
  if callable(codebook):
    return lambda x: np.asarray(codebook(x), np.int64)
  raise ServingError("INVALID_ARGUMENT", f"codebook {codebook!r}: give a SavedModel directory, "
                     "a ServingClient of a codebook model or a callable")


@functools.lru_cache(maxsize=4)
def _cached_codebook_assign(path: str) -> Callable[[np.ndarray], np.ndarray]:
  # Loading a SavedModel takes seconds: a client ranking many requests loads it once.
  return load_codebook_assign(path)


def load_codebook_assign(path: str) -> Callable[[np.ndarray], np.ndarray]:
  """A codebook SavedModel's `assign` signature as embeddings [n, d] -> codes int64 [n, C].

  `path` is the SavedModel directory or a Codebook artifact URI holding it in saved_model/.
  """
  tf = _tf()
  if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
    inner = codebook_io.saved_model_dir(path)
    if not tf.io.gfile.exists(os.path.join(inner, "saved_model.pb")):
      raise ValueError(f"codebook {path}: no saved_model.pb there or in "
                       f"{codebook_io.SAVED_MODEL_DIR}/ (give the codebook's SavedModel)")
    path = inner
  loaded = tf.saved_model.load(path)
  if codebook_io.ASSIGN_SIGNATURE not in loaded.signatures:
    raise ValueError(f"codebook {path}: no {codebook_io.ASSIGN_SIGNATURE!r} signature (has "
                     f"{sorted(loaded.signatures)})")
  fn = loaded.signatures[codebook_io.ASSIGN_SIGNATURE]

  def assign(embeddings):
    result = fn(**{codebook_io.EMBEDDINGS_INPUT: tf.constant(np.asarray(embeddings, np.float32))})
    return result[codebook_io.CODES_OUTPUT].numpy().astype(np.int64)
  assign.loaded = loaded  # keeps the restored variables alive with the function
  return assign


def _new_item_inputs(sig: SignatureInfo, fresh: List[str], new_items: Mapping[str, Any],
                     codebook, model: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
  """The serve_new_items inputs beyond the ids, one row per fresh item, and each item's source.

  Raises ServingError naming the item and what the model's signature expected.
  """
  widths = _code_inputs(sig)
  content = sig.inputs.get(api.ITEM_EMBEDDING_INPUT)
  dim = content.shape[1] if content is not None and content.shape and len(content.shape) > 1 \
      else None
  codes: Dict[str, Dict[str, np.ndarray]] = {cb: {} for cb in widths}
  embeddings: Dict[str, np.ndarray] = {}
  sources: Dict[str, str] = {}
  to_assign: Dict[str, np.ndarray] = {}
  reads = (" and ".join(f"codebook {cb} ({w if w is not None else '?'} codes)"
                        for cb, w in sorted(widths.items())) or "no codebook")

  def check_sid(item, cb, value):
    value = np.asarray(value)
    if value.ndim != 1 or (value.size and value.dtype.kind not in "iu"):
      raise ServingError("INVALID_ARGUMENT",
                         f"new item {item}: the SID for codebook {cb} must be a list of "
                         f"integers, got {value.tolist()!r}")
    if widths[cb] is not None and value.size != widths[cb]:
      raise ServingError("INVALID_ARGUMENT",
                         f"new item {item}: SID has {value.size} codes, the model's codebook "
                         f"{cb} takes {widths[cb]}")
    return value.astype(np.int64)

  for item in fresh:
    value = new_items[item]
    if isinstance(value, Mapping):  # {codebook: codes}
      unknown = sorted(set(value) - set(widths))
      if unknown:
        raise ServingError("INVALID_ARGUMENT",
                           f"new item {item}: the model reads {reads}, not {unknown[0]!r}")
      for cb, v in value.items():
        codes[cb][item] = check_sid(item, cb, v)
      sources[item] = SOURCE_SID
      continue
    array = np.asarray(value)
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iuf":
      raise ServingError("INVALID_ARGUMENT",
                         f"new item {item}: give a SID (list of integers) or a content "
                         f"embedding (list of floats), got {value!r}")
    if array.dtype.kind in "iu":  # a SID
      if len(widths) != 1:
        raise ServingError("INVALID_ARGUMENT",
                           f"new item {item}: a SID needs a model reading one codebook; this "
                           f"model reads {reads} (give {{codebook: codes}})")
      codes[next(iter(widths))][item] = check_sid(item, next(iter(widths)), array)
      sources[item] = SOURCE_SID
    else:  # a content embedding
      if dim is not None and array.size != dim and content is not None:
        raise ServingError("INVALID_ARGUMENT",
                           f"new item {item}: embedding has {array.size} values, the model's "
                           f"{api.ITEM_EMBEDDING_INPUT} takes {dim}")
      embeddings[item] = array.astype(np.float32)
      sources[item] = SOURCE_EMBEDDING
      to_assign[item] = array.astype(np.float32)

  if content is not None:
    missing = [i for i in fresh if i not in embeddings]
    if missing:
      raise ServingError("INVALID_ARGUMENT",
                         f"new item {missing[0]}: model {model} reads content embeddings "
                         f"({api.ITEM_EMBEDDING_INPUT}, {dim if dim else '?'} floats); give the "
                         "item's embedding, not only its SID")
  # Codes the caller did not give come from the codebook's assign (embedding items only).
  for cb in widths:
    need = [i for i in fresh if i not in codes[cb]]
    no_embedding = [i for i in need if i not in to_assign]
    if no_embedding:
      raise ServingError("INVALID_ARGUMENT",
                         f"new item {no_embedding[0]}: model {model} reads codebook {cb}; give "
                         f"its SID for {cb}")
    if not need:
      continue
    if codebook is None:
      raise ServingError("INVALID_ARGUMENT",
                         f"new item {need[0]}: an embedding for a model reading codebook {cb} "
                         "needs the codebook's assign (codebook=<SavedModel dir> or a "
                         "ServingClient of the codebook model; CLI: --codebook-dir / "
                         "--codebook-model)")
    assigned = np.asarray(_assigner(codebook, cb)(np.stack([to_assign[i] for i in need])))
    if assigned.ndim != 2 or len(assigned) != len(need) or (
        widths[cb] is not None and assigned.shape[1] != widths[cb]):
      raise ServingError("INVALID_ARGUMENT",
                         f"the codebook's assign gave codes of shape {list(assigned.shape)}; "
                         f"the model's codebook {cb} takes {widths[cb]} codes per item (is it "
                         "the codebook this model was trained with?)")
    for item, row in zip(need, assigned):
      codes[cb][item] = row.astype(np.int64)

  inputs = {S.item_codes(cb): np.stack([codes[cb][i] for i in fresh]) for cb in widths}
  if content is not None:
    inputs[api.ITEM_EMBEDDING_INPUT] = np.stack([embeddings[i] for i in fresh])
  return inputs, sources


# --- the command line: sidrec predict ------------------------------------------------------


def add_predict_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
  """The flags of `sidrec predict`."""
  parser.add_argument("--server", required=True,
                      help="HOST:PORT of the model server (its gRPC port, or REST port with "
                           "--protocol rest)")
  parser.add_argument("--model", required=True, help="the model's name in models.config")
  parser.add_argument("--protocol", choices=PROTOCOLS, default="grpc")
  which = parser.add_mutually_exclusive_group()
  which.add_argument("--version", type=int, help="ask for this version")
  which.add_argument("--label", help=f"ask for the version under this label "
                                     f"({api.STABLE_LABEL}, {api.CANARY_LABEL})")
  parser.add_argument("--user-id", required=True)
  parser.add_argument("--user-feature", action="append", default=[], metavar="NAME=VALUE",
                      type=parse_user_feature,
                      help="one of the model's user features (repeatable), e.g. age=25 or "
                           "user_gender=F: NAME is a user_* input of its serving_default (the "
                           "user_ prefix may be left out); a feature not given is sent as 0 / "
                           "\"\" (out of vocabulary). An unknown NAME is refused with the "
                           "model's list")
  parser.add_argument("--item-ids", default="", help="candidates: I1,I2,...")
  parser.add_argument("--item-id", action="append", default=[], metavar="ID",
                      help="one candidate (repeatable; for ids holding commas, e.g. MovieLens "
                           "titles)")
  parser.add_argument("--history", default="", help="the user's past items, most recent last")
  parser.add_argument("--history-item", action="append", default=[], metavar="ID",
                      help="one past item, oldest first (repeatable; ids holding commas)")
  parser.add_argument("--new-item", action="append", default=[], metavar="ID=c1,c2,...",
                      help="an item the model has never seen, with its SID (repeatable)")
  parser.add_argument("--new-item-embedding", action="append", default=[], metavar="ID=FILE",
                      help="a new item's content embedding: a .npy vector or a text file of "
                           "comma/space-separated floats (repeatable)")
  codebook = parser.add_mutually_exclusive_group()
  codebook.add_argument("--codebook-dir",
                        help="the codebook SavedModel turning embeddings into SIDs")
  codebook.add_argument("--codebook-model",
                        help="the served codebook model (same server) turning embeddings into "
                             "SIDs")
  parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
  return parser


def parse_user_feature(spec: str) -> Tuple[str, str]:
  """`--user-feature NAME=VALUE` -> (NAME, VALUE); argparse reports a malformed one."""
  name, sep, value = spec.partition("=")
  if not sep or not name.strip():
    raise argparse.ArgumentTypeError(
        f"{spec!r}: write NAME=VALUE, NAME a user feature of the model (e.g. age=25 or "
        f"user_gender=F)")
  return name.strip(), value


def _split_ids(text: str) -> List[str]:
  return [t.strip() for t in (text or "").split(",") if t.strip()]


def _parse_new_item(spec: str) -> Tuple[str, List[int]]:
  item, sep, codes = spec.rpartition("=")  # the codes hold no "=", an item id may
  try:
    if not sep or not item.strip():
      raise ValueError
    values = [int(c) for c in codes.replace(" ", "").split(",") if c]
    if not values:
      raise ValueError
  except ValueError:
    raise ValueError(f"--new-item {spec!r}: write ID=c1,c2,... (the item id, then its integer "
                     "codes)") from None
  return item.strip(), values


def read_embedding_file(path: str, flag: str = "--new-item-embedding") -> np.ndarray:
  """A content embedding from a .npy of one vector or a text file of floats."""
  if not os.path.isfile(path):
    raise ValueError(f"{flag}: {path} does not exist (give a .npy vector or a text file of "
                     "floats)")
  try:
    if path.endswith(".npy"):
      vector = np.load(path, allow_pickle=False)
    else:
      with open(path) as f:
        vector = np.asarray([float(t) for t in f.read().replace(",", " ").split()])
  except (ValueError, OSError) as e:
    raise ValueError(f"{flag}: {path} is neither a .npy array nor a text file of "
                     f"comma/space-separated floats ({e})") from None
  vector = np.squeeze(np.asarray(vector))
  if vector.ndim != 1 or vector.size == 0 or vector.dtype.kind not in "iuf":
    raise ValueError(f"{flag}: {path} holds shape {list(np.shape(vector))} of "
                     f"{vector.dtype}; give one vector of floats")
  return vector.astype(np.float32)


def _parse_new_item_embedding(spec: str) -> Tuple[str, np.ndarray]:
  item, sep, path = spec.partition("=")
  if not sep or not item.strip() or not path.strip():
    raise ValueError(f"--new-item-embedding {spec!r}: write ID=FILE (a .npy vector or a text "
                     "file of floats)")
  return item.strip(), read_embedding_file(path.strip())


def format_ranking(ranked: Sequence[RankedItem]) -> str:
  """One line per candidate: rank, item id, score and how it was scored."""
  width = max([len("item")] + [len(r.item_id) for r in ranked])
  lines = [f"{'rank':>4}  {'item':<{width}}  {'score':>8}  source"]
  for i, r in enumerate(ranked, 1):
    lines.append(f"{i:>4}  {r.item_id:<{width}}  {r.score:8.5f}  {SOURCE_TEXT[r.source]}")
  return "\n".join(lines)


def predict_main(args: argparse.Namespace) -> int:
  """`sidrec predict`: ranks the candidates on a running server and prints them.

  Raises ValueError for bad flags or files (one line naming the flag and the fix) and
  ServingError, prefixed with the server and model, for a call the server refused or could not
  take (the CLI prints either as one line, exit 2).
  """
  candidates = _split_ids(args.item_ids) + list(getattr(args, "item_id", []) or [])
  new_items: Dict[str, Any] = {}
  for spec in args.new_item:
    item, codes = _parse_new_item(spec)
    new_items[item] = codes
  for spec in args.new_item_embedding:
    item, vector = _parse_new_item_embedding(spec)
    if item in new_items:
      raise ValueError(f"--new-item-embedding {item}: the item already has a --new-item SID; "
                       "give one of the two")
    new_items[item] = vector
  if not candidates and not new_items:
    raise ValueError("--item-ids: give the candidates to rank (I1,I2,...) or --new-item")
  if getattr(args, "codebook_dir", None) and not os.path.isdir(args.codebook_dir):
    raise ValueError(f"--codebook-dir {args.codebook_dir}: not a directory (give the codebook's "
                     "SavedModel directory)")
  user: Dict[str, str] = {S.USER_ID: args.user_id}
  for name, value in getattr(args, "user_feature", []) or []:
    if name in user or S.user_feature(name) == S.USER_ID:
      raise ValueError(f"--user-feature {name}: given twice (the user id is --user-id; give "
                       f"each feature once)")
    user[name] = value
  kwargs = dict(protocol=args.protocol, timeout_seconds=args.timeout)
  client = ServingClient(args.server, args.model, version=args.version, label=args.label,
                         **kwargs)
  codebook = None
  try:
    if getattr(args, "codebook_dir", None):
      codebook = args.codebook_dir
    elif getattr(args, "codebook_model", None):
      codebook = ServingClient(args.server, args.codebook_model, **kwargs)
    history = _split_ids(args.history) + list(getattr(args, "history_item", []) or [])
    ranked = client.rank(user, candidates, history=history,
                         new_items=new_items, codebook=codebook)
  except ServingError as e:
    raise ServingError(e.code, f"{client!r}: {e.message}") from e
  finally:
    client.close()
    if isinstance(codebook, ServingClient):
      codebook.close()
  print(format_ranking(ranked))
  return 0
