"""Executor of SidRankingTrainer: TFX's GenericExecutor, plus the item-table URIs, and the
packed chunks as the run_fn's train / eval files when ExamplePacker feeds the Trainer."""
import os
from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer import fn_args_utils
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.example_packer import executor as packer

ITEM_TABLES = "item_tables"  # key in fn_args.custom_config
PACKED_INPUT = "packed_input"  # key in fn_args.custom_config (trainer/run.py PACKED_INPUT)
_URI_KEYS = {"semantic_ids": "semantic_ids_uri", "moc_codes": "moc_codes_uri",
             "item_embeddings": "item_embeddings_uri"}


class Executor(trainer_executor.GenericExecutor):

  def _GetFnArgs(self, input_dict: Dict[str, List[types.Artifact]],
                 output_dict: Dict[str, List[types.Artifact]],
                 exec_properties: Dict[str, Any]) -> fn_args_utils.FnArgs:
    fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
    custom_config = dict(fn_args.custom_config or {})
    custom_config[ITEM_TABLES] = {
        arg: artifact_utils.get_single_uri(input_dict[key])
        for key, arg in _URI_KEYS.items() if input_dict.get(key)}
    packed = input_dict.get("packed_examples")
    if packed:
      train_args, eval_args = trainer_pb2.TrainArgs(), trainer_pb2.EvalArgs()
      proto_utils.json_to_proto(exec_properties[standard_component_specs.TRAIN_ARGS_KEY],
                                train_args)
      proto_utils.json_to_proto(exec_properties[standard_component_specs.EVAL_ARGS_KEY],
                                eval_args)
      fn_args.train_files = _split_patterns(packed, train_args.splits or ["train"])
      fn_args.eval_files = _split_patterns(packed, eval_args.splits or ["eval"])
      custom_config[PACKED_INPUT] = True
    fn_args.custom_config = custom_config
    return fn_args


def _split_patterns(artifacts: List[types.Artifact], splits) -> List[str]:
  packed = artifact_utils.get_single_instance(artifacts)
  available = packer.split_names(packed)
  missing = [s for s in splits if s not in available]
  if missing:
    raise ValueError(f"the packed examples at {packed.uri} have splits {available}, "
                     f"not {missing}: ExamplePacker packs every split Transform wrote")
  return [os.path.join(packer.split_uri(packed, s), "*") for s in splits]
