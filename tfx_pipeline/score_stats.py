"""LabelScoreStatistics: example count, mean label / prediction, calibration and binary
cross-entropy of a slice in one TFMA combiner.

The same values, under the same metric keys, as TFMA's ExampleCount, MeanLabel,
MeanPrediction, Calibration (sum of predictions / sum of labels) and BinaryCrossEntropy
(unweighted; tfx_pipeline/score_stats_test.py checks each against TFMA's own), at a small
part of the cost: those five metrics each read every example of every slice through TFMA's
generic per-example helper, 31% of the ML-1M Evaluator's time (64 s -> 44 s on 30k examples
without them); this reads the label and prediction once and keeps four sums (44.0 s without
any of them, 44.5 s with this: about 1/40 of their cost).

BCE clips predictions to [1e-7, 1 - 1e-7] (as tf_keras does) where TFMA's native metric
would return inf for a probability of exactly 0 or 1.
Used by tfx_pipeline/evaluation.py as MetricConfig(class_name="LabelScoreStatistics",
module="tfx_pipeline.score_stats").
"""
import math
from typing import List, Optional

import apache_beam as beam
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.proto import config_pb2

from tfx_pipeline.tfma_inputs import label_and_prediction, merge_fieldwise, prediction_key_for

EPSILON = 1e-7
NAMES = ("example_count", "mean_label", "mean_prediction", "calibration",
         "binary_crossentropy")


class LabelScoreStatistics(metric_types.Metric):
  """example_count, mean_label, mean_prediction, calibration, binary_crossentropy."""

  def __init__(self, name: str = "label_score_statistics"):
    super().__init__(_statistics, name=name)


metric_types.register_metric(LabelScoreStatistics)


def _statistics(name: str = "label_score_statistics",
                eval_config: Optional[config_pb2.EvalConfig] = None,
                model_names: Optional[List[str]] = None,
                output_names: Optional[List[str]] = None,
                example_weighted: bool = False) -> metric_types.MetricComputations:
  del name  # the keys are TFMA's own metric names, so reports and thresholds read them as such
  computations = []
  for model_name in model_names or [""]:
    for output_name in output_names or [""]:
      keys = [metric_types.MetricKey(name=n, model_name=model_name, output_name=output_name,
                                     example_weighted=example_weighted) for n in NAMES]
      computations.append(metric_types.MetricComputation(
          keys=keys, preprocessors=None, combiner=_Combiner(keys, eval_config)))
  return computations


class _Combiner(beam.CombineFn):
  """Accumulator: [count, sum of labels, sum of predictions, sum of per-example BCE]."""

  def __init__(self, keys, eval_config):
    self._keys = keys
    self._prediction_key = prediction_key_for(keys[0], eval_config)

  def create_accumulator(self):
    return [0, 0.0, 0.0, 0.0]

  def add_input(self, accumulator, element: metric_types.StandardMetricInputs):
    label, prediction = label_and_prediction(element, self._prediction_key,
                                             self._keys[0].model_name)
    p = min(max(prediction, EPSILON), 1.0 - EPSILON)
    accumulator[0] += 1
    accumulator[1] += label
    accumulator[2] += prediction
    accumulator[3] -= label * math.log(p) + (1.0 - label) * math.log(1.0 - p)
    return accumulator

  def merge_accumulators(self, accumulators):
    return merge_fieldwise(accumulators)

  def extract_output(self, accumulator):
    n, labels, predictions, bce = accumulator
    nan = float("nan")
    values = (float(n), labels / n if n else nan, predictions / n if n else nan,
              predictions / labels if labels else nan, bce / n if n else nan)
    return dict(zip(self._keys, values))
