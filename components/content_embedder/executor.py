"""ContentEmbedder executor: catalog Examples -> ItemEmbeddings, as one Beam pipeline.

Graph (built on `self._make_beam_pipeline()`, so the TFX pipeline's `beam_pipeline_args` choose
the runner: DirectRunner locally, Dataflow/Flink on Kubeflow):

  catalog split 'items' (tf.Examples item_id, text) --ReadAllFromTFRecord--> (item_id, text)
    minilm:       --BatchElements--> EncodeBatchDoFn (MiniLmEncoder loaded once per worker)
    precomputed:  tfrecord | parquet | npy files --read + parse--> (item_id, vector)
  CoGroupByKey(catalog ids, vectors) --ValidateJoinedFn--> valid (item_id, vector) + problems
  valid --> staging/embeddings/part-*.tfrecord.gz; stats + problems --> staging/report.json

After the run the driver reads the report: any error (missing items, duplicates, wrong
dimension, NaN/Inf, all-zero vectors, unreadable records) raises `EmbeddingValidationError`
and the staging directory is deleted, so no half-written artifact remains. Otherwise the
shards are moved to `<uri>/embeddings/`, `<uri>/metadata.json` is written last and the custom
properties `dimension`, `count`, `encoder` are set. Ids present in the embeddings but not in the
catalog are dropped with a warning and counted (`dropped_not_in_catalog`).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any, Dict, List

import apache_beam as beam
import numpy as np
from absl import logging
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from components.content_embedder.spec import CATALOG_KEY
from components.content_embedder.spec import EMBEDDING_CONFIG_KEY
from components.content_embedder.spec import ITEM_EMBEDDINGS_KEY
from contracts import config as config_lib
from contracts import embeddings_io
from contracts import schema
from contracts.embeddings_io import EmbeddingValidationError

CATALOG_SPLIT = schema.CATALOG_SPLIT
ITEM_ID = schema.ITEM_ID
TEXT = schema.TEXT
ENCODERS = ("minilm", "precomputed")
PRECOMPUTED_ENCODER_NAME = "precomputed"
REPORT_FILE = "report.json"
_OK = "ok"
_PROBLEMS = "problems"
_SAMPLES = 5  # offending ids named per problem kind
_METRICS_NAMESPACE = "sidrec.content_embedder"

# Problem kinds: errors abort the run; warnings drop the row and are counted.
_ERRORS = {
    "catalog_bad_record": "catalog records that are not usable tf.Examples",
    "duplicate_catalog": "item ids that occur more than once in the catalog",
    "bad_record": "embedding records that could not be read",
    "missing": "catalog items without an embedding",
    "duplicate_embedding": "item ids with more than one embedding",
    "empty_vector": "empty embedding vectors",
    "wrong_dimension": "vectors of the wrong dimension",
    "non_finite": "vectors containing NaN or Inf",
    "all_zero": "all-zero vectors",
}
_WARNINGS = {"not_in_catalog": "embedding ids not in the catalog (dropped)"}
_FIXES = {
    "catalog_bad_record": "every catalog tf.Example needs a non-empty bytes 'item_id' and, for the "
                          "MiniLM encoder, a bytes 'text' (see contracts/schema.py)",
    "duplicate_catalog": "make catalog item ids unique",
    "bad_record": "write tf.Examples {item_id: bytes, embedding: float list}",
    "missing": "add embeddings for these items (or remove them from the catalog)",
    "duplicate_embedding": "keep one embedding per item id",
    "empty_vector": "every item needs a non-empty vector",
    "wrong_dimension": "re-export the embeddings with the expected dimension, or set "
                       "EmbeddingConfig.dimension to the file's dimension",
    "non_finite": "recompute or drop these vectors",
    "all_zero": "an all-zero vector has no direction; recompute these items' embeddings",
}


def check_embedding_config(cfg: config_lib.EmbeddingConfig) -> None:
  """Raises ValueError for settings that can never work (checked at pipeline construction)."""
  if cfg.encoder not in ENCODERS:
    raise ValueError(f"EmbeddingConfig.encoder must be one of {ENCODERS}, got {cfg.encoder!r}")
  if cfg.batch_size < 1:
    raise ValueError(f"EmbeddingConfig.batch_size must be >= 1, got {cfg.batch_size}")
  if cfg.dimension < 0 or cfg.num_shards < 0:
    raise ValueError("EmbeddingConfig.dimension and num_shards must be >= 0 (0 = automatic)")
  if cfg.encoder == "minilm":
    if not 2 < cfg.max_seq_length <= 512:
      raise ValueError(f"EmbeddingConfig.max_seq_length must be in (2, 512], got {cfg.max_seq_length}")
  else:
    if not cfg.precomputed_path:
      raise ValueError("EmbeddingConfig(encoder='precomputed') needs precomputed_path")
    if cfg.precomputed_format not in embeddings_io.FORMATS:
      raise ValueError(f"EmbeddingConfig.precomputed_format must be one of {embeddings_io.FORMATS} "
                       f"for encoder='precomputed', got {cfg.precomputed_format!r}")
    if cfg.precomputed_ids_path and cfg.precomputed_format != "npy":
      raise ValueError("EmbeddingConfig.precomputed_ids_path only applies to precomputed_format='npy'")


# ----------------------------------------------------------------------------- DoFns

class ParseCatalogFn(beam.DoFn):
  """(file, serialized tf.Example) -> (item_id, text); bad records -> problems."""

  def __init__(self, need_text: bool):
    self._need_text = need_text

  def process(self, element):
    from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
    filename, record = element
    example = example_pb2.Example()
    try:
      example.ParseFromString(record)
    except Exception:  # pylint: disable=broad-except
      yield beam.pvalue.TaggedOutput(_PROBLEMS, ("catalog_bad_record", f"{filename}: not a tf.Example"))
      return
    features = example.features.feature
    ids = features[ITEM_ID].bytes_list.value if ITEM_ID in features else []
    if len(ids) != 1 or not ids[0]:
      yield beam.pvalue.TaggedOutput(
          _PROBLEMS, ("catalog_bad_record", f"{filename}: a record without a single non-empty 'item_id'"))
      return
    item_id = ids[0].decode("utf-8")
    text = ""
    if self._need_text:
      texts = features[TEXT].bytes_list.value if TEXT in features else []
      if len(texts) != 1:
        yield beam.pvalue.TaggedOutput(
            _PROBLEMS, ("catalog_bad_record", f"{filename}: item {item_id!r} has no single 'text'"))
        return
      text = texts[0].decode("utf-8")
    yield item_id, text


class EncodeBatchDoFn(beam.DoFn):
  """[(item_id, text), ...] -> (item_id, float32 vector); the encoder loads once in setup()."""

  def __init__(self, max_seq_length: int = 64, batch_size: int = 128, model_dir: str = ""):
    self._max_seq_length = max_seq_length
    self._batch_size = batch_size
    self._model_dir = model_dir or None
    self._encoder = None
    self._encode_ms = beam.metrics.Metrics.distribution(_METRICS_NAMESPACE, "encode_ms")
    self._items = beam.metrics.Metrics.counter(_METRICS_NAMESPACE, "encoded_items")

  def setup(self):
    from components.content_embedder.minilm import MiniLmEncoder  # pylint: disable=g-import-not-at-top
    self._encoder = MiniLmEncoder(model_dir=self._model_dir, max_seq_length=self._max_seq_length,
                                  batch_size=self._batch_size)
    self._encoder.encode(["warm-up: traces the tf.functions once per worker"])

  def process(self, batch):
    start = time.perf_counter()
    vectors = self._encoder.encode([text for _, text in batch])
    self._encode_ms.update(int(1000 * (time.perf_counter() - start)))
    self._items.inc(len(batch))
    for (item_id, _), vector in zip(batch, vectors):
      yield item_id, vector


class ParseEmbeddingExampleFn(beam.DoFn):
  """(file, serialized tf.Example) -> (item_id, vector); unreadable records -> problems."""

  def process(self, element):
    filename, record = element
    try:
      yield embeddings_io.parse_embedding_example(record, filename)
    except EmbeddingValidationError as e:
      yield beam.pvalue.TaggedOutput(_PROBLEMS, ("bad_record", str(e)))


class ParquetRowsFn(beam.DoFn):
  """(file, pyarrow.Table) -> (item_id, vector)."""

  def process(self, element):
    filename, table = element
    try:
      for row in embeddings_io.arrow_table_rows(table, filename):
        yield row
    except EmbeddingValidationError as e:
      yield beam.pvalue.TaggedOutput(_PROBLEMS, ("bad_record", str(e)))


class ReadNpyChunkFn(beam.DoFn):
  """(start, stop, ids) -> (item_id, row) for rows [start, stop) of a .npy file."""

  def __init__(self, path: str, dim: int, dtype: str, offset: int):
    self._path, self._dim, self._dtype, self._offset = path, dim, dtype, offset

  def process(self, element):
    start, stop, ids = element
    rows = embeddings_io.read_npy_rows(self._path, start, stop, self._dim, np.dtype(self._dtype),
                                       self._offset)
    for item_id, row in zip(ids, rows):
      yield item_id, row


class ValidateJoinedFn(beam.DoFn):
  """(item_id, {catalog: [...], vectors: [...]}) -> valid (item_id, vector) or problems."""

  def __init__(self, expected_dim: int):
    self._expected_dim = expected_dim

  def process(self, element):
    item_id, grouped = element
    in_catalog = len(list(grouped["catalog"]))
    vectors = list(grouped["vectors"])
    problem = lambda kind, detail=None: beam.pvalue.TaggedOutput(  # noqa: E731
        _PROBLEMS, (kind, item_id if detail is None else f"{item_id!r} ({detail})"))
    if in_catalog > 1:
      yield problem("duplicate_catalog", f"{in_catalog} records")
    if not vectors:
      if in_catalog:
        yield problem("missing")
      return
    if not in_catalog:
      yield problem("not_in_catalog")
      return
    if len(vectors) > 1:
      yield problem("duplicate_embedding", f"{len(vectors)} vectors")
      return
    vector = np.asarray(vectors[0], dtype=np.float32).reshape(-1)
    if vector.size == 0:
      yield problem("empty_vector")
    elif self._expected_dim and vector.size != self._expected_dim:
      yield problem("wrong_dimension", f"dimension {vector.size}")
    elif not np.isfinite(vector).all():
      yield problem("non_finite", f"{int(np.isnan(vector).sum())} NaN, {int(np.isinf(vector).sum())} Inf")
    elif not vector.any():
      yield problem("all_zero")
    else:
      yield item_id, vector


class ReportCombineFn(beam.CombineFn):
  """One report over tagged records: ("row", item_id, norm, dim), ("problem", kind, detail),
  ("catalog",). Output: catalog_count, stats (count, norms, {dim: count + smallest id}) and
  problems ({kind: count + the `_SAMPLES` smallest details})."""

  def create_accumulator(self):
    return {"catalog": 0, "count": 0, "norm_sum": 0.0, "norm_min": float("inf"), "norm_max": 0.0,
            "dims": {}, "problems": {}}

  def add_input(self, acc, record):
    tag = record[0]
    if tag == "catalog":
      acc["catalog"] += 1
    elif tag == "row":
      _, item_id, norm, dim = record
      acc["count"] += 1
      acc["norm_sum"] += norm
      acc["norm_min"] = min(acc["norm_min"], norm)
      acc["norm_max"] = max(acc["norm_max"], norm)
      entry = acc["dims"].setdefault(dim, [0, item_id])
      entry[0] += 1
      entry[1] = min(entry[1], item_id)
    else:
      _, kind, detail = record
      entry = acc["problems"].setdefault(kind, [0, []])
      entry[0] += 1
      entry[1] = sorted(entry[1] + [str(detail)])[:_SAMPLES]
    return acc

  def merge_accumulators(self, accumulators):
    out = self.create_accumulator()
    for acc in accumulators:
      out["catalog"] += acc["catalog"]
      out["count"] += acc["count"]
      out["norm_sum"] += acc["norm_sum"]
      out["norm_min"] = min(out["norm_min"], acc["norm_min"])
      out["norm_max"] = max(out["norm_max"], acc["norm_max"])
      for key in ("dims", "problems"):
        for name, (count, extra) in acc[key].items():
          entry = out[key].setdefault(name, [0, extra])
          entry[0] += count
          entry[1] = min(entry[1], extra) if key == "dims" else sorted(entry[1] + extra)[:_SAMPLES]
    return out

  def extract_output(self, acc):
    count = acc["count"]
    return {
        "catalog_count": acc["catalog"],
        "stats": {"count": count,
                  "norm_mean": acc["norm_sum"] / count if count else 0.0,
                  "norm_min": acc["norm_min"] if count else 0.0,
                  "norm_max": acc["norm_max"],
                  "dimensions": {str(d): {"count": c, "example": e}
                                 for d, (c, e) in acc["dims"].items()}},
        "problems": {k: {"count": c, "samples": s} for k, (c, s) in acc["problems"].items()},
    }


def _write_report(report, path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(json.dumps(report, sort_keys=True))


# ----------------------------------------------------------------------------- executor

class Executor(base_beam_executor.BaseBeamExecutor):
  """Embeds catalog items (MiniLM or user-brought vectors) into an ItemEmbeddings artifact."""

  def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    cfg = config_lib.from_json(config_lib.EmbeddingConfig, exec_properties[EMBEDDING_CONFIG_KEY])
    check_embedding_config(cfg)
    catalog = artifact_utils.get_single_instance(input_dict[CATALOG_KEY])
    output = artifact_utils.get_single_instance(output_dict[ITEM_EMBEDDINGS_KEY])

    # Everything that can be checked without reading all the data is checked first.
    catalog_files = _catalog_files(catalog)
    source = _plan_source(cfg)
    staging = os.path.join(output.uri, f".staging-{uuid.uuid4().hex}")
    final_dir = os.path.join(output.uri, embeddings_io.EMBEDDINGS_DIR)
    metadata_path = os.path.join(output.uri, embeddings_io.METADATA_FILE)
    if fileio.exists(final_dir):  # a retried execution: start from an empty output
      fileio.rmtree(final_dir)
    if fileio.exists(metadata_path):
      fileio.remove(metadata_path)
    try:
      fileio.makedirs(staging)
      start = time.perf_counter()
      pipeline = self._make_beam_pipeline()
      self._build(pipeline, cfg, catalog_files, source, staging)
      result = pipeline.run()
      result.wait_until_finish()
      seconds = time.perf_counter() - start
      with fileio.open(os.path.join(staging, REPORT_FILE), "r") as f:
        report = json.loads(f.read())
      stats = _check_report(report, cfg, source)
      _move_shards(os.path.join(staging, embeddings_io.EMBEDDINGS_DIR), final_dir)
      metadata = _metadata(cfg, source, stats, report, seconds, _encode_seconds(result))
      embeddings_io.write_metadata(output.uri, metadata)  # last: marks a complete artifact
    except BaseException:
      if fileio.exists(final_dir):
        fileio.rmtree(final_dir)
      if fileio.exists(metadata_path):
        fileio.remove(metadata_path)
      raise
    finally:
      if fileio.exists(staging):
        fileio.rmtree(staging)
    output.set_int_custom_property("dimension", metadata["dimension"])
    output.set_int_custom_property("count", metadata["count"])
    output.set_string_custom_property("encoder", metadata["encoder"])
    logging.info("ContentEmbedder wrote %d %d-d embeddings (%s) in %.1f s to %s",
                 metadata["count"], metadata["dimension"], metadata["encoder"], seconds, output.uri)

  def _build(self, p, cfg, catalog_files, source, staging):
    need_text = cfg.encoder == "minilm"
    parsed = (p
              | "CatalogFiles" >> beam.Create(catalog_files, reshuffle=False)
              | "ReadCatalog" >> beam.io.ReadAllFromTFRecord(with_filename=True)
              | "ParseCatalog" >> beam.ParDo(ParseCatalogFn(need_text)).with_outputs(
                  _PROBLEMS, main=_OK))
    catalog = parsed[_OK]
    problems = [parsed[_PROBLEMS]]

    if cfg.encoder == "minilm":
      # Large bundles; the encoder sorts each by token length into `batch_size` forward passes,
      # so padding stays small although the catalog is in arbitrary order.
      bundle = cfg.batch_size * 8
      vectors = (catalog
                 | "Batch" >> beam.BatchElements(min_batch_size=bundle, max_batch_size=bundle)
                 | "Encode" >> beam.ParDo(EncodeBatchDoFn(cfg.max_seq_length, cfg.batch_size)))
    elif source["format"] == "tfrecord":
      read = (p
              | "EmbeddingFiles" >> beam.Create(source["files"], reshuffle=False)
              | "ReadEmbeddings" >> beam.io.ReadAllFromTFRecord(with_filename=True)
              | "ParseEmbeddings" >> beam.ParDo(ParseEmbeddingExampleFn()).with_outputs(
                  _PROBLEMS, main=_OK))
      vectors, problems = read[_OK], problems + [read[_PROBLEMS]]
    elif source["format"] == "parquet":
      read = (p
              | "EmbeddingFiles" >> beam.Create(source["files"], reshuffle=False)
              | "ReadEmbeddings" >> beam.io.ReadAllFromParquetBatched(
                  columns=[embeddings_io.ITEM_ID_FEATURE, embeddings_io.EMBEDDING_FEATURE],
                  with_filename=True)
              | "ParquetRows" >> beam.ParDo(ParquetRowsFn()).with_outputs(_PROBLEMS, main=_OK))
      vectors, problems = read[_OK], problems + [read[_PROBLEMS]]
    else:  # npy
      vectors = (p
                 | "NpyChunks" >> beam.Create(source["chunks"])
                 | "ReadNpy" >> beam.ParDo(ReadNpyChunkFn(
                     source["path"], source["dim"], source["dtype"], source["offset"])))

    joined = (
        {"catalog": catalog | "CatalogKeys" >> beam.Map(lambda kv: (kv[0], None)),
         "vectors": vectors}
        | "Join" >> beam.CoGroupByKey()
        | "Validate" >> beam.ParDo(ValidateJoinedFn(cfg.dimension)).with_outputs(
            _PROBLEMS, main=_OK))
    valid = joined[_OK]
    problems.append(joined[_PROBLEMS])

    _ = (valid
         | "ToExample" >> beam.MapTuple(embeddings_io.make_embedding_example)
         | "WriteEmbeddings" >> beam.io.WriteToTFRecord(
             os.path.join(staging, embeddings_io.EMBEDDINGS_DIR, embeddings_io.SHARD_PREFIX),
             file_name_suffix=embeddings_io.SHARD_SUFFIX, num_shards=cfg.num_shards,
             compression_type=beam.io.filesystem.CompressionTypes.GZIP))
    records = [
        valid | "RowRecords" >> beam.MapTuple(
            lambda item_id, v: ("row", item_id, float(np.linalg.norm(v)), int(v.size))),
        catalog | "CatalogRecords" >> beam.Map(lambda _: ("catalog",)),
    ] + [pc | f"ProblemRecords{i}" >> beam.Map(lambda kd: ("problem",) + tuple(kd))
         for i, pc in enumerate(problems)]
    _ = (records
         | "AllRecords" >> beam.Flatten()
         | "Report" >> beam.CombineGlobally(ReportCombineFn())
         | "WriteReport" >> beam.Map(_write_report, os.path.join(staging, REPORT_FILE)))


def _move_shards(source_dir: str, target_dir: str) -> None:
  """Moves the finished shards file by file (directory renames are not atomic/possible on GCS)."""
  fileio.makedirs(target_dir)
  for name in sorted(fileio.listdir(source_dir)):
    if name.startswith(embeddings_io.SHARD_PREFIX) and name.endswith(embeddings_io.SHARD_SUFFIX):
      fileio.rename(os.path.join(source_dir, name), os.path.join(target_dir, name))


def _catalog_files(catalog) -> List[str]:
  splits = artifact_utils.decode_split_names(catalog.split_names)
  if CATALOG_SPLIT not in splits:
    raise EmbeddingValidationError(
        f"catalog Examples artifact {catalog.uri} has splits {splits} but no '{CATALOG_SPLIT}'; "
        f"import catalog/items/*.tfrecord.gz with ImportExampleGen(input_config=Input(splits="
        f"[Split(name='{CATALOG_SPLIT}', pattern='items/*.tfrecord.gz')]), output_config="
        f"Output(split_config=SplitConfig(splits=[Split(name='{CATALOG_SPLIT}', hash_buckets=1)])))"
        f" (a single input split is otherwise re-split into train/eval)")
  if examples_utils.get_payload_format(catalog) != example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE:
    raise EmbeddingValidationError(
        f"catalog {catalog.uri}: payload format "
        f"{examples_utils.get_payload_format_string(catalog)} is not supported; the catalog must "
        f"hold tf.Examples")
  file_format = examples_utils.get_file_format(catalog)
  if file_format not in ("tfrecords_gzip", "tfrecord_gzip", "tfrecord"):
    raise EmbeddingValidationError(
        f"catalog {catalog.uri}: file format {file_format!r} is not supported; use TFRecords")
  files = []
  for pattern in examples_utils.get_split_file_patterns([catalog], CATALOG_SPLIT):
    files.extend(fileio.glob(pattern))
  files = sorted(f for f in files if not fileio.isdir(f))
  if not files:
    raise EmbeddingValidationError(
        f"catalog split '{CATALOG_SPLIT}' of {catalog.uri} holds no files; the data step wrote "
        f"no catalog, re-run data preparation")
  return files


def _plan_source(cfg) -> Dict[str, Any]:
  """Describes (and structurally checks) where vectors come from, before anything runs."""
  if cfg.encoder == "minilm":
    from components.content_embedder import minilm  # pylint: disable=g-import-not-at-top
    model_dir = minilm.default_model_dir()
    with open(os.path.join(model_dir, "config.json")) as f:
      dim = int(json.load(f)["hidden_size"])
    if cfg.dimension and cfg.dimension != dim:
      raise EmbeddingValidationError(
          f"EmbeddingConfig.dimension is {cfg.dimension} but {minilm.MODEL_NAME} produces {dim}-d "
          f"vectors; set dimension=0 (automatic) or {dim}")
    return {"kind": "minilm", "name": minilm.MODEL_NAME, "dim": dim}
  path, fmt = cfg.precomputed_path, cfg.precomputed_format
  if fmt == "npy":
    shape, dtype, offset = embeddings_io.npy_header(path)
    ids_file = embeddings_io.npy_ids_path(path, cfg.precomputed_ids_path)
    ids = embeddings_io.read_ids_file(ids_file)
    if len(ids) != shape[0]:
      raise EmbeddingValidationError(
          f"{ids_file} lists {len(ids)} ids but {path} has {shape[0]} rows; the ids file needs "
          f"exactly one item_id per row, in row order")
    if cfg.dimension and shape[1] != cfg.dimension:
      raise EmbeddingValidationError(
          f"{path} holds {shape[1]}-d vectors but EmbeddingConfig.dimension is {cfg.dimension}; "
          f"re-export the embeddings or set dimension={shape[1]} (or 0 = automatic)")
    step = embeddings_io.NPY_CHUNK_ROWS
    chunks = [(lo, min(lo + step, shape[0]), ids[lo:lo + step]) for lo in range(0, shape[0], step)]
    return {"kind": "precomputed", "format": fmt, "path": path, "ids_path": ids_file,
            "dim": shape[1], "dtype": dtype.str, "offset": offset, "chunks": chunks,
            "files": [path]}
  files = embeddings_io.list_files(path, f"precomputed {fmt} embeddings")
  if fmt == "parquet":
    for name in files:
      embeddings_io.check_parquet_schema(embeddings_io.read_parquet_schema(name), name)
  return {"kind": "precomputed", "format": fmt, "path": path, "files": files, "dim": 0}


def _check_report(report, cfg, source) -> Dict[str, Any]:
  """Raises EmbeddingValidationError listing every error found; returns the stats."""
  problems = report["problems"]
  stats = report["stats"]
  where = (f"{source['name']} embeddings" if source["kind"] == "minilm"
           else f"precomputed {source['format']} embeddings at {source['path']}")
  lines = []
  for kind, what in _ERRORS.items():
    if kind in problems:
      entry = problems[kind]
      lines.append(f"  - {entry['count']} {what}, e.g. {', '.join(entry['samples'])}; "
                   f"fix: {_FIXES[kind]}")
  dims = stats["dimensions"]
  if len(dims) > 1:
    parts = ", ".join(f"{d}-d: {v['count']} items (e.g. {v['example']!r})"
                      for d, v in sorted(dims.items(), key=lambda kv: int(kv[0])))
    lines.append(f"  - inconsistent dimensions: {parts}; fix: every vector must have the same "
                 f"length (set EmbeddingConfig.dimension to name the right one)")
  if report["catalog_count"] == 0 and "catalog_bad_record" not in problems:
    lines.append("  - the catalog has no items; fix: re-run data preparation")
  if lines:
    raise EmbeddingValidationError(
        f"ContentEmbedder: {where} failed validation against the catalog "
        f"({report['catalog_count']} items); nothing was written:\n" + "\n".join(lines))
  dropped = problems.get("not_in_catalog")
  if dropped:
    logging.warning("ContentEmbedder: dropped %d %s, e.g. %s", dropped["count"],
                    _WARNINGS["not_in_catalog"], ", ".join(dropped["samples"]))
  return stats


def _encode_seconds(result) -> float:
  try:
    from apache_beam.metrics.metric import MetricsFilter  # pylint: disable=g-import-not-at-top
    found = result.metrics().query(MetricsFilter().with_name("encode_ms"))["distributions"]
    total = 0
    for d in found:
      value = d.committed if d.committed is not None else d.attempted
      total += value.sum if value is not None else 0
    return total / 1000.0
  except Exception:  # pylint: disable=broad-except  # not every runner reports metrics
    return 0.0


def _metadata(cfg, source, stats, report, seconds, encode_seconds) -> Dict[str, Any]:
  count = int(stats["count"])
  dim = int(next(iter(stats["dimensions"]))) if stats["dimensions"] else int(source["dim"])
  dropped = report["problems"].get("not_in_catalog", {}).get("count", 0)
  metadata = {
      "dimension": dim,
      "encoder": source["name"] if source["kind"] == "minilm" else PRECOMPUTED_ENCODER_NAME,
      "count": count,
      "catalog_count": int(report["catalog_count"]),
      "dropped_not_in_catalog": int(dropped),
      "seconds": round(seconds, 3),
      "items_per_second": round(count / seconds, 2) if seconds > 0 else 0.0,
      "norm_mean": stats["norm_mean"],
      "norm_min": stats["norm_min"],
      "norm_max": stats["norm_max"],
      "embedding_config": json.loads(config_lib.to_json(cfg)),
  }
  if source["kind"] == "minilm":
    metadata["max_seq_length"] = cfg.max_seq_length
    metadata["encode_seconds"] = round(encode_seconds, 3)
    if encode_seconds > 0:
      metadata["encode_items_per_second"] = round(count / encode_seconds, 2)
  else:
    metadata["source"] = {"format": source["format"], "path": source["path"]}
    if source.get("ids_path"):
      metadata["source"]["ids_path"] = source["ids_path"]
  return metadata
