"""Executor of SidRankingTrainer: TFX's GenericExecutor, plus the TrainerInputs
(contracts/trainer_io.py) in fn_args.custom_config, and the packed chunks as the run_fn's
train / eval files when ExamplePacker feeds the Trainer."""
import json
from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer import fn_args_utils
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.ranking_trainer import spec
from contracts import artifacts
from contracts import codebook_io
from contracts import packed_examples_io
from contracts import semantic_ids_io
from contracts import trainer_io


class Executor(trainer_executor.GenericExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    super().Do(input_dict, output_dict, exec_properties)
    # Which representation the model ranks with: the Evaluator copies it onto its blessing,
    # and the Kubeflow baseline query selects by it.
    settings = trainer_io.TrainerSettings.from_custom_config(
        json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}"))
    for model in output_dict[standard_component_specs.MODEL_KEY]:
      model.set_string_custom_property(artifacts.REPRESENTATION_PROPERTY,
                                       settings.ranking.representation)

  def _GetFnArgs(self, input_dict: Dict[str, List[types.Artifact]],
                 output_dict: Dict[str, List[types.Artifact]],
                 exec_properties: Dict[str, Any]) -> fn_args_utils.FnArgs:
    fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
    custom_config = dict(fn_args.custom_config or {})
    codes = {}
    for name, artifact in spec.codebook_inputs(input_dict).items():
      columns, size = semantic_ids_io.code_shape(artifact)
      codes[name] = trainer_io.CodesInput(uri=artifact.uri, code_columns=columns,
                                          codebook_size=size)
    embeddings = input_dict.get(spec.ITEM_EMBEDDINGS_KEY)
    packed = input_dict.get(spec.PACKED_EXAMPLES_KEY)
    if packed:
      train_args, eval_args = trainer_pb2.TrainArgs(), trainer_pb2.EvalArgs()
      proto_utils.json_to_proto(exec_properties[standard_component_specs.TRAIN_ARGS_KEY],
                                train_args)
      proto_utils.json_to_proto(exec_properties[standard_component_specs.EVAL_ARGS_KEY],
                                eval_args)
      fn_args.train_files = _split_patterns(packed, train_args.splits or
                                            [spec.DEFAULT_TRAIN_SPLIT])
      fn_args.eval_files = _split_patterns(packed, eval_args.splits or
                                           [spec.DEFAULT_EVAL_SPLIT])
    alignment = input_dict.get(spec.ALIGNMENT_KEY)
    item_vectors = output_dict.get(spec.ITEM_VECTORS_KEY)
    custom_config[trainer_io.INPUTS_KEY] = trainer_io.TrainerInputs(
        codes=codes,
        item_embeddings_uri=artifact_utils.get_single_uri(embeddings) if embeddings else "",
        packed=bool(packed),
        alignment_uri=artifact_utils.get_single_uri(alignment) if alignment else "",
        aligned_codebooks={name: codebook_io.saved_model_dir(a.uri)
                           for name, a in spec.codebook_inputs_of(input_dict).items()},
        item_vectors_uri=artifact_utils.get_single_uri(item_vectors) if item_vectors else "",
    ).to_json()
    fn_args.custom_config = custom_config
    return fn_args


def _split_patterns(artifacts: List[types.Artifact], splits) -> List[str]:
  packed = artifact_utils.get_single_instance(artifacts)
  available = packed_examples_io.split_names(packed)
  missing = [s for s in splits if s not in available]
  if missing:
    raise ValueError(f"the packed examples at {packed.uri} have splits {available}, "
                     f"not {missing}: ExamplePacker packs every split of its examples")
  return [packed_examples_io.split_pattern(packed, s) for s in splits]
