"""Behaviour shared by the three codebooks: clusters, held-out items, seeds, bad input."""

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from components.codebook import CodebookInputError
from components.codebook import metrics
from tests.fixtures import embeddings as synthetic
from components.codebook.conftest import METHODS, fast_config
from components.codebook.train import make_codebook, train_codebook


@pytest.mark.parametrize("method", METHODS)
def test_first_level_recovers_clusters(method, trained, clustered_data):
  _, labels, _, _ = clustered_data
  codebook, m = trained(method)
  codes = codebook.assign(clustered_data[0])
  assert codes.dtype == np.int64 and codes.shape == (1800, codebook.num_code_columns)
  assert normalized_mutual_info_score(labels, codes[:, 0]) >= 0.8
  assert m["nmi"]["per_level"][0] >= 0.8
  assert m["min_code_usage"] >= 0.5


@pytest.mark.parametrize("method", METHODS)
def test_heldout_points_get_valid_codes(method, trained, clustered_data):
  _, _, x_new, labels_new = clustered_data
  codebook, _ = trained(method)
  codes = codebook.assign(x_new)
  assert codes.shape == (200, codebook.num_code_columns) and codes.dtype == np.int64
  assert codes.min() >= 0 and codes.max() < codebook.codebook_size
  # Valid also means meaningful: new items land in their cluster's codes.
  assert normalized_mutual_info_score(labels_new, codes[:, 0]) >= 0.8
  recon = codebook.reconstruct(x_new)
  assert recon.shape == x_new.shape and recon.dtype == np.float32
  assert metrics.relative_reconstruction_error(x_new, recon) < 0.5


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_gives_identical_codes(method, trained, clustered_data):
  x = clustered_data[0]
  first, _ = trained(method)
  again = make_codebook(fast_config(method)).fit(x)
  np.testing.assert_array_equal(first.assign(x), again.assign(x))
  np.testing.assert_array_equal(first.reconstruct(x), again.reconstruct(x))


@pytest.mark.parametrize("method", ["rqvae", "rqkmeans"])
def test_other_seed_gives_other_codebook(method, trained, clustered_data):
  x = clustered_data[0]
  first, _ = trained(method)
  other = make_codebook(fast_config(method, seed=1)).fit(x)
  assert not np.array_equal(first.reconstruct(x), other.reconstruct(x))


@pytest.mark.parametrize("method", ["rqvae", "rqkmeans"])
def test_prefix_cosine_strictly_increases_on_hierarchical_data(method):
  x, labels = synthetic.hierarchical(n=2000, branching=(8, 8, 8), dim=384, seed=0)
  cfg = fast_config(method, levels=3, codebook_size=16, epochs=10)
  _, m = train_codebook(x, cfg, labels=labels[:, 0])
  pc = m["prefix_cosine"]
  assert all(v is not None for v in pc), pc
  # Strictly, and by a visible margin (measured: rqvae 0.70/0.83/0.87, rqkmeans 0.69/0.77/0.88).
  assert pc[0] + 0.02 < pc[1] and pc[1] + 0.02 < pc[2], pc
  assert m["prefix_cosine_increasing"]


# --- bad input ---------------------------------------------------------------------------


def _fit(method, x, **changes):
  return make_codebook(fast_config(method, **changes)).fit(x)


@pytest.mark.parametrize("method", METHODS)
def test_codebook_larger_than_catalog_is_rejected(method):
  x, _ = synthetic.clustered(n=10, num_clusters=2, dim=8)
  with pytest.raises(CodebookInputError, match=r"codebook_size K=16 .* n=10.*codebook_size <= 10"):
    _fit(method, x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", METHODS)
def test_non_finite_embeddings_are_rejected(method, bad):
  x, _ = synthetic.clustered(n=64, num_clusters=2, dim=8)
  x[5, 3] = bad
  with pytest.raises(CodebookInputError, match=r"non-finite.*first rows \[5\].*drop or re-embed"):
    _fit(method, x)


@pytest.mark.parametrize("method", METHODS)
def test_empty_input_is_rejected(method):
  with pytest.raises(CodebookInputError, match="empty"):
    _fit(method, np.zeros((0, 384), np.float32))


@pytest.mark.parametrize("method", METHODS)
def test_wrong_shape_or_dtype_is_rejected(method):
  with pytest.raises(CodebookInputError, match="2-D"):
    _fit(method, np.zeros(384, np.float32))
  with pytest.raises(CodebookInputError, match="numeric"):
    _fit(method, np.array([["a", "b"]] * 20))


@pytest.mark.parametrize("method", METHODS)
def test_assign_with_other_dimension_is_rejected(method, trained, clustered_data):
  codebook, _ = trained(method)
  with pytest.raises(CodebookInputError, match=r"dimension 128 .* trained on dimension 384"):
    codebook.assign(np.zeros((3, 128), np.float32))
  with pytest.raises(CodebookInputError, match="non-finite"):
    codebook.reconstruct(np.full((2, 384), np.nan, np.float32))
  with pytest.raises(CodebookInputError, match="empty"):
    codebook.assign(np.zeros((0, 384), np.float32))


def test_error_is_a_value_error():
  assert issubclass(CodebookInputError, ValueError)
