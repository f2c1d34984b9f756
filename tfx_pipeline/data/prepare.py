"""`prepare_data`: load -> validate -> cold-start split -> tf.Examples, written atomically.

Output (into `output_dir or config.data_dir`):
  interactions/train/part-*.tfrecord.gz, interactions/eval/part-*.tfrecord.gz,
  catalog/items/part-*.tfrecord.gz, split_stats.json,
  (synthetic only) synthetic_embeddings.npy + synthetic_embedding_ids.txt.

Atomicity: everything is written into a hidden temp directory beside the output
(`.<name>.tmp-<pid>-<random>`), then the previous output (if any) is renamed aside, the temp dir
renamed into place and the old one deleted. A failed run removes its temp dir and leaves the
previous output untouched; leftovers of a killed run (dead pid) are cleaned up by the next run.
An existing non-empty directory that is not a previous output (no split_stats.json) is never
replaced.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from contracts.config import DataConfig, PipelineConfig
from contracts import schema
from tfx_pipeline.data import checks
from tfx_pipeline.data import writer
from tfx_pipeline.data.dataset import Dataset
from tfx_pipeline.data.errors import DataError
from tfx_pipeline.data.files import load_files
from tfx_pipeline.data.movielens import load_movielens
from tfx_pipeline.data.split import compute_split_stats, split_dataset
from tfx_pipeline.data.synthetic import SyntheticData, generate_synthetic, write_synthetic_embeddings

logger = logging.getLogger(__name__)


def load_dataset(data_config: DataConfig, path: Optional[str] = None,
                 text_required: bool = True) -> Tuple[Dataset, Optional[SyntheticData]]:
  """The validated dataset named by `data_config.dataset` (+ generator truth if synthetic).

  `path` overrides the MovieLens directory (the installed package by default);
  `text_required` False lets your own catalog's items come without text (brought embeddings).
  """
  if data_config.dataset == "synthetic":
    data = generate_synthetic(data_config.synthetic, data_config)
    return data.dataset, data
  if data_config.dataset == "files":
    return load_files(data_config, text_required=text_required), None
  return load_movielens(data_config.dataset, data_config, path=path), None


def synthetic_embeddings_absent(config: PipelineConfig) -> bool:
  """False for the synthetic generator's own embeddings, which preparation writes."""
  return not (config.data.dataset == "synthetic" and os.path.basename(
      config.embedding.precomputed_path) == schema.SYNTHETIC_EMBEDDINGS_FILE)


def prepare_data(config: PipelineConfig, output_dir: Optional[str] = None,
                 source_dir: Optional[str] = None) -> Dict:
  """Prepares the dataset of `config.data`, split by `config.split`. Returns split stats.

  Args:
    config: the pipeline config (reads `data` and `split`).
    output_dir: where to write; default `config.data_dir`.
    source_dir: MovieLens directory override (tests); default the installed package.
  """
  start = time.time()
  out = os.path.abspath(output_dir or config.data_dir)
  brought = config.embedding.encoder == "precomputed" and synthetic_embeddings_absent(config)
  dataset, synthetic = load_dataset(config.data, source_dir, text_required=not brought)
  loaded = time.time()
  checks.check_catalog_size(dataset, config)
  if brought:
    checks.check_brought_embeddings(dataset, config)
  split = split_dataset(dataset, config.split)
  stats = compute_split_stats(dataset, split, config.split)
  checks.check_split(dataset, stats, config)
  stats.update({k: v for k, v in dataset.info.items() if k not in stats})
  stats["sources"] = dict(dataset.sources)
  stats["user_features"] = dict(dataset.user_features)

  with atomic_directory(out) as tmp:
    encoder = writer.InteractionEncoder(dataset, split, config.split.history_length)
    train_seen = np.ones(len(split.train_rows), dtype=bool)  # train examples are "seen"
    shards = {
        "train": writer.write_examples(
            os.path.join(tmp, schema.TRAIN_DIR),
            writer.interaction_batches(encoder, split.train_rows, train_seen),
            len(split.train_rows)),
        "eval": writer.write_examples(
            os.path.join(tmp, schema.EVAL_DIR),
            writer.interaction_batches(encoder, split.eval_rows, split.eval_seen),
            len(split.eval_rows)),
        "catalog": writer.write_examples(
            os.path.join(tmp, schema.CATALOG_DIR),
            writer.catalog_batches(dataset, dataset.first_seen()), dataset.num_items),
    }
    stats["shards"] = {k: len(v) for k, v in shards.items()}
    if synthetic is not None:
      write_synthetic_embeddings(synthetic, tmp)
      stats["embedding_dim"] = synthetic.config.embedding_dim
    stats["load_seconds"] = round(loaded - start, 2)
    stats["prepare_seconds"] = round(time.time() - start, 2)
    stats["output_dir"] = out
    with open(os.path.join(tmp, schema.SPLIT_STATS_FILE), "w", encoding="utf-8") as f:
      json.dump(stats, f, indent=2, sort_keys=False)
      f.write("\n")
  logger.info("prepared %s into %s in %.1fs\n%s", dataset.name, out, time.time() - start,
              format_split_stats(stats))
  return stats


def load_split_stats(data_dir: str) -> Dict:
  with open(os.path.join(data_dir, schema.SPLIT_STATS_FILE), encoding="utf-8") as f:
    return json.load(f)


# ------------------------------------------------------------------------------------------
_STAT_ROWS = (
    ("dataset", "dataset"),
    ("split_rule", "split rule"),
    ("split_rule_detail", "new-item rule"),
    ("time_cut_utc", "time cut"),
    ("interactions", "interactions"),
    ("train_examples", "train examples"),
    ("eval_examples", "eval examples"),
    ("new_item_eval_examples", "  new-item eval examples"),
    ("seen_item_eval_examples", "  seen-item eval examples"),
    ("items", "items (catalog)"),
    ("train_items", "items in train"),
    ("rule_new_items", "items held out by the rule"),
    ("new_items", "new items in eval"),
    ("users", "users"),
    ("train_positive_rate", "train positive rate"),
    ("eval_positive_rate", "eval positive rate"),
    ("new_item_eval_positive_rate", "new-item eval positive rate"),
    ("history_length", "history length"),
    ("user_features", "user features"),
    ("items_without_year", "items without year"),
    ("prepare_seconds", "prepare seconds"),
)


def format_split_stats(stats: Dict) -> str:
  """A readable, aligned two-column table of the split statistics."""
  rows = []
  for key, label in _STAT_ROWS:
    if key not in stats or stats[key] is None:
      continue
    value = stats[key]
    if key == "time_cut_utc" and "time_cut" in stats:
      value = f"{value} ({stats['time_cut']})"
    rows.append((label, f"{value:.1f}" if key.endswith("seconds") else _fmt(value)))
  dropped = stats.get("dropped_rows") or {}
  rows.append(("dropped rows", _fmt(sum(dropped.values())) if dropped else "0"))
  for reason, count in sorted(dropped.items()):
    rows.append((f"  {reason}", _fmt(count)))
  width = max(len(label) for label, _ in rows)
  vwidth = max(len(v) for _, v in rows if v.replace(",", "").replace(".", "").isdigit()) \
      if any(v.replace(",", "").replace(".", "").isdigit() for _, v in rows) else 0
  lines = []
  for label, value in rows:
    numeric = value.replace(",", "").replace(".", "").isdigit()
    lines.append(f"{label:<{width}}  {value:>{vwidth}}" if numeric else f"{label:<{width}}  {value}")
  return "\n".join(lines)


def _fmt(value) -> str:
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, int):
    return f"{value:,}"
  if isinstance(value, dict):
    return ", ".join(f"{k} ({v})" for k, v in value.items()) or "none"
  if isinstance(value, float):
    return f"{value:.4f}" if value < 10 else f"{value:,.1f}"
  return str(value)


# ------------------------------------------------------------------------------------------
_LEFTOVER = re.compile(r"^\.(?P<base>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[A-Za-z0-9_]+$")


@contextlib.contextmanager
def atomic_directory(out: str) -> Iterator[str]:
  """Yields a temp dir beside `out`; on success it replaces `out`, on failure it is removed."""
  out = os.path.abspath(out)
  parent, base = os.path.dirname(out), os.path.basename(out)
  os.makedirs(parent, exist_ok=True)
  _clean_leftovers(parent, base)
  if (os.path.isdir(out) and os.listdir(out)
      and not os.path.exists(os.path.join(out, schema.SPLIT_STATS_FILE))):
    raise DataError(f"refusing to replace {out}: it is not empty and holds no "
                    f"{schema.SPLIT_STATS_FILE}, so it is not a previous prepare_data output; "
                    "choose another output directory or empty it")
  if os.path.exists(out) and not os.path.isdir(out):
    raise DataError(f"{out} exists and is not a directory")
  tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-{os.getpid()}-", dir=parent)
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the output is a normal directory
  try:
    yield tmp
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  if os.path.exists(out):
    old = tempfile.mkdtemp(prefix=f".{base}.old-{os.getpid()}-", dir=parent)
    os.rmdir(old)
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
  else:
    os.rename(tmp, out)


def _clean_leftovers(parent: str, base: str) -> None:
  """Removes temp dirs of dead runs; restores an old output a killed run had renamed aside."""
  for name in os.listdir(parent):
    match = _LEFTOVER.match(name)
    if not match or match.group("base") != base or _pid_alive(int(match.group("pid"))):
      continue
    path = os.path.join(parent, name)
    out = os.path.join(parent, base)
    if match.group("kind") == "old" and not os.path.exists(out):
      logger.warning("restoring %s from %s (a previous run was interrupted)", out, path)
      os.rename(path, out)
    else:
      logger.info("removing leftover %s of an interrupted run", path)
      shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
  if pid == os.getpid():
    return True
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True
