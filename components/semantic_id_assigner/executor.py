"""Executor of SemanticIdAssigner (output layout: contracts/semantic_ids_io.py).

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

from contracts import codebook_io
from contracts import embeddings_io
from contracts import semantic_ids_io as sids_io
from components.semantic_id_assigner.spec import (BATCH_SIZE_KEY, CODEBOOK_KEY,
                                                  CODEBOOK_NAME_KEY, DEFAULT_BATCH_SIZE,
                                                  ITEM_EMBEDDINGS_KEY, SEMANTIC_IDS_KEY)


class AssignCodesFn(beam.DoFn):
  """Batches of serialized {item_id, embedding} tf.Examples -> (item_id, codes) pairs."""

  def __init__(self, saved_model_dir: str, dimension: int):
    self._saved_model_dir = saved_model_dir
    self._dimension = dimension
    self._assign = None

  def setup(self):
    loaded = tf.saved_model.load(self._saved_model_dir)
    self._loaded = loaded  # keep the variables alive
    self._assign = loaded.signatures[codebook_io.ASSIGN_SIGNATURE]
    self._spec = {
        embeddings_io.ITEM_ID_FEATURE: tf.io.FixedLenFeature([], tf.string),
        embeddings_io.EMBEDDING_FEATURE: tf.io.FixedLenFeature([self._dimension], tf.float32),
    }

  def process(self, batch: List[bytes]) -> Iterable[Tuple[str, np.ndarray]]:
    parsed = tf.io.parse_example(tf.constant(batch), self._spec)
    codes = self._assign(**{codebook_io.EMBEDDINGS_INPUT: parsed[
        embeddings_io.EMBEDDING_FEATURE]})[codebook_io.CODES_OUTPUT].numpy()
    for item_id, row in zip(parsed[embeddings_io.ITEM_ID_FEATURE].numpy(), codes):
      yield item_id.decode("utf-8"), row


def _to_example(item: Tuple[str, np.ndarray]) -> bytes:
  return sids_io.encode_codes(*item)


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


class Executor(base_beam_executor.BaseBeamExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    embeddings = artifact_utils.get_single_instance(input_dict[ITEM_EMBEDDINGS_KEY])
    codebook = artifact_utils.get_single_instance(input_dict[CODEBOOK_KEY])
    output = artifact_utils.get_single_instance(output_dict[SEMANTIC_IDS_KEY])
    batch_size = int(exec_properties.get(BATCH_SIZE_KEY) or DEFAULT_BATCH_SIZE)
    dimension = embeddings_io.read_metadata(embeddings.uri)["dimension"]
    saved_model_dir = codebook_io.saved_model_dir(codebook.uri)
    pattern = embeddings_io.embeddings_file_pattern(embeddings.uri)
    # Write under a temporary directory inside the artifact, then rename: a failed run never
    # leaves shards that look complete.
    tmp_dir = os.path.join(output.uri, ".tmp-" + sids_io.SIDS_DIR)
    with self._make_beam_pipeline() as pipeline:
      sids = (
          pipeline
          | "ReadEmbeddings" >> beam.io.ReadFromTFRecord(pattern)
          | "Batch" >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size)
          | "AssignCodes" >> beam.ParDo(AssignCodesFn(saved_model_dir, dimension)))
      _ = (sids
           | "ToExample" >> beam.Map(_to_example)
           | "WriteSids" >> beam.io.WriteToTFRecord(
               os.path.join(tmp_dir, sids_io.SHARD_PREFIX),
               file_name_suffix=sids_io.SHARD_SUFFIX))
      _ = (sids
           | "CollisionStats" >> beam.CombineGlobally(CollisionStatsFn())
           | "StatsJson" >> beam.Map(lambda s: json.dumps(s, indent=2, sort_keys=True))
           | "WriteStats" >> beam.io.WriteToText(
               os.path.join(tmp_dir, sids_io.STATS_FILE), shard_name_template=""))
    tf.io.gfile.rename(tmp_dir, os.path.join(output.uri, sids_io.SIDS_DIR), overwrite=True)
    tf.io.gfile.rename(os.path.join(output.uri, sids_io.SIDS_DIR, sids_io.STATS_FILE),
                       os.path.join(output.uri, sids_io.STATS_FILE), overwrite=True)
    stats = sids_io.read_stats(output.uri)
    output.set_string_custom_property(
        sids_io.CODEBOOK_PROPERTY, exec_properties.get(CODEBOOK_NAME_KEY) or
        codebook.get_string_custom_property(codebook_io.METHOD_PROPERTY))
    output.set_int_custom_property("items", stats["items"])
    output.set_int_custom_property(sids_io.CODE_COLUMNS_PROPERTY, stats["code_columns"])
    output.set_int_custom_property(
        sids_io.CODEBOOK_SIZE_PROPERTY,
        codebook.get_int_custom_property(codebook_io.CODEBOOK_SIZE_PROPERTY))
    output.set_float_custom_property("unique_sid_ratio", stats["unique_sid_ratio"])
