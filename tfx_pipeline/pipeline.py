"""The sidrec TFX pipeline: one DAG shared by the local and the Kubeflow V2 runners.

Stages so far (later stages extend the same function):
  InteractionExampleGen  prepared interactions, splits `train` / `eval` (the cold-start split)
  CatalogExampleGen      the item catalog, split `items` (both ImportExampleGen, copying the
                         data step's shards: components/import_example_gen)
  StatisticsGen, SchemaGen, ExampleValidator over the interactions
  ContentEmbedder        catalog text -> ItemEmbeddings (MiniLM, or embeddings the user brings)
  <Method>CodebookTrainer  one per codebook method (RQ-VAE, Mixture-of-Codes, RQ-KMeans)
  <Method>SemanticIdAssigner  Beam: every item, new ones included -> its codes
  SemanticIdJoiner       every codebook's candidate + history codes onto the interactions, and
                         the joined schema
  Transform              stock; trainer.preprocessing.preprocessing_fn (SPM sub-ID analyzer);
                         analysis only (materialize=False): the packer applies its graph
  ExamplePacker          Beam: the joined examples through the transform graph, in chunks of
                         parsed columns, read by every Trainer (one tf.Example parse per
                         chunk, not per example)
  when a representation is aligned (aligned_sid_prefix_ngram, aligned_moc, aligned_dense, ...):
    ItemIdVocabTrainer   the item_id_vocab ranker (training split only) also writes its learned
                         item table (ItemVectors); it is the item_id_vocab representation's
                         Trainer when that is listed too
    ContentAligner       content embedding -> learned item vector (cross-fitted ridge / MLP),
                         aligned embeddings for every catalog item and the map
    Aligned<Method>CodebookTrainer / Aligned<Method>SemanticIdAssigner  over the aligned
                         embeddings; their codes reach the aligned Trainers through the item
                         tables (looked up by item id: Transform ran before they existed)
  per representation R (model name R, component prefix e.g. SidSpm):
    <R>Trainer           SidRankingTrainer (stock Trainer + item tables), trainer.run.run_fn
    <R>BaselineResolver  the latest blessed model of <R>Trainer (the model already serving)
    <R>Evaluator         TFMA on the eval split, sliced by item_cohort / item_popularity
                         (the stock Evaluator; its blessing names the representation);
                         blesses the model when the AUC thresholds hold (incl. new items) and,
                         against the baseline, the AUC has not dropped by more than allowed
    <R>ServingGate       warmup requests from eval examples into a copy of the model, replayed
                         in a fresh process with the stock model server's op set
    <R>Pusher            the ServingGate's copy (with its warmup requests) to
                         DIR/serving/<R>/<version>/ when both blessings hold
"""
import os
from typing import List, Optional

from tfx import v1 as tfx
from tfx.proto import example_gen_pb2
from tfx.proto import pusher_pb2
from tfx.proto import transform_pb2

from components import beam_worker
from components.codebook import spec as codebook_spec
from components.codebook.component import CodebookTrainer
from components.content_aligner import spec as aligner_spec
from components.content_aligner.component import ContentAligner
from components.content_embedder import spec as embedder_spec
from components.content_embedder.component import ContentEmbedder
from components.example_packer import spec as packer_spec
from components.import_example_gen.component import CopyingImportExampleGen
from components.example_packer.component import ExamplePacker
from components.pusher.component import ServingPusher
from components.representation_evaluator.component import RepresentationEvaluator
from components.ranking_trainer import spec as trainer_spec
from components.ranking_trainer.component import SidRankingTrainer
from components.semantic_id_assigner import spec as assigner_spec
from components.semantic_id_assigner.component import SemanticIdAssigner
from components.semantic_id_joiner import spec as joiner_spec
from components.semantic_id_joiner.component import SemanticIdJoiner
from components.serving_gate import spec as gate_spec
from components.serving_gate.component import ServingGate
from contracts import beam_runners
from contracts import config as config_lib
from contracts import schema
from contracts.registry import codebook_methods
from contracts.registry import representations as representation_registry
from contracts.trainer_io import TrainerSettings
from contracts.transform_settings import TransformSettings
from tfx_pipeline import evaluation

PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"
# The Trainer whose learned item table the ContentAligner fits to.
ALIGNMENT_SOURCE = "item_id_vocab"
RUN_FN = "trainer.run.run_fn"


def model_name(representation: str) -> str:
  """TF Serving model name (and serving directory) of a representation."""
  return representation.replace("+", "_plus_")


def component_prefix(representation: str) -> str:
  """`sid_spm` -> `SidSpm`, `sid_spm+item_id_vocab` -> `SidSpmPlusItemIdVocab`."""
  return "".join(w.capitalize() for w in model_name(representation).split("_"))


def codebook_prefix(codebook: str) -> str:
  """Component-id prefix of a codebook's trainer and assigner."""
  return codebook_methods.component_prefix(codebook)


def joined_codebooks(config: config_lib.PipelineConfig) -> List[str]:
  """The codebooks whose codes reach the ranker: the SID codebook and every codebook a
  registered representation reads by name (`moc`). Not the run's representation list, so a
  `dense_content` run after a `sid_spm` run reuses the same Join and Transform outputs; the
  other codebooks (RQ-KMeans by default) are trained and assigned for the report only."""
  readable = {config.ranking.sid_codebook}
  for name in representation_registry.NAMES:
    readable.update(config.codebooks_read(name))
  return [c for c in config.codebook_methods if c in readable]


def transform_settings(config: config_lib.PipelineConfig) -> TransformSettings:
  """What preprocessing_fn needs (nothing that depends on the run's representation list)."""
  r = config.ranking
  return TransformSettings(
      random_id_rows=r.random_id_rows, item_oov_buckets=r.item_oov_buckets,
      spm_vocab_size=r.table_budget,
      codebook_sizes={r.sid_codebook: config.codebook_for(r.sid_codebook).codebook_size},
      spm_codebooks=(r.sid_codebook,))


def transform_component(config: config_lib.PipelineConfig, examples, schema):
  """The DAG's Transform over the joined examples: the analysis alone, whose graph
  ExamplePacker applies (materializing cost a pass of its own, 2.0x a bare Beam pass on ML-1M,
  which the packer then read back)."""
  return tfx.components.Transform(
      examples=examples, schema=schema, preprocessing_fn=PREPROCESSING_FN,
      custom_config=transform_settings(config).custom_config(),
      # Vocabularies and the SentencePiece model see the training split only.
      splits_config=transform_pb2.SplitsConfig(analyze=["train"], transform=[]),
      materialize=False, disable_statistics=True)


# What tells TFX's BaseBeamExecutor that the workers already have every package.
WORKER_IMAGE_FLAGS = ("--sdk_container_image", "--worker_harness_container_image",
                       "--setup_file", "--extra_package", "--requirements_file")


def beam_args(config: config_lib.PipelineConfig) -> List[str]:
  """The config's Beam arguments plus the worker-imports plugin (components/beam_worker.py),
  which every runner with separate worker processes needs before a worker unpickles TFDV."""
  args = list(config.beam_pipeline_args)
  runner = next((a.split("=", 1)[1] for a in args if a.startswith("--runner=")), "DirectRunner")
  if not beam_runners.runs_in_process(runner) and not any(a.startswith(WORKER_IMAGE_FLAGS)
                                                    for a in args):
    # Without one TFX stages an sdist of itself whose requirements (TFDV and ml-metadata 1.21)
    # do not load on this stack, and every worker would pip-install them.
    raise ValueError(f"beam_pipeline_args name --runner={runner} but no worker image: add "
                     "--sdk_container_image=REGISTRY/sidrec-beam:TAG (tfx_pipeline/image/"
                     "beam_worker.Dockerfile; README 'Beam runners')")
  plugin = f"--beam_plugins={beam_worker.PLUGIN}"
  return args if plugin in args else args + [plugin]


def _import_example_gen(input_base: str, splits: List[str], component_id: str):
  """ImportExampleGen (copying shards, components/import_example_gen) over pre-split
  TFRecords: `<input_base>/<split>/*`.

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
  return CopyingImportExampleGen(
      input_base=input_base, input_config=input_config,
      output_config=output_config).with_id(component_id)


def create_pipeline(
    config: config_lib.PipelineConfig,
    metadata_connection_config=None,
    data_dir: Optional[str] = None,
    pipeline_root: Optional[str] = None,
    serving_dir: Optional[str] = None,
    baselines: bool = True,
) -> tfx.dsl.Pipeline:
  """Builds the DAG from the one PipelineConfig.

  `data_dir` / `pipeline_root` / `serving_dir` default to the config's local layout; the
  Kubeflow runner passes remote (e.g. gs://) locations instead. `baselines=False` leaves out
  the BaselineResolvers (each Evaluator then gates on the absolute thresholds only), for
  Kubeflow Pipelines' open-source backend, which does not run resolver tasks.
  """
  data_dir = data_dir or os.path.abspath(config.data_dir)
  pipeline_root = pipeline_root or os.path.abspath(config.pipeline_root)
  serving_dir = serving_dir or os.path.abspath(config.serving_dir)

  interactions_gen = _import_example_gen(
      os.path.join(data_dir, schema.INTERACTIONS_DIR), [schema.TRAIN_SPLIT, schema.EVAL_SPLIT],
      "InteractionExampleGen")
  catalog_gen = _import_example_gen(
      os.path.join(data_dir, schema.CATALOG_ROOT), [schema.CATALOG_SPLIT], "CatalogExampleGen")

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
  codes, joined = {}, joined_codebooks(config)
  for codebook in config.codebook_methods:
    prefix = codebook_prefix(codebook)
    trainer = CodebookTrainer(
        item_embeddings=content_embedder.outputs[embedder_spec.ITEM_EMBEDDINGS_KEY],
        catalog=catalog_gen.outputs["examples"],
        codebook_config=config_lib.to_json(config.codebook_for(codebook)),
    ).with_id(f"{prefix}CodebookTrainer")
    assigner = SemanticIdAssigner(
        item_embeddings=content_embedder.outputs[embedder_spec.ITEM_EMBEDDINGS_KEY],
        codebook=trainer.outputs[codebook_spec.CODEBOOK_KEY], codebook_name=codebook,
    ).with_id(f"{prefix}SemanticIdAssigner")
    components += [trainer, assigner]
    if codebook in joined:
      codes[codebook] = assigner.outputs[assigner_spec.SEMANTIC_IDS_KEY]

  joiner = SemanticIdJoiner(
      examples=interactions_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
      codes=codes)
  joined_examples = joiner.outputs[joiner_spec.JOINED_EXAMPLES_KEY]
  transform = transform_component(config, joined_examples,
                                  joiner.outputs[joiner_spec.JOINED_SCHEMA_KEY])
  packer = ExamplePacker(
      examples=joined_examples,
      transform_graph=transform.outputs["transform_graph"],
      chunk_size=config.ranking.packed_chunk_size)
  components += [joiner, transform, packer]

  raw_embeddings = content_embedder.outputs[embedder_spec.ITEM_EMBEDDINGS_KEY]

  def ranking_trainer(representation: str, aligned=None, export_item_vectors=False):
    entry = representation_registry.get(representation)
    read = config.codebooks_read(representation)
    aligned_codes, aligned_books, aligned_embeddings = aligned or ({}, {}, None)
    content = None
    if entry.reads_content():
      content = aligned_embeddings if entry.reads_aligned() else raw_embeddings
    return SidRankingTrainer(
        # Lineage (the stock Trainer needs `examples`); run_fn reads the packed chunks.
        examples=joined_examples,
        transform_graph=transform.outputs["transform_graph"],
        # Every joined codebook (the exported transform graph reads all their codes), and
        # the aligned codebooks this representation reads.
        codes={**codes, **{c: aligned_codes[c] for c in read if c in aligned_codes}},
        item_embeddings=content,
        packed_examples=packer.outputs[packer_spec.PACKED_EXAMPLES_KEY],
        run_fn=RUN_FN,
        custom_config=TrainerSettings(config.ranking_for(representation)).custom_config(),
        alignment=aligned_embeddings if entry.reads_aligned() else None,
        aligned_codebooks={c: aligned_books[c] for c in read if c in aligned_books},
        export_item_vectors=export_item_vectors,
    ).with_id(f"{component_prefix(representation)}Trainer")

  trainers, aligned = {}, None
  if config.needs_alignment():
    # The learned item table comes from the item_id_vocab Trainer (no second model).
    source = trainers[ALIGNMENT_SOURCE] = ranking_trainer(ALIGNMENT_SOURCE,
                                                          export_item_vectors=True)
    aligner = ContentAligner(
        item_embeddings=raw_embeddings,
        item_vectors=source.outputs[trainer_spec.ITEM_VECTORS_KEY],
        alignment_config=config_lib.to_json(config.alignment),
        seed=config.codebook.seed)
    aligned_embeddings = aligner.outputs[aligner_spec.ALIGNED_EMBEDDINGS_KEY]
    aligned_codes, aligned_books = {}, {}
    components += [source, aligner]
    for codebook in config.aligned_codebooks():
      prefix = codebook_prefix(codebook)
      book = CodebookTrainer(
          item_embeddings=aligned_embeddings, catalog=catalog_gen.outputs["examples"],
          codebook_config=config_lib.to_json(config.codebook_for(codebook)),
      ).with_id(f"{prefix}CodebookTrainer")
      assigner = SemanticIdAssigner(
          item_embeddings=aligned_embeddings, codebook=book.outputs[codebook_spec.CODEBOOK_KEY],
          codebook_name=codebook).with_id(f"{prefix}SemanticIdAssigner")
      components += [book, assigner]
      aligned_books[codebook] = book.outputs[codebook_spec.CODEBOOK_KEY]
      aligned_codes[codebook] = assigner.outputs[assigner_spec.SEMANTIC_IDS_KEY]
    aligned = (aligned_codes, aligned_books, aligned_embeddings)

  eval_config = evaluation.eval_config(config.evaluation)
  for representation in config.representations:
    prefix = component_prefix(representation)
    entry = representation_registry.get(representation)
    trainer = trainers.get(representation) or ranking_trainer(representation, aligned)
    # The model already serving, as TFX's penguin example finds it: the latest Model of this
    # Trainer that this Evaluator blessed. The first run has none; the Evaluator then gates on
    # the absolute thresholds only (TFMA drops change thresholds without a baseline).
    baseline = None if not baselines else tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                              producer_component_id=trainer.id),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                       producer_component_id=f"{prefix}Evaluator"),
    ).with_id(f"{prefix}BaselineResolver")
    evaluator = RepresentationEvaluator(
        examples=joined_examples, model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"] if baseline else None,
        schema=joiner.outputs[joiner_spec.JOINED_SCHEMA_KEY], eval_config=eval_config,
        example_splits=["eval"]).with_id(f"{prefix}Evaluator")
    gate = ServingGate(
        model=trainer.outputs["model"], examples=joined_examples,
        # The raw content: serve_new_items of content and aligned models takes it.
        item_embeddings=(raw_embeddings if entry.reads_content() or entry.reads_aligned()
                         else None),
        serving_config=config.serving).with_id(f"{prefix}ServingGate")
    # No `model`: the Pusher then pushes the ServingGate's stamped copy, which carries the
    # warmup requests (tfx/components/pusher/executor.py GetModelPath). The executor is the
    # stock one, except that it does not push again a model that is already the newest version.
    pusher = ServingPusher(
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=gate.outputs[gate_spec.BLESSING_KEY],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=os.path.join(serving_dir, model_name(representation))))
    ).with_id(f"{prefix}Pusher")
    components += [c for c in (trainer, baseline, evaluator, gate, pusher)
                   if c is not None and c not in components]
  return tfx.dsl.Pipeline(
      pipeline_name=config.name,
      pipeline_root=pipeline_root,
      components=components,
      enable_cache=True,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=beam_args(config),
  )
