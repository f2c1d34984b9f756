"""ExamplePacker executor over a tiny fixture: transformed examples -> packed chunks -> read back."""
import glob
import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.example_packer import bucket_files
from components.example_packer import executor
from contracts import artifacts
from contracts import packed_examples_io
from trainer import run as trainer_run

ROWS = {"train": 300, "eval": 45}


def _example(i: int) -> bytes:
  return tf.train.Example(features=tf.train.Features(feature={
      "row": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
      "tokens": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 7, i % 5])),
      "mask": tf.train.Feature(float_list=tf.train.FloatList(value=[i % 2, 0.5, 1.0])),
      "key": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"item{i}".encode()])),
  })).SerializeToString()


def _transform_graph(root: str, var_length: bool = False) -> str:
  """The part of a TransformGraph the packer reads: the transformed schema."""
  schema = schema_pb2.Schema()
  for name, kind, width in (("row", schema_pb2.INT, 1), ("tokens", schema_pb2.INT, 2),
                            ("mask", schema_pb2.FLOAT, 3), ("key", schema_pb2.BYTES, 1)):
    feature = schema.feature.add(name=name, type=kind)
    if not (var_length and name == "tokens"):
      feature.shape.dim.add(size=width)
    feature.presence.min_fraction = 1.0
  path = os.path.join(root, "transformed_metadata")
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "schema.pbtxt"), "w") as f:
    f.write(str(schema))
  return root


def _run(tmp_path, name="packed", chunk_size=16, var_length=False):
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "transformed")
  examples.split_names = artifact_utils.encode_split_names(list(ROWS))
  if not os.path.exists(examples.uri):
    for split, n in ROWS.items():  # Transform's layout: GZIP shards per split
      os.makedirs(os.path.join(examples.uri, f"Split-{split}"))
      for shard, rows in enumerate((range(0, n // 3), range(n // 3, n))):
        path = os.path.join(examples.uri, f"Split-{split}", f"data-{shard:05d}-of-00002.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
          for i in rows:
            writer.write(_example(i))
  graph = standard_artifacts.TransformGraph()
  graph.uri = _transform_graph(str(tmp_path / f"graph_{var_length}"), var_length)
  packed = artifacts.PackedExamples()
  packed.uri = str(tmp_path / name)
  executor.Executor().Do({"examples": [examples], "transform_graph": [graph]},
                         {"packed_examples": [packed]}, {"chunk_size": chunk_size})
  return packed, graph


def _spec(graph):
  return executor.packable_spec(graph.uri)


def test_every_example_once_with_its_values_in_random_chunks(tmp_path):
  packed, graph = _run(tmp_path)
  assert packed_examples_io.split_names(packed) == ["train", "eval"]
  assert packed.get_int_custom_property("chunk_size") == 16
  for split, n in ROWS.items():
    files = [os.path.join(packed_examples_io.split_uri(packed, split), "*")]
    batches = list(trainer_run.read_packed(files, _spec(graph), 32, shuffle=True, seed=1))
    rows = [int(r) for b in batches for r in b["row"].numpy().reshape(-1)]
    assert sorted(rows) == list(range(n))
    assert all(b["row"].shape[0] == 32 for b in batches[:-1])  # re-batched to the batch size
    for b in batches:  # each example's own values, in the transformed shapes
      r = b["row"].numpy().reshape(-1)
      assert b["tokens"].numpy().tolist() == [[i % 7, i % 5] for i in r]
      assert b["mask"].numpy().tolist() == [[float(i % 2), 0.5, 1.0] for i in r]
      assert b["key"].numpy().reshape(-1).tolist() == [f"item{i}".encode() for i in r]
    # Chunks are random samples of the split, not runs of consecutive records.
    chunks = [tf.train.Example.FromString(rec.numpy()) for rec in
              tf.data.TFRecordDataset(glob.glob(files[0]))]
    sizes = [c.features.feature[packed_examples_io.NUM_EXAMPLES].int64_list.value[0] for c in chunks]
    assert sum(sizes) == n and len(chunks) >= n // 16 // 2
    first = list(chunks[0].features.feature["row"].int64_list.value)
    assert first != list(range(first[0], first[0] + len(first)))


def test_packing_is_deterministic_and_reads_are_per_seed(tmp_path):
  a, graph = _run(tmp_path, "a")
  b, _ = _run(tmp_path, "b")
  def content(packed):
    files = sorted(glob.glob(os.path.join(packed_examples_io.split_uri(packed, "train"), "*")))
    return sorted(r.numpy() for r in tf.data.TFRecordDataset(files))
  assert content(a) == content(b)
  files = [os.path.join(packed_examples_io.split_uri(a, "train"), "*")]
  def order(seed):
    return [int(r) for batch in trainer_run.read_packed(files, _spec(graph), 32, shuffle=True,
                                                        seed=seed)
            for r in batch["row"].numpy().reshape(-1)]
  assert order(3) == order(3) and order(3) != order(4)


def test_the_chunk_of_an_example_does_not_depend_on_the_wire_order_of_its_features():
  """protobuf writes a map field in an order that differs between processes, so Transform
  gives the same example other bytes in another run; its chunk and its place in the chunk
  must not change (they did: a compiled run and a local run trained on other chunks)."""
  from google.protobuf.internal.encoder import _VarintBytes
  example = tf.train.Example.FromString(_example(7))

  def wire(names):  # the Example with its feature map entries in this order
    features = b"".join(tf.train.Features(feature={n: example.features.feature[n]})
                        .SerializeToString() for n in names)
    return b"\x0a" + _VarintBytes(len(features)) + features

  names = sorted(example.features.feature)
  forward, backward = wire(names), wire(names[::-1])
  assert forward != backward
  assert tf.train.Example.FromString(forward) == tf.train.Example.FromString(backward)
  (chunk_f, (place_f, _)), (chunk_b, (place_b, _)) = (
      executor._chunk_key(r, 1000, 16) for r in (forward, backward))
  assert (chunk_f, place_f) == (chunk_b, place_b)


def test_var_length_features_are_refused_with_the_fix(tmp_path):
  with pytest.raises(ValueError, match=r"\['tokens'\] have no fixed shape.*pad"):
    _run(tmp_path, var_length=True)


def test_the_chunk_of_an_example_does_not_depend_on_which_codebooks_are_joined():
  """Joining another codebook adds code features; the interactions must stay in their chunks
  and places (they moved, and a dense_content model's new-item AUC with them, by up to 0.014)."""
  from trainer.model import features as F
  example = tf.train.Example.FromString(_example(7))
  names = [F.item_codes("moc"), F.history_name(F.item_codes("moc")),
           F.item_spm_tokens("rqvae"), F.history_name(F.item_spm_tokens("rqvae"))]
  assert all(packed_examples_io.is_code_feature(n) for n in names)
  assert not any(packed_examples_io.is_code_feature(n) for n in (
      F.ITEM_EMBEDDING, F.ITEM_VOCAB_ID, F.ITEM_KEY, F.history_name(F.ITEM_KEY), F.USER_ID))
  with_codes = tf.train.Example()
  with_codes.CopyFrom(example)
  for name in names:
    with_codes.features.feature[name].int64_list.value.extend([3, 1, 4])
  plain, joined = (executor._chunk_key(e.SerializeToString(), 1000, 16)
                   for e in (example, with_codes))
  assert plain[0] == joined[0] and plain[1][0] == joined[1][0]
  assert tf.train.Example.FromString(joined[1][1]) == with_codes  # the codes are still packed


def test_bucket_files_pack_what_a_group_by_key_packs_and_leave_no_temporary_files(
    tmp_path, monkeypatch):
  """On the DirectRunner records reach their chunks through one temporary file per bucket and
  bundle; however many buckets and flushes a split takes, the chunks are the ones a GroupByKey
  (the distributed runners' path) gives, and the packed artifact holds only the splits."""
  def content(packed):
    files = sorted(glob.glob(os.path.join(packed_examples_io.split_uri(packed, "train"), "*")))
    return sorted(r.numpy() for r in tf.data.TFRecordDataset(files))
  read = []
  def spy(path):
    read.append(os.path.basename(path).split("-")[1])
    return reader(path)
  reader = bucket_files.read_bucket
  monkeypatch.setattr(bucket_files, "read_bucket", spy)
  monkeypatch.setattr(bucket_files, "RECORDS_PER_BUCKET", 40)  # 2 chunks of 16 per bucket
  monkeypatch.setattr(bucket_files, "FLUSH_BYTES", 64)  # a write every record or two
  files, _ = _run(tmp_path, "bucket_files")
  assert len(set(read)) >= 300 // 16 // 2 // 2  # train's ~19 chunks in ~10 buckets
  with monkeypatch.context() as m:
    m.setattr(executor, "groups_in_process", lambda pipeline: False)
    grouped, _ = _run(tmp_path, "group_by_key")
  assert content(files) == content(grouped) and len(content(files)) >= 300 // 16 // 2
  for packed in (files, grouped):
    assert sorted(os.listdir(packed.uri)) == ["Split-eval", "Split-train"]


def test_the_direct_runner_groups_through_files_and_a_distributed_runner_by_key():
  import apache_beam as beam
  assert executor.groups_in_process(beam.Pipeline())
  assert executor.groups_in_process(beam.Pipeline(argv=["--direct_running_mode=multi_processing"]))
  assert not executor.groups_in_process(beam.Pipeline(argv=["--runner=PortableRunner"]))


def test_examples_with_one_key_pack_the_same_whichever_comes_first(tmp_path):
  """Two records of one example in other wire orders share a key and a place; the chunk they
  pack into must not depend on which of them a bundle met first."""
  from google.protobuf.internal.encoder import _VarintBytes
  example = tf.train.Example.FromString(_example(7))
  def wire(names):
    features = b"".join(tf.train.Features(feature={n: example.features.feature[n]})
                        .SerializeToString() for n in names)
    return b"\x0a" + _VarintBytes(len(features)) + features
  names = sorted(example.features.feature)
  forward, backward, other = wire(names), wire(names[::-1]), _example(8)
  fn = executor.PackChunkFn(_transform_graph(str(tmp_path)), "train")
  fn.setup()
  place = executor._chunk_key(forward, 1000, 16)[1][0]
  assert place == executor._chunk_key(backward, 1000, 16)[1][0]
  packed = [fn._pack(order) for order in ([(place, forward), (place, backward), (1, other)],
                                          [(1, other), (place, backward), (place, forward)])]
  assert packed[0] == packed[1]
  chunk = tf.train.Example.FromString(packed[0])
  assert list(chunk.features.feature["row"].int64_list.value) == [8, 7, 7]  # by place
