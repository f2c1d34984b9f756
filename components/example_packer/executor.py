"""ExamplePacker executor: Transform's input examples, transformed with its graph, -> chunks of
parsed columns, with Beam.

Why chunks: on 2 cores a Trainer spends nearly as much CPU reading Transform's output (GZIP
inflate, one tf.Example proto per example) as on its training step
(benchmarks/tfx_trainer_throughput.py), and every Trainer of a run (one per representation, and
per seed in `sidrec experiment`) re-reads the same output. Packed once into chunks that store
each feature column-wise, a read costs the proto overhead once per chunk instead of once per
example.

Why the packer transforms: the DAG's Transform only analyses (materialize=False). Its
materialization was a pass of its own, with TFT's Arrow decoding and a GZIP'd write, and the
packer then read it all back; here the packer parses each batch of chunks with the raw
feature spec and runs the transform graph on it once (benchmarks/stage_costs.py measures the
two stages).

Chunks: each record goes to chunk `fingerprint(key(record)) mod ceil(n / chunk_size)`, so a
chunk is a uniform random sample of its split (the examples keep the input order, one
user's interactions together) and the packing is the same for the same data; inside a chunk
records are ordered by that fingerprint. The key is the example without its code features
(contracts.packed_examples_io.is_code_feature), serialized with its features in key order:
- without the codes, a run that joins other codebooks packs the same interactions into the
  same chunks, so its models see the same example order (with the codes in the key, adding a
  codebook moved dense_content's new-item AUC by up to 0.014 on ML-1M, README);
- in key order, because protobuf writes a map field in an order that differs between
  processes, so the same example can come with other bytes in another run.
The Trainer shuffles chunks and re-batches them (`trainer.run.read_packed`). Output is
uncompressed: inflating is the cost this removes.

Each shard of a split is one element, read with tf.data (components/examples_io.py: Beam's
TFRecord source cost ~20 us a record); the split's count, which the chunk numbers need first,
is a sum of per-shard counts taken inside tf.data. On the in-process runners (the
DirectRunner) records reach their chunks through temporary files (bucket_files.py: a
GroupByKey of the records held the split in memory); elsewhere through a GroupByKey.
"""
import hashlib
import math
import os
import re
from typing import Any, Dict, Iterable, List, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from components import examples_io
from components.example_packer import bucket_files
from components.example_packer import spec
from contracts import beam_runners
from contracts import packed_examples_io as layout
from contracts import schema as S



def fingerprint(record: bytes) -> int:
  """A 63-bit content hash (Beam encodes ints as signed 64-bit)."""
  return int.from_bytes(hashlib.blake2b(record, digest_size=8).digest(), "little") >> 1


def packable_spec(transform_graph_uri: str) -> Dict[str, tf.io.FixedLenFeature]:
  """The transformed feature spec, which must be fixed-shape (a chunk concatenates values)."""
  spec = tft.TFTransformOutput(transform_graph_uri).transformed_feature_spec()
  ragged = sorted(name for name, s in spec.items() if not isinstance(s, tf.io.FixedLenFeature))
  if ragged:
    raise ValueError(
        f"ExamplePacker: transformed features {ragged} have no fixed shape in "
        f"{transform_graph_uri}; make preprocessing_fn emit dense fixed-width tensors (pad "
        f"var-length ones, as trainer/preprocessing.py pads histories)")
  return spec


def _chunk_key(record: bytes, count: int, chunk_size: int) -> Tuple[int, Tuple[int, bytes]]:
  """record -> (its chunk, (its place in the chunk, the record)).

  The record stays as it was read: its bytes break a tie in the chunk's sort only
  between records with one key, which hold the same values (the codes are a function of the
  item keys in the key), so the packed columns are the same whichever comes first."""
  example = tf.train.Example.FromString(record)
  for name in [n for n in example.features.feature if layout.is_code_feature(n)]:
    del example.features.feature[name]
  fp = fingerprint(example.SerializeToString(deterministic=True))
  return fp % max(1, math.ceil(count / chunk_size)), (fp, record)


# Chunks transformed in one call of the transform graph (16 x 128 = 2,048 examples by
# default): a call costs a few ms whatever its size, so one per 128-example chunk would add
# tens of seconds per 10^6 examples.
CHUNKS_PER_TRANSFORM = 16


def _keyed_records(shard: str, count: int, chunk_size: int):
  for record in examples_io.shard_records(shard):
    yield _chunk_key(record, count, chunk_size)


class ChunkPacker:
  """Chunks of raw examples -> serialized chunks of transformed columns.

  The raw examples of a batch of chunks, each chunk's by place, are parsed with the raw feature
  spec and transformed in one call; each chunk then holds its examples' transformed values.
  """

  def __init__(self, transform_graph_uri: str, split: str):
    output = tft.TFTransformOutput(transform_graph_uri)
    self._split = split
    self._spec = packable_spec(transform_graph_uri)
    self._raw_spec = output.raw_feature_spec()
    self._layer = output.transform_features_layer()

  def pack(self, chunks: List[Iterable[Tuple[int, bytes]]]) -> List[bytes]:
    """Each chunk's [(place, raw record)] -> its serialized chunk, its examples by place."""
    ordered = [[record for _, record in sorted(placed)] for placed in chunks]
    records = [record for chunk in ordered for record in chunk]
    try:
      raw = tf.io.parse_example(tf.constant(records), self._raw_spec)
    except tf.errors.InvalidArgumentError as e:
      raise ValueError(f"ExamplePacker: split {self._split!r}: {self._which(records)} does not "
                       f"match the schema Transform analysed ({_op_message(e)}); re-run "
                       f"SchemaGen and Transform over these examples") from e
    try:
      transformed = self._layer(raw)
    except tf.errors.InvalidArgumentError as e:
      raise ValueError(f"ExamplePacker: split {self._split!r}: the transform graph refused a "
                       f"batch of examples ({_op_message(e)}); the examples hold values the "
                       f"analysed training split did not (re-run the stages that wrote them, "
                       f"then Transform)") from e
    columns = {}
    for name, spec_ in self._spec.items():
      tensor = transformed[name]
      if tensor.dtype != spec_.dtype:
        tensor = tf.cast(tensor, spec_.dtype)
      values = tensor.numpy().reshape(len(records), -1)
      columns[name] = (values, _feature_of(values.dtype))
    out, start = [], 0
    for chunk in ordered:
      stop = start + len(chunk)
      feature = {layout.NUM_EXAMPLES: tf.train.Feature(
          int64_list=tf.train.Int64List(value=[len(chunk)]))}
      for name, (values, make) in columns.items():
        feature[name] = make(values[start:stop].reshape(-1).tolist())
      out.append(tf.train.Example(features=tf.train.Features(feature=feature))
                 .SerializeToString(deterministic=True))
      start = stop
    return out

  def _which(self, records: List[bytes]) -> str:
    """The first record the raw spec cannot parse, by its user and item ids."""
    for record in records:
      try:
        tf.io.parse_single_example(record, self._raw_spec)
      except tf.errors.InvalidArgumentError:
        feature = tf.train.Example.FromString(record).features.feature
        ids = [f"{name} {feature[name].bytes_list.value[0].decode(errors='replace')!r}"
               for name in (S.USER_ID, S.ITEM_ID) if feature[name].bytes_list.value]
        return "the example of " + ", ".join(ids) if ids else "an example"
    return "an example"


def _op_message(error: tf.errors.OpError) -> str:
  """An op's error without TF's function-node prefix and op suffix."""
  text = re.sub(r"\{\{function_node [^}]*\}\}\s*|Name: [^,]*, |, Index: \d+", "",
                error.message.splitlines()[0])
  return re.sub(r"\.?\s*\[Op:\w+\]$", "", text).strip()


class PackBucketFn(beam.DoFn):
  """(group, its records) -> the group's file of packed chunks, in chunk order.

  A group is a run of `chunks_per_group` consecutive chunks; its file is
  `chunks-GGGGG-of-NNNNN.tfrecord`, written under a temporary name in `temp_dir` and renamed
  into `target_dir`, so the packed artifact is the same files with the same records in the
  same order in every run, whatever the runner's bundles and workers (Beam's sharded write was
  not: two runs of the same code trained on other orders and moved AUC by up to 0.003). The
  records come as bucket files (`from_files`, the in-process runners: a group is a bucket) or
  as (chunk, place, record)s from a GroupByKey (a group is CHUNKS_PER_TRANSFORM chunks, so
  the packing spreads over many workers).
  """

  def __init__(self, transform_graph_uri: str, split: str, target_dir: str, temp_dir: str,
               chunk_size: int, chunks_per_group: int, from_files: bool):
    self._uri, self._split = transform_graph_uri, split
    self._target_dir, self._temp_dir = target_dir, temp_dir
    self._chunk_size, self._per_group = chunk_size, chunks_per_group
    self._from_files = from_files
    self._packer = None

  def setup(self):
    self._packer = ChunkPacker(self._uri, self._split)

  def process(self, element: Tuple[int, Iterable], count: int):
    bucket, values = element
    triples = ((t for path in sorted(values) for t in bucket_files.read_bucket(path))
               if self._from_files else values)
    chunks: Dict[int, List[Tuple[int, bytes]]] = {}
    for chunk, place, record in triples:
      chunks.setdefault(chunk, []).append((place, record))
    ordered = [chunks.pop(chunk) for chunk in sorted(chunks)]
    groups = math.ceil(max(1, math.ceil(count / self._chunk_size)) / self._per_group)
    name = f"{layout.FILE_PREFIX}-{bucket:05d}-of-{groups:05d}{layout.FILE_SUFFIX}"
    packed = (chunk for start in range(0, len(ordered), CHUNKS_PER_TRANSFORM)
              for chunk in self._packer.pack(ordered[start:start + CHUNKS_PER_TRANSFORM]))
    examples_io.write_records(os.path.join(self._target_dir, name), packed, self._temp_dir)


def _by_group(keyed: Tuple[int, Tuple[int, bytes]]):
  chunk, (place, record) = keyed
  return chunk // CHUNKS_PER_TRANSFORM, (chunk, place, record)


def _feature_of(dtype: np.dtype):
  if dtype == np.float32:
    return lambda v: tf.train.Feature(float_list=tf.train.FloatList(value=v))
  if dtype.kind in "iu":
    return lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
  return lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=v))


class Executor(base_beam_executor.BaseBeamExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
    graph_uri = artifact_utils.get_single_uri(input_dict[spec.TRANSFORM_GRAPH_KEY])
    output = artifact_utils.get_single_instance(output_dict[spec.PACKED_EXAMPLES_KEY])
    chunk_size = int(exec_properties[spec.CHUNK_SIZE_KEY])
    if chunk_size < 1:
      raise ValueError(f"ExamplePacker: chunk_size must be >= 1, got {chunk_size}")
    packable_spec(graph_uri)  # fail before Beam starts
    splits = artifact_utils.decode_split_names(examples.split_names)
    output.set_string_custom_property(layout.SPLIT_NAMES_PROPERTY,
                                      artifact_utils.encode_split_names(splits))
    output.set_int_custom_property(layout.CHUNK_SIZE_PROPERTY, chunk_size)
    temp_dir = os.path.join(output.uri, bucket_files.TEMP_DIR)
    try:
      with self._make_beam_pipeline() as pipeline:
        through_files = groups_in_process(pipeline)
        for split in splits:
          target_dir = layout.split_uri(output, split)
          tf.io.gfile.makedirs(target_dir)
          shards = (pipeline
                    | f"Shards[{split}]" >> beam.Create(
                        examples_io.split_files(examples, split))
                    # Spreads the shards over workers (a Create's elements would stay in one).
                    | f"Spread[{split}]" >> beam.Reshuffle())
          count = (shards
                   | f"CountShards[{split}]" >> beam.Map(examples_io.count_records)
                   | f"Count[{split}]" >> beam.CombineGlobally(sum))
          keyed = shards | f"Key[{split}]" >> beam.FlatMap(
              _keyed_records, beam.pvalue.AsSingleton(count), chunk_size)
          split_temp = os.path.join(temp_dir, split)
          tf.io.gfile.makedirs(split_temp)
          if through_files:
            groups = bucket_files.group_through_files(keyed, split_temp, chunk_size, split)
            per_group = bucket_files.chunks_per_bucket(chunk_size)
          else:
            groups = (keyed
                      | f"ByGroup[{split}]" >> beam.Map(_by_group)
                      | f"Group[{split}]" >> beam.GroupByKey())
            per_group = CHUNKS_PER_TRANSFORM
          _ = groups | f"Pack[{split}]" >> beam.ParDo(
              PackBucketFn(graph_uri, split, target_dir, split_temp, chunk_size, per_group,
                           from_files=through_files),
              beam.pvalue.AsSingleton(count))
      for split in splits:  # an empty split still has its (empty) file, as Beam's write gave
        target_dir = layout.split_uri(output, split)
        if not tf.io.gfile.listdir(target_dir):
          with tf.io.TFRecordWriter(os.path.join(
              target_dir, f"{layout.FILE_PREFIX}-00000-of-00001{layout.FILE_SUFFIX}")):
            pass
    finally:
      if tf.io.gfile.exists(temp_dir):
        tf.io.gfile.rmtree(temp_dir)


def groups_in_process(pipeline: beam.Pipeline) -> bool:
  """Whether the pipeline's runner groups in this process's memory (then bucket files)."""
  return beam_runners.runs_in_process(type(pipeline.runner).__name__)
