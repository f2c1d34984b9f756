"""Shared fixtures for the codebook tests: small synthetic data and fast settings."""

import pytest

from contracts.config import CodebookConfig
from contracts.registry import codebook_methods
from tests.fixtures import embeddings as synthetic

METHODS = codebook_methods.NAMES


def fast_config(method: str = "rqvae", **changes) -> CodebookConfig:
  """Small and quick: 2 levels x 16 codes, a 32-d latent, ~60 training steps."""
  values = dict(method=method, levels=2, codebook_size=16, latent_dim=32, hidden_dims=(128,),
                epochs=8, warmup_epochs=2, batch_size=256, learning_rate=2e-3,
                kmeans_init_samples=2000, kmeans_iterations=10, seed=0)
  values.update(changes)
  return CodebookConfig(**values)


@pytest.fixture(scope="session")
def clustered_data():
  """16 well-separated clusters in 384 dims: 1800 training + 200 held-out points."""
  x, labels = synthetic.clustered(n=2000, num_clusters=16, dim=384, spread=0.5, seed=0)
  return x[:1800], labels[:1800], x[1800:], labels[1800:]


@pytest.fixture(scope="session")
def trained(clustered_data):
  """One trained codebook per method on the clustered training split (trained lazily)."""
  from components.codebook.train import train_codebook  # pylint: disable=g-import-not-at-top
  x, labels, _, _ = clustered_data
  cache = {}

  def get(method):
    if method not in cache:
      cache[method] = train_codebook(x, fast_config(method), labels=labels)
    return cache[method]

  return get
