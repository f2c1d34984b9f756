"""ExamplePacker's keys and ComponentSpec (every key the component and executor use)."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from contracts import artifacts

EXAMPLES_KEY = "examples"  # Transform's input examples (the raw, joined layout)
TRANSFORM_GRAPH_KEY = "transform_graph"
PACKED_EXAMPLES_KEY = "packed_examples"
CHUNK_SIZE_KEY = "chunk_size"
DEFAULT_CHUNK_SIZE = 128


class ExamplePackerSpec(types.ComponentSpec):
  PARAMETERS = {CHUNK_SIZE_KEY: ExecutionParameter(type=int)}
  INPUTS = {
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph),
  }
  OUTPUTS = {PACKED_EXAMPLES_KEY: ChannelParameter(type=artifacts.PackedExamples)}
