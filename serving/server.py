"""sidrec's local model server (a stand-in for tensorflow_model_server), and `sidrec serve`.

The stock binary cannot be installed everywhere (no wheel or Debian package carries it), so
`LocalModelServer` keeps its contract over the same SavedModels and config files: the gRPC
services (serving/grpc_service.py), the REST API (serving/rest_service.py), version polling,
labels and warmup (serving/servables.py) and --enable_batching (serving/batching.py). Clients
written for tensorflow_model_server work unchanged against either.

`sidrec serve --model-dir DIR` runs the stock binary when it is on PATH (with the equivalent
flags) and this stand-in otherwise; `--print-command` prints the stock commands (binary and
Docker image) for the serving directory instead.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import shutil
import signal
import sys
import threading
from typing import Dict, List, Optional, Union

from tensorflow_serving.config import model_server_config_pb2

from contracts import serving_api as api
from contracts.files import atomic_write_text
from serving import model_config as mc
# The runtime (grpc, and TensorFlow through servables) is imported when a server is made, not
# with this module: `sidrec --help` and `sidrec serve --print-command` need neither (7 s).

log = logging.getLogger(__name__)

NAME = "sidrec's local model server (a stand-in for tensorflow_model_server)"
STOCK_BINARY = "tensorflow_model_server"
DOCKER_IMAGE = "tensorflow/serving"
DOCKER_SERVING_DIR = "/models/serving"
DOCKER_MODELS_CONFIG_FILE = "models.docker.config"  # the base paths as the container sees them
DEFAULT_MAX_REQUEST_BYTES = 16 << 20
# TF Serving's defaults (main.cc): --max_num_load_retries 5, --load_retry_interval_micros 1 min.
MAX_NUM_LOAD_RETRIES = 5
LOAD_RETRY_INTERVAL_SECONDS = 60.0


class LocalModelServer:
  """gRPC + REST over a VersionManager; `with LocalModelServer(...) as server:` starts it.

  Args:
    model: a ModelServerConfig, or a serving directory (every model under it, as
      model_config.build_model_server_config builds it).
    grpc_port, rest_port: 0 picks a free port; the bound ones are `grpc_port` / `rest_port`
      after start().
    batching: server-side batching (None = each request runs on its own).
    threads: gRPC worker threads, and the most REST connections handled at once (one more
      is answered 503 UNAVAILABLE).
    allow_version_labels_for_unavailable_models: TF Serving's flag of that name (default
      false: a label may only name an AVAILABLE version).
    model_config_file, model_config_file_poll_wait_seconds: with both, the file is re-read
      that often and a changed config applied (TF Serving's --model_config_file_poll_wait_
      seconds; 0 = never), so labels rewritten after a push are picked up.
    max_num_load_retries, load_retry_interval_seconds: how often a failed version load is
      retried, and how far apart (TF Serving's defaults: 5 times, a minute).
    rest_handler_timeout: seconds a REST connection may sit idle or stall mid-body.
  """

  def __init__(self, model: Union[model_server_config_pb2.ModelServerConfig, str],
               host: str = "127.0.0.1", grpc_port: int = api.GRPC_PORT,
               rest_port: int = api.REST_PORT,
               batching: Optional[mc.BatchingParameters] = None, poll_seconds: float = 1.0,
               max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, threads: int = 16,
               allow_version_labels_for_unavailable_models: bool = False,
               model_config_file: Optional[str] = None,
               model_config_file_poll_wait_seconds: float = 0.0,
               max_num_load_retries: int = MAX_NUM_LOAD_RETRIES,
               load_retry_interval_seconds: float = LOAD_RETRY_INTERVAL_SECONDS,
               rest_handler_timeout: Optional[float] = 30.0):
    if isinstance(model, str):
      model = mc.build_model_server_config(model)
    if model_config_file_poll_wait_seconds < 0:
      raise ValueError(f"model_config_file_poll_wait_seconds "
                       f"{model_config_file_poll_wait_seconds} must be >= 0 (0 = off)")
    self.config, self.host = model, host
    self.grpc_port, self.rest_port = grpc_port, rest_port
    self.batching, self.max_request_bytes, self.threads = batching, max_request_bytes, threads
    self.model_config_file = model_config_file
    self.model_config_file_poll_wait_seconds = model_config_file_poll_wait_seconds
    self.rest_handler_timeout = rest_handler_timeout
    from serving import servables  # pylint: disable=g-import-not-at-top
    self.manager = servables.VersionManager(
        model, poll_seconds=poll_seconds,
        allow_version_labels_for_unavailable_models=allow_version_labels_for_unavailable_models,
        max_num_load_retries=max_num_load_retries,
        load_retry_interval_seconds=load_retry_interval_seconds)
    self.scheduler: Optional[batching_lib.BatchScheduler] = None
    self._grpc: Optional[grpc.Server] = None
    self._rest: Optional[rest_service.RestServer] = None
    self._rest_thread: Optional[threading.Thread] = None
    self._config_stop = threading.Event()
    self._config_thread: Optional[threading.Thread] = None

  def start(self) -> "LocalModelServer":
    import grpc  # pylint: disable=g-import-not-at-top
    from serving import batching as batching_lib  # pylint: disable=g-import-not-at-top
    from serving import grpc_service  # pylint: disable=g-import-not-at-top
    from serving import rest_service  # pylint: disable=g-import-not-at-top
    if self.batching is not None:
      self.scheduler = batching_lib.BatchScheduler(self.batching)
    runner = self.scheduler.run if self.scheduler else None
    # Warmup replays through the scheduler, as the stock server's through its batching session.
    self.manager.runner = runner
    self.manager.start()
    if self.model_config_file and self.model_config_file_poll_wait_seconds > 0:
      self._config_stop.clear()
      self._config_thread = threading.Thread(target=self._poll_config_file,
                                             name="sidrec-config-poll", daemon=True)
      self._config_thread.start()
    # so_reuseport off: a port already in use must fail here, not be shared silently.
    options = [("grpc.so_reuseport", 0),
               ("grpc.max_receive_message_length", self.max_request_bytes),
               ("grpc.max_send_message_length", -1)]
    self._grpc = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=self.threads),
                             options=options)
    grpc_service.add_services(self._grpc, self.manager, runner)
    try:
      bound = self._grpc.add_insecure_port(f"{self.host}:{self.grpc_port}")
    except RuntimeError:  # grpcio raises where older versions returned 0
      bound = 0
    if not bound:
      self.stop()
      raise ValueError(f"cannot bind the gRPC port {self.host}:{self.grpc_port} (in use?); "
                       f"pass another --grpc-port")
    self.grpc_port = bound
    self._grpc.start()
    try:
      self._rest = rest_service.RestServer((self.host, self.rest_port), self.manager, runner,
                                           self.max_request_bytes, max_handlers=self.threads,
                                           handler_timeout=self.rest_handler_timeout)
    except OSError as e:
      self.stop()
      raise ValueError(f"cannot bind the REST port {self.host}:{self.rest_port} ({e.strerror}); "
                       f"pass another --rest-port") from None
    self.rest_port = self._rest.server_address[1]
    self._rest_thread = threading.Thread(target=self._rest.serve_forever,
                                         name="sidrec-rest", daemon=True)
    self._rest_thread.start()
    return self

  def _poll_config_file(self) -> None:
    """--model_config_file_poll_wait_seconds: re-read the file, apply it when it changed."""
    while not self._config_stop.wait(self.model_config_file_poll_wait_seconds):
      try:
        self.reload_config_file()
      except Exception as e:  # pylint: disable=broad-except  (keep polling, as TF Serving)
        log.error("model config file %s: %s", self.model_config_file, e)

  def reload_config_file(self) -> bool:
    """Applies the model config file if it changed; True when it did."""
    config = mc.read_model_server_config(self.model_config_file)
    if config == self.manager.config:
      return False
    log.info("model config file %s changed: applying it", self.model_config_file)
    self.config = config
    self.manager.reload(config)
    return True

  def wait_until_ready(self, timeout: float = 60.0) -> "LocalModelServer":
    """Blocks until every model has an AVAILABLE version; TimeoutError names the others."""
    if not self.manager.wait_until_ready(timeout):
      problems = []
      for model in self.config.model_config_list.config:
        try:
          states = self.manager.status(model.name)
        except Exception:  # pylint: disable=broad-except  (no version seen yet)
          problems.append(f"{model.name}: no complete version under {model.base_path}")
          continue
        problems += [f"{model.name} v{v}: {m}" for v, _, _, m in states if m]
        problems += [f"{model.name} {m}" for m in self.manager.load_errors(model.name)]
      if self.manager.label_error is not None:
        problems.append(self.manager.label_error.message)
      raise TimeoutError(f"{NAME}: not every model is AVAILABLE after {timeout:.0f}s: "
                         + ("; ".join(problems) or "still loading"))
    return self

  def stop(self, grace: float = 5.0) -> None:
    self._config_stop.set()
    if self._config_thread is not None:
      self._config_thread.join(timeout=10)
      self._config_thread = None
    if self._rest is not None:
      self._rest.shutdown()
      self._rest.server_close()
      self._rest = None
    if self._grpc is not None:
      self._grpc.stop(grace).wait()
      self._grpc = None
    if self.scheduler is not None:
      self.scheduler.stop()
      self.scheduler = None
    self.manager.stop()

  def __enter__(self) -> "LocalModelServer":
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()

  @property
  def grpc_address(self) -> str:
    return f"{self.host}:{self.grpc_port}"

  @property
  def rest_url(self) -> str:
    return f"http://{self.host}:{self.rest_port}"


# --- the stock server's command lines -------------------------------------------------------

def stock_server_commands(serving_dir: str, *, model_config_file: Optional[str] = None,
                          batching_parameters_file: Optional[str] = None,
                          enable_batching: bool = True, grpc_port: int = api.GRPC_PORT,
                          rest_port: int = api.REST_PORT, poll_seconds: float = 1.0,
                          docker_model_config_file: Optional[str] = None,
                          model_config_file_poll_wait_seconds: int = 0,
                          allow_version_labels_for_unavailable_models: bool = True,
                          max_num_load_retries: int = MAX_NUM_LOAD_RETRIES,
                          load_retry_interval_seconds: float = LOAD_RETRY_INTERVAL_SECONDS
                          ) -> Dict[str, List[str]]:
  """{"tensorflow_model_server": argv, "docker": argv} serving `serving_dir` the same way.

  `model_config_file_poll_wait_seconds` > 0 adds --model_config_file_poll_wait_seconds (the
  server re-reads models.config, so labels moved after a push are picked up); the label and
  load-retry flags are added when they differ from TF Serving's defaults.

  The config files default to the serving directory's (contracts/serving_api.py). Inside
  the container the serving directory is mounted at /models/serving, so the Docker line
  reads the config from there; its base paths must be /models/serving/<model>
  (model_config.build_model_server_config(..., base_path_root="/models/serving")).
  """
  serving_dir = os.path.abspath(serving_dir)
  config = os.path.abspath(model_config_file or os.path.join(serving_dir, api.MODELS_CONFIG_FILE))
  batching = os.path.abspath(batching_parameters_file or
                             os.path.join(serving_dir, api.BATCHING_PARAMETERS_FILE))

  def in_container(path: str) -> str:
    rel = os.path.relpath(path, serving_dir)
    return path if rel.startswith("..") else f"{DOCKER_SERVING_DIR}/{rel}"

  def flags(config_path: str, batching_path: str) -> List[str]:
    out = [f"--port={grpc_port}", f"--rest_api_port={rest_port}",
           f"--model_config_file={config_path}",
           f"--file_system_poll_wait_seconds={max(1, int(round(poll_seconds)))}"]
    if model_config_file_poll_wait_seconds and model_config_file_poll_wait_seconds > 0:
      out.append(f"--model_config_file_poll_wait_seconds="
                 f"{int(model_config_file_poll_wait_seconds)}")
    if allow_version_labels_for_unavailable_models:
      out.append("--allow_version_labels_for_unavailable_models=true")
    if max_num_load_retries != MAX_NUM_LOAD_RETRIES:
      out.append(f"--max_num_load_retries={int(max_num_load_retries)}")
    if load_retry_interval_seconds != LOAD_RETRY_INTERVAL_SECONDS:
      out.append(f"--load_retry_interval_micros={int(round(load_retry_interval_seconds * 1e6))}")
    if enable_batching:
      out += ["--enable_batching=true", f"--batching_parameters_file={batching_path}"]
    return out

  docker_config = docker_model_config_file or in_container(config)
  return {
      STOCK_BINARY: [STOCK_BINARY] + flags(config, batching),
      "docker": ["docker", "run", "-p", f"{grpc_port}:{grpc_port}",
                 "-p", f"{rest_port}:{rest_port}", "-v", f"{serving_dir}:{DOCKER_SERVING_DIR}",
                 DOCKER_IMAGE] + flags(docker_config, in_container(batching)),
  }


# --- `sidrec serve` -------------------------------------------------------------------------

def add_serve_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
  parser.add_argument("--model-dir", required=True,
                      help="serving directory: one folder per model, numeric version folders "
                           "(without --model-config-file the models found at start are served: "
                           "a model directory added later is not picked up until a restart)")
  parser.add_argument("--rest-port", type=int, default=api.REST_PORT)
  parser.add_argument("--grpc-port", type=int, default=api.GRPC_PORT)
  parser.add_argument("--model-config-file", default=None,
                      help="text ModelServerConfig (default: every model under --model-dir, "
                           "as found at start: with --model-dir only, a model directory "
                           "added later is not picked up; new versions of the models found "
                           "are)")
  parser.add_argument("--model-config-file-poll-wait-seconds", type=float, default=0,
                      help="re-read --model-config-file this often and apply it when it "
                           "changed, e.g. labels moved after a push (TF Serving's "
                           "--model_config_file_poll_wait_seconds; default 0 = never)")
  parser.add_argument("--allow-version-labels-for-unavailable-models",
                      action=argparse.BooleanOptionalAction, default=True,
                      help="let a new label name a version that is not AVAILABLE yet (TF "
                           "Serving's flag, off there by default). On here: sidrec's "
                           "models.config labels its versions (canary, stable), and "
                           "tensorflow_model_server checks labels before it loads anything, "
                           "so without it the stock server refuses that config at startup")
  parser.add_argument("--max-num-load-retries", type=int, default=MAX_NUM_LOAD_RETRIES,
                      help="retries of a failed version load (TF Serving's default 5)")
  parser.add_argument("--load-retry-interval-seconds", type=float,
                      default=LOAD_RETRY_INTERVAL_SECONDS,
                      help="seconds between load retries (TF Serving's default 60)")
  group = parser.add_mutually_exclusive_group()
  group.add_argument("--batching-parameters-file", default=None,
                     help="text BatchingParameters (default: the serving directory's "
                          f"{api.BATCHING_PARAMETERS_FILE}, else the defaults)")
  group.add_argument("--no-batching", action="store_true", help="run each request on its own")
  parser.add_argument("--host", default="127.0.0.1",
                      help="interface the local server binds (tensorflow_model_server always "
                           "binds 0.0.0.0)")
  parser.add_argument("--poll-seconds", type=float, default=1.0)
  parser.add_argument("--print-command", action="store_true",
                      help="print the tensorflow_model_server and docker commands and exit")
  return parser


def _resolve(args):
  """(model dir, config, config file or None, batching or None, batching file or None)."""
  model_dir = os.path.abspath(args.model_dir)
  if not os.path.isdir(model_dir):
    raise ValueError(f"--model-dir {args.model_dir} is not a directory (pass the serving "
                     f"directory holding one folder per model)")
  if args.poll_seconds <= 0:
    raise ValueError(f"--poll-seconds {args.poll_seconds} must be positive")
  if args.model_config_file_poll_wait_seconds < 0:
    raise ValueError(f"--model-config-file-poll-wait-seconds "
                     f"{args.model_config_file_poll_wait_seconds} must be >= 0 (0 = off)")
  if args.model_config_file_poll_wait_seconds > 0 and not args.model_config_file:
    raise ValueError("--model-config-file-poll-wait-seconds needs --model-config-file (with "
                     "--model-dir only there is no file to re-read)")
  if args.max_num_load_retries < 0 or args.load_retry_interval_seconds < 0:
    raise ValueError("--max-num-load-retries and --load-retry-interval-seconds must be >= 0")
  if args.model_config_file:
    config_file = os.path.abspath(args.model_config_file)
    config = mc.read_model_server_config(config_file)
  else:
    config_file, config = None, mc.build_model_server_config(model_dir)
    if not config.model_config_list.config:
      raise ValueError(f"--model-dir {args.model_dir} holds no model with a complete version "
                       f"(<model>/<number>/saved_model.pb); push a model first or pass "
                       f"--model-config-file")
  batching, batching_file = None, None
  if not args.no_batching:
    batching_file = args.batching_parameters_file or os.path.join(
        model_dir, api.BATCHING_PARAMETERS_FILE)
    if args.batching_parameters_file or os.path.exists(batching_file):
      batching = mc.BatchingParameters.read(batching_file)
    else:
      batching, batching_file = mc.BatchingParameters(), None
  return model_dir, config, config_file, batching, batching_file


def _write_stock_configs(model_dir: str, batching) -> Dict[str, str]:
  """The files the stock commands read, written when the serving directory lacks them."""
  written = {}
  config = os.path.join(model_dir, api.MODELS_CONFIG_FILE)
  if not os.path.exists(config):
    written["config"] = mc.write_text_proto(config, mc.build_model_server_config(model_dir))
  docker = os.path.join(model_dir, DOCKER_MODELS_CONFIG_FILE)
  written["docker"] = mc.write_text_proto(
      docker, mc.build_model_server_config(model_dir, base_path_root=DOCKER_SERVING_DIR))
  path = os.path.join(model_dir, api.BATCHING_PARAMETERS_FILE)
  if batching is not None and not os.path.exists(path):
    written["batching"] = atomic_write_text(path, batching.to_text())  # temp + rename
  return written


def serve_main(args) -> int:
  """`sidrec serve`: the stock binary if installed, else LocalModelServer until SIGTERM."""
  model_dir, config, config_file, batching, batching_file = _resolve(args)
  stock = shutil.which(STOCK_BINARY)
  if args.print_command or stock:
    written = _write_stock_configs(model_dir, batching if batching_file is None else None)
    print(f"sidrec serve: wrote {', '.join(sorted(written.values()))} (the files the stock "
          f"server reads)", file=sys.stderr, flush=True)
    commands = stock_server_commands(
        model_dir, model_config_file=config_file, batching_parameters_file=batching_file,
        enable_batching=batching is not None, grpc_port=args.grpc_port,
        rest_port=args.rest_port, poll_seconds=args.poll_seconds,
        docker_model_config_file=(None if config_file else
                                  f"{DOCKER_SERVING_DIR}/{DOCKER_MODELS_CONFIG_FILE}"),
        model_config_file_poll_wait_seconds=int(args.model_config_file_poll_wait_seconds),
        allow_version_labels_for_unavailable_models=(
            args.allow_version_labels_for_unavailable_models),
        max_num_load_retries=args.max_num_load_retries,
        load_retry_interval_seconds=args.load_retry_interval_seconds)
    labelled = [m.name for m in config.model_config_list.config if m.version_labels]
    if labelled and not args.allow_version_labels_for_unavailable_models:
      # ServerCore::ReloadConfig checks labels before it loads anything: at startup no
      # version is AVAILABLE yet, so a config with labels is refused.
      print(f"sidrec serve: warning: the model config labels versions of "
            f"{', '.join(labelled)}; {STOCK_BINARY} refuses at startup a label naming a "
            f"version not yet loaded (\"not currently available for inference\"): pass "
            f"--allow-version-labels-for-unavailable-models", file=sys.stderr, flush=True)
    if args.host != "0.0.0.0":
      print(f"sidrec serve: warning: --host {args.host} is not applied: {STOCK_BINARY} "
            f"cannot bind a single interface (it listens on 0.0.0.0); restrict access with a "
            f"firewall or network policy", file=sys.stderr, flush=True)
    if args.print_command:
      for argv in commands.values():
        print(" ".join(argv))
      return 0
    argv = commands[STOCK_BINARY]
    print(f"sidrec serve: running {stock} ({' '.join(argv[1:])})", file=sys.stderr, flush=True)
    os.execv(stock, [stock] + argv[1:])
    return 127  # not reached: execv replaces this process
  server = LocalModelServer(
      config, host=args.host, grpc_port=args.grpc_port, rest_port=args.rest_port,
      batching=batching, poll_seconds=args.poll_seconds,
      allow_version_labels_for_unavailable_models=(
          args.allow_version_labels_for_unavailable_models),
      model_config_file=config_file,
      model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
      max_num_load_retries=args.max_num_load_retries,
      load_retry_interval_seconds=args.load_retry_interval_seconds)
  done = threading.Event()
  previous = {s: signal.signal(s, lambda *_: done.set()) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    server.start()
    models = ", ".join(m.name for m in config.model_config_list.config)
    print(f"{NAME}: serving {models or 'no models'} from {model_dir}; gRPC "
          f"{server.grpc_address}, REST {server.rest_url}"
          f"{'' if batching is None else ', batching on'} (Ctrl-C or SIGTERM stops it)",
          file=sys.stderr, flush=True)
    done.wait()
  finally:
    server.stop()
    for sig, handler in previous.items():
      signal.signal(sig, handler)
  print(f"{NAME}: stopped", file=sys.stderr, flush=True)
  return 0


def main(argv: Optional[List[str]] = None) -> int:
  """`python -m serving.server ...`: the same as `sidrec serve` (errors: one line, exit 2)."""
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
  parser = add_serve_arguments(argparse.ArgumentParser(prog="sidrec serve", description=NAME))
  args = parser.parse_args(argv)
  try:
    return serve_main(args)
  except ValueError as e:
    print(f"sidrec: error: serve: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
