"""Executor of SemanticIdJoiner.

Added features (all int64 unless noted):
  item_sid [L]                  RQ-VAE codes of the candidate item
  history_sid [n*L]             the history items' codes, flattened in history order
  item_moc_codes [M]            Mixture-of-Codes codes (when `moc_codes` is given)
  history_moc_codes [n*M]
  item_embedding float [D]      content embedding of the candidate (when `item_embeddings` given)
The output schema is the input schema plus these features: the per-candidate ones with a fixed
shape (dense tensors in Transform and TFMA), the history ones variable-length. Every item of the catalog has codes (SemanticIdAssigner covers new items), so a missing item
is an error naming the example's split and item, not a silent default.
"""
import os
from typing import Any, Dict, List, Optional

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tensorflow_metadata.proto.v0 import schema_pb2

from components.content_embedder import embeddings_io
from components.semantic_id_assigner.executor import read_sids


class MissingItemCodesError(KeyError):
  """An example names an item that has no semantic ID."""


class JoinCodesFn(beam.DoFn):
  """Serialized tf.Example -> the same example with item / history codes added."""

  def __init__(self, split: str):
    self._split = split
    # Per table, every item's codes as a Python list, built on first use: the per-example
    # work is then list concatenation, not numpy -> int conversion of up to 11 code vectors
    # per table (2x faster per example on ML-1M).
    self._lists: Dict[str, Dict[str, list]] = {}
    self._pads: Dict[str, list] = {}

  def _as_lists(self, name: str, table: Dict[str, np.ndarray]) -> Dict[str, list]:
    if name not in self._lists:
      self._lists[name] = {key: codes.tolist() for key, codes in table.items()}
      # A padded history slot gets zeros: any codes do, the model masks the position out.
      # Only history slots: a candidate named "" is bad input (MissingItemCodesError).
      self._pads[name] = np.zeros_like(next(iter(table.values()))).tolist()
    return self._lists[name]

  def process(self, record: bytes, sids: Dict[str, np.ndarray],
              moc: Optional[Dict[str, np.ndarray]],
              embeddings: Optional[Dict[str, np.ndarray]]):
    example = tf.train.Example.FromString(record)
    feature = example.features.feature
    item_id = feature["item_id"].bytes_list.value[0].decode("utf-8")
    history = [h.decode("utf-8") for h in feature["history_item_ids"].bytes_list.value]

    def codes_of(lists, key, what):
      try:
        return lists[key]
      except KeyError:
        raise MissingItemCodesError(
            f"split {self._split!r}: item {key!r} ({what}) has no codes in the SemanticIds "
            f"artifact; assign SIDs for the whole catalog (SemanticIdAssigner) before joining"
        ) from None

    for name, table, item_key, history_key in (("sid", sids, "item_sid", "history_sid"),
                                               ("moc", moc, "item_moc_codes",
                                                "history_moc_codes")):
      if table is None:
        continue
      lists = self._as_lists(name, table)
      feature[item_key].int64_list.value[:] = codes_of(lists, item_id, "candidate")
      pad = self._pads[name]
      feature[history_key].int64_list.value[:] = [
          code for h in history
          for code in (pad if h == HISTORY_PAD else codes_of(lists, h, "history"))]
    if embeddings is not None:
      vector = codes_of(self._as_lists("embedding", embeddings), item_id, "candidate embedding")
      feature["item_embedding"].float_list.value[:] = vector
    yield example.SerializeToString()


SCHEMA_FILE = "schema.pbtxt"
HISTORY_PAD = ""  # tfx_pipeline/data/schema.py: histories are padded to a fixed length with ""


def _history_length(schema: schema_pb2.Schema) -> int:
  """N when the schema gives `history_item_ids` a fixed shape [N] (padded histories), else 0."""
  for f in schema.feature:
    if f.name == "history_item_ids" and len(f.shape.dim) == 1:
      return int(f.shape.dim[0].size)
  return 0


def joined_schema(schema: schema_pb2.Schema, levels: int, moc_codebooks: int = 0,
                  content_dim: int = 0) -> schema_pb2.Schema:
  """`schema` plus the joined features (replacing any of the same name).

  History codes get the fixed shape [N * width] when the history ids have the shape [N].
  """
  out = schema_pb2.Schema()
  out.CopyFrom(schema)
  n = _history_length(schema)
  added = [("item_sid", schema_pb2.INT, levels),
           ("history_sid", schema_pb2.INT, n * levels or None)]
  if moc_codebooks:
    added += [("item_moc_codes", schema_pb2.INT, moc_codebooks),
              ("history_moc_codes", schema_pb2.INT, n * moc_codebooks or None)]
  if content_dim:
    added.append(("item_embedding", schema_pb2.FLOAT, content_dim))
  names = {name for name, _, _ in added}
  kept = [f for f in out.feature if f.name not in names]
  del out.feature[:]
  out.feature.extend(kept)
  for name, kind, size in added:
    feature = out.feature.add(name=name, type=kind)
    if size:  # one fixed-size vector per example
      feature.shape.dim.add(size=size)
      feature.presence.min_fraction = 1.0
    else:  # history: n items x width values, n may be 0
      feature.value_count.min = 0
  return out


def _width(table: Optional[Dict[str, np.ndarray]]) -> int:
  return int(len(next(iter(table.values())))) if table else 0


class Executor(base_beam_executor.BaseBeamExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    examples = artifact_utils.get_single_instance(input_dict["examples"])
    output = artifact_utils.get_single_instance(output_dict["joined_examples"])
    sids = read_sids(artifact_utils.get_single_instance(input_dict["semantic_ids"]).uri)
    moc = None
    if input_dict.get("moc_codes"):
      moc = read_sids(artifact_utils.get_single_instance(input_dict["moc_codes"]).uri)
    embeddings = None
    if input_dict.get("item_embeddings"):
      ids, vectors = embeddings_io.load_item_embeddings(
          artifact_utils.get_single_instance(input_dict["item_embeddings"]).uri)
      embeddings = dict(zip(ids, vectors))
    schema_in = artifact_utils.get_single_instance(input_dict["schema"])
    schema = io_utils.SchemaReader().read(
        io_utils.get_only_uri_in_dir(schema_in.uri))
    schema_out = artifact_utils.get_single_instance(output_dict["joined_schema"])
    io_utils.write_pbtxt_file(
        os.path.join(schema_out.uri, SCHEMA_FILE),
        joined_schema(schema, _width(sids), _width(moc), _width(embeddings)))
    splits = artifact_utils.decode_split_names(examples.split_names)
    output.split_names = artifact_utils.encode_split_names(splits)
    with self._make_beam_pipeline() as pipeline:
      sids_side = pipeline | "Sids" >> beam.Create([sids])
      moc_side = pipeline | "Moc" >> beam.Create([moc])
      emb_side = pipeline | "Embeddings" >> beam.Create([embeddings])
      for split in splits:
        source = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
        target = os.path.join(artifact_utils.get_split_uri([output], split), "data_tfrecord")
        _ = (pipeline
             | f"Read[{split}]" >> beam.io.ReadFromTFRecord(source)
             | f"Join[{split}]" >> beam.ParDo(
                 JoinCodesFn(split), beam.pvalue.AsSingleton(sids_side),
                 beam.pvalue.AsSingleton(moc_side), beam.pvalue.AsSingleton(emb_side))
             | f"Write[{split}]" >> beam.io.WriteToTFRecord(target, file_name_suffix=".gz"))
