"""The stock ImportExampleGen with the copying executor (executor.py): same spec, driver, exec
properties and outputs; shards already in ExampleGen's output format are copied, not rewritten."""
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.import_example_gen import executor


class CopyingImportExampleGen(tfx.components.ImportExampleGen):
  """ImportExampleGen whose executor copies GZIP'd tf.Example shards byte for byte."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
