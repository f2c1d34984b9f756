"""Deployment files for serving a serving directory with the stock TF Serving server.

`write_deploy_files(serving_dir)` writes, for the models found there (model_config.
discover_models), what the stock `tensorflow/serving` image needs:

  models.config            the ModelServerConfig with the container's base paths
                           (/models/serving/<model>; the serving directory's own models.config
                           keeps the local paths sidrec's local server reads)
  batching_parameters.txt  the serving directory's (or the default) BatchingParameters
  Dockerfile               FROM tensorflow/serving:<the tensorflow-serving-api version>, the
                           model directories and both config files copied in: a
                           self-contained image of the versions pushed so far
  kubernetes.yaml          a ConfigMap (both config files), a PersistentVolumeClaim (the
                           models), a Deployment of the stock image and a Service (8500
                           grpc, 8501 http)

Why a PersistentVolumeClaim rather than emptyDir + initContainer: the pipeline's pusher keeps
writing new numeric versions into the serving directory, and tensorflow_model_server polls its
base paths (--file_system_poll_wait_seconds) to load them without a restart; a volume the
pusher writes and the servers mount read-only (ReadWriteMany, so the replicas and the pusher
share it) keeps that behaviour, while an initContainer copies one snapshot at pod start and a
new version would need a rollout. The Docker image is the snapshot alternative.

The server flags are spelled once, by serving/server.py's stock_server_commands; this module
only places them in the container. Every file is written atomically (temporary file, rename).
"""

from __future__ import annotations

import json
import os
import posixpath
import shlex
from typing import Dict, List, Optional, Tuple

from contracts import serving_api as api
from contracts.files import atomic_write_text
from serving import model_config as mc
from serving import server as local_server

IMAGE = f"{local_server.DOCKER_IMAGE}:2.19.1"  # matches tensorflow-serving-api==2.19.1
# Inside the container: the models at the base path root models.config names (where
# server.py's docker command mounts the serving directory), the two config files beside.
CONTAINER_MODELS_ROOT = local_server.DOCKER_SERVING_DIR  # /models/serving
CONTAINER_CONFIG_DIR = "/models/config"
CONTAINER_MODEL_CONFIG = posixpath.join(CONTAINER_CONFIG_DIR, api.MODELS_CONFIG_FILE)
CONTAINER_BATCHING_FILE = posixpath.join(CONTAINER_CONFIG_DIR, api.BATCHING_PARAMETERS_FILE)
DOCKERFILE, KUBERNETES_FILE = "Dockerfile", "kubernetes.yaml"
DEFAULT_OUT_DIR = "deploy"  # under the serving directory (no numeric versions: not a model)
POLL_SECONDS = 30  # how often the server looks for new versions
CONFIG_POLL_SECONDS = 60  # Kubernetes: how often it rereads the ConfigMap's models.config
RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"},
             "limits": {"cpu": "2", "memory": "4Gi"}}




def container_command(serving_dir: str, poll_seconds: int = POLL_SECONDS) -> List[str]:
  """tensorflow_model_server's command line inside the container (binary first).

  server.stock_server_commands spells the flags; the container's config paths are passed
  in, so its command reads /models/config/... and serves /models/serving/<model>.
  """
  commands = local_server.stock_server_commands(
      serving_dir, model_config_file=CONTAINER_MODEL_CONFIG,
      batching_parameters_file=CONTAINER_BATCHING_FILE, enable_batching=True,
      grpc_port=api.GRPC_PORT, rest_port=api.REST_PORT, poll_seconds=poll_seconds,
      docker_model_config_file=CONTAINER_MODEL_CONFIG)
  return list(commands[local_server.STOCK_BINARY])


def _served_versions(model, versions: List[int]) -> List[int]:
  """The versions of `versions` the model's version policy serves (what the image needs)."""
  policy = model.model_version_policy
  which = policy.WhichOneof("policy_choice")
  if which == "latest":
    return versions[-max(1, policy.latest.num_versions):]
  if which == "specific":
    return [v for v in versions if v in set(policy.specific.versions)]
  if which == "all":
    return list(versions)
  return versions[-1:]  # no policy: the stock server serves the highest version


def _dockerfile(context: str, serving_dir: str, models: Dict[str, List[Tuple[int, str]]],
                config, config_file: str,
                batching_file: str, command: List[str], out_dir: str, image_tag: str) -> str:
  def rel(path):
    return os.path.relpath(path, context).replace(os.sep, "/")

  def copy(src, dst):
    return f"COPY {json.dumps([rel(src), dst])}"

  by_name = {m.name: m for m in config.model_config_list.config}
  lines = [
      f"# The stock TF Serving image with the models of {serving_dir} (written by sidrec, "
      "serving/deploy.py).",
      f"# Build (the context holds the serving directory and {os.path.basename(out_dir)}/):",
      f"#   docker build -f {shlex.quote(rel(os.path.join(out_dir, DOCKERFILE)))} "
      f"-t {shlex.quote(image_tag)} {shlex.quote(context)}",
      f"# Run:  docker run --rm -p {api.GRPC_PORT}:{api.GRPC_PORT} -p "
      f"{api.REST_PORT}:{api.REST_PORT} {image_tag}",
      f"FROM {IMAGE}",
  ]
  # Only the versions the policy serves: an image is a snapshot, older versions are dead weight.
  for name, versions in models.items():
    base_path = by_name[name].base_path
    for version, path in versions:
      lines.append(copy(path, posixpath.join(base_path, str(version))))
  lines += [copy(config_file, CONTAINER_MODEL_CONFIG),
            copy(batching_file, CONTAINER_BATCHING_FILE),
            f"EXPOSE {api.GRPC_PORT} {api.REST_PORT}",
            f"ENTRYPOINT {json.dumps(command[:1])}",
            f"CMD {json.dumps(command[1:])}"]
  return "\n".join(lines) + "\n"


def _kubernetes(name: str, replicas: int, storage: str, first_model: str, command: List[str],
                config_text: str, batching_text: str) -> List[dict]:
  labels = {"app": name}
  config_map, claim = f"{name}-config", f"{name}-models"
  container = {
      "name": "tensorflow-serving",
      "image": IMAGE,
      "command": command[:1],
      # The ConfigMap is updated in place (kubectl apply) when labels move: reread it.
      "args": command[1:] + [f"--model_config_file_poll_wait_seconds={CONFIG_POLL_SECONDS}"],
      "ports": [{"name": "grpc", "containerPort": api.GRPC_PORT},
                {"name": "http", "containerPort": api.REST_PORT}],
      "volumeMounts": [
          {"name": "models", "mountPath": CONTAINER_MODELS_ROOT, "readOnly": True},
          {"name": "config", "mountPath": CONTAINER_CONFIG_DIR, "readOnly": True}],
      # Ready once the server knows the model (it answers its status); alive while the gRPC
      # port accepts connections.
      "readinessProbe": {"httpGet": {"path": f"/v1/models/{first_model}",
                                     "port": api.REST_PORT},
                         "initialDelaySeconds": 5, "periodSeconds": 10},
      "livenessProbe": {"tcpSocket": {"port": api.GRPC_PORT},
                        "initialDelaySeconds": 15, "periodSeconds": 20},
      "resources": RESOURCES,
  }
  return [
      {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config_map,
                                                             "labels": labels},
       "data": {api.MODELS_CONFIG_FILE: config_text,
                api.BATCHING_PARAMETERS_FILE: batching_text}},
      {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
       "metadata": {"name": claim, "labels": labels},
       # The pusher writes new versions, every replica reads them.
       "spec": {"accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": storage}}}},
      {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name,
                                                                  "labels": labels},
       "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels},
                             "spec": {"containers": [container],
                                      "volumes": [
                                          {"name": "models", "persistentVolumeClaim": {
                                              "claimName": claim, "readOnly": True}},
                                          {"name": "config",
                                           "configMap": {"name": config_map}}]}}}},
      {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
       "spec": {"type": "ClusterIP", "selector": labels,
                "ports": [{"name": "grpc", "port": api.GRPC_PORT,
                           "targetPort": api.GRPC_PORT},
                          {"name": "http", "port": api.REST_PORT,
                           "targetPort": api.REST_PORT}]}},
  ]


def write_deploy_files(serving_dir: str, out_dir: Optional[str] = None,
                       image_tag: str = "sidrec-serving:latest", *,
                       name: str = "sidrec-serving", replicas: int = 1,
                       storage: str = "10Gi", poll_seconds: int = POLL_SECONDS,
                       num_versions: int = 2) -> List[str]:
  """Writes the deployment files of `serving_dir` into `out_dir` (default: serving_dir/deploy).

  Files: models.config (container base paths), batching_parameters.txt (the serving
  directory's, else the defaults), Dockerfile and kubernetes.yaml. The Docker build context
  is the directory holding both the serving directory and out_dir (the serving directory
  itself by default); the Dockerfile's header says how to build it. Returns the paths written.

  Raises ValueError when the serving directory holds no model with a complete version.
  """
  serving_dir = os.path.abspath(serving_dir)
  out_dir = os.path.abspath(out_dir or os.path.join(serving_dir, DEFAULT_OUT_DIR))
  discovered = mc.discover_models(serving_dir)
  if not discovered:
    raise ValueError(f"serving directory {serving_dir} holds no model with a complete version "
                     "(<model>/<number>/saved_model.pb): push a model first")
  config = mc.build_model_server_config(serving_dir, base_path_root=CONTAINER_MODELS_ROOT,
                                        num_versions=num_versions)
  by_name = {m.name: m for m in config.model_config_list.config}
  models = {n: [(v, os.path.join(serving_dir, n, str(v)))
                for v in _served_versions(by_name[n], versions)]
            for n, versions in discovered.items()}

  local_batching = os.path.join(serving_dir, api.BATCHING_PARAMETERS_FILE)
  batching = (mc.BatchingParameters.read(local_batching) if os.path.exists(local_batching)
              else mc.BatchingParameters())
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  config_text, batching_text = text_format.MessageToString(config), batching.to_text()
  command = container_command(serving_dir, poll_seconds)

  config_file = os.path.join(out_dir, api.MODELS_CONFIG_FILE)
  batching_file = os.path.join(out_dir, api.BATCHING_PARAMETERS_FILE)
  context = os.path.commonpath([serving_dir, out_dir])
  written = [atomic_write_text(config_file, config_text),
             atomic_write_text(batching_file, batching_text)]
  written.append(atomic_write_text(
      os.path.join(out_dir, DOCKERFILE),
      _dockerfile(context, serving_dir, models, config, config_file, batching_file, command,
                  out_dir, image_tag)))
  documents = _kubernetes(name, replicas, storage, next(iter(discovered)), command,
                          config_text, batching_text)
  written.append(atomic_write_text(
      os.path.join(out_dir, KUBERNETES_FILE),
      f"# Serving {', '.join(discovered)} with {IMAGE} (written by sidrec, serving/deploy.py).\n"
      f"# The claim {name}-models holds the serving directory (its model folders) and is\n"
      "# written by the pusher; the ConfigMap holds models.config (labels) and batching.\n"
      + _dump_yaml(documents)))
  return written


def _dump_yaml(documents: List[dict]) -> str:
  """Multi-document YAML, config texts as literal blocks (readable in kubectl and diffs)."""
  import yaml  # pylint: disable=g-import-not-at-top

  class Dumper(yaml.SafeDumper):

    def ignore_aliases(self, data):  # the shared label dicts: spelled out, no &anchors
      return True

  def text(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

  Dumper.add_representer(str, text)
  return yaml.dump_all(documents, Dumper=Dumper, sort_keys=False, default_flow_style=False)
