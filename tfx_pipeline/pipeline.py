"""The sidrec TFX pipeline: one DAG shared by the local and the Kubeflow V2 runners.

Stages so far (later stages extend the same function):
  InteractionExampleGen  prepared interactions, splits `train` / `eval` (the cold-start split)
  CatalogExampleGen      the item catalog, split `items`
  StatisticsGen, SchemaGen, ExampleValidator over the interactions
  ContentEmbedder        catalog text -> ItemEmbeddings (MiniLM, or embeddings the user brings)
  <Method>CodebookTrainer  one per codebook method (RQ-VAE, Mixture-of-Codes, RQ-KMeans)
  <Method>SemanticIdAssigner  Beam: every item, new ones included -> its codes
  SemanticIdJoiner       candidate + history codes onto the interactions, and the joined schema
  Transform              stock; trainer.preprocessing.preprocessing_fn (SPM sub-ID analyzer)
  ExamplePacker          Beam: Transform's examples in chunks of parsed columns, read by every
                         Trainer (one tf.Example parse per chunk, not per example)
  per representation R (model name R, component prefix e.g. SidSpm):
    <R>Trainer           SidRankingTrainer (stock Trainer + item tables), trainer.run.run_fn
    <R>Evaluator         TFMA on the eval split, sliced by item_cohort / item_popularity;
                         blesses the model when the AUC thresholds hold (incl. new items)
    <R>Pusher            DIR/serving/<R>/<version>/ when blessed
"""
import os
from typing import List, Optional

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx import v1 as tfx  # noqa: E402
from tfx.proto import example_gen_pb2  # noqa: E402
from tfx.proto import pusher_pb2  # noqa: E402
from tfx.proto import transform_pb2  # noqa: E402

from components.codebook.component import CodebookTrainer  # noqa: E402
from components.content_embedder.component import ContentEmbedder  # noqa: E402
from components.example_packer.component import ExamplePacker  # noqa: E402
from components.ranking_trainer.component import SidRankingTrainer  # noqa: E402
from components.semantic_id_assigner.component import SemanticIdAssigner  # noqa: E402
from components.semantic_id_joiner.component import SemanticIdJoiner  # noqa: E402
from tfx_pipeline import config as config_lib  # noqa: E402
from tfx_pipeline import evaluation  # noqa: E402
from trainer import preprocessing  # noqa: E402
from trainer import run as trainer_run  # noqa: E402

INTERACTIONS_DIR = "interactions"
# Component-id prefix of each codebook method (also the keys of report.json's `codebooks`).
CODEBOOK_COMPONENT_PREFIX = {"rqvae": "RqVae", "moc": "MixtureOfCodes", "rqkmeans": "RqKMeans"}
CATALOG_DIR = "catalog"
PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"
RUN_FN = "trainer.run.run_fn"
CONTENT_REPRESENTATIONS = ("dense_content",)


def model_name(representation: str) -> str:
  """TF Serving model name (and serving directory) of a representation."""
  return representation.replace("+", "_plus_")


def component_prefix(representation: str) -> str:
  """`sid_spm` -> `SidSpm`, `sid_spm+item_id_vocab` -> `SidSpmPlusItemIdVocab`."""
  return "".join(w.capitalize() for w in model_name(representation).split("_"))


def _moc_codebook(config: config_lib.PipelineConfig) -> Optional[config_lib.CodebookConfig]:
  """The MoC codebook settings when the pipeline trains MoC codebooks, else None."""
  return config.codebook_for("moc") if "moc" in config.codebook_methods else None


def transform_custom_config(config: config_lib.PipelineConfig):
  r, sid = config.ranking, config.codebook_for(config.sid_method)
  moc = _moc_codebook(config)
  return preprocessing.transform_custom_config(
      codebook_size=sid.codebook_size, history_length=config.split.history_length,
      random_id_rows=r.random_id_rows, item_oov_buckets=r.item_oov_buckets,
      spm_vocab_size=r.table_budget, levels=sid.levels,
      moc_codebooks=moc.levels * moc.moc_scaling_factor if moc else 0,
      # Always: Transform's cache key must not depend on which representations a run trains
      # (a `dense_content` run after a `sid_spm` run reuses the same Transform output).
      item_keys=True)


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
    serving_dir: Optional[str] = None,
) -> tfx.dsl.Pipeline:
  """Builds the DAG from the one PipelineConfig.

  `data_dir` / `pipeline_root` / `serving_dir` default to the config's local layout; the
  Kubeflow runner passes remote (e.g. gs://) locations instead.
  """
  data_dir = data_dir or os.path.abspath(config.data_dir)
  pipeline_root = pipeline_root or os.path.abspath(config.pipeline_root)
  serving_dir = serving_dir or os.path.abspath(config.serving_dir)

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
  assigners = {}
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
    assigners[method] = assigner.outputs["semantic_ids"]

  moc_codes = assigners.get("moc")
  joiner = SemanticIdJoiner(
      examples=interactions_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
      semantic_ids=assigners[config.sid_method], moc_codes=moc_codes)
  transform = tfx.components.Transform(
      examples=joiner.outputs["joined_examples"], schema=joiner.outputs["joined_schema"],
      preprocessing_fn=PREPROCESSING_FN, custom_config=transform_custom_config(config),
      # Vocabularies and the SentencePiece model see the training split only.
      splits_config=transform_pb2.SplitsConfig(analyze=["train"], transform=["train", "eval"]),
      disable_statistics=True)
  packer = ExamplePacker(
      examples=transform.outputs["transformed_examples"],
      transform_graph=transform.outputs["transform_graph"],
      chunk_size=config.ranking.packed_chunk_size)
  components += [joiner, transform, packer]

  moc = _moc_codebook(config)
  eval_config = evaluation.eval_config(config.evaluation)
  for representation in config.representations:
    prefix = component_prefix(representation)
    trainer = SidRankingTrainer(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        semantic_ids=assigners[config.sid_method], moc_codes=moc_codes,
        item_embeddings=(content_embedder.outputs["item_embeddings"]
                         if representation in CONTENT_REPRESENTATIONS else None),
        packed_examples=packer.outputs["packed_examples"],
        run_fn=RUN_FN,
        custom_config=trainer_run.trainer_custom_config(
            config.ranking_for(representation),
            config.codebook_for(config.sid_method).codebook_size,
            moc.codebook_size if moc else 0),
    ).with_id(f"{prefix}Trainer")
    evaluator = tfx.components.Evaluator(
        examples=joiner.outputs["joined_examples"], model=trainer.outputs["model"],
        schema=joiner.outputs["joined_schema"], eval_config=eval_config,
        example_splits=["eval"]).with_id(f"{prefix}Evaluator")
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=os.path.join(serving_dir, model_name(representation))))
    ).with_id(f"{prefix}Pusher")
    components += [trainer, evaluator, pusher]
  return tfx.dsl.Pipeline(
      pipeline_name=config.name,
      pipeline_root=pipeline_root,
      components=components,
      enable_cache=True,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(config.beam_pipeline_args),
  )
