"""The Evaluator's TFMA EvalConfig: slices, metrics and the thresholds that gate the push.

Slices: overall, `item_cohort` (new / seen), `item_popularity` (train interactions of the item,
bucketed by the data step). Metrics: the registry's TFMA metrics (contracts/registry/
metrics.py: exact AUC and per-user AUC (GAUC) from one combiner, tfx_pipeline/gauc.py; example
count, calibration, binary cross-entropy, mean label and prediction, tfx_pipeline/
score_stats.py, under TFMA's keys). The model is blessed when every reported metric with a
`gate` is at least its EvaluationConfig bound on its slice: AUC >= min_auc overall and >=
min_auc_new_items on the new-item slice, and GAUC >= min_gauc overall when that is > 0; and,
when the Evaluator is given a baseline (the latest blessed model of the same representation,
pipeline.py), every metric with a `change_gate` drops by at most that much against it: AUC by
max_auc_drop overall and by max_auc_drop_new_items on new items.

TFMA 0.52 does not export its config classes at top level; the protos are used directly.
"""
from typing import Dict, List

from tensorflow_model_analysis.proto import config_pb2

from contracts import schema
from contracts import serving_api
from contracts.config import EvaluationConfig
from contracts.registry import metrics as metric_registry


def _threshold(config: EvaluationConfig, metric) -> config_pb2.MetricThreshold:
  """The metric's lower bound and, when it has a change gate, its allowed drop against the
  baseline (TFMA drops change thresholds when the Evaluator has no baseline model)."""
  threshold = config_pb2.MetricThreshold()
  bound = getattr(config, metric.gate) if metric.gate else 0.0
  if metric.gate and (bound > 0 or not metric.gate_off_at_zero):
    threshold.value_threshold.lower_bound.value = float(bound)
  if metric.change_gate:
    threshold.change_threshold.direction = config_pb2.MetricDirection.HIGHER_IS_BETTER
    threshold.change_threshold.absolute.value = -float(getattr(config, metric.change_gate))
  return threshold


def slicing_spec(slice_key: tuple) -> config_pb2.SlicingSpec:
  return config_pb2.SlicingSpec(feature_values=dict(slice_key))


def eval_config(config: EvaluationConfig) -> config_pb2.EvalConfig:
  thresholds: Dict[str, List[config_pb2.PerSliceMetricThreshold]] = {}
  for metric in metric_registry.REPORTED:
    threshold = _threshold(config, metric)
    if threshold.ListFields():
      thresholds.setdefault(metric_registry.producer(metric.tfma_name).class_name, []).append(
          config_pb2.PerSliceMetricThreshold(slicing_specs=[slicing_spec(metric.slice)],
                                             threshold=threshold))
  metrics = [config_pb2.MetricConfig(class_name=m.class_name, module=m.module,
                                     config=m.config or None,
                                     per_slice_thresholds=thresholds.get(m.class_name, []))
             for m in metric_registry.TFMA_METRICS]
  return config_pb2.EvalConfig(
      model_specs=[config_pb2.ModelSpec(
          signature_name=serving_api.TFMA_SIGNATURE, label_key=schema.LABEL,
          prediction_key=serving_api.TFMA_PREDICTION_KEY, model_type="tf_generic")],
      slicing_specs=[config_pb2.SlicingSpec(),
                     config_pb2.SlicingSpec(feature_keys=[schema.ITEM_COHORT]),
                     config_pb2.SlicingSpec(feature_keys=[schema.ITEM_POPULARITY])],
      metrics_specs=[config_pb2.MetricsSpec(metrics=metrics)])
