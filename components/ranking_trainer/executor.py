"""Executor of SidRankingTrainer: TFX's GenericExecutor, plus the item-table URIs."""
from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer import fn_args_utils
from tfx.types import artifact_utils

ITEM_TABLES = "item_tables"  # key in fn_args.custom_config
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
    fn_args.custom_config = custom_config
    return fn_args
