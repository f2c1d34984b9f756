"""SidRankingTrainer's keys and ComponentSpec: the stock TrainerSpec plus item inputs.

One `codes_<codebook>` input per codebook (contracts/semantic_ids_io.py; `trainer_spec(
codebooks)` makes the spec for the pipeline's codebooks), optionally the item embeddings
(content representations) and ExamplePacker's chunks.
"""
from typing import Iterable, Type

from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter

from contracts import artifacts
from contracts.semantic_ids_io import codes_input_key as codes_key
from contracts.semantic_ids_io import codes_inputs as codebook_inputs

ITEM_EMBEDDINGS_KEY = "item_embeddings"
PACKED_EXAMPLES_KEY = "packed_examples"
DEFAULT_TRAIN_SPLIT, DEFAULT_EVAL_SPLIT = "train", "eval"


class SidRankingTrainerSpec(standard_component_specs.TrainerSpec):
  """The inputs every ranking trainer has; `trainer_spec` adds the codes inputs."""
  INPUTS = {
      **standard_component_specs.TrainerSpec.INPUTS,
      ITEM_EMBEDDINGS_KEY: ChannelParameter(type=artifacts.ItemEmbeddings, optional=True),
      PACKED_EXAMPLES_KEY: ChannelParameter(type=artifacts.PackedExamples, optional=True),
  }


def trainer_spec(codebooks: Iterable[str]) -> Type[SidRankingTrainerSpec]:
  inputs = {codes_key(c): ChannelParameter(type=artifacts.SemanticIds) for c in codebooks}
  return type("SidRankingTrainerSpec", (SidRankingTrainerSpec,),
              {"INPUTS": {**SidRankingTrainerSpec.INPUTS, **inputs}})
