"""What the custom TFMA metrics (tfx_pipeline/gauc.py, tfx_pipeline/score_stats.py) share:
which model output they read, one example's label and prediction, and the merge of their
field-list accumulators."""
from typing import Optional, Tuple

import numpy as np
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.proto import config_pb2


def prediction_key_for(key: metric_types.MetricKey,
                       eval_config: Optional[config_pb2.EvalConfig]) -> str:
  """The output a metric reads: the ModelSpec's prediction_key (the exported ranker has two
  outputs, logits and probability), as for TFMA's own metrics."""
  for spec in (eval_config.model_specs if eval_config else []):
    if spec.name == key.model_name and spec.prediction_key:
      return spec.prediction_key
  return key.output_name


def label_and_prediction(element: metric_types.StandardMetricInputs,
                         prediction_key: str, model_name: str = "") -> Tuple[float, float]:
  """One example's label and prediction of model `model_name`, read directly.

  With a baseline model TFMA keys labels and predictions by model name ("candidate",
  "baseline") first; with one unnamed model it does not.

  Custom metrics here see one example per call, for every slice it falls in (ML-1M: 137k x
  3); TFMA's generic metric_util.to_label_prediction_example_weight cost 5x more per call in a
  profile of the Evaluator.
  """
  label = element.label if element.label is not None else element.labels
  prediction = element.prediction if element.prediction is not None else element.predictions
  if model_name and isinstance(label, dict) and model_name in label:
    label = label[model_name]
  if model_name and isinstance(prediction, dict) and model_name in prediction:
    prediction = prediction[model_name]
  if isinstance(prediction, dict):
    if prediction_key not in prediction:
      raise KeyError(f"prediction key {prediction_key!r} not in the model's outputs "
                     f"{sorted(prediction)}; set ModelSpec.prediction_key")
    prediction = prediction[prediction_key]
  return (float(np.asarray(label).reshape(-1)[0]),
          float(np.asarray(prediction).reshape(-1)[0]))


def merge_fieldwise(accumulators):
  """Merges accumulators that are lists of fields: numbers add up, lists concatenate."""
  accumulators = iter(accumulators)
  result = next(accumulators)
  for a in accumulators:
    for i, value in enumerate(a):
      result[i] += value
  return result
