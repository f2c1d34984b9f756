"""k-means++ initialisation, Lloyd iterations and residual k-means, in numpy.

Shared by the codebook trainers: RQ-VAE and Mixture-of-Codes initialise their codebooks with
it (on encoded latents), RQ-KMeans is residual k-means on the raw embeddings. numpy with a
seeded `np.random.Generator` keeps results reproducible; the distance computations are float32
matrix products (BLAS), everything that accumulates is float64.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
import scipy.sparse
from threadpoolctl import threadpool_limits

_CHUNK = 16384


def _sq_norms(x: np.ndarray) -> np.ndarray:
  return np.einsum("ij,ij->i", x, x, dtype=np.float64).astype(np.float32)


def nearest(x: np.ndarray, centers: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Index of the nearest center and the squared distance to it, for each row of x."""
  x = np.asarray(x, np.float32)
  centers = np.asarray(centers, np.float32)
  c_norms = _sq_norms(centers)
  idx = np.empty(x.shape[0], np.int64)
  dist = np.empty(x.shape[0], np.float32)
  for s in range(0, x.shape[0], _CHUNK):
    xs = x[s:s + _CHUNK]
    d = c_norms[None, :] - 2.0 * (xs @ centers.T)
    i = np.argmin(d, axis=1)
    idx[s:s + _CHUNK] = i
    dist[s:s + _CHUNK] = np.maximum(d[np.arange(len(i)), i] + _sq_norms(xs), 0.0)
  return idx, dist


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
  """Greedy k-means++ (Arthur & Vassilvitskii 2007; 2 + log k trials per center, as sklearn).

  If x has fewer than k distinct points the remaining centers are random points (duplicates),
  which dead-code reset / empty-cluster handling later move. Runs BLAS single-threaded: its
  products are tiny ([trials, d] x [d, n]) and multi-threaded OpenBLAS is up to 10x slower on
  them when the cores are busy.
  """
  with threadpool_limits(1, "blas"):
    return _kmeans_plus_plus(x, k, rng)


def _kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
  x = np.asarray(x, np.float32)
  n = x.shape[0]
  if n == 0:
    raise ValueError("k-means++ needs at least one point")
  trials = 2 + int(math.log(k))
  x_norms = _sq_norms(x)
  centers = np.empty((k, x.shape[1]), np.float32)
  first = int(rng.integers(n))
  centers[0] = x[first]
  min_d = np.maximum(x_norms - 2.0 * (x @ x[first]) + x_norms[first], 0.0).astype(np.float64)
  for c in range(1, k):
    total = min_d.sum()
    if total <= 0.0:  # every point already is a center
      centers[c:] = x[rng.integers(n, size=k - c)]
      break
    cum = np.cumsum(min_d)
    cand = np.searchsorted(cum, rng.random(trials) * cum[-1], side="right")
    cand = np.minimum(cand, n - 1)
    # Distances of all points to each candidate: [trials, n].
    d = x_norms[None, :] - 2.0 * (x[cand] @ x.T) + x_norms[cand][:, None]
    new_min = np.minimum(min_d[None, :], np.maximum(d, 0.0))
    best = int(np.argmin(new_min.sum(axis=1)))
    centers[c] = x[cand[best]]
    min_d = new_min[best]
  return centers


def lloyd(x: np.ndarray, centers: np.ndarray, iterations: int,
          tolerance: float = 1e-6) -> Tuple[np.ndarray, np.ndarray]:
  """Lloyd iterations from `centers`; empty clusters take the worst-fitted points.

  Returns (centers [k, d] float32, assignment [n] int64).
  """
  x = np.asarray(x, np.float32)
  centers = np.array(centers, np.float32, copy=True)
  k, n = centers.shape[0], x.shape[0]
  x64 = x.astype(np.float64)
  assign, dist = nearest(x, centers)
  prev_inertia = np.inf
  for _ in range(iterations):
    onehot = scipy.sparse.csr_matrix(
        (np.ones(n, np.float64), (assign, np.arange(n))), shape=(k, n))
    sums = np.asarray(onehot @ x64)
    counts = np.bincount(assign, minlength=k).astype(np.float64)
    empty = np.flatnonzero(counts == 0)
    nonempty = counts > 0
    centers[nonempty] = (sums[nonempty] / counts[nonempty, None]).astype(np.float32)
    if empty.size:
      # Re-seed empty clusters with the points farthest from their center (distinct points).
      worst = np.argsort(-dist, kind="stable")[:empty.size]
      centers[empty[:worst.size]] = x[worst]
    assign, dist = nearest(x, centers)
    inertia = float(dist.sum(dtype=np.float64))
    if not empty.size and prev_inertia - inertia <= tolerance * max(prev_inertia, 1e-30):
      break
    prev_inertia = inertia
  return centers, assign


def kmeans(x: np.ndarray, k: int, iterations: int,
           rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
  """k-means++ then Lloyd. Returns (centers [k, d], assignment [n])."""
  return lloyd(x, kmeans_plus_plus(x, k, rng), iterations)


def residual_kmeans(x: np.ndarray, levels: int, k: int, iterations: int,
                    rng: np.random.Generator) -> List[np.ndarray]:
  """Residual k-means: level l clusters what levels < l left unexplained.

  Returns a list of `levels` center arrays [k, d].
  """
  residual = np.array(x, np.float32, copy=True)
  books = []
  for _ in range(levels):
    centers, assign = kmeans(residual, k, iterations, rng)
    residual -= centers[assign]
    books.append(centers)
  return books
