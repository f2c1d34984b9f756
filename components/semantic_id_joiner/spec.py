"""SemanticIdJoiner's keys and ComponentSpec (every key the component and executor use).

The codes come in one input per codebook, keyed `codes_<codebook name>`: Kubeflow V2 compiles
only single channels per input (no union of channels), so the spec is made for the pipeline's
codebooks by `joiner_spec(codebooks)`.
"""
from typing import Dict, Iterable, List, Type

from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter

from contracts import artifacts

EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
CODES_KEY_PREFIX = "codes_"
JOINED_EXAMPLES_KEY = "joined_examples"
JOINED_SCHEMA_KEY = "joined_schema"
SCHEMA_FILE = "schema.pbtxt"
OUTPUT_FILE_PREFIX = "data_tfrecord"
OUTPUT_FILE_SUFFIX = ".gz"


def codes_key(codebook: str) -> str:
  return CODES_KEY_PREFIX + codebook


def codebook_inputs(input_dict: Dict[str, List[types.Artifact]]) -> Dict[str, types.Artifact]:
  """{codebook name: its SemanticIds artifact} from an executor's input_dict, sorted by name."""
  return {key[len(CODES_KEY_PREFIX):]: artifacts_[0] for key, artifacts_ in sorted(
      input_dict.items()) if key.startswith(CODES_KEY_PREFIX) and artifacts_}


class SemanticIdJoinerSpec(types.ComponentSpec):
  """The inputs every joiner has; `joiner_spec` adds one `codes_<name>` input per codebook."""
  PARAMETERS = {}
  INPUTS = {
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
  }
  OUTPUTS = {
      JOINED_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      JOINED_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
  }


def joiner_spec(codebooks: Iterable[str]) -> Type[SemanticIdJoinerSpec]:
  inputs = {codes_key(c): ChannelParameter(type=artifacts.SemanticIds) for c in codebooks}
  return type("SemanticIdJoinerSpec", (SemanticIdJoinerSpec,),
              {"INPUTS": {**SemanticIdJoinerSpec.INPUTS, **inputs}})
