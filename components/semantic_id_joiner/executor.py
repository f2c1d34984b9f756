"""Executor of SemanticIdJoiner.

For every codebook `<c>` given as input `codes_<c>` (contracts/schema.py names, int64):
  item_codes_<c> [C]         the candidate item's codes
  history_codes_<c> [n*C]    the history items' codes, flattened in history order
C is the codebook's code width, its SemanticIds artifact's `code_columns`. The output schema is the
input schema plus these features: the candidate's with a fixed shape (dense tensors in
Transform and TFMA), the history's fixed when the history ids have a fixed shape (padded
histories) and variable-length otherwise. Every item of the catalog has codes
(SemanticIdAssigner covers new items), so a missing item is an error naming the example's
split and item, not a silent default.
"""
import os
from typing import Any, Dict, List, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import examples_io
from components.semantic_id_joiner import spec
from contracts import schema as S
from contracts import semantic_ids_io


TEMP_DIR = ".joiner-tmp"  # under the output artifact, beside its splits; removed when done


class MissingItemCodesError(KeyError):
  """An example names an item that has no semantic ID."""


class CodeJoiner:
  """Serialized tf.Example -> the same example with every codebook's item / history codes."""

  def __init__(self, split: str):
    self._split = split
    # Per codebook, every item's codes as a Python list, built once per worker: the
    # per-example work is then list concatenation, not numpy -> int conversion of up to 11
    # code vectors per codebook (2x faster per example on ML-1M).
    self._lists: Dict[str, Dict[str, list]] = {}
    self._pads: Dict[str, list] = {}

  def _as_lists(self, codes: Dict[str, Dict[str, np.ndarray]]):
    if not self._lists:
      for name, table in codes.items():
        self._lists[name] = {key: vector.tolist() for key, vector in table.items()}
        # A padded history slot gets zeros: any codes do, the model masks the position out.
        # Only history slots: a candidate named "" is bad input (MissingItemCodesError).
        self._pads[name] = np.zeros_like(next(iter(table.values()))).tolist()
    return self._lists

  def join(self, record: bytes, codes: Dict[str, Dict[str, np.ndarray]]) -> bytes:
    example = tf.train.Example.FromString(record)
    feature = example.features.feature
    item_id = feature[S.ITEM_ID].bytes_list.value[0].decode("utf-8")
    history = [h.decode("utf-8") for h in feature[S.HISTORY_ITEM_IDS].bytes_list.value]

    def codes_of(lists, key, what, codebook):
      try:
        return lists[key]
      except KeyError:
        raise MissingItemCodesError(
            f"split {self._split!r}: item {key!r} ({what}) has no codes in the SemanticIds "
            f"artifact of codebook {codebook!r}; assign SIDs for the whole catalog "
            f"(SemanticIdAssigner) before joining") from None

    for name, lists in self._as_lists(codes).items():
      feature[S.item_codes(name)].int64_list.value[:] = codes_of(lists, item_id, "candidate",
                                                                 name)
      pad = self._pads[name]
      feature[S.history_codes(name)].int64_list.value[:] = [
          code for h in history
          for code in (pad if h == S.HISTORY_PAD else codes_of(lists, h, "history", name))]
    return example.SerializeToString(deterministic=True)


class JoinShardFn(beam.DoFn):
  """(input shard, output shard) -> the output shard written: every record of the input, in
  its order, with its codes; through a temporary name, so a retried or killed bundle leaves
  no partial shard under the final name.

  Why a shard per element, not a record: the join itself costs ~9 us a record, Beam's
  per-record read, dispatch and write ~20 us more on the DirectRunner (a 2x10^5-record
  pass; components/examples_io.py).
  """

  def __init__(self, split: str, temp_dir: str):
    self._joiner = CodeJoiner(split)
    self._temp_dir = temp_dir  # the executor removes it

  def process(self, paths: Tuple[str, str], codes: Dict[str, Dict[str, np.ndarray]]):
    source, target = paths
    examples_io.write_records(
        target, (self._joiner.join(r, codes) for r in examples_io.shard_records(source)),
        self._temp_dir, options="GZIP")


def shard_plan(examples, output, split: str) -> List[Tuple[str, str]]:
  """[(input shard, output shard)]: one output shard per input file, in name order, named as
  Beam names shards (`data_tfrecord-SSSSS-of-NNNNN.gz`)."""
  sources = examples_io.split_files(examples, split)
  target_dir = artifact_utils.get_split_uri([output], split)
  n = len(sources)
  return [(path, os.path.join(target_dir, f"{spec.OUTPUT_FILE_PREFIX}-{i:05d}-of-{n:05d}"
                                          f"{spec.OUTPUT_FILE_SUFFIX}"))
          for i, path in enumerate(sources)]


def _history_length(schema: schema_pb2.Schema) -> int:
  """N when the schema gives `history_item_ids` a fixed shape [N] (padded histories), else 0."""
  for f in schema.feature:
    if f.name == S.HISTORY_ITEM_IDS and len(f.shape.dim) == 1:
      return int(f.shape.dim[0].size)
  return 0


def joined_schema(schema: schema_pb2.Schema, code_widths: Dict[str, int]) -> schema_pb2.Schema:
  """`schema` plus each codebook's joined features (replacing any of the same name).

  `code_widths`: {codebook name: C}. History codes get the fixed shape [N * C] when the
  history ids have the shape [N].
  """
  out = schema_pb2.Schema()
  out.CopyFrom(schema)
  n = _history_length(schema)
  added = []
  for name, width in sorted(code_widths.items()):
    added += [(S.item_codes(name), width), (S.history_codes(name), n * width or None)]
  names = {name for name, _ in added}
  kept = [f for f in out.feature if f.name not in names]
  del out.feature[:]
  out.feature.extend(kept)
  for name, size in added:
    feature = out.feature.add(name=name, type=schema_pb2.INT)
    if size:  # one fixed-size vector per example
      feature.shape.dim.add(size=size)
      feature.presence.min_fraction = 1.0
    else:  # history: n items x width values, n may be 0
      feature.value_count.min = 0
  return out


class Executor(base_beam_executor.BaseBeamExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
    output = artifact_utils.get_single_instance(output_dict[spec.JOINED_EXAMPLES_KEY])
    codebooks = spec.codebook_inputs(input_dict)
    if not codebooks:
      raise ValueError("SemanticIdJoiner got no `codes_<codebook>` input")
    codes = {name: semantic_ids_io.read_sids(artifact.uri) for name, artifact in
             codebooks.items()}
    empty = [name for name, table in codes.items() if not table]
    if empty:
      raise ValueError(f"the SemanticIds artifacts of codebook(s) {empty} hold no codes "
                       f"({[codebooks[n].uri for n in empty]}); re-run their assigners")
    schema_in = artifact_utils.get_single_instance(input_dict[spec.SCHEMA_KEY])
    schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_in.uri))
    schema_out = artifact_utils.get_single_instance(output_dict[spec.JOINED_SCHEMA_KEY])
    # The width the Trainer and the serving signature will read: the artifact's own.
    widths = {name: semantic_ids_io.code_shape(artifact)[0] for name, artifact in
              codebooks.items()}
    wrong = {name: len(next(iter(codes[name].values()))) for name in codes
             if len(next(iter(codes[name].values()))) != widths[name]}
    if wrong:
      raise ValueError(f"SemanticIds of codebook(s) {sorted(wrong)} hold codes of width "
                       f"{wrong}, not their artifacts' code_columns {widths}; re-run their "
                       f"assigners")
    io_utils.write_pbtxt_file(os.path.join(schema_out.uri, spec.SCHEMA_FILE),
                              joined_schema(schema, widths))
    splits = artifact_utils.decode_split_names(examples.split_names)
    output.split_names = artifact_utils.encode_split_names(splits)
    plans = {split: shard_plan(examples, output, split) for split in splits}
    temp_dir = os.path.join(output.uri, TEMP_DIR)
    tf.io.gfile.makedirs(temp_dir)
    try:
      with self._make_beam_pipeline() as pipeline:
        codes_side = pipeline | "Codes" >> beam.Create([codes])
        for split, plan in plans.items():
          tf.io.gfile.makedirs(artifact_utils.get_split_uri([output], split))
          _ = (pipeline
               | f"Shards[{split}]" >> beam.Create(plan)
               # Spreads the shards over workers (a Create's elements would stay in one).
               | f"Spread[{split}]" >> beam.Reshuffle()
               | f"Join[{split}]" >> beam.ParDo(JoinShardFn(split, temp_dir),
                                                beam.pvalue.AsSingleton(codes_side)))
    finally:
      if tf.io.gfile.exists(temp_dir):
        tf.io.gfile.rmtree(temp_dir)
