"""The Evaluator's TFMA EvalConfig: slices, metrics and the thresholds that gate the push.

Slices: overall, `item_cohort` (new / seen), `item_popularity` (train interactions of the item,
bucketed by the data step). Metrics: the registry's TFMA metrics (contracts/registry/
metrics.py: exact AUC and per-user AUC (GAUC) from one combiner, tfx_pipeline/gauc.py; example
count, calibration, binary cross-entropy, mean label and prediction, tfx_pipeline/
score_stats.py, under TFMA's keys). The model is blessed when every reported metric with a
`gate` is at least its EvaluationConfig bound on its slice: AUC >= min_auc overall and >=
min_auc_new_items on the new-item slice, and GAUC >= min_gauc overall when that is > 0.

TFMA 0.52 does not export its config classes at top level; the protos are used directly.
"""
from typing import Dict, List

from tensorflow_model_analysis.proto import config_pb2

from contracts import schema
from contracts import serving_api
from contracts.config import EvaluationConfig
from contracts.registry import metrics as metric_registry


def _lower_bound(value: float) -> config_pb2.MetricThreshold:
  return config_pb2.MetricThreshold(value_threshold=config_pb2.GenericValueThreshold(
      lower_bound={"value": float(value)}))


def slicing_spec(slice_key: tuple) -> config_pb2.SlicingSpec:
  return config_pb2.SlicingSpec(feature_values=dict(slice_key))


def eval_config(config: EvaluationConfig) -> config_pb2.EvalConfig:
  thresholds: Dict[str, List[config_pb2.PerSliceMetricThreshold]] = {}
  for metric in metric_registry.REPORTED:
    if not metric.gate:
      continue
    bound = getattr(config, metric.gate)
    if bound > 0 or not metric.gate_off_at_zero:
      thresholds.setdefault(metric_registry.producer(metric.tfma_name).class_name, []).append(
          config_pb2.PerSliceMetricThreshold(slicing_specs=[slicing_spec(metric.slice)],
                                             threshold=_lower_bound(bound)))
  metrics = [config_pb2.MetricConfig(class_name=m.class_name, module=m.module,
                                     config=m.config or None,
                                     per_slice_thresholds=thresholds.get(m.class_name, []))
             for m in metric_registry.TFMA_METRICS]
  return config_pb2.EvalConfig(
      model_specs=[config_pb2.ModelSpec(
          signature_name=serving_api.TFMA_SIGNATURE, label_key=schema.LABEL,
          prediction_key=serving_api.TFMA_PREDICTION_KEY, model_type="tf_generic",
          inference_batch_size=config.inference_batch_size)],
      slicing_specs=[config_pb2.SlicingSpec(),
                     config_pb2.SlicingSpec(feature_keys=[schema.ITEM_COHORT]),
                     config_pb2.SlicingSpec(feature_keys=[schema.ITEM_POPULARITY])],
      metrics_specs=[config_pb2.MetricsSpec(metrics=metrics)])
