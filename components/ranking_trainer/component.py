"""SidRankingTrainer: the stock TFX Trainer plus the item tables the exported ranker embeds.

Same spec, executor and `run_fn` contract as `tfx.components.Trainer` (GenericExecutor; the
run_fn is passed as a dotted path, `trainer.run.run_fn`), with more inputs: every codebook's
SemanticIds artifact, optionally the item embeddings, and optionally ExamplePacker's chunks of
the transformed examples, which run_fn then reads instead of `examples` (in the DAG `examples`
are Transform's input, for lineage: its Transform does not materialize). The executor hands their URIs
and code shapes to the run_fn (contracts/trainer_io.py TrainerInputs), which puts the
catalog's codes into the serving graph (trainer/item_tables.py) so that clients send item ids,
not codes.
"""
from typing import Any, Dict, Mapping, Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.utils import json_utils

from components.ranking_trainer import executor
from components.ranking_trainer import spec
from contracts import artifacts


class SidRankingTrainer(base_component.BaseComponent):
  """Trains and exports the TFRS ranker for one item representation."""

  SPEC_CLASS = spec.SidRankingTrainerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
               codes: Mapping[str, types.BaseChannel], run_fn: str,
               custom_config: Dict[str, Any],
               item_embeddings: Optional[types.BaseChannel] = None,
               packed_examples: Optional[types.BaseChannel] = None,
               schema: Optional[types.BaseChannel] = None,
               train_args: Optional[trainer_pb2.TrainArgs] = None,
               eval_args: Optional[trainer_pb2.EvalArgs] = None,
               alignment: Optional[types.BaseChannel] = None,
               aligned_codebooks: Optional[Mapping[str, types.BaseChannel]] = None,
               export_item_vectors: bool = False):
    """`alignment` / `aligned_codebooks`: the ContentAligner's output and the Codebooks of
    the aligned codebooks the representation reads (their codes are in `codes`), so the
    exported ranker aligns and assigns a new item itself. `export_item_vectors`: also write
    the learned item table (the item_id_vocab Trainer that feeds the ContentAligner)."""
    if not codes:
      raise ValueError("SidRankingTrainer needs the codes of at least one codebook")
    aligned_codebooks = dict(aligned_codebooks or {})
    spec_class = spec.trainer_spec(codes, aligned_codebooks, export_item_vectors)
    outputs = {}
    if export_item_vectors:
      outputs[spec.ITEM_VECTORS_KEY] = types.Channel(type=artifacts.ItemVectors)
    super().__init__(spec=spec_class(
        examples=examples, transform_graph=transform_graph, schema=schema,
        **{spec.codes_key(name): channel for name, channel in codes.items()},
        **{spec.codebook_key(name): channel for name, channel in aligned_codebooks.items()},
        alignment=alignment, **outputs,
        item_embeddings=item_embeddings, packed_examples=packed_examples,
        train_args=train_args or trainer_pb2.TrainArgs(),
        eval_args=eval_args or trainer_pb2.EvalArgs(),
        run_fn=run_fn, custom_config=json_utils.dumps(custom_config),
        model=types.Channel(type=standard_artifacts.Model),
        model_run=types.Channel(type=standard_artifacts.ModelRun)))
