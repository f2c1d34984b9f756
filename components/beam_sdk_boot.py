"""`sidrec-beam-boot`: a stand-in, for this machine, for the Beam SDK container's `boot`.

On Flink, Spark or Dataflow a Python SDK worker starts in the Beam SDK container
(apache/beam_python3.11_sdk, or an image built on it) through its Go binary
`/opt/apache/beam/boot`; a worker pool (`--environment_type=EXTERNAL`, the container started
with `--worker_pool`) runs `worker_pool_main --container_executable=/opt/apache/beam/boot`.
The boot asks the runner's provision service for the pipeline options, installs the staged
artifacts, and starts `sdk_worker_main` with the options in its environment; `sdk_worker_main`
then imports the `--beam_plugins` (components/beam_worker.py) before it runs a bundle.

Without a container executable Beam's worker pool starts a bare `SdkHarness`, which never
imports a plugin, so a worker pool on this machine would not take the path a cluster takes.
This module follows boot's contract (the same flags, the same environment for
`sdk_worker_main`) for a worker pool started with
`--container_executable=<venv>/bin/sidrec-beam-boot`. What it does not do: install staged
packages (the workers run in this virtualenv, which already has everything; a run that stages
packages fails here with their names instead of running without them).
"""
import argparse
import os
import sys
from typing import List, Optional


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
  # The flags Beam's worker pool passes to a container executable
  # (apache_beam/runners/worker/worker_pool_main.py, StartWorker).
  parser = argparse.ArgumentParser(prog="sidrec-beam-boot")
  parser.add_argument("--id", required=True)
  parser.add_argument("--provision_endpoint", required=True)
  parser.add_argument("--control_endpoint", default="")
  parser.add_argument("--logging_endpoint", default="")
  parser.add_argument("--artifact_endpoint", default="")
  parser.add_argument("--semi_persistent_directory", default="")
  return parser.parse_args(argv)


def worker_environment(args: argparse.Namespace, info) -> dict:
  """The environment boot gives `sdk_worker_main` (ProvisionInfo `info` from the runner)."""
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from apache_beam.portability.api import endpoints_pb2  # pylint: disable=g-import-not-at-top

  def descriptor(url: str) -> str:
    return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))

  env = dict(os.environ)
  env["WORKER_ID"] = args.id
  env["PIPELINE_OPTIONS"] = json_format.MessageToJson(info.pipeline_options)
  # The flags win over the provision info, as in boot.
  env["CONTROL_API_SERVICE_DESCRIPTOR"] = descriptor(
      args.control_endpoint or info.control_endpoint.url)
  env["LOGGING_API_SERVICE_DESCRIPTOR"] = descriptor(
      args.logging_endpoint or info.logging_endpoint.url)
  if args.semi_persistent_directory:
    env["SEMI_PERSISTENT_DIRECTORY"] = args.semi_persistent_directory
  return env


# Staged files boot only records or hands to the SDK (the main session), which need no install.
_NOT_PACKAGES = ("submission_environment_dependencies.txt", "pickled_main_session")


def retrieve_artifacts(channel, dependencies, staged_dir: str) -> list:
  """Writes every staged artifact to `staged_dir/<staged name>` as boot does; returns the
  names of those boot would install (packages, requirements), which this stand-in cannot."""
  from apache_beam.portability.api import beam_artifact_api_pb2  # pylint: disable=g-import-not-at-top
  from apache_beam.portability.api import beam_artifact_api_pb2_grpc  # pylint: disable=g-import-not-at-top
  from apache_beam.portability.api import beam_runner_api_pb2  # pylint: disable=g-import-not-at-top
  stub = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(channel)
  os.makedirs(staged_dir, exist_ok=True)
  to_install = []
  for i, dependency in enumerate(dependencies):
    role = beam_runner_api_pb2.ArtifactStagingToRolePayload()
    role.ParseFromString(dependency.role_payload)
    name = os.path.basename(role.staged_name) or f"artifact-{i}"
    with open(os.path.join(staged_dir, name), "wb") as f:
      for chunk in stub.GetArtifact(beam_artifact_api_pb2.GetArtifactRequest(artifact=dependency)):
        f.write(chunk.data)
    if name not in _NOT_PACKAGES:
      to_install.append(name)
  return to_install


def main(argv: Optional[List[str]] = None) -> None:
  args = _parse(argv)
  import tempfile  # pylint: disable=g-import-not-at-top
  import grpc  # pylint: disable=g-import-not-at-top
  from apache_beam.portability.api import beam_provision_api_pb2  # pylint: disable=g-import-not-at-top
  from apache_beam.portability.api import beam_provision_api_pb2_grpc  # pylint: disable=g-import-not-at-top
  if not args.semi_persistent_directory:
    args.semi_persistent_directory = tempfile.mkdtemp(prefix=f"beam-{args.id}-")
  with grpc.insecure_channel(args.provision_endpoint) as channel:
    stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
    # Boot names itself in the call's metadata; the runner keys its answer by it.
    info = stub.GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(),
                                 metadata=(("worker_id", args.id),)).info
  with grpc.insecure_channel(args.artifact_endpoint or args.provision_endpoint) as channel:
    to_install = retrieve_artifacts(
        channel, info.dependencies, os.path.join(args.semi_persistent_directory, "staged"))
  if to_install:
    sys.exit(f"sidrec-beam-boot: the pipeline staged packages to install ({to_install}); this "
             "stand-in for Beam's boot does not install them. Run without --setup_file / "
             "--extra_package / --requirements_file, or use the Beam SDK container.")
  os.execve(sys.executable, [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"],
            worker_environment(args, info))


if __name__ == "__main__":
  main()
