"""The Evaluator's TFMA EvalConfig: slices, metrics and the thresholds that gate the push.

Slices: overall, `item_cohort` (new / seen), `item_popularity` (train interactions of the item,
bucketed by the data step). Metrics: example count, AUC, per-user AUC (GAUC,
tfx_pipeline/gauc.py), calibration (mean prediction / mean label), binary cross-entropy, mean
label and prediction. The model is blessed when AUC >= min_auc overall and >=
min_auc_new_items on the new-item slice (and GAUC >= min_gauc overall when set).

TFMA 0.52 does not export its config classes at top level; the protos are used directly.
"""
from tensorflow_model_analysis.proto import config_pb2

from serving import signatures
from tfx_pipeline.config import EvaluationConfig

LABEL_KEY = "label"
COHORT_KEY = "item_cohort"
POPULARITY_KEY = "item_popularity"
NEW_COHORT = "new"
GAUC_METRIC = "gauc"


def _lower_bound(value: float) -> config_pb2.MetricThreshold:
  return config_pb2.MetricThreshold(value_threshold=config_pb2.GenericValueThreshold(
      lower_bound={"value": float(value)}))


def eval_config(config: EvaluationConfig) -> config_pb2.EvalConfig:
  overall = config_pb2.SlicingSpec()
  new_items = config_pb2.SlicingSpec(feature_values={COHORT_KEY: NEW_COHORT})
  auc = config_pb2.MetricConfig(class_name="AUC", per_slice_thresholds=[
      config_pb2.PerSliceMetricThreshold(slicing_specs=[overall],
                                         threshold=_lower_bound(config.min_auc)),
      config_pb2.PerSliceMetricThreshold(slicing_specs=[new_items],
                                         threshold=_lower_bound(config.min_auc_new_items)),
  ])
  gauc = config_pb2.MetricConfig(class_name="PerUserAUC", module="tfx_pipeline.gauc",
                                 config='{"name": "%s"}' % GAUC_METRIC)
  if config.min_gauc > 0:
    gauc.per_slice_thresholds.add(slicing_specs=[overall],
                                  threshold=_lower_bound(config.min_gauc))
  # TFMA's native BinaryCrossEntropy, not the Keras BinaryCrossentropy wrapper: same value
  # (key binary_crossentropy), but the wrapper cost 17% of the ML-1M Evaluator's time.
  metrics = [config_pb2.MetricConfig(class_name=name) for name in (
      "ExampleCount", "Calibration", "BinaryCrossEntropy", "MeanLabel", "MeanPrediction")]
  return config_pb2.EvalConfig(
      model_specs=[config_pb2.ModelSpec(
          signature_name=signatures.TFMA_SIGNATURE, label_key=LABEL_KEY,
          prediction_key=signatures.TFMA_PREDICTION_KEY, model_type="tf_generic",
          inference_batch_size=config.inference_batch_size)],
      slicing_specs=[overall, config_pb2.SlicingSpec(feature_keys=[COHORT_KEY]),
                     config_pb2.SlicingSpec(feature_keys=[POPULARITY_KEY])],
      metrics_specs=[config_pb2.MetricsSpec(metrics=[auc, gauc] + metrics)])
