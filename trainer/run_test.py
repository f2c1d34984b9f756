"""trainer/run.py make_input: the Trainer's TFXIO input and its in-memory cache of parsed batches."""
import os
import types

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.public import tfxio

from trainer import run as trainer_run

EXAMPLES = 300
BATCH = 10


class _DataAccessor:
  """TFX's DataAccessor for tf.Example payloads (what the Trainer hands run_fn)."""

  @staticmethod
  def tf_dataset_factory(files, options, schema):
    return tfxio.TFExampleRecord(file_pattern=files, telemetry_descriptors=["test"],
                                 schema=schema).TensorFlowDataset(options)


def _transformed(tmp_path):
  """A GZIP TFRecord of transformed-like examples and the TFTransformOutput part make_input reads."""
  path = str(tmp_path / "transformed.gz")
  with tf.io.TFRecordWriter(path, options="GZIP") as writer:
    for i in range(EXAMPLES):
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          "row": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
          "item_spm": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 7, i % 5])),
          "label": tf.train.Feature(float_list=tf.train.FloatList(value=[i % 2])),
          "unread": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"])),
      })).SerializeToString())
  schema = schema_pb2.Schema()
  for name, kind, width in (("row", schema_pb2.INT, 1), ("item_spm", schema_pb2.INT, 2),
                            ("label", schema_pb2.FLOAT, 1), ("unread", schema_pb2.BYTES, 1)):
    feature = schema.feature.add(name=name, type=kind)
    feature.shape.dim.add(size=width)
    feature.presence.min_fraction = 1.0
  tft_output = types.SimpleNamespace(transformed_metadata=types.SimpleNamespace(schema=schema))
  return path, tft_output


def _rows(batches):
  return [b["row"].numpy().reshape(-1).tolist() for b in batches]


def _input(path, tft_output, cache):
  fn_args = types.SimpleNamespace(data_accessor=_DataAccessor())
  return trainer_run.make_input(fn_args, [path], tft_output, {"row", "item_spm", "label"},
                                BATCH, shuffle=True, seed=3, cache=cache)


def test_cached_input_serves_later_epochs_without_the_files(tmp_path):
  path, tft_output = _transformed(tmp_path)
  dataset = _input(path, tft_output, cache=True)
  first = _rows(dataset)
  os.remove(path)  # epoch 2 must come from the parsed batches kept by epoch 1
  second = _rows(dataset)
  # Every example exactly once per epoch, only the features the model reads.
  for epoch in (first, second):
    assert sorted(r for batch in epoch for r in batch) == list(range(EXAMPLES))
  assert set(next(iter(dataset)).keys()) == {"row", "item_spm", "label"}
  # Batches are reshuffled between epochs; a batch keeps its (already shuffled) examples.
  assert first != second
  assert sorted(map(tuple, first)) == sorted(map(tuple, second))
  assert first[0] != list(range(BATCH))  # the first read itself is shuffled


def test_uncached_input_reads_the_files_every_epoch(tmp_path):
  path, tft_output = _transformed(tmp_path)
  dataset = _input(path, tft_output, cache=False)
  assert sorted(r for batch in _rows(dataset) for r in batch) == list(range(EXAMPLES))
  os.remove(path)
  with pytest.raises((tf.errors.NotFoundError, tf.errors.InvalidArgumentError)):
    _rows(dataset)


def test_cached_epochs_are_reproducible_for_a_seed(tmp_path):
  path, tft_output = _transformed(tmp_path)
  a, b = _input(path, tft_output, cache=True), _input(path, tft_output, cache=True)
  assert [_rows(a), _rows(a)] == [_rows(b), _rows(b)]
