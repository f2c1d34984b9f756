"""The sidrec TFX pipeline: one DAG shared by the local and the Kubeflow V2 runners.

Stages so far (later stages extend the same function):
  InteractionExampleGen  prepared interactions, splits `train` / `eval` (the cold-start split)
  CatalogExampleGen      the item catalog, split `items`
  StatisticsGen, SchemaGen, ExampleValidator over the interactions
  ContentEmbedder        catalog text -> ItemEmbeddings (MiniLM, or embeddings the user brings)
  <Method>CodebookTrainer  one per codebook method (RQ-VAE, Mixture-of-Codes, RQ-KMeans)
  <Method>SemanticIdAssigner  Beam: every item, new ones included -> its codes
"""
import os
from typing import List, Optional

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx import v1 as tfx  # noqa: E402
from tfx.proto import example_gen_pb2  # noqa: E402

from components.codebook.component import CodebookTrainer  # noqa: E402
from components.content_embedder.component import ContentEmbedder  # noqa: E402
from components.semantic_id_assigner.component import SemanticIdAssigner  # noqa: E402
from tfx_pipeline import config as config_lib  # noqa: E402

INTERACTIONS_DIR = "interactions"
# Component-id prefix of each codebook method (also the keys of report.json's `codebooks`).
CODEBOOK_COMPONENT_PREFIX = {"rqvae": "RqVae", "moc": "MixtureOfCodes", "rqkmeans": "RqKMeans"}
CATALOG_DIR = "catalog"


def _import_example_gen(input_base: str, splits: List[str], component_id: str):
  """ImportExampleGen over pre-split TFRecords: `<input_base>/<split>/*`.

  The split is made by sidrec's data step (by item and by time), not by hashing, so each
  split is its own file pattern.
  """
  input_config = example_gen_pb2.Input(splits=[
      example_gen_pb2.Input.Split(name=name, pattern=f"{name}/*") for name in splits])
  output_config = None
  if len(splits) == 1:
    # With one input split ExampleGen would hash it into train/eval; keep it whole instead.
    output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=splits[0], hash_buckets=1)]))
  return tfx.components.ImportExampleGen(
      input_base=input_base, input_config=input_config,
      output_config=output_config).with_id(component_id)


def create_pipeline(
    config: config_lib.PipelineConfig,
    metadata_connection_config=None,
    data_dir: Optional[str] = None,
    pipeline_root: Optional[str] = None,
) -> tfx.dsl.Pipeline:
  """Builds the DAG from the one PipelineConfig.

  `data_dir` / `pipeline_root` default to the config's local layout; the Kubeflow runner
  passes remote (e.g. gs://) locations instead.
  """
  data_dir = data_dir or os.path.abspath(config.data_dir)
  pipeline_root = pipeline_root or os.path.abspath(config.pipeline_root)

  interactions_gen = _import_example_gen(
      os.path.join(data_dir, INTERACTIONS_DIR), ["train", "eval"], "InteractionExampleGen")
  catalog_gen = _import_example_gen(
      os.path.join(data_dir, CATALOG_DIR), ["items"], "CatalogExampleGen")

  statistics_gen = tfx.components.StatisticsGen(
      examples=interactions_gen.outputs["examples"])
  schema_gen = tfx.components.SchemaGen(
      statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])

  content_embedder = ContentEmbedder(
      catalog=catalog_gen.outputs["examples"],
      embedding_config=config_lib.to_json(config.embedding))

  components = [
      interactions_gen, catalog_gen, statistics_gen, schema_gen, example_validator,
      content_embedder,
  ]
  for method in config.codebook_methods:
    prefix = CODEBOOK_COMPONENT_PREFIX[method]
    trainer = CodebookTrainer(
        item_embeddings=content_embedder.outputs["item_embeddings"],
        catalog=catalog_gen.outputs["examples"],
        codebook_config=config_lib.to_json(config.codebook_for(method)),
    ).with_id(f"{prefix}CodebookTrainer")
    assigner = SemanticIdAssigner(
        item_embeddings=content_embedder.outputs["item_embeddings"],
        codebook=trainer.outputs["codebook"],
    ).with_id(f"{prefix}SemanticIdAssigner")
    components += [trainer, assigner]
  return tfx.dsl.Pipeline(
      pipeline_name=config.name,
      pipeline_root=pipeline_root,
      components=components,
      enable_cache=True,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(config.beam_pipeline_args),
  )
