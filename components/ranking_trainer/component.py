"""SidRankingTrainer: the stock TFX Trainer plus the item tables the exported ranker embeds.

Same spec, executor and `run_fn` contract as `tfx.components.Trainer` (GenericExecutor; the
run_fn is passed as a dotted path, `trainer.run.run_fn`), with more inputs: the SemanticIds
artifact (and optionally the Mixture-of-Codes codes and the item embeddings), and optionally
ExamplePacker's chunks of the same transformed examples, which run_fn then reads instead.
The stock Trainer cannot take them: its `custom_config` is JSON-dumped when the pipeline is
built, before any upstream artifact has a URI. The executor hands their URIs to the run_fn in
`fn_args.custom_config["item_tables"]`, which puts the catalog's codes into the serving graph
(trainer/item_tables.py) so that clients send item ids, not codes.
"""
from typing import Any, Dict, Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

from components import artifacts
from components.ranking_trainer import executor

SEMANTIC_IDS_KEY = "semantic_ids"
MOC_CODES_KEY = "moc_codes"
ITEM_EMBEDDINGS_KEY = "item_embeddings"
PACKED_EXAMPLES_KEY = "packed_examples"


class SidRankingTrainerSpec(standard_component_specs.TrainerSpec):
  INPUTS = {
      **standard_component_specs.TrainerSpec.INPUTS,
      SEMANTIC_IDS_KEY: ChannelParameter(type=artifacts.SemanticIds),
      MOC_CODES_KEY: ChannelParameter(type=artifacts.SemanticIds, optional=True),
      ITEM_EMBEDDINGS_KEY: ChannelParameter(type=artifacts.ItemEmbeddings, optional=True),
      PACKED_EXAMPLES_KEY: ChannelParameter(type=artifacts.PackedExamples, optional=True),
  }


class SidRankingTrainer(base_component.BaseComponent):
  """Trains and exports the TFRS ranker for one item representation."""

  SPEC_CLASS = SidRankingTrainerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
               semantic_ids: types.BaseChannel, run_fn: str,
               custom_config: Dict[str, Any],
               moc_codes: Optional[types.BaseChannel] = None,
               item_embeddings: Optional[types.BaseChannel] = None,
               packed_examples: Optional[types.BaseChannel] = None,
               schema: Optional[types.BaseChannel] = None,
               train_args: Optional[trainer_pb2.TrainArgs] = None,
               eval_args: Optional[trainer_pb2.EvalArgs] = None):
    super().__init__(spec=SidRankingTrainerSpec(
        examples=examples, transform_graph=transform_graph, schema=schema,
        semantic_ids=semantic_ids, moc_codes=moc_codes, item_embeddings=item_embeddings,
        packed_examples=packed_examples, train_args=train_args or trainer_pb2.TrainArgs(),
        eval_args=eval_args or trainer_pb2.EvalArgs(),
        run_fn=run_fn, custom_config=json_utils.dumps(custom_config),
        model=types.Channel(type=standard_artifacts.Model),
        model_run=types.Channel(type=standard_artifacts.ModelRun)))
