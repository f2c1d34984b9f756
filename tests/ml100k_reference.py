"""MovieLens 100K's default cold-start split, recomputed in plain Python from the package files.

An independent reference for the loader and the split (tfx_pipeline.data is not imported):
it reads recbole's ml-100k.inter / .item with `open` and applies SplitConfig's documented
default rule for ml-100k (`first_seen_quantile`):
  1. new items = the newest round(0.2 * #items with interactions) by first interaction, ties
     broken by catalog position (later = newer);
  2. time cut T = the 0.9 quantile, "lower" (a real timestamp), of the other items'
     interaction times;
  3. train = other items' interactions before T, eval = everything else; an eval example is
     on a new item when its item is not in train.
"""
import functools
import importlib.util
import math
import os


def ml100k_dir() -> str:
  spec = importlib.util.find_spec("recbole")
  for location in spec.submodule_search_locations if spec else ():
    directory = os.path.join(location, "dataset_example", "ml-100k")
    if os.path.isdir(directory):
      return directory
  raise FileNotFoundError("recbole's dataset_example/ml-100k is not installed")


def _rows(path: str) -> list:
  """Tab-separated rows without the header line."""
  with open(path, encoding="utf-8") as f:
    return [line.rstrip("\r\n").split("\t") for line in f if line.strip()][1:]


@functools.lru_cache(maxsize=None)
def ml100k_split_counts(new_item_fraction: float = 0.2, eval_time_quantile: float = 0.9) -> dict:
  """The split_stats.json entries of the default split, counted independently."""
  directory = ml100k_dir()
  catalog = [row[0] for row in _rows(os.path.join(directory, "ml-100k.item"))]
  position = {item: i for i, item in enumerate(catalog)}
  # (user, item, rating, timestamp)
  inter = [(r[0], r[1], float(r[2]), int(r[3]))
           for r in _rows(os.path.join(directory, "ml-100k.inter"))]
  first_seen = {}
  for _, item, _, stamp in inter:
    first_seen[item] = min(first_seen.get(item, stamp), stamp)
  k = round(new_item_fraction * len(first_seen))
  by_age = sorted(first_seen, key=lambda item: (first_seen[item], position[item]))
  new = set(by_age[len(by_age) - k:])
  old_times = sorted(stamp for _, item, _, stamp in inter if item not in new)
  cut = old_times[math.floor(eval_time_quantile * (len(old_times) - 1))]
  in_train = [item not in new and stamp < cut for _, item, _, stamp in inter]
  train = [row for row, t in zip(inter, in_train) if t]
  eval_ = [row for row, t in zip(inter, in_train) if not t]
  train_items = {row[1] for row in train}
  new_eval = [row for row in eval_ if row[1] not in train_items]
  return {
      "interactions": len(inter),
      "items": len(catalog),
      "users": len({row[0] for row in inter}),
      "rule_new_items": len(new),
      "time_cut": cut,
      "train_examples": len(train),
      "eval_examples": len(eval_),
      "train_items": len(train_items),
      "new_items": len({row[1] for row in new_eval}),
      "new_item_eval_examples": len(new_eval),
      "seen_item_eval_examples": len(eval_) - len(new_eval),
      "train_positive_rate": round(sum(row[2] >= 4 for row in train) / len(train), 4),
  }
