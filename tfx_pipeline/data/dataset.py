"""The in-memory dataset every loader returns (MovieLens or synthetic) and small shared helpers.

Interactions refer to users and items by row index into the `users` / `items` tables, so that
millions of interactions cost a few int arrays rather than millions of Python strings; the string
IDs are looked up only when examples are encoded.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from contracts import schema

# Columns of the three tables.
ITEM_COLUMNS = ("item_id", "title", "year", "genres", "text")  # genres: "|"-joined
USER_COLUMNS = ("user_id", "age", "gender", "occupation")
# The user features MovieLens (and the synthetic generator, which mimics it) declare.
MOVIELENS_USER_FEATURES = {schema.USER_AGE: "int64", schema.USER_GENDER: "bytes",
                           schema.USER_OCCUPATION: "bytes"}
INTERACTION_COLUMNS = ("user_index", "item_index", "timestamp", "rating")

_TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


@dataclasses.dataclass
class Dataset:
  """A validated dataset.

  Attributes:
    name: "ml-100k" | "ml-1m" | "synthetic" | "files".
    items: one row per catalog item, columns ITEM_COLUMNS (year 0 = unknown).
    users: one row per user: "user_id", and the per-user values of declared user features.
    interactions: columns INTERACTION_COLUMNS (int32, int32, int64 unix seconds, float32), in
      the input's order (which breaks timestamp ties everywhere downstream), and the
      per-interaction values of declared user features.
    user_features: the declared user features, raw example feature name (`user_age`) -> kind
      ("int64" | "bytes"). A feature's values are the `interactions` column of that name when
      there is one (your own data: a user's device may change from row to row), else the
      `users` column of the name without the prefix (`age`: MovieLens, synthetic).
    positive_threshold: label = rating >= this (your own 0/1 labels are stored as ratings 0/1
      with threshold 1).
    dropped_rows: lenient mode's drop counts per reason (empty when nothing was dropped).
    sources: where the data came from (file paths, or the generator settings).
    info: extra facts worth reporting in split_stats.json (e.g. items without a year).
  """
  name: str
  items: pd.DataFrame
  users: pd.DataFrame
  interactions: pd.DataFrame
  user_features: Dict[str, str] = dataclasses.field(
      default_factory=lambda: dict(MOVIELENS_USER_FEATURES))
  positive_threshold: float = schema.POSITIVE_RATING
  dropped_rows: Dict[str, int] = dataclasses.field(default_factory=dict)
  sources: Dict[str, str] = dataclasses.field(default_factory=dict)
  info: Dict[str, object] = dataclasses.field(default_factory=dict)

  @property
  def num_items(self) -> int:
    return len(self.items)

  @property
  def num_users(self) -> int:
    return len(self.users)

  def labels(self) -> np.ndarray:
    return (self.interactions["rating"].to_numpy() >= self.positive_threshold).astype(np.int64)

  def user_feature_values(self, name: str) -> Tuple[np.ndarray, np.ndarray]:
    """(values, index per interaction) of declared user feature `name`: the feature of
    interaction i is values[index[i]] (values are int64 or str, per its kind)."""
    kind = self.user_features[name]
    if name in self.interactions.columns:
      column = self.interactions[name]
      if isinstance(column.dtype, pd.CategoricalDtype):
        values, index = column.cat.categories.to_numpy(), column.cat.codes.to_numpy()
      else:
        index, values = pd.factorize(column, sort=False)
        values = np.asarray(values)
    else:
      values = self.users[name[len(schema.USER_FEATURE_PREFIX):]].to_numpy()
      index = self.interactions["user_index"].to_numpy()
    values = values.astype(np.int64) if kind == "int64" else values.astype(object)
    return values, index.astype(np.int64)

  def first_seen(self) -> np.ndarray:
    """First interaction time per item (int64 unix seconds), NEVER_SEEN (-1) without one."""
    return first_seen(self.interactions["item_index"].to_numpy(),
                      self.interactions["timestamp"].to_numpy(), self.num_items)


def first_seen(item_index: np.ndarray, timestamps: np.ndarray, num_items: int) -> np.ndarray:
  out = np.full(num_items, np.iinfo(np.int64).max, dtype=np.int64)
  np.minimum.at(out, item_index, timestamps.astype(np.int64))
  out[out == np.iinfo(np.int64).max] = schema.NEVER_SEEN
  return out


def split_title_year(title: str) -> Tuple[str, Optional[int]]:
  """'Toy Story (1995)' -> ('Toy Story', 1995); titles without a trailing year are unchanged."""
  match = _TITLE_YEAR.search(title)
  if not match:
    return title.strip(), None
  return title[:match.start()].strip(), int(match.group(1))


def item_text(template: str, title: str, genres: Sequence[str]) -> str:
  """The encoder input, e.g. "Toy Story. Genres: Animation, Children's, Comedy" (no year)."""
  return template.format(title=title, genres=", ".join(genres))


def item_texts(template: str, titles: Sequence[str], genres_joined: Sequence[str]) -> list:
  """Vector form of `item_text`; `genres_joined` holds "|"-joined genre strings."""
  sep = schema.GENRE_SEPARATOR
  return [template.format(title=t, genres=", ".join(g.split(sep)) if g else "")
          for t, g in zip(titles, genres_joined)]
