"""ExamplePacker: Transform's input examples, transformed, in chunks of parsed columns, for the
Trainers.

Runs once per Transform; every SidRankingTrainer below it reads the packed chunks
(`trainer.run.read_packed`) instead of parsing one tf.Example per example. Transform stays the
stock component but only analyses (materialize=False): the packer runs its graph over the
examples Transform analysed, so the transformed examples are never written as tf.Examples
(see executor.py for why and how chunks are drawn).
"""
from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from components.example_packer import executor
from components.example_packer import spec
from contracts import artifacts


class ExamplePacker(base_beam_component.BaseBeamComponent):
  """Transforms `examples` with `transform_graph` into chunks of ~chunk_size examples stored
  column-wise."""

  SPEC_CLASS = spec.ExamplePackerSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
               chunk_size: int = spec.DEFAULT_CHUNK_SIZE):
    super().__init__(spec=spec.ExamplePackerSpec(
        examples=examples, transform_graph=transform_graph, chunk_size=int(chunk_size),
        packed_examples=types.Channel(type=artifacts.PackedExamples)))
