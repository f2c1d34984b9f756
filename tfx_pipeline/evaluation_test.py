"""The Evaluator's thresholds: absolute bounds, and the allowed drop against the baseline."""
import pytest
from tensorflow_model_analysis.proto import config_pb2

from contracts.config import EvaluationConfig
from tfx_pipeline import evaluation


def _thresholds(config):
  """{(metric class, slice feature values): MetricThreshold} of the EvalConfig."""
  out = {}
  for spec in evaluation.eval_config(config).metrics_specs:
    for metric in spec.metrics:
      for per_slice in metric.per_slice_thresholds:
        (slicing,) = per_slice.slicing_specs
        out[(metric.class_name, tuple(sorted(slicing.feature_values.items())))] = (
            per_slice.threshold)
  return out


def test_auc_overall_and_on_new_items_may_drop_by_at_most_the_configured_amount():
  got = _thresholds(EvaluationConfig(max_auc_drop=0.002, max_auc_drop_new_items=0.01))
  overall = got[("ExactAUC", ())]
  new = got[("ExactAUC", (("item_cohort", "new"),))]
  assert overall.value_threshold.lower_bound.value == 0.5
  assert overall.change_threshold.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER
  assert overall.change_threshold.absolute.value == pytest.approx(-0.002)
  assert new.change_threshold.absolute.value == pytest.approx(-0.01)
  # GAUC is not gated by default: neither bound nor change threshold.
  assert ("PerUserAUC", ()) not in got


def test_a_negative_drop_asks_for_an_improvement_over_the_baseline():
  got = _thresholds(EvaluationConfig(max_auc_drop=-0.01))
  assert got[("ExactAUC", ())].change_threshold.absolute.value == pytest.approx(0.01)


def test_gauc_bound_is_a_value_threshold_without_a_change_threshold():
  got = _thresholds(EvaluationConfig(min_gauc=0.55))
  gauc = got[("PerUserAUC", ())]
  assert gauc.value_threshold.lower_bound.value == pytest.approx(0.55)
  assert not gauc.HasField("change_threshold")


def test_an_allowed_drop_outside_the_auc_range_is_refused_by_name():
  with pytest.raises(ValueError, match="evaluation.max_auc_drop_new_items"):
    EvaluationConfig(max_auc_drop_new_items=1.5)
