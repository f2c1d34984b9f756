"""DIR/report.json: what one `sidrec run` produced, read back from the pipeline's artifacts.

Sections: `split` (the cold-start split statistics), `embeddings` (the ItemEmbeddings artifact's
metadata), `components` (seconds per component, which were served from the cache). Later stages
add `codebooks` and `representations`.
"""
import json
import os
from typing import Dict, List, Optional

from components.serving_gate import spec as gate_spec

from contracts import alignment_io
from contracts import artifacts
from contracts import codebook_io
from contracts import config as config_lib
from contracts import embeddings_io
from contracts.files import atomic_write_text, exists, read_json
from contracts import semantic_ids_io
from contracts import trainer_io
from contracts.registry import codebook_methods
from contracts.registry import metrics as metric_registry




class RunArtifacts:
  """Output artifacts of the newest pipeline run in the SQLite MLMD store.

  Scoped to the run (cached executions included: TFX links a cache hit's outputs to the new
  run), so a report never shows an artifact of another run: after runs with seeds 0, 1 and
  then 0 again, the newest Model artifact is seed 1's, but this run used seed 0's.
  """

  def __init__(self, metadata_path: str, pipeline_name: str):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    self._pb = metadata_store_pb2
    self.pipeline_name = pipeline_name
    self.store = None
    if not os.path.exists(metadata_path):
      return
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    self.store = metadata_store.MetadataStore(connection)
    runs = self.store.get_contexts_by_type("pipeline_run")
    self._run_executions = set()
    if runs:
      run = max(runs, key=lambda r: (r.create_time_since_epoch, r.id))
      self._run_executions = {e.id for e in self.store.get_executions_by_context(run.id)}

  def artifacts(self, node_id: str, type_name: str) -> list:
    """Output artifacts of `type_name` that component `node_id` gave this run."""
    if self.store is None:
      return []
    node = self.store.get_context_by_type_and_name("node", f"{self.pipeline_name}.{node_id}")
    if node is None:
      return []
    executions = [e.id for e in self.store.get_executions_by_context(node.id)
                  if e.id in self._run_executions]
    ids = [ev.artifact_id for ev in self.store.get_events_by_execution_ids(executions)
           if ev.type == self._pb.Event.OUTPUT]
    wanted = self.store.get_artifact_type(type_name).id if ids else None
    return [a for a in self.store.get_artifacts_by_id(ids) if a.type_id == wanted]

  def uri(self, node_id: str, type_name: str) -> Optional[str]:
    found = self.artifacts(node_id, type_name)
    return found[-1].uri if found else None


def build_report(config: config_lib.PipelineConfig, split_stats: dict,
                 component_seconds: Dict[str, float], cached: List[str],
                 pipeline_seconds: float) -> dict:
  run = RunArtifacts(os.path.abspath(config.metadata_path), config.name)
  embeddings_uri = run.uri("ContentEmbedder", artifacts.ItemEmbeddings.TYPE_NAME)
  embeddings = (embeddings_io.read_metadata(embeddings_uri) or None) if embeddings_uri else None
  if embeddings is not None:
    embeddings = dict(embeddings, uri=embeddings_uri)
  return {
      "codebooks": codebook_section(config, run),
      "alignment": alignment_section(config, run),
      "representations": representation_section(config, run),
      "dataset": config.data.dataset,
      "config": json.loads(config.to_json()),
      "split": split_stats,
      "embeddings": embeddings,
      "components": {
          "seconds": {k: round(v, 2) for k, v in component_seconds.items()},
          "cached": cached,
          "pipeline_seconds": round(pipeline_seconds, 2),
      },
  }


# Metrics copied from each Codebook artifact's metrics.json into report.json.
CODEBOOK_REPORT_KEYS = (
    "levels", "codebook_size", "train_seconds", "relative_reconstruction_error",
    "unique_sid_ratio", "code_usage", "min_code_usage", "perplexity", "prefix_cosine",
    "prefix_cosine_increasing", "nmi", "one_hot_spectrum", "assign_items_per_second")


def codebook_section(config: config_lib.PipelineConfig, run: RunArtifacts) -> Dict[str, dict]:
  """`codebooks`: per codebook, the trainer's metrics and the assigner's collision statistics."""
  section = {}
  for method in tuple(config.codebook_methods) + config.aligned_codebooks():
    prefix = codebook_methods.component_prefix(method)
    codebook_uri = run.uri(f"{prefix}CodebookTrainer", artifacts.Codebook.TYPE_NAME)
    metrics = codebook_io.read_metrics(codebook_uri) if codebook_uri else None
    if metrics is None:
      continue
    entry = {k: metrics[k] for k in CODEBOOK_REPORT_KEYS if k in metrics}
    if "nmi" in metrics:
      entry["nmi_genre"] = metrics["nmi"]
    entry["uri"] = codebook_uri
    sids_uri = run.uri(f"{prefix}SemanticIdAssigner", artifacts.SemanticIds.TYPE_NAME)
    if sids_uri:
      entry["assignment"] = dict(semantic_ids_io.read_stats(sids_uri), uri=sids_uri)
    section[method] = entry
  return section


def alignment_section(config: config_lib.PipelineConfig,
                      run: RunArtifacts) -> Optional[dict]:
  """`alignment`: the ContentAligner's report (held-out R^2, fit items, penalty), or None when
  no representation is aligned."""
  if not config.needs_alignment():
    return None
  uri = run.uri("ContentAligner", artifacts.ItemEmbeddings.TYPE_NAME)
  report = alignment_io.read_report(uri) if uri else None
  if not report:
    return None
  section = dict(report, uri=uri, stages=alignment_stages(config))
  if "item_id_vocab" in config.representations:
    # Its Trainer is a listed representation's; only exporting the item table is alignment's.
    train = read_json(os.path.join(run.uri("ItemIdVocabTrainer", "ModelRun") or "",
                                   trainer_io.TRAIN_STATS_FILE)) or {}
    section["item_vectors_seconds"] = train.get("item_vectors_seconds")
  return section


def alignment_stages(config: config_lib.PipelineConfig) -> List[str]:
  """The component ids alignment adds to the DAG: the ContentAligner, each aligned codebook's
  trainer and assigner, and the item_id_vocab Trainer when that is not itself listed. Not the
  aligned representations' own Trainers and Evaluators (those any representation has)."""
  stages = ["ContentAligner"]
  for codebook in config.aligned_codebooks():
    prefix = codebook_methods.component_prefix(codebook)
    stages += [f"{prefix}CodebookTrainer", f"{prefix}SemanticIdAssigner"]
  if "item_id_vocab" not in config.representations:
    stages.append("ItemIdVocabTrainer")
  return stages


def _candidate_model_name(evaluation_uri: str) -> Optional[str]:
  """TFMA names the models "candidate" and "baseline" when the Evaluator had a baseline
  (the model already serving); None when it evaluated one unnamed model."""
  config = read_json(os.path.join(evaluation_uri, "eval_config.json")) or {}
  specs = config.get("evalConfig", {}).get("modelSpecs", [])
  names = [m.get("name") for m in specs if not m.get("isBaseline")]
  return names[0] if len(specs) > 1 and names and names[0] else None


def load_slice_metrics(evaluation_uri: str) -> Dict[tuple, Dict[str, float]]:
  """{slice key: {metric: value}} of the candidate model from an Evaluator's ModelEvaluation."""
  import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top
  result = tfma.load_eval_result(evaluation_uri,
                                 model_name=_candidate_model_name(evaluation_uri))
  out = {}
  for slice_key, metrics in result.slicing_metrics:
    values = metrics.get("", {}).get("", {})
    out[tuple(slice_key)] = {k: v["doubleValue"] for k, v in values.items()
                             if "doubleValue" in v}
  return out


def validation_failures(evaluation_uri: str) -> List[str]:
  """One line per threshold the candidate failed, e.g. `auc on item_cohort=new: 0.61 vs the
  baseline: change -0.012, allowed >= -0.002`; [] when it was blessed."""
  import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top
  if not exists(os.path.join(evaluation_uri, "validations.tfrecord")):
    return []
  result = tfma.load_validation_result(evaluation_uri)
  lines = []
  for per_slice in result.metric_validations_per_slice:
    where = ", ".join(f"{c.column}={c.bytes_value.decode() or c.int64_value}"
                      for c in per_slice.slice_key.single_slice_keys) or "overall"
    for failure in per_slice.failures:
      name = failure.metric_key.name
      threshold = failure.metric_threshold
      if failure.metric_key.is_diff:
        lines.append(f"{name} on {where}: change {failure.metric_value.double_value.value:+.5f}"
                     f" against the baseline, allowed >= "
                     f"{threshold.change_threshold.absolute.value:+.5f}")
      else:
        lines.append(f"{name} on {where}: {failure.metric_value.double_value.value:.5f}, "
                     f"allowed >= {threshold.value_threshold.lower_bound.value:.5f}")
  if not result.validation_ok and not lines:
    lines.append(result.missing_slices and "a gated slice is missing from the eval split"
                 or "TFMA's validation failed (see validations.tfrecord)")
  return lines


def _metric(slices, key, name) -> Optional[float]:
  value = slices.get(key, {}).get(name)
  return None if value is None or value != value else round(float(value), 5)  # NaN -> None


def reported_metrics(slices: Dict[tuple, Dict[str, float]]) -> Dict[str, object]:
  """The registry's reported figures (contracts/registry/metrics.py) from TFMA's slices."""
  out = {}
  for m in metric_registry.REPORTED:
    out[m.key] = (int(slices.get(m.slice, {}).get(m.tfma_name, 0)) if m.count
                  else _metric(slices, m.slice, m.tfma_name))
  return out


def representation_section(config: config_lib.PipelineConfig,
                           run: RunArtifacts) -> Dict[str, dict]:
  """`representations`: per item representation, TFMA metrics, training figures, push state."""
  from tfx_pipeline.pipeline import component_prefix, model_name
  section = {}
  for representation in config.representations:
    prefix = component_prefix(representation)
    evaluation_uri = run.uri(f"{prefix}Evaluator", "ModelEvaluation")
    if evaluation_uri is None:
      continue
    slices = load_slice_metrics(evaluation_uri)
    train = read_json(os.path.join(run.uri(f"{prefix}Trainer", "ModelRun") or "",
                                   trainer_io.TRAIN_STATS_FILE)) or {}
    blessing = run.artifacts(f"{prefix}Evaluator", "ModelBlessing")
    baseline_id = (blessing[-1].custom_properties["baseline_model_id"].int_value
                   if blessing and "baseline_model_id" in blessing[-1].custom_properties
                   else None)
    blessing = blessing[-1].uri if blessing else None
    gate_uri = run.uri(f"{prefix}ServingGate", "InfraBlessing")
    serving_check = (read_json(os.path.join(gate_uri, gate_spec.CHECK_RESULT_FILE))
                     if gate_uri else None)
    pushed = run.artifacts(f"{prefix}Pusher", "PushedModel")
    pushed_to = None
    if pushed and pushed[-1].custom_properties["pushed"].int_value:
      pushed_to = pushed[-1].custom_properties["pushed_destination"].string_value
    popularity = {
        dict(key)["item_popularity"]: {
            "auc": _metric(slices, key, "auc"), "gauc": _metric(slices, key, "gauc"),
            "eval_examples": int(slices[key].get("example_count", 0))}
        for key in slices if key and key[0][0] == "item_popularity"}
    section[representation] = {
        "model_name": model_name(representation),
        **reported_metrics(slices),
        "by_popularity": dict(sorted(popularity.items())),
        "table_rows": train.get("table_rows"),
        "train_examples": train.get("train_examples"),
        "train_seconds": train.get("train_seconds"),
        "train_examples_per_sec": train.get("train_examples_per_sec"),
        "train_input": train.get("input"),
        "seed": train.get("seed"),
        "blessed": bool(blessing and exists(os.path.join(blessing, "BLESSED"))),
        # The latest blessed model of the same representation, if there was one.
        "baseline_model_id": baseline_id,
        "failed_thresholds": validation_failures(evaluation_uri),
        "serving_check": None if serving_check is None else {
            "passed": exists(os.path.join(gate_uri, gate_spec.BLESSED_FILE)),
            "warmup_records": serving_check.get("warmup_records"),
            "records_answered": serving_check.get("records"),
            "error": serving_check.get("error")},
        "pushed_to": pushed_to,
        "evaluation_uri": evaluation_uri,
    }
  return section


REPORT_FILE = "report.json"


def write_report(report: dict, output_dir: str) -> str:
  path = os.path.join(output_dir, REPORT_FILE)
  atomic_write_text(path, json.dumps(report, indent=2, sort_keys=True))
  return path


def _fmt(value) -> str:
  return "-" if value is None else f"{value:.4f}"


def push_verdicts(representations: Dict[str, dict]) -> List[str]:
  """Why each model that was not pushed was not: the thresholds it failed (against the
  absolute bounds or the baseline) and the ServingGate's error."""
  lines = []
  for name, r in representations.items():
    if "pushed_to" not in r or r["pushed_to"]:
      continue
    reasons = list(r.get("failed_thresholds") or [])
    check = r.get("serving_check") or {}
    if check and not check.get("passed"):
      reasons.append(f"serving check: {check.get('error')}")
    lines.append(f"{name} not pushed: " + ("; ".join(reasons) or "no blessing"))
  return lines


def format_summary(report: dict) -> str:
  lines = []
  emb = report.get("embeddings")
  if emb:
    lines.append("\nItem embeddings")
    for key in ("encoder", "count", "dimension", "items_per_second", "norm_mean", "norm_min"):
      if key in emb:
        value = emb[key]
        value = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}" if isinstance(
            value, int) else value
        lines.append(f"  {key:<22} {value}")
  codebooks = report.get("codebooks") or {}
  if codebooks:
    lines.append("\nCodebooks (levels x codes: unique-SID ratio, min code usage, "
                 "rel. reconstruction error, prefix cosine by prefix length, seconds)")
    for method, m in codebooks.items():
      cos = ", ".join(f"{c:.2f}" if c is not None else "-" for c in m.get("prefix_cosine", []))
      rre = m.get("relative_reconstruction_error")
      lines.append(
          f"  {method:<9} {m.get('levels')} x {m.get('codebook_size')}: "
          f"unique {m.get('unique_sid_ratio', 0):.3f}, usage {m.get('min_code_usage', 0):.2f}, "
          f"rre {'-' if rre is None else f'{rre:.3f}'}, prefix cos [{cos}], "
          f"{m.get('train_seconds', 0):.1f}s")
  reps = report.get("representations") or {}
  if reps:
    lines.append("\nRanking (eval split; AUC pooled, GAUC = mean per-user AUC; new = items not "
                 "in train)")
    columns = metric_registry.TABLE
    widths = [max(7, len(m.label) + 2) for m in columns]
    lines.append(f"  {'representation':<32}"
                 + "".join(f"{m.label.lower():>{w}}" for m, w in zip(columns, widths))
                 + f"{'rows':>10}{'ex/s':>9}  blessed")
    for name, r in reps.items():
      rows = r.get("table_rows")
      speed = r.get("train_examples_per_sec")
      lines.append(f"  {name:<32}"
                   + "".join(f"{_fmt(r.get(m.key)):>{w}}" for m, w in zip(columns, widths))
                   + f"{'-' if rows is None else f'{rows:,}':>10}"
                   f"{'-' if speed is None else f'{speed:,.0f}':>9}  "
                   f"{'yes' if r.get('blessed') else 'NO'}")
    verdicts = push_verdicts(reps)
    if verdicts:
      lines += [""] + verdicts
  comps = report.get("components", {})
  if comps.get("cached"):
    lines.append(f"\nServed from cache: {', '.join(comps['cached'])}")
  return "\n".join(lines)
