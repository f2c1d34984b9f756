"""DIR/report.json: what one `sidrec run` produced, read back from the pipeline's artifacts.

Sections: `split` (the cold-start split statistics), `embeddings` (the ItemEmbeddings artifact's
metadata), `components` (seconds per component, which were served from the cache). Later stages
add `codebooks` and `representations`.
"""
import json
import os
import tempfile
from typing import Dict, List, Optional

from tfx_pipeline import config as config_lib


def atomic_write_text(path: str, text: str) -> None:
  """Writes a file so that readers see the old content or the new one, never a torn one."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path), dir=directory)
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def latest_artifact_uri(metadata_path: str, type_name: str,
                        producer: Optional[str] = None) -> Optional[str]:
  """URI of the newest LIVE artifact of `type_name` in the SQLite MLMD store."""
  from ml_metadata import metadata_store
  from ml_metadata.proto import metadata_store_pb2
  if not os.path.exists(metadata_path):
    return None
  connection = metadata_store_pb2.ConnectionConfig()
  connection.sqlite.filename_uri = metadata_path
  connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  store = metadata_store.MetadataStore(connection)
  artifacts = [a for a in store.get_artifacts_by_type(type_name)
               if a.state == metadata_store_pb2.Artifact.LIVE]
  if producer:
    artifacts = [a for a in artifacts if producer in a.uri]
  if not artifacts:
    return None
  return max(artifacts, key=lambda a: (a.create_time_since_epoch, a.id)).uri


def _read_json(path: str) -> Optional[dict]:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def build_report(config: config_lib.PipelineConfig, split_stats: dict,
                 component_seconds: Dict[str, float], cached: List[str],
                 pipeline_seconds: float) -> dict:
  metadata_path = os.path.abspath(config.metadata_path)
  embeddings_uri = latest_artifact_uri(metadata_path, "sidrec.ItemEmbeddings")
  embeddings = _read_json(os.path.join(embeddings_uri, "metadata.json")) if embeddings_uri else None
  if embeddings is not None:
    embeddings = dict(embeddings, uri=embeddings_uri)
  return {
      "codebooks": codebook_section(config, metadata_path),
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


def codebook_section(config: config_lib.PipelineConfig, metadata_path: str) -> Dict[str, dict]:
  """`codebooks`: per method, the trainer's metrics and the assigner's collision statistics."""
  from tfx_pipeline.pipeline import CODEBOOK_COMPONENT_PREFIX
  section = {}
  for method in config.codebook_methods:
    prefix = CODEBOOK_COMPONENT_PREFIX[method]
    codebook_uri = latest_artifact_uri(metadata_path, "sidrec.Codebook",
                                       producer=f"/{prefix}CodebookTrainer/")
    metrics = _read_json(os.path.join(codebook_uri, "metrics.json")) if codebook_uri else None
    if metrics is None:
      continue
    entry = {k: metrics[k] for k in CODEBOOK_REPORT_KEYS if k in metrics}
    if "nmi" in metrics:
      entry["nmi_genre"] = metrics["nmi"]
    entry["uri"] = codebook_uri
    sids_uri = latest_artifact_uri(metadata_path, "sidrec.SemanticIds",
                                   producer=f"/{prefix}SemanticIdAssigner/")
    if sids_uri:
      entry["assignment"] = _read_json(os.path.join(sids_uri, "stats.json"))
      entry["assignment"]["uri"] = sids_uri
    section[method] = entry
  return section


def write_report(report: dict, output_dir: str) -> str:
  path = os.path.join(output_dir, "report.json")
  atomic_write_text(path, json.dumps(report, indent=2, sort_keys=True))
  return path


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
  comps = report.get("components", {})
  if comps.get("cached"):
    lines.append(f"\nServed from cache: {', '.join(comps['cached'])}")
  return "\n".join(lines)
