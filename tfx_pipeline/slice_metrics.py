"""The one TFMA combiner behind every sidrec metric: (user, label, prediction) per example of a
slice, and from them at the end of the slice

  auc                 pooled exact ROC AUC (ties count half)
  gauc, gauc_users    mean per-user AUC over the users with both labels, and how many
  example_count, mean_label, mean_prediction,
  calibration         sum of predictions / sum of labels
  binary_crossentropy mean of -(y log p + (1 - y) log(1 - p)), p clipped to [1e-7, 1 - 1e-7]

ExactAUC and PerUserAUC (gauc.py) and LabelScoreStatistics (score_stats.py) each return this
same computation (same combiner class, keys and preprocessor), which TFMA de-duplicates by
exactly that (metric_types.MetricComputation._computation_id): one add_input per example and
slice for all eight values. Only with their default names and user key: configured apart, two
combiners would output the same statistics keys. Why: the Evaluator's cost is per example x slice x combiner in
Python (a profile of the ML-1M Evaluator: 34 s of 142 s in two combiners' add_input, 23 s of
it reading one example's label and prediction twice).
"""
from typing import Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
import numpy as np
from scipy import stats as scipy_stats
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.proto import config_pb2

from tfx_pipeline.tfma_inputs import label_and_prediction, merge_fieldwise, prediction_key_for

AUC, GAUC, USER_ID = "auc", "gauc", "user_id"
STATISTICS = ("example_count", "mean_label", "mean_prediction", "calibration",
              "binary_crossentropy")
EPSILON = 1e-7


def auc(labels: np.ndarray, scores: np.ndarray) -> Optional[float]:
  """Exact ROC AUC (ties count half); None without both labels."""
  labels = np.asarray(labels) > 0
  pos, neg = int(labels.sum()), int((~labels).sum())
  if pos == 0 or neg == 0:
    return None
  # Scores equal to float32 precision are ties: the same inputs scored in two different
  # batches can differ in the last bits (matmul blocking), which would otherwise break ties
  # at random (a model without item input would get 0.49 instead of exactly 0.5).
  ranks = scipy_stats.rankdata(np.round(np.asarray(scores, np.float64), 6))
  return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def per_user_auc(users: Iterable, labels: Iterable, scores: Iterable) -> Tuple[float, int]:
  """(mean AUC over users with both labels, number of such users); (nan, 0) if none."""
  by_user: Dict[object, Tuple[List[float], List[float]]] = {}
  for u, y, s in zip(users, labels, scores):
    ys, ss = by_user.setdefault(u, ([], []))
    ys.append(float(y))
    ss.append(float(s))
  values = [v for v in (auc(np.array(ys), np.array(ss)) for ys, ss in by_user.values())
            if v is not None]
  return (float(np.mean(values)) if values else float("nan")), len(values)


def slice_metrics(auc_name: str = AUC, gauc_name: str = GAUC, user_key: str = USER_ID,
                  eval_config: Optional[config_pb2.EvalConfig] = None,
                  model_names: Optional[List[str]] = None,
                  output_names: Optional[List[str]] = None,
                  example_weighted: bool = False) -> metric_types.MetricComputations:
  """One computation per model and output, with all eight keys."""
  computations = []
  for model_name in model_names or [""]:
    for output_name in output_names or [""]:
      def key(metric_name):
        return metric_types.MetricKey(name=metric_name, model_name=model_name,
                                      output_name=output_name, example_weighted=example_weighted)
      keys = [key(n) for n in (auc_name, gauc_name, f"{gauc_name}_users") + STATISTICS]
      # TFMA tells preprocessors apart by name only: the user key goes in it, so metrics
      # configured with different user features are not merged into one computation.
      preprocessor = metric_types.StandardMetricInputsPreprocessor(
          include_filter={constants.FEATURES_KEY: {user_key: {}}}, include_default_inputs=True,
          name=f"sidrec_user_feature_{user_key}")
      computations.append(metric_types.MetricComputation(
          keys=keys, preprocessors=[preprocessor],
          combiner=SliceMetricsCombiner(keys, eval_config, user_key)))
  return computations


class SliceMetricsCombiner(beam.CombineFn):
  """Accumulator: three parallel lists (user, label, prediction)."""

  def __init__(self, keys, eval_config, user_key: str):
    self._keys, self._user_key = keys, user_key
    self._prediction_key = prediction_key_for(keys[0], eval_config)

  def create_accumulator(self):
    return [[], [], []]

  def add_input(self, accumulator, element: metric_types.StandardMetricInputs):
    features = element.features or {}
    if self._user_key not in features:
      raise KeyError(f"sidrec's TFMA metrics read feature {self._user_key!r}, which the eval "
                     f"examples lack (they have {sorted(features)}); evaluate on examples "
                     f"with a user id")
    user = np.asarray(features[self._user_key]).reshape(-1)[0]
    label, prediction = label_and_prediction(element, self._prediction_key,
                                             self._keys[0].model_name)
    accumulator[0].append(user.item() if hasattr(user, "item") else user)
    accumulator[1].append(label)
    accumulator[2].append(prediction)
    return accumulator

  def merge_accumulators(self, accumulators):
    return merge_fieldwise(accumulators)

  def extract_output(self, accumulator):
    users, labels, predictions = accumulator
    labels = np.asarray(labels, np.float64)
    predictions = np.asarray(predictions, np.float64)
    gauc, gauc_users = per_user_auc(users, labels, predictions)
    pooled = auc(labels, predictions)
    n, nan = len(labels), float("nan")
    p = np.clip(predictions, EPSILON, 1.0 - EPSILON)
    bce = -np.sum(labels * np.log(p) + (1.0 - labels) * np.log(1.0 - p))
    label_sum, prediction_sum = float(labels.sum()), float(predictions.sum())
    values = (nan if pooled is None else pooled, gauc, gauc_users, float(n),
              label_sum / n if n else nan, prediction_sum / n if n else nan,
              prediction_sum / label_sum if label_sum else nan, float(bce) / n if n else nan)
    return dict(zip(self._keys, values))
