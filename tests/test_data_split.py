"""Cold-start split invariants and per-example history (synthetic data, no TensorFlow)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from contracts.config import SplitConfig, SyntheticConfig
from tfx_pipeline.data import Dataset, compute_split_stats, generate_synthetic, split_dataset
from tfx_pipeline.data.errors import DataError
from tfx_pipeline.data.split import new_items_by_rule, resolve_rule, user_history

SMALL = SyntheticConfig(num_items=400, num_users=120, num_interactions=6000, num_clusters=8,
                        embedding_dim=16, seed=3)


@pytest.fixture(scope="module")
def synthetic():
  return generate_synthetic(SMALL).dataset


def _tiny(item_years, rows):
  """Dataset with items of the given years and (user, item, timestamp, rating) rows."""
  items = pd.DataFrame({"item_id": [f"i{k}" for k in range(len(item_years))],
                        "title": "t", "year": np.array(item_years, dtype=np.int64),
                        "genres": "Drama", "text": "t. Genres: Drama"})
  n_users = max(r[0] for r in rows) + 1
  users = pd.DataFrame({"user_id": [f"u{k}" for k in range(n_users)], "age": 30,
                        "gender": "F", "occupation": "other"})
  arr = np.array(rows)
  inter = pd.DataFrame({"user_index": arr[:, 0].astype(np.int32),
                        "item_index": arr[:, 1].astype(np.int32),
                        "timestamp": arr[:, 2].astype(np.int64),
                        "rating": arr[:, 3].astype(np.float32)})
  return Dataset(name="ml-1m", items=items, users=users, interactions=inter)


@pytest.mark.parametrize("config", [
    SplitConfig(),
    SplitConfig(rule="first_seen_quantile", new_item_fraction=0.1, eval_time_quantile=0.8),
    SplitConfig(rule="release_year", new_item_year=2021, history_length=3),
    SplitConfig(eval_time_quantile=1.0, history_length=0),
])
def test_split_invariants(synthetic, config):
  ds = synthetic
  split = split_dataset(ds, config)
  item = ds.interactions["item_index"].to_numpy()
  stamp = ds.interactions["timestamp"].to_numpy()
  train, eval_ = split.train_rows, split.eval_rows
  # No example lost or duplicated: train and eval partition all valid interactions.
  assert len(train) + len(eval_) == len(ds.interactions)
  np.testing.assert_array_equal(np.sort(np.concatenate([train, eval_])),
                                np.arange(len(ds.interactions)))
  # Items picked by the new-item rule never reach train; the time cut separates the rest.
  assert not split.rule_new_items[item[train]].any()
  assert (stamp[train] < split.time_cut).all()
  old_eval = eval_[~split.rule_new_items[item[eval_]]]
  assert (stamp[old_eval] >= split.time_cut).all()
  # Cohort: "seen" exactly when the item occurs in train; every eval example has one.
  train_items = set(item[train])
  assert len(split.eval_seen) == len(eval_)
  assert [i in train_items for i in item[eval_]] == list(split.eval_seen)
  # Train and eval are in time order.
  assert (np.diff(stamp[train]) >= 0).all() and (np.diff(stamp[eval_]) >= 0).all()
  stats = compute_split_stats(ds, split, config)
  assert stats["new_item_eval_examples"] + stats["seen_item_eval_examples"] == len(eval_)
  assert stats["new_items"] == len(set(item[eval_]) - train_items)


def test_split_labels_follow_ratings(synthetic):
  np.testing.assert_array_equal(synthetic.labels(),
                                (synthetic.interactions["rating"].to_numpy() >= 4).astype(int))


def test_release_year_rule_and_cohorts_on_tiny_data():
  # Item 2 is released in 2000 (new by rule); item 1 is old but first rated after the cut.
  rows = [(0, 0, 10, 5), (1, 0, 20, 3), (0, 2, 30, 4), (1, 0, 40, 4), (0, 0, 50, 2),
          (0, 1, 60, 5), (1, 2, 70, 1)]
  ds = _tiny([1995, 1999, 2000], rows)
  config = SplitConfig(rule="auto", new_item_year=2000, eval_time_quantile=0.75)
  assert resolve_rule("ml-1m", config) == "release_year"
  split = split_dataset(ds, config)
  # Old items' times 10,20,40,50,60 -> 0.75 quantile ("lower") = 50.
  assert split.time_cut == 50
  assert list(split.train_rows) == [0, 1, 3]
  assert list(split.eval_rows) == [2, 4, 5, 6]
  assert list(split.eval_seen) == [False, True, False, False]
  stats = compute_split_stats(ds, split, config)
  assert stats["rule_new_items"] == 1 and stats["new_items"] == 2
  assert stats["train_items"] == 1


def test_first_seen_quantile_takes_newest_items():
  rows = [(0, k, 100 * (k + 1), 4) for k in range(10)]  # item k first seen at 100 (k+1)
  ds = _tiny([1990] * 10, rows)
  ds.name = "ml-100k"
  rule, _, mask = new_items_by_rule(ds, SplitConfig(new_item_fraction=0.3))
  assert rule == "first_seen_quantile"
  assert list(np.flatnonzero(mask)) == [7, 8, 9]


def test_rule_selecting_everything_is_an_error():
  ds = _tiny([2005, 2006], [(0, 0, 1, 4), (0, 1, 2, 4)])
  with pytest.raises(DataError, match="nothing to train on"):
    split_dataset(ds, SplitConfig(rule="release_year", new_item_year=2000))


def _naive_history(user, item, stamp, n):
  out = []
  for i in range(len(user)):
    earlier = [j for j in range(len(user)) if user[j] == user[i] and stamp[j] < stamp[i]]
    earlier.sort(key=lambda j: (stamp[j], j))  # most recent last; ties in input order
    out.append([item[j] for j in earlier][-n:] if n else [])
  return out


@pytest.mark.parametrize("length", [0, 1, 3, 10])
def test_history_is_last_n_strictly_earlier(length):
  rng = np.random.default_rng(0)
  n = 400
  user = rng.integers(0, 7, n)
  item = rng.integers(0, 50, n)
  stamp = rng.integers(0, 40, n)  # many ties on purpose
  order, start, count = user_history(user, stamp, length)
  got = [list(item[order[start[i]:start[i] + count[i]]]) for i in range(n)]
  assert got == _naive_history(user, item, stamp, length)
  assert (count <= length).all()


def test_split_history_matches_definition(synthetic):
  ds = synthetic
  config = SplitConfig(history_length=4)
  split = split_dataset(ds, config)
  inter = ds.interactions
  rows = split.eval_rows[:200]
  offsets, values = split.history(rows, inter["item_index"].to_numpy())
  stamp = inter["timestamp"].to_numpy()
  user = inter["user_index"].to_numpy()
  for k, row in enumerate(rows):
    hist = values[offsets[k]:offsets[k + 1]]
    mine = np.flatnonzero((user == user[row]) & (stamp < stamp[row]))
    mine = mine[np.lexsort((mine, stamp[mine]))][-4:]
    assert list(hist) == list(inter["item_index"].to_numpy()[mine])


def test_split_is_fast_on_a_million_rows():
  import time
  cfg = dataclasses.replace(SMALL, num_items=20_000, num_users=6_000, num_interactions=1_000_000)
  ds = generate_synthetic(cfg).dataset
  start = time.time()
  split = split_dataset(ds, SplitConfig())
  split.history(split.eval_rows, ds.interactions["item_index"].to_numpy())
  assert time.time() - start < 10  # ~0.6 s measured on 2 cores


def test_train_histories_never_contain_held_out_items(synthetic):
  """A held-out item must not be trained through a training example's history."""
  ds = synthetic
  config = SplitConfig(history_length=4)
  split = split_dataset(ds, config)
  inter = ds.interactions
  item = inter["item_index"].to_numpy()
  held_out = set(np.flatnonzero(split.rule_new_items))
  assert held_out, "fixture must hold items out"
  offsets, values = split.history(split.train_rows, item)
  assert not held_out & set(values.tolist())
  # Definition: the last 4 earlier interactions of the same user with a kept item.
  stamp, user = inter["timestamp"].to_numpy(), inter["user_index"].to_numpy()
  kept = ~split.rule_new_items[item]
  for k, row in enumerate(split.train_rows[:300]):
    mine = np.flatnonzero((user == user[row]) & (stamp < stamp[row]) & kept)
    mine = mine[np.lexsort((mine, stamp[mine]))][-4:]
    assert list(values[offsets[k]:offsets[k + 1]]) == list(item[mine])
  # Eval histories still see everything before the example (held-out items included).
  _, eval_values = split.history(split.eval_rows, item)
  assert held_out & set(eval_values.tolist())
