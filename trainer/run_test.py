"""trainer/run.py make_input: the Trainer's reader of Transform's TFRecords and its in-memory cache."""
import os
import types

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from trainer import run as trainer_run

EXAMPLES = 300
BATCH = 10


def _example(i):
  """A transformed-like example: row id i, two SPM-like ids, a label, a feature nobody reads."""
  return tf.train.Example(features=tf.train.Features(feature={
      "row": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
      "item_spm": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 7, i % 5])),
      "label": tf.train.Feature(float_list=tf.train.FloatList(value=[i % 2])),
      "unread": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"])),
  })).SerializeToString()


def _schema():
  schema = schema_pb2.Schema()
  for name, kind, width in (("row", schema_pb2.INT, 1), ("item_spm", schema_pb2.INT, 2),
                            ("label", schema_pb2.FLOAT, 1), ("unread", schema_pb2.BYTES, 1)):
    feature = schema.feature.add(name=name, type=kind)
    feature.shape.dim.add(size=width)
    feature.presence.min_fraction = 1.0
  return types.SimpleNamespace(transformed_metadata=types.SimpleNamespace(schema=schema))


def _write(path, rows, compression="GZIP"):
  with tf.io.TFRecordWriter(path, options=compression) as writer:
    for i in rows:
      writer.write(_example(i))


def _transformed(tmp_path):
  """A GZIP TFRecord of transformed-like examples (as Transform writes them) and the
  TFTransformOutput part make_input reads."""
  path = str(tmp_path / "transformed.gz")
  _write(path, range(EXAMPLES))
  return path, _schema()


def _rows(batches):
  return [b["row"].numpy().reshape(-1).tolist() for b in batches]


def _input(path, tft_output, cache, shuffle=True):
  return trainer_run.make_input([path], tft_output, {"row", "item_spm", "label"},
                                BATCH, shuffle=shuffle, seed=3, cache=cache)


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


def test_reads_every_shard_once_and_parses_the_values(tmp_path):
  # A distributed runner writes many shards; uncompressed ones (no .gz) are read as such.
  for shard, rows in enumerate((range(0, 120), range(120, 130), range(130, EXAMPLES))):
    _write(str(tmp_path / f"part-{shard:05d}-of-00003.gz"), rows)
  _write(str(tmp_path / "plain-00000"), range(EXAMPLES, EXAMPLES + 7), compression="")
  for pattern, expected in ((str(tmp_path / "part-*"), range(EXAMPLES)),
                            (str(tmp_path / "plain-*"), range(EXAMPLES, EXAMPLES + 7))):
    batches = list(_input(pattern, _schema(), cache=False))
    assert sorted(r for b in _rows(batches) for r in b) == list(expected)
    for b in batches:  # each row's own values, parsed with the transformed schema's shapes
      rows = b["row"].numpy().reshape(-1)
      assert b["item_spm"].numpy().tolist() == [[r % 7, r % 5] for r in rows]
      assert b["label"].numpy().reshape(-1).tolist() == [float(r % 2) for r in rows]


def test_unshuffled_input_keeps_the_file_order(tmp_path):
  path, tft_output = _transformed(tmp_path)
  assert [r for b in _rows(_input(path, tft_output, cache=False, shuffle=False))
          for r in b] == list(range(EXAMPLES))


def test_missing_files_and_features_are_named(tmp_path):
  path, tft_output = _transformed(tmp_path)
  with pytest.raises(FileNotFoundError, match="no transformed examples match"):
    _input(str(tmp_path / "nothing-*"), tft_output, cache=False)
  with pytest.raises(ValueError, match=r"lack \['item_key'\]"):
    trainer_run.make_input([path], tft_output, {"row", "item_key"}, BATCH, shuffle=False, seed=0)
