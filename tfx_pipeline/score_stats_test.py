"""LabelScoreStatistics gives TFMA's own ExampleCount / MeanLabel / MeanPrediction /
Calibration / BinaryCrossEntropy values, per slice, under the same keys."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.metrics import metric_types

from tfx_pipeline import score_stats

NATIVE = ("ExampleCount", "MeanLabel", "MeanPrediction", "Calibration", "BinaryCrossEntropy")


def _data(path, n=600):
  rng = np.random.default_rng(0)
  with tf.io.TFRecordWriter(path) as writer:
    for i in range(n):
      cohort = b"new" if i % 3 == 0 else b"seen"
      p = float(rng.uniform(0.02, 0.98))
      label = float(rng.random() < (p if cohort == b"seen" else 0.5))
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          "label": tf.train.Feature(float_list=tf.train.FloatList(value=[label])),
          "prediction": tf.train.Feature(float_list=tf.train.FloatList(value=[p])),
          "item_cohort": tf.train.Feature(bytes_list=tf.train.BytesList(value=[cohort])),
          "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"u%d" % (i % 30)])),
      })).SerializeToString())


def _slices(path, out, metrics):
  # No model: TFMA reads the prediction from the examples (prediction_key).
  config = config_pb2.EvalConfig(
      model_specs=[config_pb2.ModelSpec(label_key="label", prediction_key="prediction")],
      slicing_specs=[config_pb2.SlicingSpec(), config_pb2.SlicingSpec(feature_keys=["item_cohort"])],
      metrics_specs=[config_pb2.MetricsSpec(metrics=metrics)])
  result = tfma.run_model_analysis(eval_config=config, data_location=path, output_path=out)
  return {key: {name: value.get("doubleValue") for name, value in m[""][""].items()}
          for key, m in result.slicing_metrics}


def test_same_values_and_keys_as_tfma_native_metrics(tmp_path):
  path = str(tmp_path / "data.tfrecord")
  _data(path)
  native = _slices(path, str(tmp_path / "native"),
                   [config_pb2.MetricConfig(class_name=c) for c in NATIVE])
  # As the Evaluator configures it, beside ExactAUC and PerUserAUC (their shared computation:
  # gauc_test.py); the values still match TFMA's.
  ours = _slices(path, str(tmp_path / "ours"), [
      config_pb2.MetricConfig(class_name="LabelScoreStatistics", module="tfx_pipeline.score_stats"),
      config_pb2.MetricConfig(class_name="ExactAUC", module="tfx_pipeline.gauc"),
      config_pb2.MetricConfig(class_name="PerUserAUC", module="tfx_pipeline.gauc")])
  assert set(ours) == set(native) and len(native) == 3  # overall, new, seen
  assert set(ours[()]) == set(score_stats.NAMES) | {"auc", "gauc", "gauc_users"}
  for slice_key, values in native.items():
    assert set(values) == set(score_stats.NAMES)
    for name in score_stats.NAMES:
      assert ours[slice_key][name] == pytest.approx(values[name], rel=1e-6), (slice_key, name)  # float32 in TFMA
  assert native[()]["example_count"] == 600


def test_bce_clips_certain_predictions_instead_of_infinity():
  (computation,) = score_stats.LabelScoreStatistics().computations(
      eval_config=config_pb2.EvalConfig(model_specs=[config_pb2.ModelSpec()]))
  combiner = computation.combiner
  acc = combiner.create_accumulator()
  for label, prediction in ((1.0, 0.0), (0.0, 0.0)):
    acc = combiner.add_input(acc, metric_types.StandardMetricInputs(
        labels=np.array([label]), predictions=np.array([prediction]),
        example_weights=np.array([1.0]), features={"user_id": np.array([b"u"])}))
  out = {k.name: v for k, v in combiner.extract_output(acc).items()}
  assert out["binary_crossentropy"] == pytest.approx(-np.log(1e-7) / 2, rel=1e-6)
  assert out["example_count"] == 2 and out["mean_label"] == 0.5
  assert out["calibration"] == 0.0  # predictions sum to 0 over one positive label
