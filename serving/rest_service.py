"""The REST API of sidrec's local model server (a stand-in for tensorflow_model_server).

The URLs, bodies and status codes of TF Serving's HTTP server (http_rest_api_handler.cc):

  GET  /v1/models/{m}[/versions/{n}|/labels/{l}]            GetModelStatusResponse as JSON
  GET  /v1/models/{m}[/versions/{n}|/labels/{l}]/metadata   {"model_spec", "metadata":
                                                            {"signature_def": SignatureDefMap}}
  POST /v1/models/{m}[/versions/{n}|/labels/{l}]:predict    row ("instances") or column
                                                            ("inputs") form (serving/tensors.py)

A failure answers `{"error": "..."}` with TF Serving's mapping of status codes to HTTP
statuses. A body over the size limit is refused from its Content-Length, before it is read.
"""

from __future__ import annotations

import json
import logging
import re
from http import server as http_server
from typing import Optional, Tuple

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2

from serving import grpc_service
from serving import servables
from serving import tensors

log = logging.getLogger(__name__)

HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

_PATH = re.compile(r"^/v1/models/(?P<model>[^/:]+)"
                   r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<suffix>/metadata|:predict|:classify|:regress)?$")


def http_status(code: grpc.StatusCode) -> int:
  return HTTP_STATUS.get(code, 500)  # INTERNAL, UNKNOWN, DATA_LOSS, ...


def to_json(message) -> dict:
  # TF Serving prints every field, defaults included ("error_code": "OK").
  return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                   always_print_fields_with_no_presence=True)


def parse_path(path: str) -> Tuple[str, Optional[int], Optional[str], str]:
  """(model, version, label, suffix) of a /v1/models URL; NOT_FOUND for any other path."""
  match = _PATH.match(path.split("?", 1)[0])
  if not match:
    raise tensors.ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {path} is not "
                               f"a model URL (/v1/models/<model>[/versions/<n>|/labels/<l>]"
                               f"[/metadata|:predict])")
  version = match.group("version")
  if version is not None and not version.isdigit():
    raise tensors.invalid(f"version {version!r} in {path} is not a number")
  return (match.group("model"), int(version) if version is not None else None,
          match.group("label"), match.group("suffix") or "")


def _model_spec(model: str, version: Optional[int], label: Optional[str], request) -> None:
  request.model_spec.name = model
  if version is not None:
    request.model_spec.version.value = version
  elif label:
    request.model_spec.version_label = label


class RestHandler(http_server.BaseHTTPRequestHandler):
  """One request; the server object carries `manager`, `runner` and `max_request_bytes`."""

  protocol_version = "HTTP/1.1"
  server_version = "sidrec-local-model-server"

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    log.debug("%s - %s", self.address_string(), format % args)

  def do_GET(self):  # pylint: disable=invalid-name
    self._answer(self._get)

  def do_POST(self):  # pylint: disable=invalid-name
    self._answer(self._post)

  def _answer(self, handler) -> None:
    try:
      status, body = 200, handler()
    except tensors.ServingError as e:
      status, body = getattr(e, "http_code", None) or http_status(e.code), {"error": e.message}
    except Exception as e:  # pylint: disable=broad-except  (never a traceback to a client)
      log.exception("REST %s %s failed", self.command, self.path)
      status, body = 500, {"error": f"internal error: {e}"}
    payload = json.dumps(body).encode("utf-8")
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(payload)))
    if self.close_connection:
      self.send_header("Connection", "close")
    self.end_headers()
    self.wfile.write(payload)

  def _get(self) -> dict:
    model, version, label, suffix = parse_path(self.path)
    manager: servables.VersionManager = self.server.manager
    if suffix == "/metadata":
      request = get_model_metadata_pb2.GetModelMetadataRequest(
          metadata_field=[grpc_service.SIGNATURE_DEF_FIELD])
      _model_spec(model, version, label, request)
      response = grpc_service.model_metadata(manager, request)
      signature_map = get_model_metadata_pb2.SignatureDefMap()
      response.metadata[grpc_service.SIGNATURE_DEF_FIELD].Unpack(signature_map)
      return {"model_spec": to_json(response.model_spec),
              "metadata": {grpc_service.SIGNATURE_DEF_FIELD: to_json(signature_map)}}
    if suffix:
      raise tensors.ServingError(grpc.StatusCode.NOT_FOUND,
                                 f"{self.path}: use POST for {suffix}, GET for status/metadata")
    request = get_model_status_pb2.GetModelStatusRequest()
    _model_spec(model, version, label, request)
    return to_json(grpc_service.model_status(manager, request))

  def _read_body(self) -> bytes:
    try:
      length = int(self.headers.get("Content-Length", "0"))
    except ValueError:
      self.close_connection = True
      raise tensors.invalid("the Content-Length header is not a number") from None
    if length > self.server.max_request_bytes:
      # Not read: the connection is closed instead of draining a body we refuse.
      self.close_connection = True
      raise _TooLarge(length, self.server.max_request_bytes)
    return self.rfile.read(length) if length > 0 else b""

  def _post(self) -> dict:
    body = self._read_body()
    model, version, label, suffix = parse_path(self.path)
    if suffix in (":classify", ":regress"):
      raise tensors.ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                 f"{suffix[1:]} is not supported: {grpc_service.PREDICT_ONLY}")
    if suffix != ":predict":
      raise tensors.ServingError(grpc.StatusCode.NOT_FOUND,
                                 f"{self.path}: POST needs a :predict URL")
    try:
      parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
      raise tensors.invalid(f"JSON Parse error: {e} (the body must be a JSON object with "
                            f"\"instances\" or \"inputs\")") from None
    if not isinstance(parsed, dict):
      raise tensors.invalid("JSON body must be an object with \"instances\" or \"inputs\"")
    signature_name = parsed.get("signature_name", "")
    if not isinstance(signature_name, str):
      raise tensors.invalid('"signature_name" must be a string')
    manager: servables.VersionManager = self.server.manager
    # Resolve the signature on the version that will answer, to read the JSON with its dtypes.
    with manager.acquire(model, version, label) as loaded:
      _, signature = tensors.find_signature(loaded.signature_defs, signature_name)
      form, inputs = tensors.json_to_inputs(parsed, signature)
      _, _, outputs = servables.predict_on(loaded, signature_name, inputs,
                                           runner=self.server.runner)
    return tensors.outputs_to_json(form, outputs)

  def send_error(self, code, message=None, explain=None):
    """http.server's own errors (a malformed request line) also answer in JSON."""
    self.close_connection = True
    payload = json.dumps({"error": message or explain or str(code)}).encode("utf-8")
    self.send_response(code)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(payload)))
    self.send_header("Connection", "close")
    self.end_headers()
    if self.command != "HEAD":
      self.wfile.write(payload)


class _TooLarge(tensors.ServingError):
  """413: HTTP's own status for a refused body (no gRPC code maps to it)."""
  http_code = 413

  def __init__(self, length: int, limit: int):
    super().__init__(grpc.StatusCode.RESOURCE_EXHAUSTED,
                     f"Request body too large: {length} bytes, the limit is {limit} (send fewer "
                     f"examples per request or raise the server's max_request_bytes)")


class RestServer(http_server.ThreadingHTTPServer):
  """ThreadingHTTPServer with what the handler needs."""

  daemon_threads = True

  def __init__(self, address, manager: servables.VersionManager,
               runner: Optional[servables.Runner] = None,
               max_request_bytes: int = 16 << 20):
    super().__init__(address, RestHandler)
    self.manager, self.runner, self.max_request_bytes = manager, runner, max_request_bytes
