"""Executor of SemanticIdAssigner.

Output layout (`SemanticIds` artifact URI):
  sids/part-*.tfrecord.gz   tf.Examples {item_id: bytes, codes: int64 list (C columns)}
  stats.json                items, code_columns, unique_sids, unique_sid_ratio, colliding_items,
                            max_items_per_sid, items_per_sid_histogram, per-column code_usage
Beam reads the embedding shards, batches them, runs the codebook's `assign` signature in a DoFn
that loads the SavedModel once per worker, and writes the shards; collision statistics are a
Beam combine over the SIDs, so the same job scales out on a distributed runner.
"""
import collections
import json
import os
from typing import Any, Dict, Iterable, List, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from components.content_embedder import embeddings_io

SIDS_DIR = "sids"
STATS_FILE = "stats.json"
CODEBOOK_SAVED_MODEL_DIR = "saved_model"
ASSIGN_SIGNATURE = "assign"


class AssignCodesFn(beam.DoFn):
  """Batches of serialized {item_id, embedding} tf.Examples -> (item_id, codes) pairs."""

  def __init__(self, saved_model_dir: str, dimension: int):
    self._saved_model_dir = saved_model_dir
    self._dimension = dimension
    self._assign = None

  def setup(self):
    loaded = tf.saved_model.load(self._saved_model_dir)
    self._loaded = loaded  # keep the variables alive
    self._assign = loaded.signatures[ASSIGN_SIGNATURE]
    self._spec = {
        "item_id": tf.io.FixedLenFeature([], tf.string),
        "embedding": tf.io.FixedLenFeature([self._dimension], tf.float32),
    }

  def process(self, batch: List[bytes]) -> Iterable[Tuple[str, np.ndarray]]:
    parsed = tf.io.parse_example(tf.constant(batch), self._spec)
    codes = self._assign(embeddings=parsed["embedding"])["codes"].numpy()
    for item_id, row in zip(parsed["item_id"].numpy(), codes):
      yield item_id.decode("utf-8"), row


def _to_example(item: Tuple[str, np.ndarray]) -> bytes:
  item_id, codes = item
  return tf.train.Example(features=tf.train.Features(feature={
      "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[item_id.encode()])),
      "codes": tf.train.Feature(int64_list=tf.train.Int64List(value=codes.tolist())),
  })).SerializeToString()


class CollisionStatsFn(beam.CombineFn):
  """Counts items per full SID and per-column code usage (the collision statistics)."""

  def create_accumulator(self):
    return collections.Counter(), collections.defaultdict(set)

  def add_input(self, acc, item):
    sids, used = acc
    codes = tuple(int(c) for c in item[1])
    sids[codes] += 1
    for column, code in enumerate(codes):
      used[column].add(code)
    return acc

  def merge_accumulators(self, accumulators):
    sids, used = collections.Counter(), collections.defaultdict(set)
    for s, u in accumulators:
      sids.update(s)
      for column, codes in u.items():
        used[column] |= codes
    return sids, used

  def extract_output(self, acc):
    sids, used = acc
    items = sum(sids.values())
    sizes = collections.Counter(sids.values())
    return {
        "items": items,
        "code_columns": len(used),
        "unique_sids": len(sids),
        "unique_sid_ratio": (len(sids) / items) if items else 0.0,
        "colliding_items": sum(n for n in sids.values() if n > 1),
        "max_items_per_sid": max(sids.values()) if sids else 0,
        "items_per_sid_histogram": {str(k): v for k, v in sorted(sizes.items())},
        "codes_used_per_column": [len(used[c]) for c in sorted(used)],
    }


def read_sids(uri: str) -> Dict[str, np.ndarray]:
  """Loads a SemanticIds artifact: item_id -> int64 codes."""
  files = sorted(tf.io.gfile.glob(os.path.join(uri, SIDS_DIR, "*")))
  out = {}
  for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
    example = tf.train.Example.FromString(record.numpy())
    item_id = example.features.feature["item_id"].bytes_list.value[0].decode()
    out[item_id] = np.array(example.features.feature["codes"].int64_list.value, np.int64)
  return out


class Executor(base_beam_executor.BaseBeamExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    embeddings = artifact_utils.get_single_instance(input_dict["item_embeddings"])
    codebook = artifact_utils.get_single_instance(input_dict["codebook"])
    output = artifact_utils.get_single_instance(output_dict["semantic_ids"])
    batch_size = int(exec_properties.get("batch_size") or 4096)
    dimension = embeddings_io.read_metadata(embeddings.uri)["dimension"]
    saved_model_dir = os.path.join(codebook.uri, CODEBOOK_SAVED_MODEL_DIR)
    pattern = embeddings_io.embeddings_file_pattern(embeddings.uri)
    # Write under a temporary directory inside the artifact, then rename: a failed run never
    # leaves shards that look complete.
    tmp_dir = os.path.join(output.uri, ".tmp-" + SIDS_DIR)
    with self._make_beam_pipeline() as pipeline:
      sids = (
          pipeline
          | "ReadEmbeddings" >> beam.io.ReadFromTFRecord(pattern)
          | "Batch" >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size)
          | "AssignCodes" >> beam.ParDo(AssignCodesFn(saved_model_dir, dimension)))
      _ = (sids
           | "ToExample" >> beam.Map(_to_example)
           | "WriteSids" >> beam.io.WriteToTFRecord(
               os.path.join(tmp_dir, "part"), file_name_suffix=".tfrecord.gz"))
      _ = (sids
           | "CollisionStats" >> beam.CombineGlobally(CollisionStatsFn())
           | "StatsJson" >> beam.Map(lambda s: json.dumps(s, indent=2, sort_keys=True))
           | "WriteStats" >> beam.io.WriteToText(
               os.path.join(tmp_dir, STATS_FILE), shard_name_template=""))
    tf.io.gfile.rename(tmp_dir, os.path.join(output.uri, SIDS_DIR), overwrite=True)
    tf.io.gfile.rename(os.path.join(output.uri, SIDS_DIR, STATS_FILE),
                       os.path.join(output.uri, STATS_FILE), overwrite=True)
    with tf.io.gfile.GFile(os.path.join(output.uri, STATS_FILE)) as f:
      stats = json.load(f)
    output.set_int_custom_property("items", stats["items"])
    output.set_int_custom_property("code_columns", stats["code_columns"])
    output.set_float_custom_property("unique_sid_ratio", stats["unique_sid_ratio"])
