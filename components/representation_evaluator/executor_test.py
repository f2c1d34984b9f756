"""RepresentationEvaluator's executor: the stock evaluation, then the blessing names the
candidate's representation (what the Kubeflow baseline query filters on)."""
import pytest
from tfx.types import standard_artifacts

from components.representation_evaluator import executor
from contracts import artifacts


def _dicts(representation=None):
  model = standard_artifacts.Model()
  model.uri = "/models/SidSpmTrainer/model/7"
  if representation:
    model.set_string_custom_property(artifacts.REPRESENTATION_PROPERTY, representation)
  blessing = standard_artifacts.ModelBlessing()
  return {"model": [model]}, {"blessing": [blessing]}, blessing


def test_the_blessing_names_the_representation_of_the_model_after_the_stock_run(monkeypatch):
  calls = []
  monkeypatch.setattr(executor.evaluator_executor.Executor, "Do",
                      lambda self, i, o, e: calls.append(e))
  inputs, outputs, blessing = _dicts("sid_spm")
  executor.Executor().Do(inputs, outputs, {"eval_config": "{}"})
  assert calls == [{"eval_config": "{}"}]
  assert blessing.get_string_custom_property(artifacts.REPRESENTATION_PROPERTY) == "sid_spm"


def test_a_model_from_another_trainer_is_refused_with_where_the_property_comes_from():
  inputs, outputs, _ = _dicts()
  with pytest.raises(ValueError, match=r"/models/SidSpmTrainer/model/7 has no 'representation'.*"
                                       r"SidRankingTrainer"):
    executor.tag_blessing(inputs, outputs)
