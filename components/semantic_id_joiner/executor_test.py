"""SemanticIdJoiner executor over a tiny hand-built Examples + SemanticIds fixture."""
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from components.semantic_id_joiner import executor
from components.semantic_id_joiner import spec as joiner_spec
from contracts import artifacts
from contracts.semantic_ids_io import SIDS_DIR

SIDS = {"a": [1, 2, 3], "b": [1, 2, 4], "new": [7, 0, 5]}
MOC = {"a": [9, 8], "b": [9, 7], "new": [6, 6]}


def _example(item, history):
  return tf.train.Example(features=tf.train.Features(feature={
      "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[item.encode()])),
      "history_item_ids": tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[h.encode() for h in history])),
      "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
  })).SerializeToString()


def _write(path, records):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as w:
    for r in records:
      w.write(r)


def _codes_artifact(root, table):
  art = artifacts.SemanticIds()
  art.uri = str(root)
  art.set_int_custom_property("code_columns", len(next(iter(table.values()))))
  art.set_int_custom_property("codebook_size", 10)
  _write(os.path.join(art.uri, SIDS_DIR, "part-00000-of-00001.tfrecord.gz"), [
      tf.train.Example(features=tf.train.Features(feature={
          "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[k.encode()])),
          "codes": tf.train.Feature(int64_list=tf.train.Int64List(value=v)),
      })).SerializeToString() for k, v in table.items()])
  return art


def _read(uri):
  files = tf.io.gfile.glob(os.path.join(uri, "*"))
  return [tf.train.Example.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _run(tmp_path, examples_by_split, sids=SIDS, moc=MOC, history_shape=0):
  """`examples_by_split`: {split: records}, one input shard, or {split: [records, ...]}."""
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "examples")
  examples.split_names = artifact_utils.encode_split_names(list(examples_by_split))
  for split, records in examples_by_split.items():
    shards = records if records and isinstance(records[0], list) else [records]
    for i, shard in enumerate(shards):
      _write(os.path.join(examples.uri, f"Split-{split}", f"data-{i}.gz"), shard)
  schema = standard_artifacts.Schema()
  schema.uri = str(tmp_path / "schema")
  io_utils.write_pbtxt_file(os.path.join(schema.uri, "schema.pbtxt"), schema_pb2.Schema(
      feature=[schema_pb2.Feature(name="item_id", type=schema_pb2.BYTES),
               schema_pb2.Feature(name="history_item_ids", type=schema_pb2.BYTES,
                                  shape=schema_pb2.FixedShape(
                                      dim=[schema_pb2.FixedShape.Dim(size=history_shape)])
                                  if history_shape else None,
                                  presence=schema_pb2.FeaturePresence(min_fraction=1.0)),
               schema_pb2.Feature(name="label", type=schema_pb2.INT)]))
  output = standard_artifacts.Examples()
  output.uri = str(tmp_path / "joined")
  schema_out = standard_artifacts.Schema()
  schema_out.uri = str(tmp_path / "joined_schema")
  inputs = {"examples": [examples], "schema": [schema],
            "codes_rqvae": [_codes_artifact(tmp_path / "sids", sids)],
            "codes_moc": [_codes_artifact(tmp_path / "moc", moc)]}
  executor.Executor().Do(inputs, {"joined_examples": [output], "joined_schema": [schema_out]}, {})
  return output


def test_candidate_and_history_codes_are_joined_in_every_split(tmp_path):
  output = _run(tmp_path, {
      "train": [_example("a", []), _example("b", ["a"])],
      "eval": [_example("new", ["b", "a"])],
  })
  assert artifact_utils.decode_split_names(output.split_names) == ["train", "eval"]
  train = {e.features.feature["item_id"].bytes_list.value[0].decode(): e
           for e in _read(artifact_utils.get_split_uri([output], "train"))}
  f = train["b"].features.feature
  assert list(f["item_codes_rqvae"].int64_list.value) == SIDS["b"]
  assert list(f["history_codes_rqvae"].int64_list.value) == SIDS["a"]
  assert list(f["item_codes_moc"].int64_list.value) == MOC["b"]
  assert list(train["a"].features.feature["history_codes_rqvae"].int64_list.value) == []
  (new,) = _read(artifact_utils.get_split_uri([output], "eval"))
  f = new.features.feature
  assert list(f["item_codes_rqvae"].int64_list.value) == SIDS["new"]
  # History keeps its order: b's codes first, then a's.
  assert list(f["history_codes_rqvae"].int64_list.value) == SIDS["b"] + SIDS["a"]
  assert list(f["history_codes_moc"].int64_list.value) == MOC["b"] + MOC["a"]
  assert f["label"].int64_list.value[0] == 1  # original features kept


def test_padded_history_gets_zero_codes_and_a_fixed_shape(tmp_path):
  from tensorflow_transform.tf_metadata import schema_utils
  output = _run(tmp_path, {"train": [_example("b", ["a", "", ""])]}, history_shape=3)
  (joined,) = _read(artifact_utils.get_split_uri([output], "train"))
  f = joined.features.feature
  assert list(f["history_codes_rqvae"].int64_list.value) == SIDS["a"] + [0] * 6
  assert list(f["history_codes_moc"].int64_list.value) == MOC["a"] + [0] * 4
  schema = io_utils.SchemaReader().read(str(tmp_path / "joined_schema" / "schema.pbtxt"))
  spec = schema_utils.schema_as_feature_spec(schema).feature_spec
  assert spec["history_codes_rqvae"] == tf.io.FixedLenFeature([9], tf.int64)
  assert spec["history_codes_moc"] == tf.io.FixedLenFeature([6], tf.int64)


def test_each_input_shard_becomes_one_output_shard_in_its_order(tmp_path):
  first = [_example(item, ["a"]) for item in ("b", "a", "new", "b")]
  second = [_example(item, []) for item in ("new", "a")]
  output = _run(tmp_path, {"train": [first, second]})
  split = artifact_utils.get_split_uri([output], "train")
  assert sorted(os.listdir(split)) == ["data_tfrecord-00000-of-00002.gz",
                                       "data_tfrecord-00001-of-00002.gz"]
  assert sorted(os.listdir(output.uri)) == ["Split-train"]  # the temporary directory is gone
  for name, records in (("data_tfrecord-00000-of-00002.gz", first),
                        ("data_tfrecord-00001-of-00002.gz", second)):
    joined = [tf.train.Example.FromString(r.numpy()) for r in
              tf.data.TFRecordDataset(os.path.join(split, name), compression_type="GZIP")]
    assert [e.features.feature["item_id"].bytes_list.value[0] for e in joined] == [
        tf.train.Example.FromString(r).features.feature["item_id"].bytes_list.value[0]
        for r in records]


def test_item_without_codes_is_a_clear_error_and_leaves_no_shard(tmp_path):
  with pytest.raises(Exception, match="item 'ghost'.*no codes in the SemanticIds artifact of "
                     "codebook 'moc'"):
    _run(tmp_path, {"train": [_example("a", []), _example("ghost", [])]})
  assert os.listdir(tmp_path / "joined" / "Split-train") == []  # no partial or temporary file
  assert not os.path.exists(tmp_path / "joined" / executor.TEMP_DIR)


def test_empty_candidate_id_is_an_error_not_padding(tmp_path):
  # "" pads histories only; a candidate named "" is a broken row, not an item with zero codes.
  with pytest.raises(Exception, match="item '' \\(candidate\\).*no codes"):
    _run(tmp_path, {"train": [_example("", ["a"])]})


def test_joined_schema_gives_fixed_candidate_codes_and_varlen_history(tmp_path):
  from tensorflow_transform.tf_metadata import schema_utils
  _run(tmp_path, {"train": [_example("a", [])]})
  schema = io_utils.SchemaReader().read(str(tmp_path / "joined_schema" / "schema.pbtxt"))
  spec = schema_utils.schema_as_feature_spec(schema).feature_spec
  # What Transform and TFMA will parse: [B, L] / [B, M] dense, histories sparse.
  assert spec["item_codes_rqvae"] == tf.io.FixedLenFeature([3], tf.int64)
  assert spec["item_codes_moc"] == tf.io.FixedLenFeature([2], tf.int64)
  assert isinstance(spec["history_codes_rqvae"], tf.io.VarLenFeature)
  assert isinstance(spec["history_codes_moc"], tf.io.VarLenFeature)
  assert {"item_id", "history_item_ids", "label"} <= set(spec)  # input schema kept


def test_spec_has_one_codes_input_per_codebook():
  spec = joiner_spec.joiner_spec(["rqvae", "aligned"])
  assert {"codes_rqvae", "codes_aligned", "examples", "schema"} == set(spec.INPUTS)
  assert set(joiner_spec.SemanticIdJoinerSpec.INPUTS) == {"examples", "schema"}
