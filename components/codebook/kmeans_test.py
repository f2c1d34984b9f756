"""k-means++ / Lloyd / residual k-means."""

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

from components.codebook import kmeans
from tests.fixtures import embeddings as synthetic


def test_kmeans_recovers_separated_clusters():
  x, labels = synthetic.clustered(n=800, num_clusters=8, dim=32, spread=0.3, seed=3)
  centers, assign = kmeans.kmeans(x, 8, 20, np.random.default_rng(0))
  assert centers.shape == (8, 32)
  assert normalized_mutual_info_score(labels, assign) > 0.99


def test_kmeans_is_reproducible_by_seed():
  x, _ = synthetic.clustered(n=500, num_clusters=8, dim=16, spread=1.0, seed=1)
  a = kmeans.kmeans(x, 8, 10, np.random.default_rng(5))[0]
  b = kmeans.kmeans(x, 8, 10, np.random.default_rng(5))[0]
  np.testing.assert_array_equal(a, b)


def test_kmeans_plus_plus_picks_distinct_points_and_handles_duplicates():
  x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)  # 3 distinct points
  c = kmeans.kmeans_plus_plus(x, 3, np.random.default_rng(0))
  assert len({tuple(r) for r in c}) == 3
  c = kmeans.kmeans_plus_plus(x, 5, np.random.default_rng(0))  # more centers than points
  assert c.shape == (5, 3) and np.isfinite(c).all()


def test_lloyd_reseeds_empty_clusters():
  x = np.array([[0.0], [0.1], [10.0], [10.1]], np.float32)
  centers, assign = kmeans.lloyd(x, np.array([[0.0], [100.0]], np.float32), 5)
  assert sorted(np.bincount(assign, minlength=2)) == [2, 2]


def test_residual_kmeans_reduces_error_per_level():
  x, _ = synthetic.hierarchical(n=600, branching=(4, 4), dim=16, seed=0)
  books = kmeans.residual_kmeans(x, 3, 8, 10, np.random.default_rng(0))
  r, errors = x.copy(), []
  for b in books:
    i, _ = kmeans.nearest(r, b)
    r = r - b[i]
    errors.append(float((r ** 2).sum()))
  assert errors[0] > errors[1] > errors[2]
