"""ContentEmbedder executor over tiny hand-made catalogs (MiniLM and user-brought embeddings)."""

import json
import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from contracts import artifacts
from contracts import embeddings_io
from components.content_embedder import executor
from contracts.embeddings_io import EmbeddingValidationError
from contracts import config as config_lib

BEAM_ARGS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
TEXTS = {
    "cat-1": "A kitten is sleeping on the sofa.",
    "cat-2": "A small cat naps on the couch.",
    "bank": "The central bank raised interest rates again.",
    "rain": "Heavy rain and strong winds are expected tomorrow.",
}
IDS = sorted(TEXTS)
DIM = 8


def write_catalog(root, texts=None, split="items", drop_text_of=()):
  """An Examples artifact with one GZIP TFRecord file in Split-<split>."""
  texts = TEXTS if texts is None else texts
  catalog = standard_artifacts.Examples()
  catalog.uri = os.path.join(str(root), "catalog")
  catalog.split_names = artifact_utils.encode_split_names([split])
  split_dir = os.path.join(catalog.uri, f"Split-{split}")
  os.makedirs(split_dir)
  options = tf.io.TFRecordOptions(compression_type="GZIP")
  with tf.io.TFRecordWriter(os.path.join(split_dir, "data_tfrecord-00000-of-00001.gz"), options) as w:
    for item_id, text in (texts.items() if isinstance(texts, dict) else texts):
      feature = {"item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[item_id.encode()]))}
      if item_id not in drop_text_of:
        feature["text"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))
      w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
  return catalog


def new_output(root):
  output = artifacts.ItemEmbeddings()
  output.uri = os.path.join(str(root), "item_embeddings")
  os.makedirs(output.uri)
  return output


def run(catalog, output, **config):
  cfg = config_lib.EmbeddingConfig(**config)
  # make_beam_pipeline_fn instead of beam_pipeline_args: with bare args, TFX's BaseBeamExecutor
  # builds an sdist of the installed tfx for remote workers (~4 s per executor, pointless here).
  context = base_beam_executor.BaseBeamExecutor.Context(
      make_beam_pipeline_fn=lambda: beam.Pipeline(options=PipelineOptions(BEAM_ARGS)))
  executor.Executor(context).Do({executor.CATALOG_KEY: [catalog]},
                                {executor.ITEM_EMBEDDINGS_KEY: [output]},
                                {executor.EMBEDDING_CONFIG_KEY: config_lib.to_json(cfg)})
  return cfg


def files_under(path):
  return sorted(os.path.relpath(os.path.join(r, f), path) for r, _, fs in os.walk(path) for f in fs)


def random_vectors(n, dim=DIM, seed=0):
  return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


# ----------------------------------------------------------------------------- MiniLM

@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("minilm")
  catalog, output = write_catalog(root), new_output(root)
  run(catalog, output, encoder="minilm", batch_size=2)
  return output


def test_minilm_writes_the_artifact_layout(minilm_run):
  files = files_under(minilm_run.uri)
  assert files[-1] == embeddings_io.METADATA_FILE
  assert all(f.startswith("embeddings/part-") and f.endswith(".tfrecord.gz") for f in files[:-1])
  meta = embeddings_io.read_metadata(minilm_run.uri)
  for key in ("dimension", "encoder", "count", "seconds", "items_per_second", "norm_mean", "norm_min"):
    assert key in meta, key
  assert meta["dimension"] == 384 and meta["count"] == 4 and meta["encoder"] == "all-MiniLM-L6-v2"
  assert meta["norm_min"] == pytest.approx(1.0, abs=1e-5)
  assert minilm_run.get_int_custom_property("dimension") == 384
  assert minilm_run.get_int_custom_property("count") == 4
  assert minilm_run.get_string_custom_property("encoder") == "all-MiniLM-L6-v2"


def test_minilm_vectors_are_the_encoders_and_semantic(minilm_run):
  from components.content_embedder.minilm import MiniLmEncoder
  ids, vectors = embeddings_io.load_item_embeddings(minilm_run.uri)
  assert list(ids) == IDS and vectors.shape == (4, 384) and vectors.dtype == np.float32
  direct = MiniLmEncoder(max_seq_length=64).encode([TEXTS[i] for i in IDS])
  np.testing.assert_allclose(vectors, direct, atol=1e-5)
  v = dict(zip(ids, vectors))
  assert v["cat-1"] @ v["cat-2"] > max(v["cat-1"] @ v["bank"], v["cat-1"] @ v["rain"]) + 0.2


def test_minilm_catalog_without_text_fails_cleanly(tmp_path):
  catalog = write_catalog(tmp_path, drop_text_of=("bank",))
  output = new_output(tmp_path)
  with pytest.raises(EmbeddingValidationError, match="'bank' has no single 'text'"):
    run(catalog, output)
  assert files_under(output.uri) == []


# ----------------------------------------------------------------------------- precomputed

def write_precomputed(root, fmt, ids, vectors, name="vectors"):
  if fmt == "tfrecord":
    embeddings_io.write_tfrecord_embeddings(os.path.join(str(root), name, "part"), ids, vectors, 2)
    return os.path.join(str(root), name)
  if fmt == "parquet":
    return embeddings_io.write_parquet_embeddings(os.path.join(str(root), f"{name}.parquet"), ids, vectors)
  return embeddings_io.write_npy_embeddings(os.path.join(str(root), f"{name}.npy"), ids, vectors)[0]


@pytest.mark.parametrize("fmt", embeddings_io.FORMATS)
def test_precomputed_formats_roundtrip(tmp_path, fmt):
  vectors = random_vectors(len(IDS))
  path = write_precomputed(tmp_path, fmt, IDS[::-1], vectors[::-1])
  output = new_output(tmp_path)
  run(write_catalog(tmp_path), output, encoder="precomputed", precomputed_format=fmt,
      precomputed_path=path, dimension=DIM)
  ids, got = embeddings_io.load_item_embeddings(output.uri)
  assert list(ids) == IDS
  np.testing.assert_array_equal(got, vectors)
  meta = embeddings_io.read_metadata(output.uri)
  assert meta["encoder"] == "precomputed" and meta["dimension"] == DIM and meta["count"] == 4
  assert meta["source"]["format"] == fmt
  assert output.get_int_custom_property("dimension") == DIM


def test_npy_pairs_with_the_synthetic_generators_ids_file(tmp_path):
  vectors = random_vectors(len(IDS))
  np.save(tmp_path / "synthetic_embeddings.npy", vectors)
  (tmp_path / "synthetic_embedding_ids.txt").write_text("".join(f"{i}\n" for i in IDS))
  output = new_output(tmp_path)
  run(write_catalog(tmp_path), output, encoder="precomputed", precomputed_format="npy",
      precomputed_path=str(tmp_path / "synthetic_embeddings.npy"))
  ids, got = embeddings_io.load_item_embeddings(output.uri)
  np.testing.assert_array_equal(got, vectors)
  assert embeddings_io.read_metadata(output.uri)["source"]["ids_path"].endswith(
      "synthetic_embedding_ids.txt")


def test_npy_explicit_ids_path_and_float64(tmp_path):
  vectors = random_vectors(len(IDS)).astype(np.float64)
  np.save(tmp_path / "emb.npy", vectors)
  (tmp_path / "my_ids.txt").write_text("\n".join(IDS))  # no trailing newline
  output = new_output(tmp_path)
  run(write_catalog(tmp_path), output, encoder="precomputed", precomputed_format="npy",
      precomputed_path=str(tmp_path / "emb.npy"), precomputed_ids_path=str(tmp_path / "my_ids.txt"))
  np.testing.assert_array_equal(embeddings_io.load_item_embeddings(output.uri)[1],
                                vectors.astype(np.float32))


def test_ids_not_in_catalog_are_dropped_and_counted(tmp_path):
  ids = IDS + ["ghost-1", "ghost-2"]
  path = write_precomputed(tmp_path, "tfrecord", ids, random_vectors(len(ids)))
  output = new_output(tmp_path)
  run(write_catalog(tmp_path), output, encoder="precomputed", precomputed_format="tfrecord",
      precomputed_path=path)
  assert list(embeddings_io.load_item_embeddings(output.uri)[0]) == IDS
  meta = embeddings_io.read_metadata(output.uri)
  assert meta["dropped_not_in_catalog"] == 2 and meta["count"] == 4 and meta["catalog_count"] == 4


# ----------------------------------------------------------------------------- validation

def _case(name):
  v = random_vectors(len(IDS))
  if name == "nan":
    v[1, 3] = np.nan
    return IDS, v, "NaN or Inf", IDS[1]
  if name == "inf":
    v[2, 0] = np.inf
    return IDS, v, "NaN or Inf", IDS[2]
  if name == "zero":
    v[0] = 0
    return IDS, v, "all-zero", IDS[0]
  if name == "missing":
    return IDS[:-1], v[:-1], "catalog items without an embedding", IDS[-1]
  if name == "duplicate":
    return IDS + [IDS[0]], np.concatenate([v, v[:1]]), "more than one embedding", IDS[0]
  raise ValueError(name)


@pytest.mark.parametrize("case,fmt", [("nan", "parquet"), ("inf", "npy"), ("zero", "tfrecord"),
                                      ("missing", "npy"), ("duplicate", "parquet")])
def test_validation_errors_name_the_items_and_write_nothing(tmp_path, fmt, case):
  ids, vectors, message, culprit = _case(case)
  path = write_precomputed(tmp_path, fmt, ids, vectors)
  output = new_output(tmp_path)
  with pytest.raises(EmbeddingValidationError) as raised:
    run(write_catalog(tmp_path), output, encoder="precomputed", precomputed_format=fmt,
        precomputed_path=path)
  text = str(raised.value)
  assert message in text and culprit in text and "fix:" in text and path in text
  assert files_under(output.uri) == []


def test_wrong_dimension_against_config(tmp_path):
  path = write_precomputed(tmp_path, "tfrecord", IDS, random_vectors(len(IDS)))
  output = new_output(tmp_path)
  with pytest.raises(EmbeddingValidationError, match="4 vectors of the wrong dimension"):
    run(write_catalog(tmp_path), output, encoder="precomputed", precomputed_format="tfrecord",
        precomputed_path=path, dimension=16)
  assert files_under(output.uri) == []


def test_wrong_dimension_npy_is_caught_before_the_pipeline(tmp_path):
  path = write_precomputed(tmp_path, "npy", IDS, random_vectors(len(IDS)))
  with pytest.raises(EmbeddingValidationError, match="8-d vectors but EmbeddingConfig.dimension is 384"):
    run(write_catalog(tmp_path), new_output(tmp_path), encoder="precomputed",
        precomputed_format="npy", precomputed_path=path, dimension=384)


def test_inconsistent_dimensions(tmp_path):
  directory = tmp_path / "mixed"
  embeddings_io.write_tfrecord_embeddings(str(directory / "a"), IDS[:2], random_vectors(2, 8))
  embeddings_io.write_tfrecord_embeddings(str(directory / "b"), IDS[2:], random_vectors(2, 6))
  output = new_output(tmp_path)
  with pytest.raises(EmbeddingValidationError, match=r"inconsistent dimensions: 6-d: 2 items"):
    run(write_catalog(tmp_path), output, encoder="precomputed", precomputed_format="tfrecord",
        precomputed_path=str(directory))
  assert files_under(output.uri) == []


def test_structural_errors_of_the_files(tmp_path):
  catalog = write_catalog(tmp_path)
  np.save(tmp_path / "lonely.npy", random_vectors(4))
  with pytest.raises(EmbeddingValidationError, match="no ids file beside it"):
    run(catalog, new_output(tmp_path / "a"), encoder="precomputed", precomputed_format="npy",
        precomputed_path=str(tmp_path / "lonely.npy"))
  (tmp_path / "lonely_ids.txt").write_text("a\nb\n")
  with pytest.raises(EmbeddingValidationError, match="lists 2 ids but .* has 4 rows"):
    run(catalog, new_output(tmp_path / "b"), encoder="precomputed", precomputed_format="npy",
        precomputed_path=str(tmp_path / "lonely.npy"))
  import pyarrow as pa
  import pyarrow.parquet as pq
  pq.write_table(pa.table({"item_id": IDS, "vec": [[1.0]] * 4}), str(tmp_path / "bad.parquet"))
  with pytest.raises(EmbeddingValidationError, match="no column 'embedding'"):
    run(catalog, new_output(tmp_path / "c"), encoder="precomputed", precomputed_format="parquet",
        precomputed_path=str(tmp_path / "bad.parquet"))
  with pytest.raises(EmbeddingValidationError, match="does not exist"):
    run(catalog, new_output(tmp_path / "d"), encoder="precomputed", precomputed_format="tfrecord",
        precomputed_path=str(tmp_path / "nowhere"))


def test_tfrecord_with_wrong_features_names_the_file(tmp_path):
  directory = tmp_path / "wrong"
  directory.mkdir()
  with tf.io.TFRecordWriter(str(directory / "x.tfrecord")) as w:
    w.write(tf.train.Example(features=tf.train.Features(feature={
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"cat-1"]))})).SerializeToString())
  output = new_output(tmp_path)
  with pytest.raises(EmbeddingValidationError, match=r"x\.tfrecord.*needs 'item_id'"):
    run(write_catalog(tmp_path), output, encoder="precomputed", precomputed_format="tfrecord",
        precomputed_path=str(directory))
  assert files_under(output.uri) == []


def test_catalog_problems(tmp_path):
  path = write_precomputed(tmp_path, "npy", IDS, random_vectors(len(IDS)))
  wrong_split = write_catalog(tmp_path / "a", split="train")
  with pytest.raises(EmbeddingValidationError, match="no 'items'"):
    run(wrong_split, new_output(tmp_path / "a"), encoder="precomputed",
        precomputed_format="npy", precomputed_path=path)
  duplicated = write_catalog(tmp_path / "b", texts=list(TEXTS.items()) + [("bank", "again")])
  with pytest.raises(EmbeddingValidationError, match="occur more than once in the catalog.*bank"):
    run(duplicated, new_output(tmp_path / "b"), encoder="precomputed",
        precomputed_format="npy", precomputed_path=path)


def test_a_crash_inside_the_pipeline_leaves_no_artifact(tmp_path, monkeypatch):
  path = write_precomputed(tmp_path, "npy", IDS, random_vectors(len(IDS)))
  output = new_output(tmp_path)

  def boom(item_id, vector):
    raise RuntimeError("disk full")

  monkeypatch.setattr(embeddings_io, "make_embedding_example", boom)
  with pytest.raises(Exception, match="disk full"):
    run(write_catalog(tmp_path), output, encoder="precomputed", precomputed_format="npy",
        precomputed_path=path)
  assert files_under(output.uri) == []


def test_a_crash_after_the_shards_moved_leaves_no_artifact(tmp_path, monkeypatch):
  path = write_precomputed(tmp_path, "npy", IDS, random_vectors(len(IDS)))
  output = new_output(tmp_path)

  def boom(*args, **kwargs):
    assert any(f.startswith("embeddings/part-") for f in files_under(output.uri))
    raise OSError("lost the file system")

  monkeypatch.setattr(executor, "_metadata", boom)
  with pytest.raises(OSError, match="lost the file system"):
    run(write_catalog(tmp_path), output, encoder="precomputed", precomputed_format="npy",
        precomputed_path=path)
  assert files_under(output.uri) == []


def test_a_retry_replaces_a_previous_attempts_output(tmp_path):
  path = write_precomputed(tmp_path, "npy", IDS, random_vectors(len(IDS)))
  output = new_output(tmp_path)
  stale = os.path.join(output.uri, "embeddings")
  os.makedirs(stale)
  with open(os.path.join(stale, "part-00000-of-00009.tfrecord.gz"), "wb") as f:
    f.write(b"stale")
  run(write_catalog(tmp_path), output, encoder="precomputed", precomputed_format="npy",
      precomputed_path=path)
  assert "embeddings/part-00000-of-00009.tfrecord.gz" not in files_under(output.uri)
  assert len(embeddings_io.load_item_embeddings(output.uri)[0]) == 4


def test_load_item_embeddings_detects_an_incomplete_artifact(tmp_path):
  uri = str(tmp_path / "art")
  embeddings_io.write_tfrecord_embeddings(os.path.join(uri, "embeddings", "part"), IDS,
                                          random_vectors(4))
  with open(os.path.join(uri, "metadata.json"), "w") as f:
    json.dump({"dimension": DIM, "count": 5}, f)
  with pytest.raises(EmbeddingValidationError, match="incomplete"):
    embeddings_io.load_item_embeddings(uri)
  with pytest.raises(EmbeddingValidationError, match="no embedding shards"):
    embeddings_io.load_item_embeddings(str(tmp_path))


@pytest.mark.parametrize("fmt", embeddings_io.FORMATS)
def test_numpy_readers_roundtrip(tmp_path, fmt):
  vectors = random_vectors(5)
  ids = [f"item-{i}" for i in range(5)]
  path = write_precomputed(tmp_path, fmt, ids, vectors)
  got_ids, got = embeddings_io.read_precomputed(path, fmt)
  order = np.argsort(got_ids)
  assert list(got_ids[order]) == ids
  np.testing.assert_array_equal(got[order], vectors)
