"""train_codebook: the metrics dict and argument checks."""

import json

import numpy as np
import pytest

from components.codebook import CodebookInputError
from components.codebook.conftest import fast_config
from components.codebook.train import make_codebook, train_codebook


def test_metrics_dict_is_complete_and_json_serialisable(trained):
  codebook, m = trained("rqvae")
  json.dumps(m, allow_nan=False)
  for key in ("unique_sid_ratio", "code_usage", "perplexity", "prefix_cosine",
              "relative_reconstruction_error", "nmi", "one_hot_spectrum",
              "assign_items_per_second", "training"):
    assert key in m, key
  assert len(m["code_usage"]) == len(m["perplexity"]) == codebook.num_code_columns
  assert m["training"]["train_steps"] > 0 and m["training"]["train_examples_per_second"] > 0
  assert len(m["training"]["dead_code_resets"]) == codebook.num_code_columns
  assert 0.0 < m["relative_reconstruction_error"] < 0.5


def _mlp(x, mlp):
  """The encoder / decoder (Dense, ReLU between layers, none after the last) in numpy."""
  layers = list(zip(mlp.kernels, mlp.biases))
  for i, (w, b) in enumerate(layers):
    x = x @ w.numpy().astype(np.float64) + b.numpy()
    if i < len(layers) - 1:
      x = np.maximum(x, 0.0)
  return x


def test_moc_has_levels_times_scaling_factor_codebooks(clustered_data):
  """L*s = 4 parallel codebooks: column m is the nearest code of codebook m to projection m
  of the latent, and the decoder reconstructs from the mean of the 4 chosen codes."""
  x = clustered_data[0]
  cb = make_codebook(fast_config("moc", levels=2, moc_scaling_factor=2, epochs=1,
                                 warmup_epochs=0, moc_per_codebook_projection=True)).fit(x)
  codes = cb.assign(x)
  assert codes.shape == (len(x), 4) and codes.min() >= 0 and codes.max() < 16
  books = cb.model.quantizer.codebooks.numpy().astype(np.float64)
  projections = cb.model.projection.numpy().astype(np.float64)
  assert books.shape == (4, 16, 32) and projections.shape == (4, 32, 32)
  latent = _mlp(x.astype(np.float64), cb.model.encoder)
  rows = np.arange(len(x))
  for m in range(4):
    z = latent @ projections[m]
    dist = ((z[:, None, :] - books[m][None]) ** 2).sum(-1)  # [n, 16]
    # float32 vs float64: the chosen code is the nearest up to rounding (near-ties).
    gap = dist[rows, codes[:, m]] - dist.min(axis=1)
    assert gap.max() <= 1e-4 * (1.0 + dist.min(axis=1).max()), m
    assert (codes[:, m] == dist.argmin(axis=1)).mean() >= 0.99, m
  # Four codebooks, not one copied four times.
  assert len({tuple(col) for col in codes.T}) == 4
  chosen = np.stack([books[m][codes[:, m]] for m in range(4)])  # [4, n, 32]
  expected = _mlp(chosen.mean(axis=0), cb.model.decoder)
  np.testing.assert_allclose(cb.reconstruct(x), expected, rtol=1e-3, atol=1e-4)


def test_labels_must_match_items(clustered_data):
  x = clustered_data[0]
  with pytest.raises(CodebookInputError, match="labels has 3 rows"):
    train_codebook(x, fast_config("rqkmeans"), labels=np.zeros(3))
