"""The REST API of sidrec's local model server (a stand-in for tensorflow_model_server).

The URLs, bodies and status codes of TF Serving's HTTP server (http_rest_api_handler.cc):

  GET  /v1/models/{m}[/versions/{n}|/labels/{l}]            GetModelStatusResponse as JSON
  GET  /v1/models/{m}[/versions/{n}|/labels/{l}]/metadata   {"model_spec", "metadata":
                                                            {"signature_def": SignatureDefMap}}
  POST /v1/models/{m}[/versions/{n}|/labels/{l}]:predict    row ("instances") or column
                                                            ("inputs") form (serving/tensors.py)

A failure answers `{"error": "..."}` with TF Serving's mapping of status codes to HTTP
statuses (http_server.cc ToHTTPStatusCode, CANCELLED -> 499 included). A URL that is not one
of the above -> 400 "Malformed request: GET /..." (http_rest_api_handler.cc); model names and
labels in the URL are URL-decoded, as TF Serving's DecodeArg does.

Beyond TF Serving (whose HTTP server is libevent's): a body over the size limit is refused
from its Content-Length with 413, and the body is then drained (up to a cap, with a timeout)
so the client reads the 413 instead of a connection reset; each connection's socket has a
timeout (an idle keep-alive connection or a stalled body is closed); at most `threads`
connections are handled at once, and one more than that is answered 503 UNAVAILABLE.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import urllib.parse
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
    grpc.StatusCode.CANCELLED: 499,  # CLIENT_CLOSED_REQUEST
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

# TF Serving's own regexes (http_rest_api_util.cc), matched in full and case-insensitively.
_PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                           r":(classify|regress|predict)", re.IGNORECASE)
_STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|"
                          r"(?:/labels/([^/:]+)))?(?:\/(metadata))?", re.IGNORECASE)

def http_status(code: grpc.StatusCode) -> int:
  return HTTP_STATUS.get(code, 500)  # INTERNAL, UNKNOWN, DATA_LOSS, ...


def to_json(message) -> dict:
  # TF Serving prints every field, defaults included ("error_code": "OK").
  return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                   always_print_fields_with_no_presence=True)


def malformed(method: str, path: str) -> tensors.ServingError:
  return tensors.invalid(f"Malformed request: {method} {path}")


def parse_path(path: str, method: str = "GET") -> Tuple[str, Optional[int], Optional[str], str]:
  """(model, version, label, suffix) of a /v1/models URL, as TF Serving's ParseModelInfo.

  suffix: "/metadata", ":predict", ":classify", ":regress" or "". Any other URL (or a method
  other than GET/POST) -> INVALID_ARGUMENT "Malformed request: <METHOD> <path>". The model
  name and the label are URL-decoded.
  """
  bare = path.split("?", 1)[0]
  regex = _PREDICT_PATH if method == "POST" else _STATUS_PATH if method == "GET" else None
  match = regex.fullmatch(bare) if regex else None
  if not match:
    raise malformed(method, path)
  model, version, label, sub = match.groups()
  model = urllib.parse.unquote(model) if model else ""
  label = urllib.parse.unquote(label) if label else None
  if version is not None:
    try:
      version = int(version)
    except ValueError:
      raise tensors.invalid(f"Failed to convert version: {version} to numeric.") from None
  suffix = (":" + sub.lower()) if method == "POST" else ("/metadata" if sub else "")
  return model, version, label, suffix


def _model_spec(model: str, version: Optional[int], label: Optional[str], request) -> None:
  request.model_spec.name = model
  if version is not None:
    request.model_spec.version.value = version
  elif label:
    request.model_spec.version_label = label


class RestHandler(http_server.BaseHTTPRequestHandler):
  """One connection; the server carries `manager`, `runner`, `max_request_bytes` and
  `handler_timeout`."""

  protocol_version = "HTTP/1.1"
  server_version = "sidrec-local-model-server"
  # TCP_NODELAY: the headers and the body go out as two writes; with Nagle's algorithm the
  # second waits for the client's delayed ACK, ~40 ms per keep-alive request (measured:
  # 1-client REST p50 56 ms with it, 9 ms without; benchmarks/serving_load.py).
  disable_nagle_algorithm = True

  def setup(self):
    # StreamRequestHandler puts `timeout` on the socket: an idle keep-alive connection or a
    # stalled body ends with socket.timeout instead of holding a thread forever.
    self.timeout = getattr(self.server, "handler_timeout", None)
    self._drain = 0
    super().setup()

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    log.debug("%s - %s", self.address_string(), format % args)

  def do_GET(self):  # pylint: disable=invalid-name
    self._answer(self._get)

  def do_POST(self):  # pylint: disable=invalid-name
    self._answer(self._post)

  def _other(self):
    self._read_body()
    raise malformed(self.command, self.path)

  def do_PUT(self):  # pylint: disable=invalid-name
    self._answer(self._other)

  do_DELETE = do_PATCH = do_PUT

  def _answer(self, handler) -> None:
    try:
      status, body = 200, handler()
    except tensors.ServingError as e:
      status, body = getattr(e, "http_code", None) or http_status(e.code), {"error": e.message}
    except (socket.timeout, TimeoutError):
      self.close_connection = True
      status, body = 408, {"error": f"the request body did not arrive within "
                                    f"{self.timeout:g}s"}
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
    if self._drain:
      self._drain_body(self._drain)

  def _drain_body(self, length: int) -> None:
    """Reads and drops a refused body (up to DRAIN_CAP bytes within DRAIN_SECONDS), so the
    client, which sends its whole body before reading the answer, gets the answer rather than
    a connection reset (closing a socket with unread data sends RST)."""
    self.wfile.flush()
    left = min(length, DRAIN_CAP)
    deadline = time.monotonic() + DRAIN_SECONDS
    try:
      while left > 0 and time.monotonic() < deadline:
        self.connection.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
        chunk = self.rfile.read1(min(left, 1 << 16))
        if not chunk:
          break
        left -= len(chunk)
    except OSError:
      pass  # the client gave up: nothing more to do

  def _get(self) -> dict:
    model, version, label, suffix = parse_path(self.path, "GET")
    if not model:
      raise tensors.invalid("Missing model name in request.")  # http_rest_api_handler.cc
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
      # Refused unread; drained after the answer (see _drain_body), then the connection closes.
      self.close_connection = True
      self._drain = length
      raise _TooLarge(length, self.server.max_request_bytes)
    if length <= 0:
      return b""
    body = self.rfile.read(length)
    if len(body) < length:
      self.close_connection = True
      raise tensors.invalid(f"the body ended after {len(body)} of its {length} bytes "
                            f"(Content-Length)")
    return body

  def _post(self) -> dict:
    body = self._read_body()
    model, version, label, suffix = parse_path(self.path, "POST")
    if suffix in (":classify", ":regress"):
      raise tensors.ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                 f"{suffix[1:]} is not supported: {grpc_service.PREDICT_ONLY}")
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


DRAIN_CAP = 256 << 20  # the most bytes of a refused body read (and dropped)
DRAIN_SECONDS = 10.0  # ... and for how long
DEFAULT_HANDLER_TIMEOUT = 30.0  # seconds a connection may sit idle or stall mid-body


class _BusyHandler(RestHandler):
  """Answers the one request of a connection over the limit with 503 UNAVAILABLE."""

  def _busy(self):
    self.close_connection = True
    length = self.headers.get("Content-Length", "0")
    self._drain = int(length) if length.isdigit() else 0
    raise tensors.ServingError(
        grpc.StatusCode.UNAVAILABLE,
        f"the server is handling its maximum of {self.server.max_handlers} REST connections; "
        f"retry later")

  def do_GET(self):  # pylint: disable=invalid-name
    self._answer(self._busy)

  do_POST = do_PUT = do_DELETE = do_PATCH = do_GET


class RestServer(http_server.ThreadingHTTPServer):
  """ThreadingHTTPServer with what the handler needs, and at most `max_handlers` connections
  handled at once (one more gets a short-lived 503 thread; beyond that it is closed)."""

  daemon_threads = True

  def __init__(self, address, manager: servables.VersionManager,
               runner: Optional[servables.Runner] = None,
               max_request_bytes: int = 16 << 20, max_handlers: int = 16,
               handler_timeout: Optional[float] = DEFAULT_HANDLER_TIMEOUT):
    super().__init__(address, RestHandler)
    self.manager, self.runner, self.max_request_bytes = manager, runner, max_request_bytes
    self.max_handlers, self.handler_timeout = max_handlers, handler_timeout
    self._slots = threading.BoundedSemaphore(max_handlers)
    self._busy_slots = threading.BoundedSemaphore(max_handlers)

  def process_request(self, request, client_address):
    if self._slots.acquire(blocking=False):
      handler, slots = RestHandler, self._slots
    elif self._busy_slots.acquire(blocking=False):
      handler, slots = _BusyHandler, self._busy_slots
    else:
      self.shutdown_request(request)
      return
    threading.Thread(target=self._handle, args=(request, client_address, handler, slots),
                     name="sidrec-rest-handler", daemon=True).start()

  def _handle(self, request, client_address, handler, slots) -> None:
    try:
      handler(request, client_address, self)
    except Exception:  # pylint: disable=broad-except
      self.handle_error(request, client_address)
    finally:
      self.shutdown_request(request)
      slots.release()
