"""Your own data: interactions and a catalog from CSV / TSV, Parquet or TFRecord files.

The contract is `contracts.config.FilesConfig` (README "Your own data", `sidrec data --help`).
The catalog is read first and whole (one row per item: id, text or a template over columns,
optional release time, title and "|"-joined genres). The interactions stream through batch by
batch (`tables.read_columns`): each batch is validated, and only what the split needs is kept,
as arrays: user index (int32), item index (int32), time (int64), rating or label (float32) and
one int32 code per declared user feature: 20 + 4F bytes per interaction plus the id tables.

Validation (strict by default, lenient drops and counts per reason), one line naming file,
line/row/record, column and fix: empty user or item id, unparsable or implausible time, label
not 0/1, rating not a number, an item missing from the catalog; in the catalog: empty id,
duplicate id (both rows named), empty text without brought embeddings, bad release time.

User features are categorical: a feature whose every value is a plain integer ("42", not "042")
is int64, any other is bytes, whatever the file format, so CSV and Parquet copies of the same
data give the same examples.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contracts import schema
from contracts.config import DataConfig, FilesConfig
from tfx_pipeline.data import dataset as dataset_lib
from tfx_pipeline.data import tables
from tfx_pipeline.data.errors import BadRowPolicy, DataError, DataValidationError

logger = logging.getLogger(__name__)

LENIENT_HINT = "--lenient"
_PLAIN_INT = re.compile(r"0|-?[1-9][0-9]{0,17}")
_ZONE = re.compile(r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$", re.IGNORECASE)


class _Checker:
  """Keep-mask over one batch; each check only looks at rows still kept."""

  def __init__(self, policy: BadRowPolicy, batch: tables.Batch, kind: str):
    self.policy, self.batch, self.kind = policy, batch, kind
    self.keep = np.ones(len(batch), dtype=bool)

  def __call__(self, bad, field: str, reason: str, problem, fix: str) -> None:
    bad = np.asarray(bad, dtype=bool) & self.keep
    self.keep &= self.policy.check(bad, path=self.batch.path, lines=self.batch.rows,
                                   field=field, reason=f"{self.kind}:{reason}",
                                   problem=problem, fix=fix, unit=self.batch.unit,
                                   lenient_hint=LENIENT_HINT,
                                   scope=f"in the same {len(self.batch):,} rows")


def load_files(data_config: DataConfig, text_required: bool = True) -> dataset_lib.Dataset:
  """Loads and validates `data_config.files`. `text_required`: False when embeddings are
  brought (EmbeddingConfig precomputed), so an item may come without text."""
  cfg = data_config.files
  start = time.time()
  policy = BadRowPolicy(lenient=data_config.lenient)
  items, info = _load_catalog(cfg, policy, text_required)
  interactions, users, features = _load_interactions(cfg, policy, items)
  logger.info("loaded %d interactions of %d users on %d catalog items in %.1fs",
              len(interactions), len(users), len(items), time.time() - start)
  threshold = cfg.positive_threshold if cfg.rating_column else 1.0
  return dataset_lib.Dataset(
      name="files", items=items, users=users, interactions=interactions,
      user_features=features, positive_threshold=threshold, dropped_rows=dict(policy.dropped),
      sources={"interactions": cfg.interactions, "catalog": cfg.catalog}, info=info)


def input_fingerprint(cfg: FilesConfig) -> List[List]:
  """[path, bytes, mtime ns] of every input file: what prepared data was made from."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = []
  for path, flag, what in ((cfg.interactions, "--interactions", "interactions"),
                           (cfg.catalog, "--catalog", "catalog")):
    for file in tables.list_files(path, what, flag):
      stat = tf.io.gfile.stat(file)
      out.append([file, int(stat.length), int(stat.mtime_nsec)])
  return out


# ------------------------------------------------------------------------------------ values
def _strings(column: pa.Array) -> Tuple[pa.Array, np.ndarray]:
  """(utf-8 string array, bool mask of null or empty values)."""
  if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
    try:
      column = pc.cast(column, pa.string())
    except pa.ArrowInvalid:
      column = pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())
  empty = pc.fill_null(pc.equal(pc.utf8_length(column), 0), True)
  return column, empty.to_numpy(zero_copy_only=False)


def _numbers(column: pa.Array) -> np.ndarray:
  """float64 values, NaN where null or not a number."""
  if pa.types.is_boolean(column.type) or pa.types.is_integer(column.type) or \
      pa.types.is_floating(column.type):
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
  text, _ = _strings(column)
  try:  # all numbers: Arrow's cast is ~10x faster than pandas'
    return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
  except pa.ArrowInvalid:
    pass
  return pd.to_numeric(pd.Series(text.to_numpy(zero_copy_only=False)), errors="coerce") \
      .to_numpy(dtype=np.float64)


def parse_times(column: pa.Array) -> np.ndarray:
  """Unix seconds (float64, NaN = unparsable) of unix-second numbers, Arrow timestamps or
  ISO-8601 strings (no zone = UTC); fractions of a second are kept, for the caller to refuse."""
  if pa.types.is_timestamp(column.type):
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[column.type.unit]
    ticks = pc.cast(column.cast(pa.timestamp(column.type.unit)), pa.int64())
    return ticks.to_numpy(zero_copy_only=False).astype(np.float64) / per_second
  if pa.types.is_date(column.type):
    return parse_times(pc.cast(column, pa.timestamp("s")))
  values = _numbers(column)
  numeric = (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
             or pa.types.is_boolean(column.type))
  todo = np.isnan(values) & ~numeric
  if todo.any():
    text = _strings(column)[0].to_numpy(zero_copy_only=False)
    index = np.flatnonzero(todo)
    # Zoned and zoneless strings apart: pandas would give the zoneless ones the zone of a
    # zoned string parsed with them.
    zoned = np.array([bool(t) and bool(_ZONE.search(t)) for t in text[index]], dtype=bool)
    for part in (index[zoned], index[~zoned]):
      if len(part):
        parsed = pd.to_datetime(pd.Series(text[part]), utc=True, format="ISO8601",
                                errors="coerce")
        ns = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        values[part] = np.where(parsed.isna().to_numpy(), np.nan, ns / 1e9)
  return values


class _Codes:
  """Growing value -> int code table (first appearance order)."""

  def __init__(self):
    self.table: Dict[str, int] = {}

  def encode(self, text: pa.Array) -> np.ndarray:
    encoded = pc.dictionary_encode(pc.fill_null(text, ""))
    mapping = np.fromiter((self.table.setdefault(v, len(self.table))
                           for v in encoded.dictionary.to_pylist()), dtype=np.int64)
    return mapping[encoded.indices.to_numpy(zero_copy_only=False)].astype(np.int32)

  def values(self) -> np.ndarray:
    return np.array(list(self.table), dtype=object)


def _feature_kind(values: np.ndarray) -> Tuple[str, np.ndarray]:
  """("int64", ints) when every value is a plain integer, else ("bytes", values)."""
  if len(values) and all(_PLAIN_INT.fullmatch(v) for v in values):
    return "int64", values.astype(np.int64)
  return "bytes", values


# ----------------------------------------------------------------------------------- catalog
def _load_catalog(cfg: FilesConfig, policy: BadRowPolicy, text_required: bool):
  id_column = cfg.catalog_item_column or cfg.item_column
  template_fields = _template_fields(cfg.text_template)
  text_columns = template_fields or [cfg.text_column]
  optional = [c for c in (cfg.release_column, cfg.title_column, cfg.genres_column) if c]
  required = [id_column] + [c for c in text_columns if c != id_column]
  ids: List[np.ndarray] = []
  parts: Dict[str, List[np.ndarray]] = {k: [] for k in ("text", "title", "genres", "year")}
  first_row: Dict[str, Tuple[str, str]] = {}
  max_year = datetime.datetime.now(datetime.timezone.utc).year + 5
  for batch in tables.read_columns(cfg.catalog, required + optional, what="catalog",
                                   flag="--catalog", fmt=cfg.format, delimiter=cfg.delimiter,
                                   header=cfg.header, policy=policy):
    for column in optional:  # a named optional column must exist too
      if column not in batch.columns:
        raise tables._missing(batch.path, "catalog", [column], list(batch.columns))  # pylint: disable=protected-access
    check = _Checker(policy, batch, "catalog")
    item, empty = _strings(batch.columns[id_column])
    item = item.to_numpy(zero_copy_only=False).astype(object)
    check(empty, id_column, "empty_item_id", "the item id is empty",
          "give every catalog row an item id")
    text = _item_text(cfg, batch, template_fields)
    if text_required:
      check(np.array([not t.strip() for t in text]), text_columns[0], "empty_text",
            lambda i: f"item {item[i]!r} has empty text and no embedding",
            "fill in its text, or bring embeddings for every item (--config embedding: "
            "encoder 'precomputed' with precomputed_path)")
    year = np.zeros(len(batch), dtype=np.int64)
    if cfg.release_column:
      raw = batch.columns[cfg.release_column]
      _, no_release = _strings(raw)
      year, bad = _release_years(raw, no_release, max_year)
      check(bad, cfg.release_column, "bad_release",
            lambda i: f"release {raw[i].as_py()!r} is neither a time nor a year",
            "write unix seconds, an ISO-8601 date or a four-digit year (empty if unknown)")
    where = [f"{batch.unit} {r}" for r in batch.rows]
    duplicate = np.zeros(len(batch), dtype=bool)
    for i, value in enumerate(item):
      if not check.keep[i] or empty[i]:
        continue
      if value in first_row:
        duplicate[i] = True
      else:
        first_row[value] = (batch.path, where[i])
    check(duplicate, id_column, "duplicate_item_id",
          lambda i: (f"item id {item[i]!r} is listed again (first at {first_row[item[i]][0]}, "
                     f"{first_row[item[i]][1]})"),
          "give every item exactly one catalog row (remove or merge the duplicate)")
    keep = check.keep
    ids.append(item[keep])
    parts["text"].append(text[keep])
    parts["year"].append(year[keep])
    for key, column in (("title", cfg.title_column), ("genres", cfg.genres_column)):
      values = (_strings(batch.columns[column])[0].to_numpy(zero_copy_only=False).astype(object)
                if column else None)
      parts[key].append(values[keep] if values is not None else text[keep] if key == "title"
                        else np.full(int(keep.sum()), "", dtype=object))
  item_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=object)
  if not len(item_ids):
    raise DataError(f"{cfg.catalog}: the catalog has no items; check --catalog")
  items = pd.DataFrame({
      "item_id": item_ids,
      "title": np.concatenate(parts["title"]).astype(object),
      "year": np.concatenate(parts["year"]).astype(np.int64),
      "genres": np.array(["" if g is None else g for g in np.concatenate(parts["genres"])],
                         dtype=object),
      "text": np.concatenate(parts["text"]).astype(object),
  })
  info = {"items_without_year": int((items["year"] == 0).sum())} if cfg.release_column else {}
  return items, info


def _template_fields(template: str) -> List[str]:
  return [f for f, _ in _template_parts(template) if f]


def _template_parts(template: str) -> List[Tuple[str, str]]:
  """[(column or "", literal text before it)] of a '{column}' template (FilesConfig checks it)."""
  import string  # pylint: disable=g-import-not-at-top
  return [(field or "", literal) for literal, field, _, _ in string.Formatter().parse(template)]


def _item_text(cfg: FilesConfig, batch: tables.Batch, fields: List[str]) -> np.ndarray:
  if not fields:
    return _strings(batch.columns[cfg.text_column])[0].to_numpy(
        zero_copy_only=False).astype(object)
  # Column by column, not str.format: a column named "1" (--no-header) is a name here.
  text = np.full(len(batch), "", dtype=object)
  for field, literal in _template_parts(cfg.text_template):
    text = text + literal
    if field:
      text = text + _strings(batch.columns[field])[0].to_numpy(zero_copy_only=False).astype(
          object)
  return text


def _release_years(raw: pa.Array, missing: np.ndarray, max_year: int):
  """(year per row, 0 = unknown; bad mask): a four-digit year, or the UTC year of a time."""
  value = parse_times(raw)
  is_year = np.isfinite(value) & (value == np.floor(value)) & (value >= 1000) & (value <= 9999)
  year = np.zeros(len(raw), dtype=np.int64)
  year[is_year] = value[is_year].astype(np.int64)
  is_time = np.isfinite(value) & ~is_year
  if is_time.any():
    year[is_time] = (value[is_time].astype("datetime64[s]").astype("datetime64[Y]")
                     .astype(np.int64) + 1970)
  bad = ~missing & (~np.isfinite(value) | (year > max_year) | (year < 0))
  year[bad | missing] = 0
  return year, bad


# ------------------------------------------------------------------------------ interactions
def _load_interactions(cfg: FilesConfig, policy: BadRowPolicy, items: pd.DataFrame):
  value_column = cfg.rating_column or cfg.label_column
  features = list(cfg.user_features)
  columns = [cfg.user_column, cfg.item_column, cfg.time_column, value_column] + features
  catalog = pd.Index(items["item_id"])
  users, feature_codes = _Codes(), {f: _Codes() for f in features}
  # Per-row arrays by role; a user feature's under "feature:<column>" (any name is allowed).
  out: Dict[str, List[np.ndarray]] = {k: [] for k in ["user", "item", "time", "value",
                                                      *(f"feature:{f}" for f in features)]}
  now = time.time() + 86400
  for batch in tables.read_columns(cfg.interactions, columns, what="interactions",
                                   flag="--interactions", fmt=cfg.format,
                                   delimiter=cfg.delimiter, header=cfg.header, policy=policy):
    check = _Checker(policy, batch, "interactions")
    col = batch.columns
    user, empty_user = _strings(col[cfg.user_column])
    check(empty_user, cfg.user_column, "empty_user_id", "the user id is empty",
          "give every interaction a user id")
    item, empty_item = _strings(col[cfg.item_column])
    check(empty_item, cfg.item_column, "empty_item_id", "the item id is empty",
          "give every interaction an item id")
    stamp = parse_times(col[cfg.time_column])
    raw_time = col[cfg.time_column]
    check(~np.isfinite(stamp), cfg.time_column, "bad_timestamp",
          lambda i: f"time {raw_time[i].as_py()!r} is neither unix seconds nor ISO-8601",
          "write unix seconds (e.g. 1700000000) or ISO-8601 (e.g. 2023-11-14T22:13:20Z)")
    check(np.isfinite(stamp) & (stamp != np.floor(stamp)), cfg.time_column, "bad_timestamp",
          lambda i: f"time {raw_time[i].as_py()!r} is not a whole second",
          "round times to whole seconds")
    check(np.isfinite(stamp) & ((stamp < 0) | (stamp > now)), cfg.time_column,
          "bad_timestamp", lambda i: _implausible_time(raw_time[i].as_py(), stamp[i], now),
          "write unix time in seconds since 1970-01-01 UTC (divide milliseconds by 1000)")
    value = _numbers(col[value_column])
    raw_value = col[value_column]
    if cfg.rating_column:
      check(~np.isfinite(value), value_column, "bad_rating",
            lambda i: f"rating {raw_value[i].as_py()!r} is not a number",
            f"write the rating as a number (label = rating >= {cfg.positive_threshold:g})")
    else:
      check(~np.isin(value, (0.0, 1.0)), value_column, "bad_label",
            lambda i: f"label {raw_value[i].as_py()!r} is not 0 or 1",
            "write 1 (positive) or 0 (negative), or name a rating column with "
            "--columns rating=COLUMN and --positive-threshold")
    item_text = item.to_numpy(zero_copy_only=False)
    item_index = catalog.get_indexer(item_text)
    check(item_index < 0, cfg.item_column, "unknown_item",
          lambda i: f"item {item_text[i]!r} is not in the catalog ({cfg.catalog})",
          "add the item to the catalog, or remove the interaction")
    keep = check.keep
    out["user"].append(users.encode(user.filter(pa.array(keep))))
    out["item"].append(item_index[keep].astype(np.int32))
    out["time"].append(stamp[keep].astype(np.int64))
    out["value"].append(value[keep].astype(np.float32))
    for f in features:
      out[f"feature:{f}"].append(
          feature_codes[f].encode(_strings(col[f])[0].filter(pa.array(keep))))
  n = sum(len(a) for a in out["item"])
  if n == 0:
    raise DataError(f"{cfg.interactions}: no valid interactions; check --interactions "
                    "and --columns")

  def column(key: str) -> np.ndarray:
    """One column's batches joined, and the batches let go (peak: the batches + one column)."""
    joined = np.concatenate(out[key])
    out[key] = []
    return joined

  frame = pd.DataFrame({"user_index": column("user").astype(np.int32, copy=False),
                        "item_index": column("item"), "timestamp": column("time"),
                        "rating": column("value")}, copy=False)
  declared = {}
  for f in features:
    kind, values = _feature_kind(feature_codes[f].values())
    name = schema.user_feature(f)
    declared[name] = kind
    frame[name] = pd.Categorical.from_codes(column(f"feature:{f}"),
                                            categories=pd.Index(values, dtype=values.dtype))
  return frame, pd.DataFrame({"user_id": users.values()}), declared


def _implausible_time(text, value: float, now: float) -> str:
  if value < 0:
    return f"time {text!r} is before 1970"
  hint = " (it looks like milliseconds)" if 0 <= value / 1000 <= now else ""
  return f"time {text!r} is in the future{hint}"
