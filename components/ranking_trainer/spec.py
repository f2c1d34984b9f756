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
# The ContentAligner's output (its map), and each aligned codebook's Codebook, `codebook_<name>`.
ALIGNMENT_KEY = "alignment"
CODEBOOK_INPUT_PREFIX = "codebook_"
# Output of the item_id_vocab Trainer that feeds the ContentAligner: its learned item table.
ITEM_VECTORS_KEY = "item_vectors"
DEFAULT_TRAIN_SPLIT, DEFAULT_EVAL_SPLIT = "train", "eval"


class SidRankingTrainerSpec(standard_component_specs.TrainerSpec):
  """The inputs every ranking trainer has; `trainer_spec` adds the codes inputs."""
  INPUTS = {
      **standard_component_specs.TrainerSpec.INPUTS,
      ITEM_EMBEDDINGS_KEY: ChannelParameter(type=artifacts.ItemEmbeddings, optional=True),
      PACKED_EXAMPLES_KEY: ChannelParameter(type=artifacts.PackedExamples, optional=True),
      ALIGNMENT_KEY: ChannelParameter(type=artifacts.ItemEmbeddings, optional=True),
  }


def codebook_key(codebook: str) -> str:
  return CODEBOOK_INPUT_PREFIX + codebook


def trainer_spec(codebooks: Iterable[str], aligned_codebooks: Iterable[str] = (),
                 item_vectors: bool = False) -> Type[SidRankingTrainerSpec]:
  """The spec for these codebooks' codes (and aligned codebooks' Codebooks); `item_vectors`
  adds the ItemVectors output."""
  inputs = {codes_key(c): ChannelParameter(type=artifacts.SemanticIds) for c in codebooks}
  inputs.update({codebook_key(c): ChannelParameter(type=artifacts.Codebook)
                 for c in aligned_codebooks})
  outputs = dict(SidRankingTrainerSpec.OUTPUTS)
  if item_vectors:
    outputs[ITEM_VECTORS_KEY] = ChannelParameter(type=artifacts.ItemVectors)
  return type("SidRankingTrainerSpec", (SidRankingTrainerSpec,),
              {"INPUTS": {**SidRankingTrainerSpec.INPUTS, **inputs}, "OUTPUTS": outputs})


def codebook_inputs_of(input_dict) -> dict:
  """{aligned codebook name: its Codebook artifact} from an executor's input_dict."""
  return {key[len(CODEBOOK_INPUT_PREFIX):]: a[0] for key, a in sorted(input_dict.items())
          if key.startswith(CODEBOOK_INPUT_PREFIX) and a}
