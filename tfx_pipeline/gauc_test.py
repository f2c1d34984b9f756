"""PerUserAUC: exact per-user AUC, and the TFMA combiner over StandardMetricInputs."""
import itertools

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from tfx_pipeline import gauc


def _pairwise_auc(labels, scores):
  pos = [s for y, s in zip(labels, scores) if y]
  neg = [s for y, s in zip(labels, scores) if not y]
  wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
  return wins / (len(pos) * len(neg))


def test_auc_equals_pairwise_count_with_ties():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 200)
  scores = np.round(rng.random(200), 1)  # many ties
  assert gauc.auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores))
  assert gauc.auc([1, 1], [0.2, 0.3]) is None  # one label only


def test_per_user_auc_averages_users_with_both_labels():
  users = ["a", "a", "a", "b", "b", "c"]
  labels = [1, 0, 0, 1, 0, 1]
  scores = [0.9, 0.1, 0.95, 0.2, 0.8, 0.5]
  value, counted = gauc.per_user_auc(users, labels, scores)
  assert counted == 2  # c has one label only
  assert value == pytest.approx((0.5 + 0.0) / 2)


def test_scores_equal_to_float32_precision_are_ties():
  # A model without item input scores a user's examples identically up to batching noise.
  value, _ = gauc.per_user_auc(["u"] * 4, [1, 0, 1, 0], [0.5, 0.5 + 1e-8, 0.5 - 1e-8, 0.5])
  assert value == pytest.approx(0.5)


@pytest.mark.parametrize("dict_outputs", [False, True])
def test_combiner_over_tfma_inputs(dict_outputs):
  from tensorflow_model_analysis.proto import config_pb2
  eval_config = config_pb2.EvalConfig(model_specs=[config_pb2.ModelSpec(
      prediction_key="probability" if dict_outputs else "")])
  computations = gauc.PerUserAUC().computations(eval_config=eval_config)
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
  assert values == {"gauc": pytest.approx(1.0), "gauc_users": 2}
