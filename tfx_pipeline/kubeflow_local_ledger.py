"""The artifact ledger of `sidrec run-compiled` and the resolver queries it answers.

The KFP backend records every output artifact in its metadata store; a resolver task queries
that store (pipeline_spec.proto, `ResolverSpec.ArtifactQuerySpec`: "If no `in_context` filter is
set, the query will be scoped to the current pipeline context"; `limit` defaults to 1). Here
the store is `<pipeline root>/local_launcher_ledger.jsonl`, one JSON line per output artifact
of every task that finished under that root, in the order they were recorded (the newest
last; a query returns the newest match first). Artifact names are the ledger's ids as decimal
strings, as KFP's backend names a RuntimeArtifact by its MLMD id.

Only the query forms TFX 1.21's V2 compiler emits are evaluated
(tfx/orchestration/kubeflow/v2/step_builder.py): `AND`-joined clauses `schema_title="T"`,
`state=LIVE`, `metadata.K.number_value=N`, `name="..."` and `metadata.K.string_value="V"`
(the condition sidrec adds to scope a baseline to its representation,
kubeflow_v2_runner.scope_baseline_queries), where a `name` value may be the
placeholder `{{$.inputs.artifacts['I'].metadata['M']}}` (the latest-blessed-model resolver's
second step). Any other clause fails, naming the task. A placeholder whose input artifact or
metadata key is absent (the first run: no blessed model yet) resolves to nothing.
"""
import json
import os
import re
import threading
import time
from typing import Dict, List, Optional

from contracts import files

LEDGER_FILE = "local_launcher_ledger.jsonl"

_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}")
_CLAUSES = {
    "schema_title": re.compile(r'schema_title="([^"]+)"'),
    "state": re.compile(r"state=([A-Z_]+)"),
    "number": re.compile(r"metadata\.([A-Za-z0-9_]+)\.number_value=(-?[0-9]+(?:\.[0-9]+)?)"),
    "string": re.compile(r'metadata\.([A-Za-z0-9_]+)\.string_value="([^"]*)"'),
    "name": re.compile(r'name="([^"]*)"'),
}


class LaunchError(RuntimeError):
  """A task the launcher cannot run, or one that failed; the message names the task."""


def schema_title(artifact_type: dict) -> str:
  """`tfx.Examples` from an ArtifactTypeSchema as JSON (schemaTitle or instanceSchema)."""
  if "schemaTitle" in artifact_type:
    return artifact_type["schemaTitle"]
  match = re.search(r"^title:\s*(\S+)\s*$", artifact_type.get("instanceSchema", ""), re.M)
  return match.group(1) if match else "tfx.Artifact"


class Ledger:
  """Append-only record of the artifacts produced under one pipeline root."""

  def __init__(self, pipeline_root: str):
    self.path = os.path.join(pipeline_root, LEDGER_FILE)
    self.records: List[dict] = []
    if os.path.exists(self.path):
      with open(self.path) as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
      for number, line in enumerate(lines, 1):
        try:
          self.records.append(json.loads(line))
        except json.JSONDecodeError:
          # A run killed while it appended leaves a partial last line: that artifact's task
          # did not finish recording, so it is not in the ledger (its task runs again).
          if number < len(lines):
            raise LaunchError(f"{self.path} line {number} is not a ledger record; the ledger "
                              "is damaged: move it away to start the root afresh") from None
          # Rewritten without it, or the next record would be appended to the partial line.
          files.atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n"
                                                     for r in self.records))
    self._next_id = max((r["id"] for r in self.records), default=0) + 1
    # Tasks running at once take names from their own threads (kubeflow_local_launcher).
    self._names = threading.Lock()

  def new_name(self) -> str:
    """The name (id) an output artifact gets before its task runs."""
    with self._names:
      name = str(self._next_id)
      self._next_id += 1
    return name

  def record(self, pipeline: str, job: str, task: str, outputs: Dict[str, List[dict]]) -> None:
    """Appends a finished task's output artifacts (RuntimeArtifacts as JSON dicts)."""
    lines = []
    for key, artifacts in sorted(outputs.items()):
      for a in artifacts:
        record = {"id": int(a["name"]), "name": a["name"], "pipeline": pipeline, "job": job,
                  "task": task, "output": key, "schema_title": schema_title(a["type"]),
                  "type": a["type"], "uri": a["uri"], "metadata": a.get("metadata", {}),
                  "state": "LIVE", "create_time": time.time()}
        self.records.append(record)
        lines.append(json.dumps(record, sort_keys=True) + "\n")
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    with open(self.path, "a") as f:
      f.writelines(lines)

  def query(self, task: str, query: dict, pipeline: str, inputs: Dict[str, List[dict]]):
    """The artifacts a resolver's ArtifactQuerySpec selects, newest first, at most `limit`."""
    text = _substitute(query.get("filter", ""), inputs)
    if text is None:
      return []
    tests = [_clause_test(task, clause, query["filter"]) for clause in text.split(" AND ")]
    found = [r for r in reversed(self.records)
             if r["pipeline"] == pipeline and all(test(r) for test in tests)]
    return found[:int(query.get("limit") or 1)]


def _substitute(text: str, inputs: Dict[str, List[dict]]) -> Optional[str]:
  """The filter with its input placeholders filled in; None when one has no value."""
  missing = []

  def value(match):
    artifacts = inputs.get(match.group(1)) or []
    metadata = artifacts[0].get("metadata", {}) if artifacts else {}
    if match.group(2) not in metadata:
      missing.append(match.group(0))
      return ""
    return str(metadata[match.group(2)])

  text = _PLACEHOLDER.sub(value, text)
  return None if missing else text


def _clause_test(task: str, clause: str, full_filter: str):
  clause = clause.strip()
  kinds = {kind: pattern.fullmatch(clause) for kind, pattern in _CLAUSES.items()}
  if kinds["schema_title"]:
    title = kinds["schema_title"].group(1)
    return lambda r: r["schema_title"] == title
  if kinds["state"]:
    state = kinds["state"].group(1)
    return lambda r: r["state"] == state
  if kinds["number"]:
    key, number = kinds["number"].group(1), float(kinds["number"].group(2))
    return lambda r: (isinstance(r["metadata"].get(key), (int, float))
                      and not isinstance(r["metadata"].get(key), bool)
                      and float(r["metadata"][key]) == number)
  if kinds["string"]:
    key, text = kinds["string"].group(1), kinds["string"].group(2)
    return lambda r: r["metadata"].get(key) == text
  if kinds["name"]:
    name = kinds["name"].group(1)
    return lambda r: r["name"] == name
  raise LaunchError(f"task {task}: the local launcher cannot evaluate the artifact query clause "
                    f"{clause!r} (filter {full_filter!r})")


def check(task: str, resolver_spec: dict) -> None:
  """Fails, naming the task, on a query the ledger cannot evaluate (before anything runs)."""
  for query in resolver_spec.get("outputArtifactQueries", {}).values():
    for clause in query.get("filter", "").split(" AND "):
      _clause_test(task, clause, query.get("filter", ""))


def resolve(task: str, resolver_spec: dict, component: dict, ledger: Ledger, pipeline: str,
            inputs: Dict[str, List[dict]]) -> Dict[str, List[dict]]:
  """A resolver task's outputs: each output key's query against the ledger, typed as the
  component declares the output."""
  outputs = {}
  declared = component.get("outputDefinitions", {}).get("artifacts", {})
  for key, query in sorted(resolver_spec.get("outputArtifactQueries", {}).items()):
    if key not in declared:
      raise LaunchError(f"task {task}: resolver query for undeclared output {key!r}")
    outputs[key] = [
        {"name": r["name"], "uri": r["uri"], "type": declared[key]["artifactType"],
         "metadata": dict(r["metadata"])}
        for r in ledger.query(task, query, pipeline, inputs)]
  return outputs
