"""The alignment fit: content embedding x -> the item vector y an item-ID ranker learned.

    fit items   training items with >= min_train_interactions training interactions
    map f       ridge  f(x) = (x - mx) W + my,  W = argmin ||Yc - Xc W||^2 + alpha ||W||^2,
                       alpha per fit by exact leave-one-out error (from one SVD of Xc:
                       H = U diag(s^2 / (s^2 + alpha)) U^T + 1/n, e_loo = e / (1 - h_ii))
                mlp    f(x) = relu(x W1 + b1) W2 + b2, full-batch Adam on the squared error
                       plus mlp_weight_decay (||W1||^2 + ||W2||^2)
    cross-fit   the fit items in `folds` folds; a fit item's aligned vector is f_{-k}(x), the
                map fit on the other folds; every other item (new, or too rare to fit on)
                gets f(x) of the map fit on all fit items, the map the exported ranker embeds
    R^2         1 - sum ||y - f_{-k}(x)||^2 / sum ||y - mean y||^2 over the fit items (held
                out), and the full map's in-sample R^2 beside it

Without cross-fitting a seen item's aligned vector would be an in-sample fit (on ML-1M ridge
R^2 ~0.6 in sample against ~0.15 held out), so seen and new items would get SIDs of different
quality: the ranker would learn to trust codes that new items cannot live up to.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from contracts.config import AlignmentConfig


class AlignmentError(ValueError):
  """The alignment cannot be fit (too few items to fit on, mismatched ids): says the fix."""


def r_squared(y: np.ndarray, prediction: np.ndarray) -> float:
  """Pooled over output dimensions: 1 - SSE / SST around the per-dimension mean."""
  sst = float(np.sum((y - y.mean(axis=0)) ** 2))
  return 1.0 - float(np.sum((y - prediction) ** 2)) / sst if sst > 0 else 0.0


@dataclasses.dataclass
class RidgeMap:
  """f(x) = (x - x_mean) W + y_mean."""
  weights: np.ndarray
  x_mean: np.ndarray
  y_mean: np.ndarray
  alpha: float

  def predict(self, x: np.ndarray) -> np.ndarray:
    return ((x - self.x_mean) @ self.weights + self.y_mean).astype(np.float32)

  @staticmethod
  def leave_one_out_errors(x: np.ndarray, y: np.ndarray,
                           alphas: Sequence[float]) -> List[float]:
    """Sum of squared leave-one-out residuals of the ridge fit, per penalty (exact)."""
    _, u, s, _, uty, yc = RidgeMap._decompose(x, y)
    errors = []
    for alpha in alphas:
      shrink = s ** 2 / (s ** 2 + alpha)
      residual = yc - u @ (shrink[:, None] * uty)
      leverage = np.einsum("ij,j,ij->i", u, shrink, u) + 1.0 / len(x)
      errors.append(float(np.sum((residual / (1.0 - leverage)[:, None]) ** 2)))
    return errors

  @staticmethod
  def _decompose(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    yc = y - y_mean
    u, s, vt = np.linalg.svd(x - x_mean, full_matrices=False)
    return (x_mean, y_mean), u, s, vt, u.T @ yc, yc

  @classmethod
  def fit(cls, x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> "RidgeMap":
    (x_mean, y_mean), _, s, vt, uty, _ = cls._decompose(x, y)
    errors = cls.leave_one_out_errors(x, y, alphas)
    alpha = float(alphas[int(np.argmin(errors))])
    weights = vt.T @ ((s / (s ** 2 + alpha))[:, None] * uty)
    return cls(weights.astype(np.float32), x_mean.astype(np.float32),
               y_mean.astype(np.float32), alpha)

  def variables(self) -> Dict[str, np.ndarray]:
    return {"weights": self.weights, "x_mean": self.x_mean, "y_mean": self.y_mean}


@dataclasses.dataclass
class MlpMap:
  """f(x) = relu(x W1 + b1) W2 + b2 (inputs and targets standardised inside the weights)."""
  w1: np.ndarray
  b1: np.ndarray
  w2: np.ndarray
  b2: np.ndarray

  def predict(self, x: np.ndarray) -> np.ndarray:
    hidden = np.maximum(x.astype(np.float32) @ self.w1 + self.b1, 0.0)
    return (hidden @ self.w2 + self.b2).astype(np.float32)

  @classmethod
  def fit(cls, x: np.ndarray, y: np.ndarray, config: AlignmentConfig, seed: int) -> "MlpMap":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    x_mean, x_std = x.mean(axis=0), x.std(axis=0) + 1e-6
    y_mean, y_std = y.mean(axis=0), y.std(axis=0) + 1e-6
    xs = tf.constant((x - x_mean) / x_std, tf.float32)
    ys = tf.constant((y - y_mean) / y_std, tf.float32)
    init = tf.keras.initializers.GlorotUniform
    w1 = tf.Variable(init(seed=seed)((x.shape[1], config.mlp_hidden_dim)))
    b1 = tf.Variable(tf.zeros([config.mlp_hidden_dim]))
    w2 = tf.Variable(init(seed=seed + 1)((config.mlp_hidden_dim, y.shape[1])))
    b2 = tf.Variable(tf.zeros([y.shape[1]]))
    optimizer = tf.keras.optimizers.Adam(config.mlp_learning_rate)
    params = [w1, b1, w2, b2]

    @tf.function
    def step():
      with tf.GradientTape() as tape:
        prediction = tf.nn.relu(xs @ w1 + b1) @ w2 + b2
        loss = tf.reduce_mean((prediction - ys) ** 2) + config.mlp_weight_decay * (
            tf.reduce_sum(w1 ** 2) + tf.reduce_sum(w2 ** 2))
      optimizer.apply_gradients(zip(tape.gradient(loss, params), params))

    for _ in range(config.mlp_epochs):
      step()
    # Fold the standardisation into the weights: f(x) needs nothing else at serving time.
    w1_, b1_ = w1.numpy() / x_std[:, None], b1.numpy() - (x_mean / x_std) @ w1.numpy()
    w2_, b2_ = w2.numpy() * y_std[None, :], b2.numpy() * y_std + y_mean
    return cls(*(np.asarray(a, np.float32) for a in (w1_, b1_, w2_, b2_)))

  def variables(self) -> Dict[str, np.ndarray]:
    return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}


def fit_map(x: np.ndarray, y: np.ndarray, config: AlignmentConfig, seed: int):
  if config.method == "ridge":
    return RidgeMap.fit(x, y, config.ridge_alphas)
  return MlpMap.fit(x, y, config, seed)


def folds_of(n: int, folds: int, seed: int) -> np.ndarray:
  """Fold of each of n fit items: a seeded permutation dealt round-robin (sizes differ by <= 1)."""
  fold = np.empty(n, np.int64)
  fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
  return fold


@dataclasses.dataclass
class Alignment:
  item_ids: np.ndarray  # every catalog item, sorted (the content embeddings' order)
  aligned: np.ndarray  # float32 [n, d_item]
  map: object  # RidgeMap | MlpMap, fit on every fit item
  report: Dict[str, object]


def align(content_ids: np.ndarray, content: np.ndarray, vector_ids: np.ndarray,
          vectors: np.ndarray, train_interactions: np.ndarray, config: AlignmentConfig,
          seed: int) -> Alignment:
  """Fits the map and aligns every item of `content_ids` (see the module docstring)."""
  start = time.time()
  row = {item: i for i, item in enumerate(content_ids)}
  missing = [i for i in vector_ids if i not in row]
  if missing:
    raise AlignmentError(f"{len(missing)} item(s) of the learned item table have no content "
                         f"embedding, e.g. {missing[:3]}: embed the same catalog the ranker "
                         f"was trained on")
  keep = np.asarray(train_interactions) >= config.min_train_interactions
  fit_rows = np.asarray([row[i] for i in np.asarray(vector_ids)[keep]], np.int64)
  y = np.asarray(vectors, np.float32)[keep]
  if len(fit_rows) < 2 * config.folds:
    raise AlignmentError(
        f"alignment fits on training items with >= {config.min_train_interactions} training "
        f"interactions: only {len(fit_rows)} of {len(vector_ids)} qualify, too few for "
        f"{config.folds} folds; lower alignment.min_train_interactions")
  x = content[fit_rows]
  fold = folds_of(len(fit_rows), config.folds, seed)
  held_out = np.zeros_like(y)
  fold_r2: List[float] = []
  alphas: List[Optional[float]] = []
  for k in range(config.folds):
    test = fold == k
    f = fit_map(x[~test], y[~test], config, seed + 1 + k)
    held_out[test] = f.predict(x[test])
    fold_r2.append(round(r_squared(y[test], held_out[test]), 5))
    alphas.append(getattr(f, "alpha", None))
  full = fit_map(x, y, config, seed)
  aligned = full.predict(content)
  aligned[fit_rows] = held_out
  report = {
      "method": config.method, "folds": config.folds,
      "min_train_interactions": config.min_train_interactions,
      "catalog_items": int(len(content_ids)), "trained_items": int(len(vector_ids)),
      "fit_items": int(len(fit_rows)),
      "content_dim": int(content.shape[1]), "item_dim": int(y.shape[1]),
      "r2_held_out": round(r_squared(y, held_out), 5), "r2_held_out_per_fold": fold_r2,
      "r2_in_sample": round(r_squared(y, full.predict(x)), 5),
      "seed": int(seed), "seconds": round(time.time() - start, 3),
  }
  if config.method == "ridge":
    report["ridge_alpha"] = full.alpha
    report["ridge_alpha_per_fold"] = alphas
  return Alignment(np.asarray(content_ids), aligned.astype(np.float32), full, report)
