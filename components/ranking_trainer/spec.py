"""SidRankingTrainer's keys and ComponentSpec: the stock TrainerSpec plus item inputs.

One `codes_<codebook>` input per codebook (Kubeflow V2 compiles only single channels per
input, so `trainer_spec(codebooks)` makes the spec for the pipeline's codebooks), optionally the
item embeddings (content representations) and ExamplePacker's chunks.
"""
from typing import Dict, Iterable, List, Type

from tfx import types
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter

from contracts import artifacts

CODES_KEY_PREFIX = "codes_"
ITEM_EMBEDDINGS_KEY = "item_embeddings"
PACKED_EXAMPLES_KEY = "packed_examples"
MODEL_KEY = standard_component_specs.MODEL_KEY
MODEL_RUN_KEY = standard_component_specs.MODEL_RUN_KEY
DEFAULT_TRAIN_SPLIT, DEFAULT_EVAL_SPLIT = "train", "eval"


def codes_key(codebook: str) -> str:
  return CODES_KEY_PREFIX + codebook


def codebook_inputs(input_dict: Dict[str, List[types.Artifact]]) -> Dict[str, types.Artifact]:
  """{codebook name: its SemanticIds artifact} from an executor's input_dict, sorted by name."""
  return {key[len(CODES_KEY_PREFIX):]: artifacts_[0] for key, artifacts_ in sorted(
      input_dict.items()) if key.startswith(CODES_KEY_PREFIX) and artifacts_}


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
