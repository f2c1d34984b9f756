"""`sidrec submit`: start a run of a compiled pipeline on Kubeflow Pipelines or Vertex AI.

  sidrec submit PIPELINE_JSON --kfp-host URL [--experiment NAME] [--namespace NS]
  sidrec submit PIPELINE_JSON --vertex-project P --vertex-region R     (token: --access-token
                                                                        or $SIDREC_ACCESS_TOKEN)
  both: [--run-name N] [--param NAME=VALUE ...] [--pipeline-root URI] [--service-account SA]

PIPELINE_JSON is what `sidrec compile-kubeflow` writes: a PipelineJob (`displayName`,
`labels`, `pipelineSpec`, `runtimeConfig`), as TFX's KubeflowV2DagRunner compiles it.

Kubeflow Pipelines goes through the kfp SDK, `kfp.Client(host).create_run_from_pipeline_package`,
which speaks the KFP REST API v2beta1 (`GET /apis/v2beta1/healthz`, the experiment looked up
or created under `/apis/v2beta1/experiments`, `POST /apis/v2beta1/runs`). The SDK reads a bare
PipelineSpec from a .yaml file, not a PipelineJob, so the job's `pipelineSpec` is handed to it
as one (JSON is YAML) and the job's runtimeConfig becomes the run's pipeline root and
parameters.

Vertex AI Pipelines takes the PipelineJob itself: it is POSTed to
`{endpoint}/v1/projects/{project}/locations/{region}/pipelineJobs` with a bearer token (e.g.
`gcloud auth print-access-token`), the request google-cloud-aiplatform's `PipelineJob.submit()`
ends with, without the SDK's side work (it creates a default bucket and resolves credentials
itself); the runtime config follows that SDK's rules (`parameters` for schema 2.0.0 specs,
`parameterValues` after).

Every failure is a `SubmitError` with one line that names the endpoint.
"""
import argparse
import contextlib
import datetime
import io
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Any, Dict, List, NamedTuple, Optional

TOKEN_ENV = "SIDREC_ACCESS_TOKEN"
KFP_HEALTHZ = "/apis/v2beta1/healthz"
VERTEX_ENDPOINT = "https://{region}-aiplatform.googleapis.com"
VERTEX_CONSOLE = ("https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/runs/"
                  "{job_id}?project={project}")
TIMEOUT_SECONDS = 30

# Parameter types of a PipelineSpec's root inputDefinitions: `type` in schema 2.0.0 (what TFX
# compiles by default), `parameterType` from 2.1.0 on.
_INT = ("INT", "NUMBER_INTEGER")
_DOUBLE = ("DOUBLE", "NUMBER_DOUBLE")
_JSON = ("LIST", "STRUCT")


class SubmitError(Exception):
  """A submission that failed or cannot work: one line for the user."""


class Submitted(NamedTuple):
  run_id: str   # KFP run id / Vertex pipeline job resource name
  url: str      # where to watch it


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("pipeline_file", metavar="PIPELINE_JSON",
                      help="the PipelineJob JSON `sidrec compile-kubeflow` wrote")
  target = parser.add_mutually_exclusive_group(required=True)
  target.add_argument("--kfp-host", metavar="URL",
                      help="Kubeflow Pipelines API endpoint, e.g. http://localhost:8080 after "
                      "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`")
  target.add_argument("--vertex-project", metavar="PROJECT",
                      help="submit to Vertex AI Pipelines in this Google Cloud project")
  parser.add_argument("--vertex-region", metavar="REGION",
                      help="Vertex AI region, e.g. europe-west4 (required with --vertex-project)")
  parser.add_argument("--vertex-endpoint", metavar="URL",
                      help="Vertex AI API endpoint (default https://REGION-aiplatform."
                      "googleapis.com; e.g. a Private Service Connect endpoint)")
  parser.add_argument("--run-name", help="display name of the run (default: the pipeline's "
                      "name and the time; Kubeflow) / the pipeline's name (Vertex AI)")
  parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                      help="a runtime parameter the pipeline declares (repeatable); the "
                      "value is converted to the declared type")
  parser.add_argument("--pipeline-root", metavar="URI",
                      help="override the compiled pipeline root (runtimeConfig."
                      "gcsOutputDirectory)")
  parser.add_argument("--service-account",
                      help="Kubernetes service account (Kubeflow) / service account e-mail "
                      "(Vertex AI) the run's tasks run as")
  parser.add_argument("--experiment", help="Kubeflow experiment (created if missing; default "
                      "'Default')")
  parser.add_argument("--namespace", help="Kubeflow namespace (multi-user deployments)")
  parser.add_argument("--access-token", default=None,
                      help=f"bearer token (default ${TOKEN_ENV}); required for Vertex AI, e.g. "
                      "the output of `gcloud auth print-access-token`; optional for Kubeflow")


def submit_main(args: argparse.Namespace) -> int:
  """`sidrec submit`: prints the run and where to watch it; raises SubmitError."""
  parameters = _parse_pairs(args.param)
  token = args.access_token or os.environ.get(TOKEN_ENV) or None
  if args.kfp_host:
    if args.vertex_region or args.vertex_endpoint:
      raise SubmitError("--vertex-region / --vertex-endpoint go with --vertex-project, "
                        "not --kfp-host")
    submitted = submit_kfp(args.pipeline_file, args.kfp_host, parameters=parameters,
                           run_name=args.run_name, experiment=args.experiment,
                           namespace=args.namespace, service_account=args.service_account,
                           pipeline_root=args.pipeline_root, token=token)
    print(f"Run {submitted.run_id} created on Kubeflow Pipelines at {_kfp_host(args.kfp_host)}")
  else:
    if args.experiment or args.namespace:
      raise SubmitError("--experiment / --namespace are Kubeflow options, not Vertex AI ones")
    if not args.vertex_region:
      raise SubmitError("--vertex-project needs --vertex-region")
    submitted = submit_vertex(args.pipeline_file, args.vertex_project, args.vertex_region,
                              parameters=parameters, run_name=args.run_name, token=token,
                              service_account=args.service_account,
                              pipeline_root=args.pipeline_root, endpoint=args.vertex_endpoint)
    print(f"Pipeline job {submitted.run_id} created on Vertex AI Pipelines")
  print(f"  {submitted.url}")
  return 0


# ---------------------------------------------------------------------------------------------
# The PipelineJob file.

def load_pipeline_job(path: str) -> Dict[str, Any]:
  try:
    with open(path) as f:
      job = json.load(f)
  except (OSError, ValueError) as e:
    raise SubmitError(f"cannot read the pipeline {path}: {e}") from None
  if not isinstance(job, dict) or "pipelineSpec" not in job:
    raise SubmitError(f"{path} is not a compiled PipelineJob (no pipelineSpec): compile it "
                      "with `sidrec compile-kubeflow`")
  return job


def declared_parameters(job: Dict[str, Any]) -> Dict[str, str]:
  """{name: type} of the pipeline's runtime parameters (its root inputDefinitions)."""
  defs = job["pipelineSpec"].get("root", {}).get("inputDefinitions", {}).get("parameters", {})
  return {name: d.get("parameterType") or d.get("type") or "STRING" for name, d in defs.items()}


def runtime_parameters(job: Dict[str, Any], given: Dict[str, str]) -> Dict[str, Any]:
  """The compiled parameter values with `given` (NAME -> text) on top, as typed values."""
  types = declared_parameters(job)
  unknown = sorted(set(given) - set(types))
  if unknown:
    declared = ", ".join(sorted(types)) or "none"
    raise SubmitError(f"unknown pipeline parameter(s) {', '.join(unknown)} "
                      f"(the pipeline declares: {declared})")
  config = job.get("runtimeConfig", {})
  compiled = dict(config.get("parameterValues") or {})
  for name, value in (config.get("parameters") or {}).items():
    # Schema 2.0.0 wraps each value: {"intValue": "5"} (int64 as JSON text), {"stringValue"}.
    compiled[name] = next(iter(value.values())) if isinstance(value, dict) and value else value
  values = {name: _typed(name, v, types.get(name, "STRING")) for name, v in compiled.items()}
  values.update((name, _typed(name, text, types[name])) for name, text in given.items())
  return values


def _typed(name: str, text: Any, kind: str) -> Any:
  if not isinstance(text, str):
    return text
  try:
    if kind in _INT:
      return int(text)
    if kind in _DOUBLE:
      return float(text)
    if kind == "BOOLEAN":
      if text.lower() not in ("true", "false"):
        raise ValueError("expected true or false")
      return text.lower() == "true"
    if kind in _JSON:
      return json.loads(text)
  except ValueError as e:
    raise SubmitError(f"parameter {name} is {kind}: cannot use {text!r} ({e})") from None
  return text


def _parse_pairs(pairs: List[str]) -> Dict[str, str]:
  out = {}
  for pair in pairs:
    name, sep, value = pair.partition("=")
    if not sep or not name.strip():
      raise SubmitError(f"--param takes NAME=VALUE, got {pair!r}")
    out[name.strip()] = value
  return out


def _pipeline_root(job: Dict[str, Any], override: Optional[str], where: str) -> str:
  root = override or job.get("runtimeConfig", {}).get("gcsOutputDirectory", "")
  if "://" not in root:
    raise SubmitError(f"the pipeline root {root or '(none)'!r} is not remote storage that "
                      f"{where} can write: compile with --pipeline-root gs://... (or s3://, "
                      "minio:// on Kubeflow) or pass --pipeline-root")
  return root


def _schema_at_most_2_0(job: Dict[str, Any]) -> bool:
  version = job["pipelineSpec"].get("schemaVersion", "2.0.0")
  return tuple(int(p) for p in re.findall(r"\d+", version)[:3]) <= (2, 0, 0)


# ---------------------------------------------------------------------------------------------
# Kubeflow Pipelines (kfp SDK).

def _kfp_host(host: str) -> str:
  # As kfp.Client does: https:// when no scheme is given, no trailing slash.
  host = host if host.startswith("http") else "https://" + host
  return host.rstrip("/")


def submit_kfp(pipeline_file: str, host: str, *, parameters: Dict[str, str],
               run_name: Optional[str] = None, experiment: Optional[str] = None,
               namespace: Optional[str] = None, service_account: Optional[str] = None,
               pipeline_root: Optional[str] = None, token: Optional[str] = None) -> Submitted:
  job = load_pipeline_job(pipeline_file)
  host = _kfp_host(host)
  where = f"Kubeflow Pipelines at {host}"
  resolvers = sorted(label for label, executor in job["pipelineSpec"].get(
      "deploymentSpec", {}).get("executors", {}).items() if "resolver" in executor)
  if resolvers:
    # backend/src/v2/compiler/argocompiler: Resolver() returns "resolver not implemented yet".
    raise SubmitError(f"{pipeline_file} has resolver tasks ({resolvers[0]}, ...), which "
                      "Kubeflow Pipelines' open-source backend does not run: compile it with "
                      "`sidrec compile-kubeflow --no-baselines`, or submit to Vertex AI")
  values = runtime_parameters(job, parameters)
  root = _pipeline_root(job, pipeline_root, where)
  # kfp.Client's constructor asks healthz and, on an HTTP error, retries it 5 times 5 s apart
  # before a TimeoutError that names nothing: one probe first gives the user the real answer.
  _request("GET", host + KFP_HEALTHZ, None, token, where)
  run_name = run_name or "{} {:%Y-%m-%d %H-%M-%S}".format(
      job.get("displayName") or job["pipelineSpec"].get("pipelineInfo", {}).get("name", "sidrec"),
      datetime.datetime.now())
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # kfp.Client's FutureWarning about KFP server versions
    from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
    import kfp  # pylint: disable=g-import-not-at-top
    import kfp_server_api  # pylint: disable=g-import-not-at-top
    import urllib3  # pylint: disable=g-import-not-at-top
  try:
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
      warnings.simplefilter("ignore")
      spec_file = os.path.join(tmp, "pipeline.yaml")
      with open(spec_file, "w") as f:
        json.dump(job["pipelineSpec"], f)
      # kfp prints experiment and run links itself; the one line below replaces them.
      with contextlib.redirect_stdout(io.StringIO()):
        client = kfp.Client(host=host, existing_token=token, namespace=namespace or "kubeflow")
        result = client.create_run_from_pipeline_package(
            spec_file, arguments=values, run_name=run_name, experiment_name=experiment,
            namespace=namespace, pipeline_root=root, service_account=service_account)
  except kfp_server_api.ApiException as e:
    raise SubmitError(f"{where}: HTTP {e.status} {e.reason}: {_error_text(e.body)}") from None
  except (urllib3.exceptions.HTTPError, OSError) as e:
    raise SubmitError(f"cannot reach {where}: {_one_line(str(e))}") from None
  except (ValueError, json_format.ParseError) as e:  # e.g. a spec this kfp cannot parse
    raise SubmitError(f"{where}: {_one_line(str(e))}") from None
  ui = os.environ.get("KF_PIPELINES_UI_ENDPOINT", host).rstrip("/")
  return Submitted(result.run_id, f"{ui}/#/runs/details/{result.run_id}")


# ---------------------------------------------------------------------------------------------
# Vertex AI Pipelines (REST).

def vertex_request_body(job: Dict[str, Any], parameters: Dict[str, str],
                        run_name: Optional[str] = None, service_account: Optional[str] = None,
                        pipeline_root: Optional[str] = None) -> Dict[str, Any]:
  """The PipelineJob resource to create: the compiled job, its runtime config completed."""
  values = runtime_parameters(job, parameters)
  root = _pipeline_root(job, pipeline_root, "Vertex AI")
  if not root.startswith("gs://"):
    raise SubmitError(f"Vertex AI needs a gs:// pipeline root, not {root!r}")
  runtime_config = {"gcsOutputDirectory": root}
  if values:
    if _schema_at_most_2_0(job):
      types = declared_parameters(job)
      runtime_config["parameters"] = {name: _vertex_legacy_value(name, v, types.get(name))
                                      for name, v in values.items()}
    else:
      runtime_config["parameterValues"] = values
  body = {"displayName": run_name or job.get("displayName") or "sidrec",
          "pipelineSpec": job["pipelineSpec"], "runtimeConfig": runtime_config}
  if job.get("labels"):
    body["labels"] = job["labels"]
  if service_account:
    body["serviceAccount"] = service_account
  return body


def _vertex_legacy_value(name: str, value: Any, kind: Optional[str]) -> Dict[str, Any]:
  if kind in _INT:
    return {"intValue": str(int(value))}
  if kind in _DOUBLE:
    return {"doubleValue": float(value)}
  if kind in (None, "STRING"):
    return {"stringValue": value if isinstance(value, str) else json.dumps(value)}
  raise SubmitError(f"parameter {name}: type {kind} needs a pipeline spec schema 2.1.0 or later")


def submit_vertex(pipeline_file: str, project: str, region: str, *, parameters: Dict[str, str],
                  token: Optional[str], run_name: Optional[str] = None,
                  service_account: Optional[str] = None, pipeline_root: Optional[str] = None,
                  endpoint: Optional[str] = None) -> Submitted:
  endpoint = (endpoint or VERTEX_ENDPOINT.format(region=region)).rstrip("/")
  where = f"Vertex AI at {endpoint}"
  if not token:
    raise SubmitError(f"{where} needs an access token: --access-token or ${TOKEN_ENV} "
                      "(e.g. `export SIDREC_ACCESS_TOKEN=$(gcloud auth print-access-token)`)")
  job = load_pipeline_job(pipeline_file)
  body = vertex_request_body(job, parameters, run_name, service_account, pipeline_root)
  url = f"{endpoint}/v1/projects/{project}/locations/{region}/pipelineJobs"
  created = _request("POST", url, body, token, where)
  name = created.get("name", "") if isinstance(created, dict) else ""
  if not name:
    raise SubmitError(f"{where}: the answer names no pipeline job: {_one_line(str(created))}")
  job_id = name.rsplit("/", 1)[-1]
  return Submitted(name, VERTEX_CONSOLE.format(region=region, job_id=job_id, project=project))


# ---------------------------------------------------------------------------------------------
# HTTP.

def _request(method: str, url: str, body: Optional[Dict[str, Any]], token: Optional[str],
             where: str) -> Any:
  headers = {"Accept": "application/json"}
  data = None
  if body is not None:
    data = json.dumps(body).encode("utf-8")
    headers["Content-Type"] = "application/json"
  if token:
    headers["Authorization"] = f"Bearer {token}"
  request = urllib.request.Request(url, data=data, headers=headers, method=method)
  path = urllib.parse.urlsplit(url).path
  try:
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
      text = response.read().decode("utf-8", "replace")
  except urllib.error.HTTPError as e:
    detail = _error_text(e.read())
    raise SubmitError(f"{where}: HTTP {e.code} {e.reason} on {method} {path}: {detail}") from None
  except (urllib.error.URLError, OSError) as e:
    reason = getattr(e, "reason", e)
    raise SubmitError(f"cannot reach {where}: {_one_line(str(reason))}") from None
  try:
    return json.loads(text) if text.strip() else {}
  except ValueError:
    raise SubmitError(f"{where}: {method} {path} answered with no JSON: "
                      f"{_one_line(text)}") from None


def _error_text(body: Any) -> str:
  """The message of an error body: Google's {"error": {"message"}}, KFP's {"error_message"} /
  grpc-gateway's {"message"}, else the text itself."""
  if isinstance(body, bytes):
    body = body.decode("utf-8", "replace")
  try:
    parsed = json.loads(body) if isinstance(body, str) else body
  except ValueError:
    parsed = None
  if isinstance(parsed, dict):
    error = parsed.get("error")
    for candidate in ((error or {}).get("message") if isinstance(error, dict) else error,
                      parsed.get("error_message"), parsed.get("message")):
      if isinstance(candidate, str) and candidate.strip():
        return _one_line(candidate)
  return _one_line(str(body or "(no body)"))


def _one_line(text: str, limit: int = 300) -> str:
  text = " ".join(text.split())
  return text if len(text) <= limit else text[:limit - 3] + "..."
