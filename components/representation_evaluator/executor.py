"""The stock Evaluator's executor, plus the candidate model's representation on the blessing.

Why: the baseline of `<R>Evaluator` is the latest model that `<R>Evaluator` blessed
(LatestBlessedModelStrategy). The local runner scopes that query to the producer; TFX's
Kubeflow V2 compiler drops the producer and compiles "the latest blessed ModelBlessing" of
any Evaluator, so with several representations one representation's candidate was compared
with another's model. With the representation on the blessing, the compiled query filters on
it (tfx_pipeline/kubeflow_v2_runner.py) and both runners pick the same baseline.
"""
from typing import Any, Dict, List

from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import standard_component_specs

from contracts import artifacts


class Executor(evaluator_executor.Executor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    super().Do(input_dict, output_dict, exec_properties)
    tag_blessing(input_dict, output_dict)


def tag_blessing(input_dict: Dict[str, List[types.Artifact]],
                 output_dict: Dict[str, List[types.Artifact]]) -> None:
  """Copies the candidate Model's representation onto the ModelBlessing."""
  model = input_dict[standard_component_specs.MODEL_KEY][0]
  key = artifacts.REPRESENTATION_PROPERTY
  if not model.has_custom_property(key):
    raise ValueError(f"the model at {model.uri} has no '{key}' property: it was not trained by "
                     "SidRankingTrainer (components/ranking_trainer), which sets it")
  for blessing in output_dict[standard_component_specs.BLESSING_KEY]:
    blessing.set_string_custom_property(key, model.get_string_custom_property(key))
