"""Shared fixtures for the ranking-model tests: one small synthetic dataset, one training per
representation (cached for the session: tracing, not the steps, is the cost on 2 cores)."""

import numpy as np
import pytest

from contracts.config import RankingConfig
from tests.fixtures import ranking_data

BATCH = 256
EPOCHS = 3


def fast_config(representation: str = "sid_spm", **changes) -> RankingConfig:
  """Small and quick: E=32, 2 cross layers, MLP [64, 32], batch 256 (the data: history 5)."""
  values = dict(representation=representation, embedding_dim=32, user_embedding_dim=16,
                user_feature_dim=4, table_budget=4096, random_id_rows=64, item_oov_buckets=1,
                cross_layers=2, mlp_dims=(64, 32), learning_rate=3e-3, batch_size=BATCH,
                epochs=EPOCHS, seed=0)
  values.update(changes)
  return RankingConfig(**values)


@pytest.fixture(scope="session")
def data():
  return ranking_data.make_synthetic_ranking(num_train=6000, num_eval=3000, history_length=5, seed=0)


def bce(labels, probs):
  p = np.clip(probs, 1e-7, 1 - 1e-7)
  return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def train(config: RankingConfig, data):
  """Builds and fits a model on data.train -> (model, train BCE before, train BCE after)."""
  from trainer.model import ranking  # pylint: disable=g-import-not-at-top
  model = ranking.build_ranking_model(config, data.sizes, example_features=data.train)
  probe = {k: v[:2000] for k, v in data.train.items()}
  before = bce(probe["label"], model.predict_proba(probe).numpy())
  model.fit(ranking_data.make_dataset(data.train, config.batch_size, shuffle=True,
                                      seed=config.seed),
            epochs=config.epochs, verbose=0)
  after = bce(probe["label"], model.predict_proba(probe).numpy())
  return model, before, after


@pytest.fixture(scope="session")
def trained(data):
  """trained(representation) -> (model, train BCE before, after); each trained once."""
  cache = {}

  def get(representation):
    if representation not in cache:
      cache[representation] = train(fast_config(representation), data)
    return cache[representation]

  return get
