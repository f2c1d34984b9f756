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
INTERACTION_COLUMNS = ("user_index", "item_index", "timestamp", "rating")

_TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


@dataclasses.dataclass
class Dataset:
  """A validated dataset.

  Attributes:
    name: "ml-100k" | "ml-1m" | "synthetic".
    items: one row per catalog item, columns ITEM_COLUMNS (year 0 = unknown).
    users: one row per user, columns USER_COLUMNS.
    interactions: columns INTERACTION_COLUMNS (int32, int32, int64 unix seconds, float32), in
      the input's order (which breaks timestamp ties everywhere downstream).
    dropped_rows: lenient mode's drop counts per reason (empty when nothing was dropped).
    sources: where the data came from (file paths, or the generator settings).
    info: extra facts worth reporting in split_stats.json (e.g. items without a year).
  """
  name: str
  items: pd.DataFrame
  users: pd.DataFrame
  interactions: pd.DataFrame
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
    return (self.interactions["rating"].to_numpy() >= schema.POSITIVE_RATING).astype(np.int64)

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
