"""The copying ImportExampleGen executor against the stock one over tiny fixtures."""
import glob
import os

import pytest
import tensorflow as tf
from tfx.components.example_gen.import_example_gen import executor as stock_executor
from tfx.components.util import examples_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.import_example_gen import executor
from tfx_pipeline import pipeline


def _example(split: str, i: int) -> bytes:
  return tf.train.Example(features=tf.train.Features(feature={
      "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"u{i % 5}".encode()])),
      "label": tf.train.Feature(float_list=tf.train.FloatList(value=[i % 2])),
      "row": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
      "split": tf.train.Feature(bytes_list=tf.train.BytesList(value=[split.encode()])),
  })).SerializeToString()


def _write_input(root, splits=("train", "eval"), shards=2, rows=20, suffix=".tfrecord.gz"):
  for split in splits:
    os.makedirs(root / split)
    for shard in range(shards):
      path = str(root / split / f"part-{shard:05d}-of-{shards:05d}{suffix}")
      with tf.io.TFRecordWriter(path, options="GZIP" if suffix.endswith(".gz") else "") as w:
        for i in range(shard * rows, (shard + 1) * rows):
          w.write(_example(split, i))
  return str(root)


def _exec_properties(input_base, splits):
  """The sidrec DAG's ImportExampleGen's exec properties, protos as JSON as the launcher passes
  them (without what the driver adds: span, version, input fingerprint)."""
  component = pipeline._import_example_gen(input_base, list(splits), "ExampleGen")
  return {key: proto_utils.proto_to_json(value) if hasattr(value, "DESCRIPTOR") else value
          for key, value in component.exec_properties.items()}


def _run(executor_class, properties, uri):
  examples = standard_artifacts.Examples()
  examples.uri = uri
  executor_class().Do({}, {"examples": [examples]}, dict(properties))
  return examples


def _records(examples):
  out = {}
  for split in artifact_utils.decode_split_names(examples.split_names):
    files = glob.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*"))
    out[split] = sorted(r.numpy() for r in tf.data.TFRecordDataset(files, "GZIP"))
  return out


@pytest.mark.parametrize("splits", [("train", "eval"), ("catalog",)])
def test_copies_match_what_the_stock_executor_writes(tmp_path, splits):
  properties = _exec_properties(_write_input(tmp_path / "in", splits), splits)
  assert executor.copy_plan(properties) is not None
  copied = _run(executor.Executor, properties, str(tmp_path / "copied"))
  stock = _run(stock_executor.Executor, properties, str(tmp_path / "stock"))

  assert copied.split_names == stock.split_names
  assert artifact_utils.decode_split_names(copied.split_names) == list(splits)
  assert examples_utils.get_payload_format(copied) == examples_utils.get_payload_format(stock)
  # Parsed and serialized again the stock records may order a map's fields differently.
  parse = lambda records: sorted(str(tf.train.Example.FromString(r)) for r in records)
  assert {s: parse(r) for s, r in _records(copied).items()} == {
      s: parse(r) for s, r in _records(stock).items()}
  for split in splits:
    names = sorted(os.listdir(artifact_utils.get_split_uri([copied], split)))
    assert names == ["data_tfrecord-00000-of-00002.gz", "data_tfrecord-00001-of-00002.gz"]


def test_inputs_it_cannot_copy_go_to_the_stock_executor(tmp_path):
  plain = _exec_properties(_write_input(tmp_path / "plain", suffix=".tfrecord"),
                           ("train", "eval"))
  assert executor.copy_plan(plain) is None
  examples = _run(executor.Executor, plain, str(tmp_path / "out"))
  assert {s: len(r) for s, r in _records(examples).items()} == {"train": 40, "eval": 40}

  not_examples = tmp_path / "csv"
  os.makedirs(not_examples / "train")
  os.makedirs(not_examples / "eval")
  for split in ("train", "eval"):
    with tf.io.TFRecordWriter(str(not_examples / split / "a.gz"), options="GZIP") as w:
      w.write(b"user_id,item_id\n")
  assert executor.copy_plan(_exec_properties(str(not_examples), ("train", "eval"))) is None

  hashed = _exec_properties(_write_input(tmp_path / "hashed", ("all",)), ("all",))
  hashed["output_config"] = proto_utils.proto_to_json(
      pipeline.example_gen_pb2.Output(split_config=pipeline.example_gen_pb2.SplitConfig(
          splits=[pipeline.example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=3),
                  pipeline.example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)])))
  assert executor.copy_plan(hashed) is None
  examples = _run(executor.Executor, hashed, str(tmp_path / "hashed_out"))
  counts = {s: len(r) for s, r in _records(examples).items()}
  assert sorted(counts) == ["eval", "train"] and sum(counts.values()) == 40
