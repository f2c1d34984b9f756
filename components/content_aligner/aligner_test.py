"""The alignment fit: ridge with exact leave-one-out penalties, cross-fitting, R^2, the MLP."""
import dataclasses

import numpy as np
import pytest

from components.content_aligner import aligner
from contracts.config import AlignmentConfig


def _catalog(n=400, d=24, k=6, noise=0.05, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = (x @ rng.normal(size=(d, k)) + noise * rng.normal(size=(n, k))).astype(np.float32)
  ids = np.asarray([f"i{j:04d}" for j in range(n)], dtype=object)
  return ids, x, y


def test_ridge_leave_one_out_matches_refitting_without_each_item():
  ids, x, y = _catalog(n=40, d=8, k=3, noise=0.5)
  alphas = [0.01, 3.0, 30.0, 3000.0]
  brute = []
  for alpha in alphas:
    total = 0.0
    for i in range(len(x)):
      rest = np.arange(len(x)) != i
      refit = aligner.RidgeMap.fit(x[rest], y[rest], [alpha])
      total += float(np.sum((refit.predict(x[i:i + 1]) - y[i]) ** 2))
    brute.append(total)
  np.testing.assert_allclose(aligner.RidgeMap.leave_one_out_errors(x, y, alphas), brute,
                             rtol=1e-3)
  # The fit takes the penalty refitting would: the brute-force argmin.
  assert aligner.RidgeMap.fit(x, y, alphas).alpha == alphas[int(np.argmin(brute))]


def test_ridge_chooses_a_small_penalty_for_clean_data_and_a_large_one_for_noise():
  ids, x, y = _catalog(noise=0.01)
  assert aligner.RidgeMap.fit(x, y, [0.01, 1e4]).alpha == 0.01
  rng = np.random.default_rng(1)
  assert aligner.RidgeMap.fit(x, rng.normal(size=y.shape), [0.01, 1e4]).alpha == 1e4


def test_fit_items_are_cross_fitted_and_the_others_get_the_full_map():
  ids, x, y = _catalog()
  counts = np.where(np.arange(len(ids)) % 4 == 0, 5, 50)  # every 4th item too rare to fit on
  trained = np.arange(len(ids)) < 350  # the last 50 are new (no learned vector)
  config = AlignmentConfig(min_train_interactions=20, folds=5, ridge_alphas=(1.0,))
  result = aligner.align(ids, x, ids[trained], y[trained], counts[trained], config, seed=3)
  assert result.aligned.shape == (len(ids), y.shape[1])
  fit = trained & (counts >= 20)
  assert result.report["fit_items"] == int(fit.sum())
  # Not fit on: exactly the full map's prediction.
  np.testing.assert_allclose(result.aligned[~fit], result.map.predict(x[~fit]), rtol=1e-5)
  # Fit on: the prediction of the fold model that did not see the item, not the full map's.
  fold = aligner.folds_of(int(fit.sum()), 5, 3)
  rows = np.flatnonzero(fit)
  for k in range(5):
    held = rows[fold == k]
    other = rows[fold != k]
    f = aligner.RidgeMap.fit(x[other], y[other], (1.0,))
    np.testing.assert_allclose(result.aligned[held], f.predict(x[held]), rtol=1e-4, atol=1e-5)
  assert not np.allclose(result.aligned[rows], result.map.predict(x[rows]))
  assert result.report["r2_held_out"] > 0.95


def test_held_out_r2_shows_no_signal_where_in_sample_r2_would_claim_some():
  ids, x, _ = _catalog(n=120, d=60)
  y = np.random.default_rng(5).normal(size=(120, 4)).astype(np.float32)
  config = AlignmentConfig(min_train_interactions=1, folds=4, ridge_alphas=(0.1,))
  report = aligner.align(ids, x, ids, y, np.full(120, 30), config, seed=0).report
  assert report["r2_in_sample"] > 0.3
  assert report["r2_held_out"] < 0.0


def test_too_few_items_to_fit_on_says_which_setting_to_lower():
  ids, x, y = _catalog(n=30)
  config = AlignmentConfig(min_train_interactions=20, folds=5)
  with pytest.raises(aligner.AlignmentError, match="lower alignment.min_train_interactions"):
    aligner.align(ids, x, ids, y, np.full(30, 3), config, seed=0)


def test_a_learned_item_without_content_is_refused():
  ids, x, y = _catalog(n=30)
  with pytest.raises(aligner.AlignmentError, match="no content embedding"):
    aligner.align(ids[:20], x[:20], ids, y, np.full(30, 50), AlignmentConfig(folds=2), seed=0)


def test_mlp_learns_what_a_linear_map_cannot():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(600, 4)).astype(np.float32)
  y = np.stack([np.abs(x[:, 0]), np.abs(x[:, 1])], axis=1).astype(np.float32)
  ids = np.asarray([f"i{j}" for j in range(600)], dtype=object)
  base = AlignmentConfig(min_train_interactions=1, folds=3, mlp_hidden_dim=32, mlp_epochs=300,
                         mlp_learning_rate=1e-2, mlp_weight_decay=1e-4)
  ridge = aligner.align(ids, x, ids, y, np.ones(600), base, seed=0).report["r2_held_out"]
  mlp = aligner.align(ids, x, ids, y, np.ones(600), dataclasses.replace(base, method="mlp"),
                      seed=0).report["r2_held_out"]
  assert ridge < 0.1 < 0.6 < mlp


def test_the_default_mlp_does_not_overfit_few_items_in_many_dimensions():
  """ML-1M's shape in small: few fit items, a wide content embedding, a target only partly
  predictable from it. Without its weight penalty the MLP fits the noise (held-out R^2 below
  zero, as measured on ML-1M); with the default one it does about as well as ridge."""
  rng = np.random.default_rng(1)
  n, d = 400, 96
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = (x[:, :8] @ rng.normal(size=(8, 8)) + 3.0 * rng.normal(size=(n, 8))).astype(np.float32)
  ids = np.asarray([f"i{j}" for j in range(n)], dtype=object)
  base = AlignmentConfig(min_train_interactions=1, folds=4, mlp_hidden_dim=64, mlp_epochs=300)
  def held_out(**changes):
    return aligner.align(ids, x, ids, y, np.ones(n), dataclasses.replace(base, **changes),
                         seed=0).report["r2_held_out"]
  ridge = held_out(method="ridge")
  assert ridge > 0.2
  assert held_out(method="mlp", mlp_weight_decay=1e-4) < 0.0
  assert held_out(method="mlp") > ridge - 0.1
