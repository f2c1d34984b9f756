"""Executor of SemanticIdJoiner.

Added features (all int64 unless noted):
  item_sid [L]                  RQ-VAE codes of the candidate item
  history_sid [n*L]             the history items' codes, flattened in history order
  item_moc_codes [M]            Mixture-of-Codes codes (when `moc_codes` is given)
  history_moc_codes [n*M]
  item_embedding float [D]      content embedding of the candidate (when `item_embeddings` given)
Every item of the catalog has codes (SemanticIdAssigner covers new items), so a missing item
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

from components.content_embedder import embeddings_io
from components.semantic_id_assigner.executor import read_sids


class MissingItemCodesError(KeyError):
  """An example names an item that has no semantic ID."""


def _int64(values) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


class JoinCodesFn(beam.DoFn):
  """Serialized tf.Example -> the same example with item / history codes added."""

  def __init__(self, split: str):
    self._split = split

  def process(self, record: bytes, sids: Dict[str, np.ndarray],
              moc: Optional[Dict[str, np.ndarray]],
              embeddings: Optional[Dict[str, np.ndarray]]):
    example = tf.train.Example.FromString(record)
    feature = example.features.feature
    item_id = feature["item_id"].bytes_list.value[0].decode("utf-8")
    history = [h.decode("utf-8") for h in feature["history_item_ids"].bytes_list.value]

    def codes_of(table, key, what):
      try:
        return table[key]
      except KeyError:
        raise MissingItemCodesError(
            f"split {self._split!r}: item {key!r} ({what}) has no codes in the SemanticIds "
            f"artifact; assign SIDs for the whole catalog (SemanticIdAssigner) before joining"
        ) from None

    feature["item_sid"].CopyFrom(_int64(codes_of(sids, item_id, "candidate")))
    feature["history_sid"].CopyFrom(_int64(
        np.concatenate([codes_of(sids, h, "history") for h in history]) if history else []))
    if moc is not None:
      feature["item_moc_codes"].CopyFrom(_int64(codes_of(moc, item_id, "candidate")))
      feature["history_moc_codes"].CopyFrom(_int64(
          np.concatenate([codes_of(moc, h, "history") for h in history]) if history else []))
    if embeddings is not None:
      vector = codes_of(embeddings, item_id, "candidate embedding")
      feature["item_embedding"].float_list.value[:] = vector.tolist()
    yield example.SerializeToString()


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
