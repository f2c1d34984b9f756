"""Reading and writing item embeddings: the ItemEmbeddings artifact and user-brought files.

ItemEmbeddings artifact layout (written by the ContentEmbedder executor):
  <uri>/embeddings/part-SSSSS-of-NNNNN.tfrecord.gz   GZIP TFRecords of tf.Examples
                                                     {item_id: bytes, embedding: float list [d]}
  <uri>/metadata.json                                dimension, encoder, count, seconds, ...
Downstream components call `load_item_embeddings(artifact.uri)`.

User-brought ("precomputed") embeddings, `EmbeddingConfig(encoder="precomputed", ...)`:
  tfrecord  tf.Examples {item_id: bytes (or int64), embedding: float list}; a file, a glob or a
            directory of files; GZIP is detected from a `.gz` suffix.
  parquet   columns `item_id` (string or integer) and `embedding` (list<float|double>); a file,
            glob or directory.
  npy       float array [n, d] plus an ids file with one item_id per line in row order:
            `precomputed_ids_path`, else `<stem>_ids.txt`, else `<stem minus a trailing s>_ids.txt`
            (so `synthetic_embeddings.npy` pairs with `synthetic_embedding_ids.txt`).
The `read_*`/`write_*` functions here work in one process with numpy; the executor reads the
same formats inside Beam with the record-level helpers (`parse_embedding_example`, ...).
Every path goes through `tf.io.gfile`, so gs:// and other TF file systems work.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, List, Sequence, Tuple

import numpy as np

from contracts import files
from contracts.arrow_files import arrow_input

ITEM_ID_FEATURE = "item_id"
EMBEDDING_FEATURE = "embedding"
EMBEDDINGS_DIR = "embeddings"
METADATA_FILE = "metadata.json"
SHARD_PREFIX = "part"
SHARD_SUFFIX = ".tfrecord.gz"
FORMATS = ("tfrecord", "parquet", "npy")
NPY_CHUNK_ROWS = 65536


class EmbeddingValidationError(ValueError):
  """Embeddings are unusable: wrong shape, non-finite/zero vectors, id mismatches with the catalog.

  The message names the file and the offending items and says how to fix it. Raised before the
  output artifact is written (nothing half-written is left behind).
  """


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


# ----------------------------------------------------------------------------- records

def make_embedding_example(item_id, vector) -> bytes:
  """Serialized tf.Example {item_id: bytes, embedding: float list}."""
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  if isinstance(item_id, str):
    item_id = item_id.encode("utf-8")
  example = example_pb2.Example()
  features = example.features.feature
  features[ITEM_ID_FEATURE].bytes_list.value.append(item_id)
  features[EMBEDDING_FEATURE].float_list.value.extend(np.asarray(vector, np.float32).tolist())
  return example.SerializeToString(deterministic=True)


def parse_embedding_example(serialized: bytes, source: str = "") -> Tuple[str, np.ndarray]:
  """(item_id, float32 vector) of one serialized tf.Example; raises EmbeddingValidationError."""
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  example = example_pb2.Example()
  try:
    example.ParseFromString(serialized)
  except Exception as e:  # pylint: disable=broad-except
    raise EmbeddingValidationError(
        f"{source or 'embeddings'}: a record is not a serialized tf.Example ({e}); write "
        f"tf.train.Example protos with features '{ITEM_ID_FEATURE}' and '{EMBEDDING_FEATURE}'") from e
  features = example.features.feature
  if ITEM_ID_FEATURE not in features or EMBEDDING_FEATURE not in features:
    raise EmbeddingValidationError(
        f"{source or 'embeddings'}: a tf.Example has features {sorted(features)} but needs "
        f"'{ITEM_ID_FEATURE}' (bytes) and '{EMBEDDING_FEATURE}' (float list); rename the features "
        f"or convert the file (see components/contracts/embeddings_io.py)")
  id_feature = features[ITEM_ID_FEATURE]
  if id_feature.bytes_list.value:
    item_id = id_feature.bytes_list.value[0].decode("utf-8")
  elif id_feature.int64_list.value:
    item_id = str(id_feature.int64_list.value[0])
  else:
    raise EmbeddingValidationError(
        f"{source or 'embeddings'}: a tf.Example has an empty '{ITEM_ID_FEATURE}'; every "
        f"record needs exactly one item id")
  emb = features[EMBEDDING_FEATURE]
  if emb.float_list.value:
    vector = np.asarray(emb.float_list.value, dtype=np.float32)
  elif emb.int64_list.value or emb.bytes_list.value:
    raise EmbeddingValidationError(
        f"{source or 'embeddings'}: item {item_id!r} stores '{EMBEDDING_FEATURE}' as "
        f"{'int64' if emb.int64_list.value else 'bytes'}; it must be a float_list")
  else:
    vector = np.zeros((0,), np.float32)
  return item_id, vector


def arrow_table_rows(table, source: str = "") -> Iterator[Tuple[str, np.ndarray]]:
  """(item_id, float32 vector) rows of a pyarrow Table with columns item_id, embedding."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  check_parquet_schema(table.schema, source)
  ids = table.column(ITEM_ID_FEATURE).to_pylist()
  column = table.column(EMBEDDING_FEATURE)
  for chunk_start, chunk in _chunks_with_offsets(column):
    if pa.types.is_fixed_size_list(chunk.type):
      width = chunk.type.list_size
      flat = chunk.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
      offsets = np.arange(len(chunk) + 1) * width
    else:
      flat = chunk.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
      offsets = chunk.offsets.to_numpy() - chunk.offsets[0].as_py()
    valid = chunk.is_valid().to_numpy(zero_copy_only=False)
    for j in range(len(chunk)):
      item_id = ids[chunk_start + j]
      item_id = "" if item_id is None else str(item_id)
      if not valid[j]:
        yield item_id, np.zeros((0,), np.float32)
      else:
        yield item_id, flat[offsets[j]:offsets[j + 1]]


def _chunks_with_offsets(column):
  start = 0
  for chunk in column.chunks:
    yield start, chunk
    start += len(chunk)


def check_parquet_schema(schema, source: str = "") -> None:
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  names = schema.names
  for name in (ITEM_ID_FEATURE, EMBEDDING_FEATURE):
    if name not in names:
      raise EmbeddingValidationError(
          f"{source or 'parquet embeddings'}: no column '{name}' (columns: {names}); the file "
          f"needs '{ITEM_ID_FEATURE}' (string) and '{EMBEDDING_FEATURE}' (list<float>)")
  emb_type = schema.field(EMBEDDING_FEATURE).type
  if not (pa.types.is_list(emb_type) or pa.types.is_large_list(emb_type) or
          pa.types.is_fixed_size_list(emb_type)) or not (
              pa.types.is_floating(emb_type.value_type) or pa.types.is_integer(emb_type.value_type)):
    raise EmbeddingValidationError(
        f"{source or 'parquet embeddings'}: column '{EMBEDDING_FEATURE}' has type {emb_type}; it "
        f"must be list<float> (e.g. pyarrow.list_(pyarrow.float32()))")
  id_type = schema.field(ITEM_ID_FEATURE).type
  if not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type) or
          pa.types.is_integer(id_type) or pa.types.is_binary(id_type)):
    raise EmbeddingValidationError(
        f"{source or 'parquet embeddings'}: column '{ITEM_ID_FEATURE}' has type {id_type}; it "
        f"must be a string (or integer) item id")


# ----------------------------------------------------------------------------- paths

def list_files(path: str, what: str = "embeddings") -> List[str]:
  """Files named by `path`: a file, a glob, or a directory (its non-hidden files), sorted."""
  gfile = _gfile()
  if any(c in path for c in "*?["):
    files = gfile.glob(path)
  elif gfile.isdir(path):
    files = [os.path.join(path, n) for n in gfile.listdir(path)
             if not n.startswith((".", "_")) and not gfile.isdir(os.path.join(path, n))]
  elif gfile.exists(path):
    files = [path]
  else:
    raise EmbeddingValidationError(
        f"{what}: {path} does not exist; set EmbeddingConfig.precomputed_path to a file, a "
        f"directory or a glob of the embeddings")
  files = sorted(f for f in files if not os.path.basename(f).startswith((".", "_")))
  if not files:
    raise EmbeddingValidationError(f"{what}: no files match {path}; check precomputed_path")
  return files


def npy_ids_path(npy_path: str, ids_path: str = "") -> str:
  """The ids file paired with `npy_path` (see module docstring); raises if none exists."""
  gfile = _gfile()
  if ids_path:
    if not gfile.exists(ids_path):
      raise EmbeddingValidationError(
          f"ids file {ids_path} (EmbeddingConfig.precomputed_ids_path) does not exist; it must "
          f"list one item_id per line in the row order of {npy_path}")
    return ids_path
  stem = npy_path[:-len(".npy")] if npy_path.endswith(".npy") else npy_path
  candidates = [stem + "_ids.txt"]
  if stem.endswith("s"):
    candidates.append(stem[:-1] + "_ids.txt")
  for candidate in candidates:
    if gfile.exists(candidate):
      return candidate
  raise EmbeddingValidationError(
      f"{npy_path}: no ids file beside it (looked for {' and '.join(candidates)}); write one "
      f"item_id per line in row order there, or set EmbeddingConfig.precomputed_ids_path")


def read_ids_file(path: str) -> List[str]:
  with _gfile().GFile(path, "rb") as f:
    text = f.read().decode("utf-8")
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  return [line.rstrip("\r") for line in lines]


def npy_header(path: str) -> Tuple[Tuple[int, ...], np.dtype, int]:
  """(shape, dtype, data offset) of a .npy file, read without loading the data."""
  with _gfile().GFile(path, "rb") as f:
    try:
      version = np.lib.format.read_magic(f)
      if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
      else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except ValueError as e:
      raise EmbeddingValidationError(
          f"{path} is not a .npy file ({e}); save the embeddings with numpy.save") from e
    offset = f.tell()
  if fortran and len(shape) > 1:
    raise EmbeddingValidationError(
        f"{path} is stored in Fortran order; re-save it row-major: "
        f"numpy.save(path, numpy.ascontiguousarray(array))")
  if dtype.hasobject or not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
    raise EmbeddingValidationError(
        f"{path} has dtype {dtype}; embeddings must be a numeric (float32) array [n, d]")
  if len(shape) != 2:
    raise EmbeddingValidationError(
        f"{path} has shape {shape}; embeddings must be 2-D [num_items, dimension]")
  return tuple(shape), dtype, offset


def read_npy_rows(path: str, start: int, stop: int, dim: int, dtype: np.dtype,
                  offset: int) -> np.ndarray:
  """Rows [start, stop) of a row-major .npy file as float32 (seek + read: works on GCS)."""
  row_bytes = dim * dtype.itemsize
  with _gfile().GFile(path, "rb") as f:
    f.seek(offset + start * row_bytes)
    data = f.read((stop - start) * row_bytes)
  return np.frombuffer(data, dtype=dtype).reshape(stop - start, dim).astype(np.float32)


# ----------------------------------------------------------------------------- numpy readers

def read_tfrecord_embeddings(path: str) -> Tuple[np.ndarray, np.ndarray]:
  """(item_ids, vectors) of TFRecord embedding files (file, glob or directory)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ids, vectors = [], []
  for name in list_files(path):
    compression = "GZIP" if name.endswith(".gz") else ""
    for record in tf.data.TFRecordDataset(name, compression_type=compression).as_numpy_iterator():
      item_id, vector = parse_embedding_example(record, name)
      ids.append(item_id)
      vectors.append(vector)
  return _stack(ids, vectors, path)


def read_parquet_embeddings(path: str) -> Tuple[np.ndarray, np.ndarray]:
  """(item_ids, vectors) of Parquet embedding files (file, glob or directory)."""
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  ids, vectors = [], []
  for name in list_files(path):
    check_parquet_schema(read_parquet_schema(name), name)
    table = pq.read_table(arrow_input(name), columns=[ITEM_ID_FEATURE, EMBEDDING_FEATURE])
    for item_id, vector in arrow_table_rows(table, name):
      ids.append(item_id)
      vectors.append(vector)
  return _stack(ids, vectors, path)


def read_parquet_schema(path: str):
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  try:
    return pq.read_schema(arrow_input(path))
  except Exception as e:  # pylint: disable=broad-except
    raise EmbeddingValidationError(
        f"{path} is not a readable Parquet file ({e}); write it with pyarrow.parquet.write_table "
        f"(columns '{ITEM_ID_FEATURE}', '{EMBEDDING_FEATURE}')") from e


def read_npy_embeddings(path: str, ids_path: str = "") -> Tuple[np.ndarray, np.ndarray]:
  """(item_ids, vectors) of a .npy array plus its ids file."""
  shape, dtype, offset = npy_header(path)
  ids_file = npy_ids_path(path, ids_path)
  ids = read_ids_file(ids_file)
  if len(ids) != shape[0]:
    raise EmbeddingValidationError(
        f"{ids_file} lists {len(ids)} ids but {path} has {shape[0]} rows; the ids file needs "
        f"exactly one item_id per row, in row order")
  vectors = read_npy_rows(path, 0, shape[0], shape[1], dtype, offset)
  return np.asarray(ids, dtype=object), vectors


def read_precomputed(path: str, fmt: str, ids_path: str = "") -> Tuple[np.ndarray, np.ndarray]:
  """Reads user-brought embeddings in `fmt` (tfrecord | parquet | npy) with numpy."""
  if fmt == "tfrecord":
    return read_tfrecord_embeddings(path)
  if fmt == "parquet":
    return read_parquet_embeddings(path)
  if fmt == "npy":
    return read_npy_embeddings(path, ids_path)
  raise EmbeddingValidationError(
      f"unknown precomputed_format {fmt!r} for {path}; use one of {FORMATS}")


def _stack(ids: List[str], vectors: List[np.ndarray], source: str):
  dims = sorted({v.shape[0] for v in vectors})
  if len(dims) > 1:
    examples = {d: next(i for i, v in zip(ids, vectors) if v.shape[0] == d) for d in dims[:4]}
    raise EmbeddingValidationError(
        f"{source}: embeddings have inconsistent dimensions {dims} (e.g. "
        f"{', '.join(f'item {i!r}: {d}' for d, i in examples.items())}); every vector must "
        f"have the same length")
  dim = dims[0] if dims else 0
  array = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
  return np.asarray(ids, dtype=object), array


# ----------------------------------------------------------------------------- writers

def write_tfrecord_embeddings(path_prefix: str, item_ids: Sequence[str], vectors: np.ndarray,
                              num_shards: int = 1) -> List[str]:
  """Writes `<path_prefix>-SSSSS-of-NNNNN.tfrecord.gz` shards; returns the file names."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  vectors = np.asarray(vectors, np.float32)
  if len(item_ids) != len(vectors):
    raise ValueError(f"{len(item_ids)} ids but {len(vectors)} vectors")
  num_shards = max(1, int(num_shards))
  directory = os.path.dirname(path_prefix)
  if directory:
    tf.io.gfile.makedirs(directory)
  names = []
  options = tf.io.TFRecordOptions(compression_type="GZIP")
  for shard in range(num_shards):
    name = f"{path_prefix}-{shard:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"
    with tf.io.TFRecordWriter(name, options) as writer:
      for i in range(shard, len(item_ids), num_shards):
        writer.write(make_embedding_example(item_ids[i], vectors[i]))
    names.append(name)
  return names


def write_parquet_embeddings(path: str, item_ids: Sequence[str], vectors: np.ndarray) -> str:
  """Writes a Parquet file with columns item_id (string) and embedding (list<float>)."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  vectors = np.asarray(vectors, np.float32)
  dim = vectors.shape[1] if vectors.ndim == 2 else 0
  offsets = np.arange(len(vectors) + 1, dtype=np.int32) * dim
  embedding = pa.ListArray.from_arrays(pa.array(offsets), pa.array(vectors.reshape(-1)))
  table = pa.table({ITEM_ID_FEATURE: pa.array([str(i) for i in item_ids], pa.string()),
                    EMBEDDING_FEATURE: embedding})
  sink = pa.BufferOutputStream()
  pq.write_table(table, sink)
  with _gfile().GFile(path, "wb") as f:
    f.write(sink.getvalue().to_pybytes())
  return path


def write_npy_embeddings(path: str, item_ids: Sequence[str], vectors: np.ndarray,
                         ids_path: str = "") -> Tuple[str, str]:
  """Writes `path` (.npy float32 [n, d]) and its ids file (default `<stem>_ids.txt`)."""
  ids_path = ids_path or (path[:-len(".npy")] if path.endswith(".npy") else path) + "_ids.txt"
  with _gfile().GFile(path, "wb") as f:
    np.save(f, np.asarray(vectors, np.float32))
  with _gfile().GFile(ids_path, "w") as f:
    f.write("".join(f"{i}\n" for i in item_ids))
  return path, ids_path


# ----------------------------------------------------------------------------- the artifact

def embeddings_file_pattern(uri: str) -> str:
  return os.path.join(uri, EMBEDDINGS_DIR, f"{SHARD_PREFIX}-*{SHARD_SUFFIX}")


def write_metadata(uri: str, metadata: dict) -> None:
  """metadata.json, through a temporary file. Written last, it marks a complete artifact."""
  files.write_json(os.path.join(uri, METADATA_FILE), metadata)


def write_item_embeddings(uri: str, item_ids: Sequence[str], vectors: np.ndarray,
                          **metadata) -> dict:
  """An ItemEmbeddings-layout artifact written in-process (the aligned embeddings, an item
  table): the shards, then metadata.json with `dimension`, `count` and `metadata`.
  -> the metadata written."""
  vectors = np.asarray(vectors, np.float32)
  write_tfrecord_embeddings(os.path.join(uri, EMBEDDINGS_DIR, SHARD_PREFIX), list(item_ids),
                            vectors)
  written = {"dimension": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
             "count": len(item_ids), **metadata}
  write_metadata(uri, written)
  return written


def read_metadata(uri: str) -> dict:
  path = os.path.join(uri, METADATA_FILE)
  gfile = _gfile()
  if not gfile.exists(path):
    return {}
  with gfile.GFile(path, "r") as f:
    return json.loads(f.read())


def load_item_embeddings(uri: str) -> Tuple[np.ndarray, np.ndarray]:
  """Loads an ItemEmbeddings artifact: (item_ids, vectors), rows sorted by item_id.

  Args:
    uri: the artifact's uri (holding `embeddings/part-*` and `metadata.json`), or a directory
      of `part-*.tfrecord.gz` files.
  Returns:
    item_ids: numpy object array of str, [n], sorted (so results do not depend on sharding);
    vectors: float32 [n, d], C-contiguous.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  gfile = tf.io.gfile
  files = sorted(gfile.glob(embeddings_file_pattern(uri)))
  if not files:
    files = sorted(gfile.glob(os.path.join(uri, f"*{SHARD_SUFFIX}")))
  if not files:
    raise EmbeddingValidationError(
        f"no embedding shards under {uri} (expected {embeddings_file_pattern(uri)}); is this an "
        f"ItemEmbeddings artifact written by ContentEmbedder?")
  metadata = read_metadata(uri)
  dim = int(metadata.get("dimension", 0))
  if not dim:
    first = next(iter(tf.data.TFRecordDataset(files[:1], compression_type="GZIP")), None)
    if first is None:
      raise EmbeddingValidationError(f"{uri}: the embedding shards hold no records")
    dim = parse_embedding_example(first.numpy(), files[0])[1].shape[0]
  spec = {ITEM_ID_FEATURE: tf.io.FixedLenFeature([], tf.string),
          EMBEDDING_FEATURE: tf.io.FixedLenFeature([dim], tf.float32)}
  dataset = (tf.data.TFRecordDataset(files, compression_type="GZIP")
             .batch(8192).map(lambda x: tf.io.parse_example(x, spec)))
  ids, vectors = [], []
  for batch in dataset.as_numpy_iterator():
    ids.extend(i.decode("utf-8") for i in batch[ITEM_ID_FEATURE])
    vectors.append(batch[EMBEDDING_FEATURE])
  item_ids = np.asarray(ids, dtype=object)
  array = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
  order = np.argsort(item_ids, kind="stable")  # object array of str: Python comparisons
  if "count" in metadata and int(metadata["count"]) != len(ids):
    raise EmbeddingValidationError(
        f"{uri}: metadata.json says {metadata['count']} items but the shards hold {len(ids)}; "
        f"the artifact is incomplete, re-run ContentEmbedder")
  return item_ids[order], np.ascontiguousarray(array[order], dtype=np.float32)
