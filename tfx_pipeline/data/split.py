"""The cold-start split (implements `SplitConfig`'s docstring) and per-example user history.

1. New-item rule -> items held out of training entirely:
   - `release_year`: year >= `new_item_year` (items with unknown year, 0, are never "new");
   - `first_seen_quantile`: the newest round(`new_item_fraction` * #items with interactions)
     items by first interaction (ties: later in the catalog counts as newer);
   - `auto`: `release_year` for ml-1m, `first_seen_quantile` otherwise. ML-100K (ratings
     1997-09 .. 1998-04) gets `first_seen_quantile` on purpose: release year 1998 selects only
     53 items with 866 ratings, while the newest 20% by first rating give 336 items
     (measured counts in the module test, tests/test_data_loaders.py).
2. Time cut T = the `eval_time_quantile` quantile (numpy method "lower", so T is a real
   timestamp) of the remaining items' interaction times.
3. train = non-new items' interactions with timestamp < T; eval = interactions with timestamp >= T
   plus every interaction of a new item. Train and eval partition the valid interactions.
4. `item_cohort`: "seen" iff the item occurs in train, else "new" (so an old item whose first
   interaction falls after T is "new" too; the rule is never assumed). Train examples are "seen".

History: for every interaction, the user's last `history_length` item indices with a timestamp
strictly before it, most recent last (equal timestamps: input order), computed over all
interactions (train and eval) for eval examples, and over the interactions of items the
new-item rule keeps for train examples (a held-out item never reaches training, not even
through a history). It is stored as (start, length) into `history_order`, the
interactions sorted by (user, time, input order), so it costs two int arrays, not lists.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Dict, Tuple

import numpy as np

from contracts.config import SplitConfig
from contracts import schema
from tfx_pipeline.data.dataset import Dataset
from tfx_pipeline.data.errors import DataError


@dataclasses.dataclass
class SplitResult:
  """Row indices refer to `dataset.interactions`; train/eval rows are in time order."""
  rule: str  # the resolved rule ("release_year" or "first_seen_quantile")
  rule_detail: str
  time_cut: int
  rule_new_items: np.ndarray  # bool per item: selected by the new-item rule
  train_rows: np.ndarray
  eval_rows: np.ndarray
  eval_seen: np.ndarray  # bool aligned with eval_rows: the item occurs in train
  history_order: np.ndarray  # interaction indices sorted by (user, timestamp, input order)
  history_start: np.ndarray  # per interaction: start of its history in history_order
  history_length: np.ndarray  # per interaction: number of history items (<= config length)

  def history(self, rows: np.ndarray, item_index: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(offsets [len(rows)+1], flat item indices) of the histories of `rows`."""
    lengths = self.history_length[rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    positions = (np.repeat(self.history_start[rows] - offsets[:-1], lengths)
                 + np.arange(offsets[-1], dtype=np.int64))
    return offsets, item_index[self.history_order[positions]]


def resolve_rule(dataset_name: str, config: SplitConfig) -> str:
  if config.rule != "auto":
    return config.rule
  return "release_year" if dataset_name == "ml-1m" else "first_seen_quantile"


def new_items_by_rule(dataset: Dataset, config: SplitConfig) -> Tuple[str, str, np.ndarray]:
  """(resolved rule, human-readable detail, bool mask over items)."""
  rule = resolve_rule(dataset.name, config)
  if rule == "release_year":
    year = dataset.items["year"].to_numpy()
    return rule, f"release year >= {config.new_item_year}", year >= max(config.new_item_year, 1)
  first_seen = dataset.first_seen()
  seen_items = np.flatnonzero(first_seen != schema.NEVER_SEEN)
  k = int(round(config.new_item_fraction * len(seen_items)))
  by_age = seen_items[np.lexsort((seen_items, first_seen[seen_items]))]  # oldest first
  mask = np.zeros(dataset.num_items, dtype=bool)
  if k:
    mask[by_age[-k:]] = True
  return rule, (f"newest {config.new_item_fraction:.0%} of items by first interaction "
                f"({k} of {len(seen_items)})"), mask


def split_dataset(dataset: Dataset, config: SplitConfig) -> SplitResult:
  inter = dataset.interactions
  n = len(inter)
  if n == 0:
    raise DataError(f"{dataset.name}: no valid interactions to split")
  item = inter["item_index"].to_numpy()
  user = inter["user_index"].to_numpy()
  stamp = inter["timestamp"].to_numpy()

  rule, detail, new_item = new_items_by_rule(dataset, config)
  is_new = new_item[item]
  old_times = stamp[~is_new]
  if len(old_times) == 0:
    raise DataError(f"{dataset.name}: the new-item rule ({detail}) selects every item that has "
                    "interactions, leaving nothing to train on; relax SplitConfig")
  time_cut = int(np.quantile(old_times, config.eval_time_quantile, method="lower"))

  order = np.argsort(stamp, kind="stable")  # time order, ties in input order
  in_train = (~is_new) & (stamp < time_cut)
  train_rows = order[in_train[order]]
  eval_rows = order[~in_train[order]]
  if len(train_rows) == 0:
    raise DataError(f"{dataset.name}: the split leaves no training interactions (time cut "
                    f"{time_cut}); raise SplitConfig.eval_time_quantile")
  trained_item = np.zeros(dataset.num_items, dtype=bool)
  trained_item[item[train_rows]] = True

  history_order, start, length = user_history(user, stamp, config.history_length)
  # A training example must not see a held-out item even in its history: the model would
  # train that item's tokens (hashed ID bucket, SID pieces) through the history and the item
  # would no longer be new at evaluation. So train rows get their history recomputed over the
  # interactions of items the rule keeps; eval rows keep the full history (at serving time a
  # user's history is whatever they interacted with). Both live in one `history_order`.
  visible = np.flatnonzero(~is_new)
  sub_order, sub_start, sub_length = user_history(user[visible], stamp[visible],
                                                  config.history_length)
  position = np.full(n, -1, dtype=np.int64)
  position[visible] = np.arange(len(visible))
  train_position = position[train_rows]  # train rows are never held out: all >= 0
  start[train_rows] = len(history_order) + sub_start[train_position]
  length[train_rows] = sub_length[train_position]
  history_order = np.concatenate([history_order, visible[sub_order]])
  return SplitResult(rule=rule, rule_detail=detail, time_cut=time_cut, rule_new_items=new_item,
                     train_rows=train_rows, eval_rows=eval_rows,
                     eval_seen=trained_item[item[eval_rows]], history_order=history_order,
                     history_start=start, history_length=length)


def user_history(user: np.ndarray, stamp: np.ndarray,
                 history_length: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Vectorised "last N interactions strictly before this one" per user.

  Returns (order, start, length): `order` sorts interactions by (user, time, input order); the
  history of interaction i is order[start[i] : start[i] + length[i]] (oldest first).
  """
  n = len(user)
  order = np.lexsort((np.arange(n), stamp, user))
  u, t = user[order], stamp[order]
  pos = np.arange(n, dtype=np.int64)
  new_user = np.ones(n, dtype=bool)
  new_user[1:] = u[1:] != u[:-1]
  new_time = new_user.copy()
  new_time[1:] |= t[1:] != t[:-1]
  user_start = np.maximum.accumulate(np.where(new_user, pos, 0))
  time_start = np.maximum.accumulate(np.where(new_time, pos, 0))  # first of equal timestamps
  lo = np.maximum(user_start, time_start - max(history_length, 0))
  start = np.empty(n, dtype=np.int64)
  length = np.empty(n, dtype=np.int64)
  start[order] = lo
  length[order] = time_start - lo
  return order, start, length


def compute_split_stats(dataset: Dataset, split: SplitResult, config: SplitConfig) -> Dict:
  """The numbers written to split_stats.json (JSON-serialisable)."""
  inter = dataset.interactions
  item = inter["item_index"].to_numpy()
  label = dataset.labels()
  train_rows, eval_rows = split.train_rows, split.eval_rows
  new_rows = eval_rows[~split.eval_seen]
  seen_rows = eval_rows[split.eval_seen]

  def rate(rows):
    return round(float(label[rows].mean()), 4) if len(rows) else None

  def utc(ts):
    return datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")

  stamp = inter["timestamp"].to_numpy()
  return {
      "dataset": dataset.name,
      "split_rule": split.rule,
      "split_rule_detail": split.rule_detail,
      "time_cut": split.time_cut,
      "time_cut_utc": utc(split.time_cut),
      "interactions": int(len(inter)),
      "train_examples": int(len(train_rows)),
      "eval_examples": int(len(eval_rows)),
      "items": int(dataset.num_items),
      "users": int(len(np.unique(inter["user_index"].to_numpy()))),
      "train_items": int(len(np.unique(item[train_rows]))),
      "rule_new_items": int(split.rule_new_items.sum()),
      "new_items": int(len(np.unique(item[new_rows]))),
      "new_item_eval_examples": int(len(new_rows)),
      "seen_item_eval_examples": int(len(seen_rows)),
      "train_positive_rate": rate(train_rows),
      "eval_positive_rate": rate(eval_rows),
      "new_item_eval_positive_rate": rate(new_rows),
      "history_length": int(config.history_length),
      "first_interaction_utc": utc(stamp.min()),
      "last_interaction_utc": utc(stamp.max()),
      "dropped_rows": dict(sorted(dataset.dropped_rows.items())),
  }
