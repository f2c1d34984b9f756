"""PerUserAUC: exact per-user AUC, and the TFMA combiner over StandardMetricInputs that it
shares with ExactAUC and LabelScoreStatistics."""
import itertools

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from tfx_pipeline import gauc
from tfx_pipeline import score_stats
from tfx_pipeline import slice_metrics


def _pairwise_auc(labels, scores):
  pos = [s for y, s in zip(labels, scores) if y]
  neg = [s for y, s in zip(labels, scores) if not y]
  wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
  return wins / (len(pos) * len(neg))


def test_auc_equals_pairwise_count_with_ties():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 200)
  scores = np.round(rng.random(200), 1)  # many ties
  assert slice_metrics.auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores))
  assert slice_metrics.auc([1, 1], [0.2, 0.3]) is None  # one label only


def test_per_user_auc_averages_users_with_both_labels():
  users = ["a", "a", "a", "b", "b", "c"]
  labels = [1, 0, 0, 1, 0, 1]
  scores = [0.9, 0.1, 0.95, 0.2, 0.8, 0.5]
  value, counted = slice_metrics.per_user_auc(users, labels, scores)
  assert counted == 2  # c has one label only
  assert value == pytest.approx((0.5 + 0.0) / 2)


def test_scores_equal_to_float32_precision_are_ties():
  # A model without item input scores a user's examples identically up to batching noise.
  value, _ = slice_metrics.per_user_auc(["u"] * 4, [1, 0, 1, 0], [0.5, 0.5 + 1e-8, 0.5 - 1e-8, 0.5])
  assert value == pytest.approx(0.5)


@pytest.mark.parametrize("dict_outputs", [False, True])
def test_combiner_over_tfma_inputs(dict_outputs):
  from tensorflow_model_analysis.proto import config_pb2
  eval_config = config_pb2.EvalConfig(model_specs=[config_pb2.ModelSpec(
      prediction_key="probability" if dict_outputs else "")])
  computations = gauc.PerUserAUC().computations(eval_config=eval_config)
  # ExactAUC and LabelScoreStatistics are the same computation: TFMA de-duplicates them and
  # runs one combiner for all three.
  assert gauc.ExactAUC().computations(eval_config=eval_config) == computations
  assert score_stats.LabelScoreStatistics().computations(eval_config=eval_config) == computations
  (computation,) = computations
  combiner = computation.combiner
  acc = combiner.create_accumulator()
  # Both users ranked right by `probability` (GAUC 1); `logits` here are reversed (GAUC 0).
  rows = [("a", 1, 0.9), ("a", 0, 0.1), ("b", 1, 0.8), ("b", 0, 0.2)]
  parts = []
  for user, label, score in rows:
    part = combiner.create_accumulator()
    # A signature with several outputs (the exported ranker's) gives a dict of predictions.
    prediction = ({"probability": np.array([score]), "logits": np.array([-score])}
                  if dict_outputs else np.array([score]))
    parts.append(combiner.add_input(part, metric_types.StandardMetricInputs(
        labels=np.array([label]), predictions=prediction,
        example_weights=np.array([1.0]), features={"user_id": np.array([user.encode()])})))
  acc = combiner.merge_accumulators([acc] + parts)
  out = combiner.extract_output(acc)
  values = {k.name: v for k, v in out.items()}
  # Pooled: 0.9 > 0.8 > 0.2 > 0.1 ranks both positives above both negatives.
  bce = -np.mean(np.log([0.9, 0.9, 0.8, 0.8]))
  assert values == {"gauc": pytest.approx(1.0), "gauc_users": 2, "auc": pytest.approx(1.0),
                    "example_count": 4, "mean_label": 0.5, "mean_prediction": pytest.approx(0.5),
                    "calibration": pytest.approx(1.0), "binary_crossentropy": pytest.approx(bce)}


def test_exact_auc_in_tfma_matches_tfma_auc_and_gates_per_slice(tmp_path):
  import tensorflow as tf
  import tensorflow_model_analysis as tfma
  from tensorflow_model_analysis.proto import config_pb2
  rng = np.random.default_rng(0)
  path = str(tmp_path / "data.tfrecord")
  rows = []
  with tf.io.TFRecordWriter(path) as writer:
    for i in range(900):
      cohort = b"new" if i % 3 == 0 else b"seen"
      p = float(rng.uniform(0.02, 0.98))
      label = float(rng.random() < (p if cohort == b"seen" else 0.5))
      rows.append((cohort, label, p))
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          "label": tf.train.Feature(float_list=tf.train.FloatList(value=[label])),
          "prediction": tf.train.Feature(float_list=tf.train.FloatList(value=[p])),
          "item_cohort": tf.train.Feature(bytes_list=tf.train.BytesList(value=[cohort])),
          "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(
              value=[b"u%d" % (i % 40)])),
      })).SerializeToString())
  new_slice = config_pb2.SlicingSpec(feature_values={"item_cohort": "new"})
  # The new-item slice is random (AUC ~0.5): a 0.6 bound there must fail validation.
  exact = config_pb2.MetricConfig(class_name="ExactAUC", module="tfx_pipeline.gauc",
                                  per_slice_thresholds=[config_pb2.PerSliceMetricThreshold(
                                      slicing_specs=[new_slice],
                                      threshold=config_pb2.MetricThreshold(
                                          value_threshold=config_pb2.GenericValueThreshold(
                                              lower_bound={"value": 0.6})))])
  config = config_pb2.EvalConfig(
      model_specs=[config_pb2.ModelSpec(label_key="label", prediction_key="prediction")],
      slicing_specs=[config_pb2.SlicingSpec(),
                     config_pb2.SlicingSpec(feature_keys=["item_cohort"])],
      metrics_specs=[config_pb2.MetricsSpec(metrics=[
          exact, config_pb2.MetricConfig(class_name="PerUserAUC", module="tfx_pipeline.gauc"),
          config_pb2.MetricConfig(class_name="AUC", config='{"name": "tfma_auc"}')])])
  out = str(tmp_path / "out")
  result = tfma.run_model_analysis(eval_config=config, data_location=path, output_path=out)
  values = {key: {n: v.get("doubleValue") for n, v in m[""][""].items()}
            for key, m in result.slicing_metrics}
  assert len(values) == 3
  for key, v in values.items():
    members = [(y, p) for c, y, p in rows if not key or c.decode() == key[0][1]]
    expected = slice_metrics.auc(np.array([y for y, _ in members]), np.array([p for _, p in members]))
    assert v["auc"] == pytest.approx(expected, abs=1e-12), key
    assert v["auc"] == pytest.approx(v["tfma_auc"], abs=1e-3), key  # TFMA's is histogram-based
    assert 0 < v["gauc_users"] <= 40
  assert values[(("item_cohort", "seen"),)]["auc"] > 0.7
  validation = tfma.load_validation_result(out)
  assert not validation.validation_ok
  failed = [m.metric_key.name for f in validation.metric_validations_per_slice
            for m in f.failures]
  assert failed == ["auc"]


def test_with_a_baseline_each_model_is_scored_on_its_own_predictions():
  """TFMA keys labels and predictions by model name when the Evaluator has a baseline; the
  candidate's AUC must come from the candidate's scores, the baseline's from its own."""
  from tensorflow_model_analysis.proto import config_pb2
  eval_config = config_pb2.EvalConfig(model_specs=[
      config_pb2.ModelSpec(name="candidate", prediction_key="probability"),
      config_pb2.ModelSpec(name="baseline", prediction_key="probability", is_baseline=True)])
  computations = gauc.ExactAUC().computations(eval_config=eval_config,
                                              model_names=["candidate", "baseline"])
  rows = [("a", 1, 0.9), ("a", 0, 0.1), ("b", 1, 0.8), ("b", 0, 0.2)]
  values = {}
  for computation in computations:
    combiner = computation.combiner
    acc = combiner.create_accumulator()
    for user, label, score in rows:
      acc = combiner.add_input(acc, metric_types.StandardMetricInputs(
          labels={"candidate": np.array([label]), "baseline": np.array([label])},
          # The baseline ranks every pair the wrong way round.
          predictions={"candidate": {"probability": np.array([score])},
                       "baseline": {"probability": np.array([1.0 - score])}},
          example_weights=np.array([1.0]), features={"user_id": np.array([user.encode()])}))
    values.update({(k.model_name, k.name): v
                   for k, v in combiner.extract_output(acc).items()})
  assert values[("candidate", "auc")] == pytest.approx(1.0)
  assert values[("baseline", "auc")] == pytest.approx(0.0)
