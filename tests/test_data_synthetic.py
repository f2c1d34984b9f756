"""Synthetic generator: determinism, power law, release times, clustered content, signal."""

import dataclasses
import os

import numpy as np
import pytest

from contracts.config import SyntheticConfig
from tfx_pipeline.data import generate_synthetic, write_synthetic_embeddings
from contracts import schema

CONFIG = SyntheticConfig(num_items=3000, num_users=800, num_interactions=60_000,
                         num_clusters=12, embedding_dim=64, seed=11)


@pytest.fixture(scope="module")
def data():
  return generate_synthetic(CONFIG)


def test_deterministic_given_seed(data):
  again = generate_synthetic(CONFIG)
  assert again.dataset.interactions.equals(data.dataset.interactions)
  assert again.dataset.items.equals(data.dataset.items)
  assert again.dataset.users.equals(data.dataset.users)
  np.testing.assert_array_equal(again.embeddings(), data.embeddings())
  other = generate_synthetic(dataclasses.replace(CONFIG, seed=12))
  assert not other.dataset.interactions.equals(data.dataset.interactions)


def test_schema_matches_movielens(data):
  ds = data.dataset
  assert list(ds.items.columns) == ["item_id", "title", "year", "genres", "text"]
  assert list(ds.users.columns) == ["user_id", "age", "gender", "occupation"]
  assert len(ds.items) == CONFIG.num_items and len(ds.interactions) == CONFIG.num_interactions
  assert set(ds.interactions["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
  assert 0.4 < ds.labels().mean() < 0.7
  assert set(ds.users["gender"]) == {"F", "M"}
  assert ds.items["item_id"].is_unique


def test_popularity_is_power_law(data):
  counts = np.sort(np.bincount(data.dataset.interactions["item_index"], minlength=3000))[::-1]
  assert counts[:300].sum() / counts.sum() > 0.5  # top 10% of items get most interactions
  assert counts[-1500:].sum() / counts.sum() < 0.15


def test_no_interaction_before_release_and_items_keep_arriving(data):
  inter = data.dataset.interactions
  release = data.release_time[inter["item_index"].to_numpy()]
  assert (inter["timestamp"].to_numpy() >= release).all()
  start = inter["timestamp"].min()
  arriving = data.release_time > start
  assert 0.3 < arriving.mean() < 0.7  # back_catalog_fraction = 0.5
  years = data.dataset.items["year"].to_numpy()
  assert (years > 0).all() and len(np.unique(years)) > 3


def test_content_embeddings_cluster(data):
  emb = data.embeddings()
  assert emb.dtype == np.float32 and emb.shape == (3000, 64)
  np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
  rng = np.random.default_rng(0)
  a, b = rng.integers(0, 3000, 20000), rng.integers(0, 3000, 20000)
  cos = (emb[a] * emb[b]).sum(1)
  same = data.item_cluster[a] == data.item_cluster[b]
  assert cos[same & (a != b)].mean() > 0.35
  assert abs(cos[~same].mean()) < 0.1


def test_text_and_genres_follow_the_cluster(data):
  items = data.dataset.items
  words = items["title"].str.split().str[-1]  # last title word is a cluster word
  by_word = {}
  for word, cluster in zip(words, data.item_cluster):
    by_word.setdefault(word, set()).add(cluster)
  assert all(len(c) == 1 for c in by_word.values())
  for cluster in range(CONFIG.num_clusters):
    genres = items["genres"][data.item_cluster == cluster].str.split("|").explode()
    assert genres.value_counts().iloc[0] == (data.item_cluster == cluster).sum()
  assert items["text"].iloc[0] == (f"{items['title'].iloc[0]}. Genres: "
                                   f"{items['genres'].iloc[0].replace('|', ', ')}")


def test_user_cluster_affinity_predicts_labels(data):
  inter = data.dataset.interactions
  user = inter["user_index"].to_numpy()
  cluster = data.item_cluster[inter["item_index"].to_numpy()]
  affinity = data.user_affinity[user, cluster]
  label = data.dataset.labels()
  high = affinity > np.quantile(affinity, 0.75)
  low = affinity < np.quantile(affinity, 0.25)
  assert label[high].mean() - label[low].mean() > 0.2


def test_embeddings_file_and_ids(data, tmp_path):
  path, ids_path = write_synthetic_embeddings(data, str(tmp_path))
  assert os.path.basename(path) == schema.SYNTHETIC_EMBEDDINGS_FILE
  stored = np.load(path)
  np.testing.assert_array_equal(stored, data.embeddings())
  ids = open(ids_path, encoding="utf-8").read().splitlines()
  assert ids == list(data.dataset.items["item_id"])
  np.testing.assert_array_equal(data.embeddings(1000, 1010), stored[1000:1010])


def test_scales_to_a_hundred_thousand_items():
  import time
  start = time.time()
  big = generate_synthetic(dataclasses.replace(
      CONFIG, num_items=100_000, num_users=10_000, num_interactions=1_000_000))
  assert len(big.dataset.interactions) == 1_000_000
  assert time.time() - start < 20  # ~1.2 s measured on 2 cores
