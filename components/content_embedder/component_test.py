"""ContentEmbedder component wiring, artifact types and Kubeflow V2 compilation."""

import json
import re

import pytest
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import channel_utils
from tfx.types import standard_artifacts

from contracts import artifacts
from components.content_embedder import ContentEmbedder
from components.content_embedder import component
from components.content_embedder import executor
from contracts import config as config_lib

# tfx/orchestration/kubeflow/v2/compiler_utils.py _SCHEMA_TITLE_RE
KFP_TYPE_NAME = re.compile(r"^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$")


def catalog_channel():
  return channel_utils.as_channel([standard_artifacts.Examples()])


def test_spec_wiring():
  cfg = config_lib.EmbeddingConfig(batch_size=64, max_seq_length=32)
  embedder = ContentEmbedder(catalog=catalog_channel(), embedding_config=cfg)
  assert isinstance(embedder.executor_spec, executor_spec.BeamExecutorSpec)
  assert embedder.executor_spec.executor_class is executor.Executor
  assert set(embedder.inputs) == {"catalog"}
  assert embedder.inputs["catalog"].type is standard_artifacts.Examples
  assert set(embedder.outputs) == {"item_embeddings"}
  assert embedder.outputs["item_embeddings"].type is artifacts.ItemEmbeddings
  assert embedder.outputs["item_embeddings"].type_name == "sidrec.ItemEmbeddings"
  raw = embedder.exec_properties["embedding_config"]
  assert isinstance(raw, str)
  assert config_lib.from_json(config_lib.EmbeddingConfig, raw) == cfg
  assert json.loads(raw) == json.loads(config_lib.to_json(cfg))  # sorted keys: stable cache key


def test_defaults_json_and_beam_args():
  default = ContentEmbedder(catalog=catalog_channel())
  assert config_lib.from_json(config_lib.EmbeddingConfig,
                              default.exec_properties["embedding_config"]) == config_lib.EmbeddingConfig()
  cfg = config_lib.EmbeddingConfig(encoder="precomputed", precomputed_path="/x/e.npy",
                                   precomputed_format="npy")
  from_json = ContentEmbedder(catalog=catalog_channel(), embedding_config=config_lib.to_json(cfg))
  assert from_json.exec_properties["embedding_config"] == config_lib.to_json(cfg)
  with_args = from_json.with_beam_pipeline_args(["--runner=DirectRunner"])
  assert with_args is from_json


@pytest.mark.parametrize("changes, message", [
    (dict(encoder="bert"), "encoder must be one of"),
    (dict(encoder="precomputed", precomputed_format="npy"), "needs precomputed_path"),
    (dict(encoder="precomputed", precomputed_path="x", precomputed_format="csv"), "precomputed_format"),
    (dict(encoder="precomputed", precomputed_path="x", precomputed_format="parquet",
          precomputed_ids_path="ids.txt"), "only applies to precomputed_format='npy'"),
    (dict(batch_size=0), "batch_size"),
    (dict(max_seq_length=1024), "max_seq_length"),
])
def test_bad_configs_fail_at_construction(changes, message):
  with pytest.raises(ValueError, match=message):
    ContentEmbedder(catalog=catalog_channel(), embedding_config=config_lib.EmbeddingConfig(**changes))
  with pytest.raises(TypeError):
    ContentEmbedder(catalog=catalog_channel(), embedding_config={"encoder": "minilm"})


def test_unknown_config_keys_are_rejected():
  with pytest.raises(ValueError, match="unknown EmbeddingConfig field"):
    ContentEmbedder(catalog=catalog_channel(), embedding_config='{"encoderr": "minilm"}')


@pytest.mark.parametrize("cls, name", [(artifacts.ItemEmbeddings, "sidrec.ItemEmbeddings"),
                                       (artifacts.Codebook, "sidrec.Codebook"),
                                       (artifacts.SemanticIds, "sidrec.SemanticIds")])
def test_artifact_types_satisfy_kubeflow_v2(cls, name):
  assert cls.TYPE_NAME == name and KFP_TYPE_NAME.match(name)
  assert not getattr(cls, "PROPERTIES", None)
  instance = cls()
  instance.set_int_custom_property("dimension", 384)
  assert instance.get_int_custom_property("dimension") == 384
  assert cls.TYPE_ANNOTATION is not None


def test_compiles_with_kubeflow_v2_dag_runner(tmp_path):
  catalog_gen = tfx.components.ImportExampleGen(
      input_base="gs://bucket/data/catalog",
      input_config=example_gen_pb2.Input(splits=[
          example_gen_pb2.Input.Split(name="items", pattern="items/*.tfrecord.gz")]))
  embedder = ContentEmbedder(catalog=catalog_gen.outputs["examples"],
                             embedding_config=config_lib.EmbeddingConfig(max_seq_length=48))
  pipeline = tfx.dsl.Pipeline(pipeline_name="sidrec-test", pipeline_root="gs://bucket/root",
                              components=[catalog_gen, embedder],
                              beam_pipeline_args=["--runner=DataflowRunner"])
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image="sidrec:test"),
      output_dir=str(tmp_path), output_filename="pipeline.json")
  job = runner.run(pipeline, write_out=True)
  spec = job["pipelineSpec"]
  executor_spec_json = json.dumps(spec["deploymentSpec"]["executors"])
  assert "components.content_embedder.executor.Executor" in executor_spec_json
  embedder_component = spec["components"]["ContentEmbedder"]
  output_schema = embedder_component["outputDefinitions"]["artifacts"]["item_embeddings"]
  assert output_schema["artifactType"]["instanceSchema"]  # custom type carried as a schema
  assert "sidrec.ItemEmbeddings" in json.dumps(output_schema)
  assert (tmp_path / "pipeline.json").exists()
  assert component.ContentEmbedderSpec.PARAMETERS.keys() == {"embedding_config"}


@pytest.mark.e2e
def test_local_dag_runner_import_example_gen_to_item_embeddings(tmp_path):
  """ImportExampleGen(catalog/items/*.tfrecord.gz, split "items") -> ContentEmbedder (MiniLM)."""
  import tensorflow as tf
  from ml_metadata.proto import metadata_store_pb2

  from contracts import embeddings_io
  items = {"i1": "A kitten sleeps on the sofa.", "i2": "A small cat naps on the couch.",
           "i3": "Interest rates rose again."}
  catalog_dir = tmp_path / "data" / "catalog" / "items"
  catalog_dir.mkdir(parents=True)
  options = tf.io.TFRecordOptions(compression_type="GZIP")
  with tf.io.TFRecordWriter(str(catalog_dir / "part-00000-of-00001.tfrecord.gz"), options) as w:
    for item_id, text in items.items():
      w.write(tf.train.Example(features=tf.train.Features(feature={
          "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[item_id.encode()])),
          "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
      })).SerializeToString())
  # One input split alone would be re-split into train/eval by ExampleGen's default output
  # config: name the single output split "items" explicitly.
  catalog_gen = tfx.components.ImportExampleGen(
      input_base=str(tmp_path / "data" / "catalog"),
      input_config=example_gen_pb2.Input(splits=[
          example_gen_pb2.Input.Split(name="items", pattern="items/*.tfrecord.gz")]),
      output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
          example_gen_pb2.SplitConfig.Split(name="items", hash_buckets=1)])))
  embedder = ContentEmbedder(catalog=catalog_gen.outputs["examples"],
                             embedding_config=config_lib.EmbeddingConfig())
  metadata_path = str(tmp_path / "metadata.sqlite")
  pipeline = tfx.dsl.Pipeline(
      pipeline_name="sidrec-embedder-e2e", pipeline_root=str(tmp_path / "root"),
      components=[catalog_gen, embedder],
      metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
          metadata_path),
      beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"])
  tfx.orchestration.LocalDagRunner().run(pipeline)

  from ml_metadata.metadata_store import metadata_store
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  store = metadata_store.MetadataStore(config)
  [artifact] = store.get_artifacts_by_type("sidrec.ItemEmbeddings")
  assert artifact.custom_properties["dimension"].int_value == 384
  assert artifact.custom_properties["count"].int_value == 3
  assert artifact.custom_properties["encoder"].string_value == "all-MiniLM-L6-v2"
  ids, vectors = embeddings_io.load_item_embeddings(artifact.uri)
  assert list(ids) == ["i1", "i2", "i3"] and vectors.shape == (3, 384)
