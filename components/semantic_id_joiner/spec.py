"""SemanticIdJoiner's keys and ComponentSpec (every key the component and executor use).

The codes come in one input per codebook, keyed `codes_<codebook name>`
(contracts/semantic_ids_io.py), so the spec is made for the pipeline's codebooks by
`joiner_spec(codebooks)`.
"""
from typing import Iterable, Type

from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter

from contracts import artifacts
from contracts.semantic_ids_io import codes_input_key as codes_key
from contracts.semantic_ids_io import codes_inputs as codebook_inputs

EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
JOINED_EXAMPLES_KEY = "joined_examples"
JOINED_SCHEMA_KEY = "joined_schema"
SCHEMA_FILE = "schema.pbtxt"
OUTPUT_FILE_PREFIX = "data_tfrecord"
OUTPUT_FILE_SUFFIX = ".gz"


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
