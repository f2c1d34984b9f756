"""Synthetic embeddings for tests, tuning and benchmarks (no real data needed).

- `clustered`: well-separated clusters of unit vectors (labels = cluster).
- `hierarchical`: a tree of clusters (e.g. 8 x 8 x 8); items deeper in the same subtree are more
  similar, so a good SID shows prefix cosine rising with prefix length.
- `movielens_standin`: the shape and rough geometry of MovieLens-1M MiniLM embeddings of
  "{title}. Genres: {genres}" (3,883 x 384, unit norm): a shared direction (sentence-encoder
  anisotropy), 1-3 of 18 genres per item with skewed genre popularity, and a "title" component
  in a ~96-d subspace with a decaying spectrum plus a little isotropic noise; 3% of the items
  share a title with another item (remakes: ML-1M has several, and the year is not in the
  text), a third of those with identical text. It stands in for the real embeddings until the
  ContentEmbedder output is available; labels = first genre.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(n: int = 2000, num_clusters: int = 16, dim: int = 384, spread: float = 0.5,
              seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
  """Unit vectors around `num_clusters` random unit centers; noise of norm ~`spread`."""
  rng = np.random.default_rng(seed)
  centers = _unit(rng.standard_normal((num_clusters, dim)))
  labels = rng.integers(num_clusters, size=n)
  noise = rng.standard_normal((n, dim)) * (spread / np.sqrt(dim))
  return _unit(centers[labels] + noise), labels.astype(np.int64)


def hierarchical(n: int = 4000, branching: Sequence[int] = (8, 8, 8), dim: int = 384,
                 scales: Sequence[float] = (1.0, 0.6, 0.36), noise: float = 0.25,
                 seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
  """Tree-structured unit vectors; labels [n, depth] = the node index at every depth."""
  rng = np.random.default_rng(seed)
  depth = len(branching)
  labels = np.stack([rng.integers(b, size=n) for b in branching], axis=1)
  x = np.zeros((n, dim))
  path = np.zeros(n, np.int64)
  for level in range(depth):
    path = path * branching[level] + labels[:, level]
    uniq, inv = np.unique(path, return_inverse=True)
    dirs = _unit(rng.standard_normal((uniq.size, dim)))
    x += scales[level] * dirs[inv.reshape(-1)]
  x += rng.standard_normal((n, dim)) * (noise / np.sqrt(dim))
  return _unit(x), labels.astype(np.int64)


def movielens_standin(n: int = 3883, dim: int = 384, num_genres: int = 18,
                      seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
  """(embeddings [n, dim] unit float32, first-genre labels [n]) shaped like ML-1M MiniLM."""
  rng = np.random.default_rng(seed)
  shared = _unit(rng.standard_normal(dim))
  genre_dirs = _unit(rng.standard_normal((num_genres, dim)))
  popularity = 1.0 / np.arange(1, num_genres + 1) ** 0.9
  popularity /= popularity.sum()
  num_item_genres = rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15])
  genre_part = np.zeros((n, dim))
  first = np.zeros(n, np.int64)
  for i in range(n):
    g = rng.choice(num_genres, size=num_item_genres[i], replace=False, p=popularity)
    first[i] = g[0]
    genre_part[i] = genre_dirs[g].mean(axis=0)
  basis, _ = np.linalg.qr(rng.standard_normal((dim, 96)))
  spectrum = 1.0 / np.arange(1, 97) ** 0.6
  title = rng.standard_normal((n, 96)) * spectrum
  title = _unit(title @ basis.T)
  # Movies sharing a title (remakes; the year is kept out of the text): 2% keep another item's
  # title with their own genres, 1% are exact text duplicates (identical embeddings).
  same_title = rng.choice(n, size=int(0.03 * n), replace=False)
  source = rng.choice(np.setdiff1d(np.arange(n), same_title), size=same_title.size)
  title[same_title] = title[source]
  iso = rng.standard_normal((n, dim)) / np.sqrt(dim)
  exact = same_title[:same_title.size // 3]
  genre_part[exact], first[exact], iso[exact] = (
      genre_part[source[:exact.size]], first[source[:exact.size]], iso[source[:exact.size]])
  x = 0.5 * shared + 0.8 * genre_part + 0.7 * title + 0.2 * iso
  return _unit(x), first
