"""A grouping of records by chunk through temporary files, for the in-process Beam runners.

Each bundle appends its records to one file per bucket (a bucket is a run of consecutive
chunks, about RECORDS_PER_BUCKET records); a GroupByKey moves only the file names; the packer
(executor.PackBucketFn) reads one bucket at a time back, splits it into its chunks and writes
the bucket's packed file. Why: the DirectRunner holds a GroupByKey's
whole input in memory, decoded, and encodes it once more before the next stage reads it. With
a GroupByKey of the records the packer was the one stage whose memory grew with the data
(benchmarks/stage_costs.py, synthetic: 2.5 GB peak at 2.5x10^5 interactions, 4.85 GB at
10^6) and the one above 4.4x time per 4x data (4.66).

On distributed runners the packer keeps the GroupByKey: their shuffle spills to disk, and
with bundles of ~1000 records (Flink's default) every bundle would write a file per bucket.
"""
import os
import struct
import uuid
from typing import Iterable, Tuple

import apache_beam as beam
import tensorflow as tf
from apache_beam.transforms import window

# A bucket read back holds about this many records in memory (~100 MB of ranking examples).
RECORDS_PER_BUCKET = 1 << 16
# A bucket file is a run of (chunk, place in the chunk, length, record), read back whole and
# split in Python: ~1 us a record. Bucket files as TFRecords read back through tf.data cost
# ~30 us a record (the packer alone over 10^6 synthetic records: 115 s against 75 s).
HEADER = struct.Struct("<qqI")
FLUSH_BYTES = 1 << 22
TEMP_DIR = ".packer-tmp"


def chunks_per_bucket(chunk_size: int) -> int:
  return max(1, RECORDS_PER_BUCKET // chunk_size)


class _OpenBucket:
  """One bundle's file of one bucket: records are buffered and written FLUSH_BYTES at a time."""

  def __init__(self, path: str):
    self.path = path
    self._file = tf.io.gfile.GFile(path, "wb")
    self._pending, self._size = [], 0

  def append(self, chunk: int, place: int, record: bytes):
    self._pending.append(HEADER.pack(chunk, place, len(record)))
    self._pending.append(record)
    self._size += HEADER.size + len(record)
    if self._size >= FLUSH_BYTES:
      self._flush()

  def close(self):
    self._flush()
    self._file.close()

  def _flush(self):
    self._file.write(b"".join(self._pending))
    self._pending, self._size = [], 0


class BucketWriteFn(beam.DoFn):
  """(chunk, (place, record)) -> appended to this bundle's file of its bucket; at the bundle's
  end, (bucket, file) for each file it wrote.

  Only a bundle that succeeds emits its files, so a retried bundle's partial files are never
  read; they go with the temporary directory."""

  def __init__(self, temp_dir: str, chunk_size: int):
    self._temp_dir, self._chunk_size = temp_dir, chunk_size
    self._buckets = {}

  def start_bundle(self):
    self._buckets = {}

  def process(self, keyed: Tuple[int, Tuple[int, bytes]]):
    chunk, (place, record) = keyed
    bucket = chunk // chunks_per_bucket(self._chunk_size)
    if bucket not in self._buckets:
      self._buckets[bucket] = _OpenBucket(
          os.path.join(self._temp_dir, f"bucket-{bucket:06d}-{uuid.uuid4().hex}"))
    self._buckets[bucket].append(chunk, place, record)

  def finish_bundle(self):
    for bucket, open_bucket in sorted(self._buckets.items()):
      open_bucket.close()
      yield window.GlobalWindows.windowed_value((bucket, open_bucket.path))
    self._buckets = {}


def read_bucket(path: str) -> Iterable[Tuple[int, int, bytes]]:
  """A bucket file -> its (chunk, place, record)s."""
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  offset = 0
  while offset < len(data):
    chunk, place, length = HEADER.unpack_from(data, offset)
    offset += HEADER.size
    if offset + length > len(data):
      raise ValueError(f"ExamplePacker: bucket file {path} is truncated at byte {offset}; "
                       "rerun the component (its temporary files are rewritten)")
    yield chunk, place, data[offset:offset + length]
    offset += length


def group_through_files(keyed: beam.PCollection, temp_dir: str, chunk_size: int,
                        label: str) -> beam.PCollection:
  """(chunk, (place, record))s -> (bucket, [its files]) per bucket (read them with
  read_bucket): the records of a GroupByKey by bucket, but through files."""

  return (keyed
          | f"WriteBuckets[{label}]" >> beam.ParDo(BucketWriteFn(temp_dir, chunk_size))
          | f"GroupBucketFiles[{label}]" >> beam.GroupByKey())
