"""Synthetic catalog + interactions with the MovieLens schema (tests and scale runs).

The generative story (everything vectorised numpy, deterministic given `SyntheticConfig.seed`):
- Items fall into `num_clusters` clusters (Dirichlet-sized, none empty). Each item has a unit
  content embedding = normalise(cluster centre + `embedding_spread` * random unit vector), a
  title made of its cluster's pseudo-words (so a text encoder clusters them too), genres fixed by
  its cluster, a quality q ~ N(0, 1) and a Zipf popularity weight 1 / rank^popularity_exponent.
- Release: `back_catalog_fraction` of the items are released up to 10 years before the period
  start (2020-01-01 UTC); the others at uniform times inside the `period_days` period.
- Users have age / gender / occupation, a log-normal activity level, a bias b ~ N(0, 0.5) and a
  sparse cluster affinity a_u ~ Dirichlet(0.3).
- Each interaction picks a user by activity, a cluster from the user's affinity (with probability
  `affinity_exposure`) or none, an item by popularity (within that cluster, or globally), weighted
  by the item's time on the market, then a time uniform in [max(release, start), end): no
  interaction precedes its item's release.
- Score = affinity_weight * z(log(C a_u[c] + 0.1)) + 0.5 q + b + N(0, 1); ratings 1..5 cut at the
  6/17/44/78% score quantiles (about MovieLens' rating mix); label = rating >= 4. Only a model
  that sees the item's content (or ID) can use the affinity term, so content beats user-only.

`write_synthetic_embeddings` stores the content embeddings as "user-brought" embeddings:
`synthetic_embeddings.npy` (float32 [n, d], written in chunks through a memmap, so 10^6 x 384 does
not need 1.5 GB of RAM) and `synthetic_embedding_ids.txt` (one item_id per line, same order).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Tuple

import numpy as np
import pandas as pd

from contracts.config import DataConfig, SyntheticConfig
from tfx_pipeline.data import dataset as dataset_lib
from contracts import schema

PERIOD_START = 1577836800  # 2020-01-01 00:00:00 UTC
BACK_CATALOG_YEARS = 10
EMBEDDING_CHUNK = 65536  # rows per chunk: fixed, so embeddings do not depend on memory limits
RATING_QUANTILES = (0.06, 0.17, 0.44, 0.78)

GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western")
OCCUPATIONS = ("other", "student", "engineer", "artist", "educator", "healthcare", "sales",
               "retired", "writer", "scientist", "administrator", "homemaker")
SHARED_WORDS = ("The", "Return of", "Night of", "Last", "Secret", "Big", "Little", "Dark")
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
WORDS_PER_CLUSTER = 12


@dataclasses.dataclass
class SyntheticData:
  """The dataset plus the generator's latent truth (for tests and experiments)."""
  dataset: dataset_lib.Dataset
  config: SyntheticConfig
  item_cluster: np.ndarray  # int32 [num_items]
  cluster_centres: np.ndarray  # float32 [num_clusters, embedding_dim], unit rows
  release_time: np.ndarray  # int64 [num_items] unix seconds
  item_quality: np.ndarray  # float32 [num_items]
  user_affinity: np.ndarray  # float32 [num_users, num_clusters], rows sum to 1

  def embeddings(self, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Content embeddings of items [start, stop) (float32, unit rows)."""
    return synthetic_embeddings(self.config, self.item_cluster, self.cluster_centres, start, stop)


def generate_synthetic(config: SyntheticConfig = SyntheticConfig(),
                       data_config: DataConfig = DataConfig()) -> SyntheticData:
  """Generates the synthetic dataset described in the module docstring."""
  _validate(config)
  start_clock = time.time()
  rng = np.random.default_rng(config.seed)
  n_items, n_users, n_clusters = config.num_items, config.num_users, config.num_clusters

  # --- items ---
  cluster_share = rng.dirichlet(np.full(n_clusters, 2.0))
  item_cluster = rng.choice(n_clusters, size=n_items, p=cluster_share).astype(np.int32)
  if n_items >= n_clusters:  # every cluster gets at least one item
    item_cluster[rng.permutation(n_items)[:n_clusters]] = np.arange(n_clusters, dtype=np.int32)
  centres = rng.standard_normal((n_clusters, config.embedding_dim))
  centres = (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)
  rank = rng.permutation(n_items) + 1
  popularity = 1.0 / rank.astype(np.float64) ** config.popularity_exponent
  quality = rng.standard_normal(n_items).astype(np.float32)

  period = config.period_days * 86400
  end = PERIOD_START + period
  back = rng.random(n_items) < config.back_catalog_fraction
  release = np.where(
      back, PERIOD_START - (rng.random(n_items) * BACK_CATALOG_YEARS * 365.25 * 86400),
      PERIOD_START + rng.random(n_items) * period * 0.98).astype(np.int64)
  market_start = np.maximum(release, PERIOD_START)
  exposure_weight = popularity * (end - market_start) / period

  titles = _titles(rng, item_cluster, n_clusters)
  genres = _genres(rng, item_cluster)
  years = pd.to_datetime(release, unit="s", utc=True).year.to_numpy().astype(np.int64)
  item_ids = np.array([f"item_{i}" for i in range(n_items)], dtype=object)
  items = pd.DataFrame({
      "item_id": item_ids,
      "title": titles,
      "year": years,
      "genres": genres,
      "text": np.array(dataset_lib.item_texts(data_config.text_template, titles, genres),
                       dtype=object),
  })

  # --- users ---
  users = pd.DataFrame({
      "user_id": np.array([f"user_{u}" for u in range(n_users)], dtype=object),
      "age": rng.integers(16, 75, size=n_users).astype(np.int64),
      "gender": np.where(rng.random(n_users) < 0.5, "F", "M").astype(object),
      "occupation": np.array(OCCUPATIONS, dtype=object)[rng.integers(0, len(OCCUPATIONS),
                                                                     size=n_users)],
  })
  activity = rng.lognormal(0.0, 1.0, size=n_users)
  user_bias = rng.normal(0.0, 0.5, size=n_users).astype(np.float32)
  affinity = rng.dirichlet(np.full(n_clusters, 0.3), size=n_users).astype(np.float32)

  # --- interactions ---
  n = config.num_interactions
  user = _sample(rng, activity, n)
  item = np.empty(n, dtype=np.int64)
  by_affinity = rng.random(n) < config.affinity_exposure
  item[~by_affinity] = _sample(rng, exposure_weight, int((~by_affinity).sum()))
  aff_users = user[by_affinity]
  cluster = _sample_rows(rng, affinity.astype(np.float64), aff_users)
  item[by_affinity] = _sample_within_groups(rng, exposure_weight, item_cluster, n_clusters,
                                            cluster)
  stamp = (market_start[item] + rng.random(n) * (end - market_start[item])).astype(np.int64)

  log_aff = np.log(n_clusters * affinity[user, item_cluster[item]].astype(np.float64) + 0.1)
  z = (log_aff - log_aff.mean()) / (log_aff.std() + 1e-9)
  score = (config.affinity_weight * z + 0.5 * quality[item] + user_bias[user]
           + rng.standard_normal(n))
  cuts = np.quantile(score, RATING_QUANTILES) if n else np.zeros(4)
  rating = (1 + np.searchsorted(cuts, score, side="right")).astype(np.float32)

  interactions = pd.DataFrame({
      "user_index": user.astype(np.int32),
      "item_index": item.astype(np.int32),
      "timestamp": stamp,
      "rating": rating,
  })
  dataset = dataset_lib.Dataset(
      name="synthetic", items=items, users=users, interactions=interactions,
      sources={"generator": "tfx_pipeline.data.synthetic", "seed": str(config.seed)},
      info={"generate_seconds": round(time.time() - start_clock, 2)})
  return SyntheticData(dataset=dataset, config=config, item_cluster=item_cluster,
                       cluster_centres=centres, release_time=release, item_quality=quality,
                       user_affinity=affinity)


def synthetic_embeddings(config: SyntheticConfig, item_cluster: np.ndarray, centres: np.ndarray,
                         start: int = 0, stop: int | None = None) -> np.ndarray:
  """Embeddings of items [start, stop); each fixed-size chunk has its own seeded generator."""
  stop = len(item_cluster) if stop is None else stop
  out = np.empty((max(stop - start, 0), centres.shape[1]), dtype=np.float32)
  chunk = start // EMBEDDING_CHUNK
  while chunk * EMBEDDING_CHUNK < stop:
    lo, hi = chunk * EMBEDDING_CHUNK, min((chunk + 1) * EMBEDDING_CHUNK, len(item_cluster))
    rng = np.random.default_rng([config.seed, 7, chunk])
    noise = rng.standard_normal((hi - lo, centres.shape[1]), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    vectors = centres[item_cluster[lo:hi]] + np.float32(config.embedding_spread) * noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    a, b = max(lo, start), min(hi, stop)
    out[a - start:b - start] = vectors[a - lo:b - lo]
    chunk += 1
  return out


def write_synthetic_embeddings(data: SyntheticData, directory: str) -> Tuple[str, str]:
  """Writes synthetic_embeddings.npy + synthetic_embedding_ids.txt into `directory`."""
  os.makedirs(directory, exist_ok=True)
  n = data.dataset.num_items
  path = os.path.join(directory, schema.SYNTHETIC_EMBEDDINGS_FILE)
  ids_path = os.path.join(directory, schema.SYNTHETIC_EMBEDDING_IDS_FILE)
  array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                    shape=(n, data.config.embedding_dim))
  for lo in range(0, n, EMBEDDING_CHUNK):
    hi = min(lo + EMBEDDING_CHUNK, n)
    array[lo:hi] = data.embeddings(lo, hi)
  array.flush()
  del array
  with open(ids_path, "w", encoding="utf-8") as f:
    f.write("\n".join(data.dataset.items["item_id"]))
    f.write("\n")
  return path, ids_path


# ------------------------------------------------------------------------------------------
def _validate(config: SyntheticConfig) -> None:
  problems = []
  for name in ("num_items", "num_users", "num_clusters", "embedding_dim", "period_days"):
    if getattr(config, name) < 1:
      problems.append(f"{name} must be >= 1")
  if config.num_interactions < 0:
    problems.append("num_interactions must be >= 0")
  for name in ("back_catalog_fraction", "affinity_exposure"):
    if not 0.0 <= getattr(config, name) <= 1.0:
      problems.append(f"{name} must be in [0, 1]")
  if problems:
    raise ValueError("SyntheticConfig: " + "; ".join(problems))


def _sample(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
  """`size` draws from the categorical distribution `weights` (inverse CDF)."""
  cdf = np.cumsum(weights, dtype=np.float64)
  index = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
  return np.minimum(index, len(weights) - 1)


def _sample_rows(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
  """One draw from the categorical distribution probs[r] for every r in `rows` (no [n, k] temp)."""
  k = probs.shape[1]
  cdf = np.cumsum(probs, axis=1)
  cdf = cdf / cdf[:, -1:]
  flat = (cdf + np.arange(len(probs))[:, None]).ravel()  # row r's CDF lives in (r, r + 1]
  pos = np.searchsorted(flat, rows + rng.random(len(rows)), side="right")
  return np.clip(pos - rows * k, 0, k - 1)


def _sample_within_groups(rng: np.random.Generator, weights: np.ndarray, group: np.ndarray,
                          n_groups: int, wanted: np.ndarray) -> np.ndarray:
  """For every entry of `wanted` (a group id), one member of that group drawn by `weights`."""
  order = np.argsort(group, kind="stable")
  sorted_group = group[order]
  w = weights[order]
  cdf = np.cumsum(w)
  bounds = np.searchsorted(sorted_group, np.arange(n_groups + 1))
  start_mass = np.concatenate([[0.0], cdf])[bounds]
  total = start_mass[1:] - start_mass[:-1]
  # Within-group normalised CDF shifted by the group id: group g occupies (g, g + 1].
  base = start_mass[:-1][sorted_group]
  local = (cdf - base) / np.maximum(total[sorted_group], 1e-300) + sorted_group
  pos = np.searchsorted(local, wanted + rng.random(len(wanted)), side="right")
  pos = np.clip(pos, bounds[wanted], np.maximum(bounds[wanted + 1] - 1, bounds[wanted]))
  return order[np.minimum(pos, len(order) - 1)]


def _pseudo_words(rng: np.random.Generator, count: int) -> list:
  words, seen = [], set()
  while len(words) < count:
    syllables = rng.integers(2, 4)
    word = "".join(_CONSONANTS[rng.integers(len(_CONSONANTS))] + _VOWELS[rng.integers(5)]
                   for _ in range(syllables))
    if word not in seen:
      seen.add(word)
      words.append(word.capitalize())
  return words


def _titles(rng: np.random.Generator, item_cluster: np.ndarray, n_clusters: int) -> np.ndarray:
  vocab = np.array(_pseudo_words(rng, n_clusters * WORDS_PER_CLUSTER), dtype=object)
  vocab = vocab.reshape(n_clusters, WORDS_PER_CLUSTER)
  n = len(item_cluster)
  w1 = vocab[item_cluster, rng.integers(0, WORDS_PER_CLUSTER, size=n)]
  w2 = vocab[item_cluster, rng.integers(0, WORDS_PER_CLUSTER, size=n)]
  prefix = np.array(("",) + SHARED_WORDS, dtype=object)[
      np.where(rng.random(n) < 0.3, rng.integers(1, len(SHARED_WORDS) + 1, size=n), 0)]
  return np.array([f"{p} {a} {b}" if p else f"{a} {b}" for p, a, b in zip(prefix, w1, w2)],
                  dtype=object)


def _genres(rng: np.random.Generator, item_cluster: np.ndarray) -> np.ndarray:
  k = len(GENRES)
  primary = np.array(GENRES, dtype=object)[item_cluster % k]
  secondary = np.array(GENRES, dtype=object)[(item_cluster * 7 + 3) % k]
  has_second = (rng.random(len(item_cluster)) < 0.5) & (primary != secondary)
  first, second = np.where(primary < secondary, primary, secondary), np.where(
      primary < secondary, secondary, primary)
  return np.where(has_second, first + schema.GENRE_SEPARATOR + second, primary)

