"""examples_io over TFRecord files written at test time: every record once, in file order."""
import pytest
import tensorflow as tf

from components import examples_io


@pytest.mark.parametrize("name, options", [("part-0.gz", "GZIP"), ("part-0.tfrecord", "")])
def test_a_shard_reads_and_counts_every_record_in_order(tmp_path, name, options):
  path = str(tmp_path / name)
  records = [f"record {i}".encode() * (i % 5 + 1) for i in range(10_000)]
  with tf.io.TFRecordWriter(path, options=options) as writer:
    for record in records:
      writer.write(record)
  assert list(examples_io.shard_records(path, batch_size=333)) == records
  assert examples_io.count_records(path) == len(records)
  empty = str(tmp_path / ("empty" + name))
  with tf.io.TFRecordWriter(empty, options=options):
    pass
  assert list(examples_io.shard_records(empty)) == [] and examples_io.count_records(empty) == 0
