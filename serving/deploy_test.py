"""The Dockerfile and kubernetes.yaml written for a serving directory agree with its models."""
import json
import os
import shlex

import pytest
import yaml

from contracts import serving_api as api
from serving import deploy
from serving import model_config
from serving import server as local_server
from tests.fixtures import serving_models


@pytest.fixture(scope="module")
def serving_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("serving")
  for version in (1, 2, 3):
    serving_models.write_stand_in_ranker(str(root / "ranker"), version, warmup=False)
  serving_models.write_stand_in_ranker(str(root / "alpha"), 7, warmup=False)
  # A version still being copied: not a model version yet, never baked into an image.
  serving_models.write_stand_in_ranker(str(root / "ranker"), 4, warmup=False, half_written=True)
  model_config.write_serving_configs(
      str(root), model_config.BatchingParameters(max_batch_size=32, num_batch_threads=4))
  return root


def _dockerfile(path):
  """[(instruction, arguments)] of a Dockerfile, comments dropped."""
  out = []
  for line in open(path).read().splitlines():
    if line.strip() and not line.startswith("#"):
      instruction, _, rest = line.partition(" ")
      out.append((instruction, rest))
  return out


def _flag(args, name):
  values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
  assert len(values) == 1, (name, args)
  return values[0]


def _context(dockerfile):
  """The build context the Dockerfile's header names (`docker build -f F -t T CONTEXT`)."""
  line = next(l for l in open(dockerfile) if "docker build" in l)
  return shlex.split(line.lstrip("# "))[-1]


def test_dockerfile_bakes_the_served_versions_and_configs_into_the_stock_image(serving_dir):
  paths = deploy.write_deploy_files(str(serving_dir))
  out_dir = serving_dir / deploy.DEFAULT_OUT_DIR
  assert sorted(os.path.basename(p) for p in paths) == sorted(
      [api.MODELS_CONFIG_FILE, api.BATCHING_PARAMETERS_FILE, "Dockerfile", "kubernetes.yaml"])
  assert not [n for n in os.listdir(out_dir) if n.startswith(".")]  # no temporary files left
  steps = _dockerfile(out_dir / "Dockerfile")
  assert steps[0] == ("FROM", "tensorflow/serving:2.19.1")
  assert ("EXPOSE", f"{api.GRPC_PORT} {api.REST_PORT}") in steps
  context = _context(out_dir / "Dockerfile")
  copies = dict(json.loads(args) for op, args in steps if op == "COPY")
  for source in copies:
    assert os.path.exists(os.path.join(context, source)), source
  # The container's models.config: base paths where the versions are copied to.
  config = model_config.read_model_server_config(str(out_dir / api.MODELS_CONFIG_FILE))
  base_paths = {m.name: m.base_path for m in config.model_config_list.config}
  assert base_paths == {"alpha": "/models/serving/alpha", "ranker": "/models/serving/ranker"}
  baked = sorted(dst for dst in copies.values() if dst.startswith("/models/serving/"))
  # latest{2}: ranker's versions 2 and 3 (not 1, not the half-written 4), alpha's 7.
  assert baked == ["/models/serving/alpha/7", "/models/serving/ranker/2",
                   "/models/serving/ranker/3"]
  labels = {m.name: dict(m.version_labels) for m in config.model_config_list.config}
  assert labels["ranker"] == {api.CANARY_LABEL: 3, api.STABLE_LABEL: 2}
  # The command reads the files the COPY lines put in place.
  entrypoint = json.loads(next(a for op, a in steps if op == "ENTRYPOINT"))
  args = json.loads(next(a for op, a in steps if op == "CMD"))
  assert entrypoint == [local_server.STOCK_BINARY]
  destination = {os.path.basename(src): dst for src, dst in copies.items()}
  assert _flag(args, "model_config_file") == destination[api.MODELS_CONFIG_FILE]
  assert _flag(args, "batching_parameters_file") == destination[api.BATCHING_PARAMETERS_FILE]
  assert _flag(args, "port") == str(api.GRPC_PORT)
  assert _flag(args, "rest_api_port") == str(api.REST_PORT)
  assert _flag(args, "enable_batching") == "true"
  assert int(_flag(args, "file_system_poll_wait_seconds")) >= 1
  # The serving directory's batching parameters, not the defaults.
  batching = model_config.BatchingParameters.read(str(out_dir / api.BATCHING_PARAMETERS_FILE))
  assert (batching.max_batch_size, batching.num_batch_threads) == (32, 4)
  # The serving directory's own models.config (local paths, for the local server) is untouched.
  local = model_config.read_model_server_config(str(serving_dir / api.MODELS_CONFIG_FILE))
  assert local.model_config_list.config[0].base_path.startswith(str(serving_dir))


def test_kubernetes_manifest_serves_the_models_from_the_configured_paths(serving_dir):
  deploy.write_deploy_files(str(serving_dir), name="recs")
  out_dir = serving_dir / deploy.DEFAULT_OUT_DIR
  documents = list(yaml.safe_load_all(open(out_dir / "kubernetes.yaml")))
  by_kind = {d["kind"]: d for d in documents}
  assert sorted(by_kind) == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service"]
  pod = by_kind["Deployment"]["spec"]["template"]["spec"]
  (container,) = pod["containers"]
  assert container["image"] == "tensorflow/serving:2.19.1"
  assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
      "grpc": api.GRPC_PORT, "http": api.REST_PORT}
  assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models/alpha",
                                                    "port": api.REST_PORT}
  assert container["livenessProbe"]["tcpSocket"] == {"port": api.GRPC_PORT}
  assert container["resources"]["requests"] and container["resources"]["limits"]
  # Args as in the Dockerfile (plus rereading the ConfigMap when labels move).
  steps = _dockerfile(out_dir / "Dockerfile")
  docker_args = json.loads(next(a for op, a in steps if op == "CMD"))
  assert container["args"][:len(docker_args)] == docker_args
  assert container["command"] == [local_server.STOCK_BINARY]
  # The ConfigMap holds the container's models.config; the mounts put the files and the
  # models where the args and that config say.
  config_map = by_kind["ConfigMap"]
  config_text = config_map["data"][api.MODELS_CONFIG_FILE]
  assert config_text == open(out_dir / api.MODELS_CONFIG_FILE).read()
  mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
  volumes = {v["name"]: v for v in pod["volumes"]}
  config_volume = next(n for n, v in volumes.items()
                       if v.get("configMap", {}).get("name") == config_map["metadata"]["name"])
  for flag, key in (("model_config_file", api.MODELS_CONFIG_FILE),
                    ("batching_parameters_file", api.BATCHING_PARAMETERS_FILE)):
    assert _flag(container["args"], flag) == f"{mounts[config_volume]}/{key}"
    assert key in config_map["data"]
  model_volume = next(n for n, v in volumes.items() if "persistentVolumeClaim" in v)
  claim = volumes[model_volume]["persistentVolumeClaim"]["claimName"]
  assert claim == by_kind["PersistentVolumeClaim"]["metadata"]["name"]
  config = model_config.read_model_server_config(str(out_dir / api.MODELS_CONFIG_FILE))
  for model in config.model_config_list.config:
    assert os.path.dirname(model.base_path) == mounts[model_volume]
  service = by_kind["Service"]
  # The Service reaches the Deployment's pods.
  pod_labels = by_kind["Deployment"]["spec"]["template"]["metadata"]["labels"]
  assert service["spec"]["selector"].items() <= pod_labels.items()
  assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
      "grpc": (api.GRPC_PORT, api.GRPC_PORT), "http": (api.REST_PORT, api.REST_PORT)}


def test_out_dir_outside_the_serving_dir_widens_the_build_context(serving_dir, tmp_path):
  out_dir = tmp_path / "deploy_elsewhere"
  deploy.write_deploy_files(str(serving_dir), out_dir=str(out_dir))
  context = _context(out_dir / "Dockerfile")
  assert os.path.commonpath([context, str(serving_dir)]) == context
  for op, args in _dockerfile(out_dir / "Dockerfile"):
    if op == "COPY":
      source, _ = json.loads(args)
      assert os.path.exists(os.path.join(context, source)), source


def test_an_empty_serving_dir_is_refused_with_the_fix(tmp_path):
  with pytest.raises(ValueError, match="push a model first"):
    deploy.write_deploy_files(str(tmp_path))
