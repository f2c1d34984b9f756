"""ExamplePacker executor over a tiny fixture: raw examples + a real transform graph -> packed
chunks of transformed columns -> read back."""
import glob
import os

import apache_beam as beam
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io
from tensorflow_transform.tf_metadata import schema_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.example_packer import bucket_files
from components.example_packer import executor
from contracts import artifacts
from contracts import packed_examples_io
from contracts import schema as S
from trainer import run as trainer_run

ROWS = {"train": 300, "eval": 45}
RAW_SPEC = {
    "row": tf.io.FixedLenFeature([], tf.int64),
    "tokens": tf.io.FixedLenFeature([2], tf.int64),
    "mask": tf.io.FixedLenFeature([3], tf.float32),
    "key": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.float32),  # read by the graph, not an output
}


def _example(i: int) -> bytes:
  return tf.train.Example(features=tf.train.Features(feature={
      "row": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
      "tokens": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 7, i % 5])),
      "mask": tf.train.Feature(float_list=tf.train.FloatList(value=[i % 2, 0.5, 1.0])),
      "key": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"item{i}".encode()])),
      "label": tf.train.Feature(float_list=tf.train.FloatList(value=[i % 3])),
  })).SerializeToString()


def _preprocessing_fn(inputs):
  # An analyzer (the key vocabulary, by frequency then value) and plain ops, as the DAG's has.
  return {"row": inputs["row"], "tokens": inputs["tokens"] + 100, "mask": inputs["mask"],
          "key": inputs["key"],
          "key_id": tft.compute_and_apply_vocabulary(inputs["key"], vocab_filename="keys"),
          "labelled": tf.cast(inputs["label"] > 0, tf.int64)}


@pytest.fixture(scope="module")
def real_graph(tmp_path_factory):
  """A TransformGraph as the DAG's Transform writes one (analysis only), over ROWS["train"]."""
  root = tmp_path_factory.mktemp("transform_graph")
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
  rows = [{k: v.numpy() for k, v in tf.io.parse_single_example(_example(i), RAW_SPEC).items()}
          for i in range(ROWS["train"])]
  with tft_beam.Context(temp_dir=str(root / "tmp")):
    with beam.Pipeline() as pipeline:
      transform_fn = ((pipeline | beam.Create(rows), metadata)
                      | tft_beam.AnalyzeDataset(_preprocessing_fn))
      _ = transform_fn | tft_beam.WriteTransformFn(str(root / "graph"))
  # TFX's Transform also writes the raw schema, which the packer parses the examples with.
  metadata_io.write_metadata(metadata, str(root / "graph" / tft.TFTransformOutput.RAW_METADATA_DIR))
  graph = standard_artifacts.TransformGraph()
  graph.uri = str(root / "graph")
  return graph


def _schema_only_graph(root: str) -> str:
  """A TransformGraph directory with only a transformed schema, whose `tokens` has no fixed
  shape: what the packer refuses before its Beam pipeline starts."""
  schema = schema_pb2.Schema()
  for name, kind in (("row", schema_pb2.INT), ("tokens", schema_pb2.INT)):
    feature = schema.feature.add(name=name, type=kind)
    if name == "row":
      feature.shape.dim.add(size=1)
    feature.presence.min_fraction = 1.0
  path = os.path.join(root, "transformed_metadata")
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "schema.pbtxt"), "w") as f:
    f.write(str(schema))
  return root


def _write_examples(uri: str, example=_example):
  for split, n in ROWS.items():  # the Joiner's layout: GZIP shards per split
    os.makedirs(os.path.join(uri, f"Split-{split}"))
    for shard, rows in enumerate((range(0, n // 3), range(n // 3, n))):
      path = os.path.join(uri, f"Split-{split}", f"data-{shard:05d}-of-00002.gz")
      with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i in rows:
          writer.write(example(i))


def _run(tmp_path, graph, name="packed", chunk_size=16, example=_example):
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / f"joined_{example.__name__}")
  examples.split_names = artifact_utils.encode_split_names(list(ROWS))
  if not os.path.exists(examples.uri):
    _write_examples(examples.uri, example)
  packed = artifacts.PackedExamples()
  packed.uri = str(tmp_path / name)
  executor.Executor().Do({"examples": [examples], "transform_graph": [graph]},
                         {"packed_examples": [packed]}, {"chunk_size": chunk_size})
  return packed


def _spec(graph):
  return executor.packable_spec(graph.uri)


def _content(packed, split="train"):
  files = sorted(glob.glob(os.path.join(packed_examples_io.split_uri(packed, split), "*")))
  return sorted(r.numpy() for r in tf.data.TFRecordDataset(files))


def test_every_example_once_with_its_transformed_values_in_random_chunks(tmp_path, real_graph):
  packed = _run(tmp_path, real_graph)
  assert packed_examples_io.split_names(packed) == ["train", "eval"]
  assert packed.get_int_custom_property("chunk_size") == 16
  keys = [line.strip().encode() for line in open(tft.TFTransformOutput(
      real_graph.uri).vocabulary_file_by_name("keys"))]
  assert len(keys) == ROWS["train"]  # the analysis saw the training split
  for split, n in ROWS.items():
    files = [os.path.join(packed_examples_io.split_uri(packed, split), "*")]
    batches = list(trainer_run.read_packed(files, _spec(real_graph), 32, shuffle=True, seed=1))
    rows = [int(r) for b in batches for r in b["row"].numpy().reshape(-1)]
    assert sorted(rows) == list(range(n))
    assert all(b["row"].shape[0] == 32 for b in batches[:-1])  # re-batched to the batch size
    for b in batches:  # each example's own values, through the graph, in the transformed shapes
      r = b["row"].numpy().reshape(-1)
      assert b["tokens"].numpy().tolist() == [[i % 7 + 100, i % 5 + 100] for i in r]
      assert b["mask"].numpy().tolist() == [[float(i % 2), 0.5, 1.0] for i in r]
      assert b["key"].numpy().reshape(-1).tolist() == [f"item{i}".encode() for i in r]
      assert [keys[k] for k in b["key_id"].numpy().reshape(-1)] == [f"item{i}".encode()
                                                                      for i in r]
      assert b["labelled"].numpy().reshape(-1).tolist() == [int(i % 3 > 0) for i in r]
    # Chunks are random samples of the split, not runs of consecutive records; they hold the
    # transformed features only (not the raw `label`).
    chunks = [tf.train.Example.FromString(rec.numpy()) for rec in
              tf.data.TFRecordDataset(glob.glob(files[0]))]
    sizes = [c.features.feature[packed_examples_io.NUM_EXAMPLES].int64_list.value[0] for c in chunks]
    assert sum(sizes) == n and len(chunks) >= n // 16 // 2
    assert set(chunks[0].features.feature) == {packed_examples_io.NUM_EXAMPLES, "row", "tokens",
                                               "mask", "key", "key_id", "labelled"}
    first = list(chunks[0].features.feature["row"].int64_list.value)
    assert first != list(range(first[0], first[0] + len(first)))


def _files(packed, split="train"):
  root = packed_examples_io.split_uri(packed, split)
  return {name: open(os.path.join(root, name), "rb").read() for name in sorted(os.listdir(root))}


def test_packing_is_deterministic_to_the_byte_and_reads_are_per_seed(tmp_path, real_graph,
                                                                     monkeypatch):
  """The same files with the same records in the same order in every run, on both paths (the
  Trainers' example order depends on it; Beam's sharded write put chunks in other files and
  orders when the DirectRunner had workers)."""
  monkeypatch.setattr(bucket_files, "RECORDS_PER_BUCKET", 40)  # 2 chunks of 16 per bucket
  monkeypatch.setattr(executor, "CHUNKS_PER_TRANSFORM", 4)  # GroupByKey groups of 4 chunks
  a = _run(tmp_path, real_graph, "a")
  b = _run(tmp_path, real_graph, "b")
  assert _files(a) == _files(b) and len(_files(a)) >= 8
  assert sorted(_files(a)) == [f"chunks-{i:05d}-of-{len(_files(a)):05d}.tfrecord"
                               for i in range(len(_files(a)))]
  with monkeypatch.context() as m:
    m.setattr(executor, "groups_in_process", lambda pipeline: False)
    grouped = [_run(tmp_path, real_graph, name) for name in ("grouped_a", "grouped_b")]
  assert _files(grouped[0]) == _files(grouped[1]) and len(_files(grouped[0])) >= 4
  assert _content(grouped[0]) == _content(a)
  for packed in (a, *grouped):  # no temporary file is left in the artifact
    assert sorted(os.listdir(packed.uri)) == ["Split-eval", "Split-train"]
  files = [os.path.join(packed_examples_io.split_uri(a, "train"), "*")]
  def order(seed):
    return [int(r) for batch in trainer_run.read_packed(files, _spec(real_graph), 32,
                                                        shuffle=True, seed=seed)
            for r in batch["row"].numpy().reshape(-1)]
  assert order(3) == order(3) and order(3) != order(4)


def test_an_empty_split_has_an_empty_file(tmp_path, real_graph):
  rows = dict(ROWS)
  try:
    ROWS["eval"] = 0
    packed = _run(tmp_path, real_graph, "empty_eval")
  finally:
    ROWS.update(rows)
  assert _files(packed, "eval") == {"chunks-00000-of-00001.tfrecord": b""}
  assert len(_content(packed, "train")) >= 300 // 16 // 2


def test_a_value_the_graph_refuses_is_named_as_such_not_as_a_schema_mismatch(tmp_path, monkeypatch,
                                                                           real_graph):
  packer = executor.ChunkPacker(real_graph.uri, "eval")
  def refuse(features):
    raise tf.errors.InvalidArgumentError(None, None, "SID code 300 out of range [0, 256)")
  monkeypatch.setattr(packer, "_layer", refuse)
  with pytest.raises(ValueError, match=r"^ExamplePacker: split 'eval': the transform graph "
                                       r"refused a batch of examples \(SID code 300 out of "
                                       r"range \[0, 256\)\)"):
    packer.pack([[(1, _example(1))]])


def test_transforming_many_chunks_at_once_packs_what_one_at_a_time_packs(tmp_path, real_graph,
                                                                         monkeypatch):
  together = _run(tmp_path, real_graph, "together")
  monkeypatch.setattr(executor, "CHUNKS_PER_TRANSFORM", 1)
  alone = _run(tmp_path, real_graph, "alone")
  assert _content(together) == _content(alone) and len(_content(alone)) >= 300 // 16 // 2


def test_an_example_that_does_not_match_the_analysed_schema_is_named_with_the_fix(
    tmp_path, real_graph):
  def short_mask(i):
    example = tf.train.Example.FromString(_example(i))
    example.features.feature[S.ITEM_ID].bytes_list.value.append(f"m{i}".encode())
    if i == 100:  # a training row only
      del example.features.feature["mask"].float_list.value[-1]
    return example.SerializeToString()
  with pytest.raises(ValueError) as error:
    _run(tmp_path, real_graph, example=short_mask)
  assert str(error.value).startswith(
      "ExamplePacker: split 'train': the example of item_id 'm100' does not match the schema "
      "Transform analysed (Key: mask.  Number of float values != expected.")
  assert "function_node" not in str(error.value) and "Index" not in str(error.value)
  assert "); re-run SchemaGen and Transform over these examples" in str(error.value)


def _wire(example, names) -> bytes:
  """The serialized Example with its feature map entries in this order."""
  from google.protobuf.internal.encoder import _VarintBytes
  features = b"".join(tf.train.Features(feature={n: example.features.feature[n]})
                      .SerializeToString() for n in names)
  return b"\x0a" + _VarintBytes(len(features)) + features


def test_the_chunk_of_an_example_does_not_depend_on_the_wire_order_of_its_features():
  """protobuf writes a map field in an order that differs between processes, so a writer can
  give the same example other bytes in another run; its chunk and its place in the chunk
  must not change (they did: a compiled run and a local run trained on other chunks)."""
  example = tf.train.Example.FromString(_example(7))
  names = sorted(example.features.feature)
  forward, backward = _wire(example, names), _wire(example, names[::-1])
  assert forward != backward
  assert tf.train.Example.FromString(forward) == tf.train.Example.FromString(backward)
  (chunk_f, (place_f, _)), (chunk_b, (place_b, _)) = (
      executor._chunk_key(r, 1000, 16) for r in (forward, backward))
  assert (chunk_f, place_f) == (chunk_b, place_b)


def test_var_length_features_are_refused_with_the_fix(tmp_path):
  graph = standard_artifacts.TransformGraph()
  graph.uri = _schema_only_graph(str(tmp_path / "graph"))
  with pytest.raises(ValueError, match=r"\['tokens'\] have no fixed shape.*pad"):
    _run(tmp_path, graph)


def test_the_chunk_of_an_example_does_not_depend_on_which_codebooks_are_joined():
  """Joining another codebook adds code features; the interactions must stay in their chunks
  and places (they moved, and a dense_content model's new-item AUC with them, by up to 0.014)."""
  example = tf.train.Example.FromString(_example(7))
  names = [S.item_codes("moc"), S.history_codes("moc"), S.item_codes("aligned_rqkmeans")]
  assert all(packed_examples_io.is_code_feature(n) for n in names)
  assert not any(packed_examples_io.is_code_feature(n) for n in (
      S.ITEM_ID, S.HISTORY_ITEM_IDS, S.USER_ID, S.LABEL, S.ITEM_COHORT))
  with_codes = tf.train.Example()
  with_codes.CopyFrom(example)
  for name in names:
    with_codes.features.feature[name].int64_list.value.extend([3, 1, 4])
  plain, joined = (executor._chunk_key(e.SerializeToString(), 1000, 16)
                   for e in (example, with_codes))
  assert plain[0] == joined[0] and plain[1][0] == joined[1][0]
  assert tf.train.Example.FromString(joined[1][1]) == with_codes  # the codes are still packed


def test_bucket_files_pack_what_a_group_by_key_packs_and_leave_no_temporary_files(
    tmp_path, monkeypatch, real_graph):
  """On the DirectRunner records reach their chunks through one temporary file per bucket and
  bundle; however many buckets and flushes a split takes, the chunks are the ones a GroupByKey
  (the distributed runners' path) gives, and the packed artifact holds only the splits."""
  read = []
  def spy(path):
    read.append(os.path.basename(path).split("-")[1])
    return reader(path)
  reader = bucket_files.read_bucket
  monkeypatch.setattr(bucket_files, "read_bucket", spy)
  monkeypatch.setattr(bucket_files, "RECORDS_PER_BUCKET", 40)  # 2 chunks of 16 per bucket
  monkeypatch.setattr(bucket_files, "FLUSH_BYTES", 64)  # a write every record or two
  files = _run(tmp_path, real_graph, "bucket_files")
  assert len(set(read)) >= 300 // 16 // 2 // 2  # train's ~19 chunks in ~10 buckets
  with monkeypatch.context() as m:
    m.setattr(executor, "groups_in_process", lambda pipeline: False)
    grouped = _run(tmp_path, real_graph, "group_by_key")
  assert _content(files) == _content(grouped) and len(_content(files)) >= 300 // 16 // 2
  for packed in (files, grouped):
    assert sorted(os.listdir(packed.uri)) == ["Split-eval", "Split-train"]


def test_the_direct_runner_groups_through_files_and_a_distributed_runner_by_key():
  assert executor.groups_in_process(beam.Pipeline())
  assert executor.groups_in_process(beam.Pipeline(argv=["--direct_running_mode=multi_processing"]))
  assert not executor.groups_in_process(beam.Pipeline(argv=["--runner=PortableRunner"]))


def test_examples_with_one_key_pack_the_same_whichever_comes_first(real_graph):
  """Two records of one example in other wire orders share a key and a place; the chunk they
  pack into must not depend on which of them a bundle met first."""
  example = tf.train.Example.FromString(_example(7))
  names = sorted(example.features.feature)
  forward, backward, other = _wire(example, names), _wire(example, names[::-1]), _example(8)
  packer = executor.ChunkPacker(real_graph.uri, "train")
  place = executor._chunk_key(forward, 1000, 16)[1][0]
  assert place == executor._chunk_key(backward, 1000, 16)[1][0]
  packed = [packer.pack([order]) for order in ([(place, forward), (place, backward), (1, other)],
                                            [(1, other), (place, backward), (place, forward)])]
  assert packed[0] == packed[1] and len(packed[0]) == 1
  chunk = tf.train.Example.FromString(packed[0][0])
  assert list(chunk.features.feature["row"].int64_list.value) == [8, 7, 7]  # by place
