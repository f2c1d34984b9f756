"""ExamplePacker: Transform's examples regrouped into chunks of parsed columns, for the Trainers.

Runs once per Transform output; every SidRankingTrainer below it reads the packed chunks
(`trainer.run.read_packed`) instead of parsing one tf.Example per example (see executor.py
for why and how chunks are drawn). Transform itself stays the stock component, and its
`transformed_examples` stay the Trainer's `examples` input (lineage, and the fallback reader).
"""
from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components import artifacts
from components.example_packer import executor

EXAMPLES_KEY = "examples"
TRANSFORM_GRAPH_KEY = "transform_graph"
PACKED_EXAMPLES_KEY = "packed_examples"


class ExamplePackerSpec(types.ComponentSpec):
  PARAMETERS = {executor.CHUNK_SIZE_KEY: ExecutionParameter(type=int)}
  INPUTS = {
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph),
  }
  OUTPUTS = {PACKED_EXAMPLES_KEY: ChannelParameter(type=artifacts.PackedExamples)}


class ExamplePacker(base_beam_component.BaseBeamComponent):
  """Packs transformed examples into chunks of ~chunk_size examples stored column-wise."""

  SPEC_CLASS = ExamplePackerSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
               chunk_size: int = 128):
    super().__init__(spec=ExamplePackerSpec(
        examples=examples, transform_graph=transform_graph, chunk_size=int(chunk_size),
        packed_examples=types.Channel(type=artifacts.PackedExamples)))
