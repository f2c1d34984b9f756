"""ImportExampleGen's executor for inputs already in ExampleGen's output format: a file copy.

The stock executor parses every record into a tf.train.Example, serializes it again, and
Reshuffles the split (a GroupByKey with random keys) before it writes GZIP'd TFRecords. sidrec's
data step (tfx_pipeline/data/writer.py) already writes GZIP'd TFRecords of serialized
tf.Examples, so each input shard is copied as it is. Why: on the in-process DirectRunner the
Reshuffle holds the whole split in memory; at 4x10^6 synthetic interactions the stock
InteractionExampleGen took 216 s (1.69x a bare Beam pass) and 5.77 GB, the DAG's peak
(benchmarks/stage_costs.py, README "Speed and scale").

Any other input (Parquet, another payload or file format, a split partitioned by hash, files
not named *.gz or whose first record is not a tf.Example) goes to the stock executor unchanged.
Unlike the stock executor this parses only each shard's first record: a shard corrupt further
on fails in StatisticsGen, the next reader, instead of here. ExampleGen's order carries nothing
downstream: the ExamplePacker orders each chunk by record content.
"""
import os
import uuid
from typing import Any, Dict, List, Optional

import tensorflow as tf
from absl import logging
from google.protobuf import message
from tfx import types
from tfx.components.example_gen import utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.import_example_gen import executor as stock_executor
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as keys
from tfx.utils import proto_utils

_COPYABLE_PAYLOADS = (example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE,
                      example_gen_pb2.PayloadFormat.FORMAT_PROTO)
_COPYABLE_FILE_FORMATS = (example_gen_pb2.FILE_FORMAT_UNSPECIFIED,
                          example_gen_pb2.FORMAT_TFRECORDS_GZIP)


def copy_plan(exec_properties: Dict[str, Any]) -> Optional[Dict[str, List[str]]]:
  """{output split: its input files} when every split can be copied as it is, else None."""
  input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
  proto_utils.json_to_proto(exec_properties[keys.INPUT_CONFIG_KEY], input_config)
  proto_utils.json_to_proto(exec_properties[keys.OUTPUT_CONFIG_KEY], output_config)
  if (exec_properties.get(keys.OUTPUT_DATA_FORMAT_KEY) not in _COPYABLE_PAYLOADS
      or exec_properties.get(keys.OUTPUT_FILE_FORMAT_KEY,
                             example_gen_pb2.FILE_FORMAT_UNSPECIFIED)
      not in _COPYABLE_FILE_FORMATS):
    return None
  output_splits = list(output_config.split_config.splits)
  if output_splits and (len(output_splits) != 1 or len(input_config.splits) != 1):
    return None  # hash-partitioned: every record's split is computed
  names = utils.generate_output_split_names(input_config, output_config)
  plan = {}
  for name, split in zip(names, input_config.splits):
    pattern = os.path.join(exec_properties[keys.INPUT_BASE_KEY], split.pattern)
    inputs = sorted(tf.io.gfile.glob(pattern))
    if not inputs or not all(path.endswith(".gz") and _starts_with_example(path)
                             for path in inputs):
      return None  # the stock executor says what is missing or what does not parse
    plan[name] = inputs
  return plan


def _starts_with_example(path: str) -> bool:
  """Whether the file is GZIP'd TFRecords whose first record (if any) is a tf.train.Example."""
  try:
    for record in tf.data.TFRecordDataset(path, compression_type="GZIP").take(1):
      tf.train.Example.FromString(record.numpy())
  except (tf.errors.OpError, message.DecodeError):
    return False
  return True


def copy_split(inputs: List[str], split_uri: str):
  """Copies `inputs` into `split_uri` under ExampleGen's shard names, each through a temp name."""
  tf.io.gfile.makedirs(split_uri)
  for index, source in enumerate(inputs):
    target = os.path.join(split_uri, f"{write_split.DEFAULT_TF_RECORD_FILE_NAME}-"
                                     f"{index:05d}-of-{len(inputs):05d}.gz")
    temp = f"{target}.tmp-{uuid.uuid4().hex}"
    try:
      tf.io.gfile.copy(source, temp)
      tf.io.gfile.rename(temp, target, overwrite=True)
    finally:
      if tf.io.gfile.exists(temp):  # a failed copy leaves no file a `Split-*/*` glob would read
        tf.io.gfile.remove(temp)


class Executor(stock_executor.Executor):
  """ImportExampleGen that copies shards already in its output format; the stock one else."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
    plan = copy_plan(exec_properties)
    if plan is None:
      return super().Do(input_dict, output_dict, exec_properties)
    self._log_startup(input_dict, output_dict, exec_properties)
    examples = artifact_utils.get_single_instance(output_dict[keys.EXAMPLES_KEY])
    examples.split_names = artifact_utils.encode_split_names(list(plan))
    for name, inputs in plan.items():
      logging.info("Copying %d shard(s) of split %s.", len(inputs), name)
      copy_split(inputs, artifact_utils.get_split_uri([examples], name))
    # The artifact properties the stock executor sets, which StatisticsGen and Transform read.
    examples_utils.set_payload_format(examples, exec_properties[keys.OUTPUT_DATA_FORMAT_KEY])
    file_format = exec_properties.get(keys.OUTPUT_FILE_FORMAT_KEY)
    if file_format:
      examples_utils.set_file_format(examples, write_split.to_file_format_str(file_format))
