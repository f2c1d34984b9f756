"""Tiny made-up MovieLens-format (RecBole atomic) fixtures for tests: no MovieLens rows.

`write_ml100k(directory, ...)` writes `ml-100k.{inter,item,user}` in RecBole atomic format. Rows
are lists of strings; row k of a file is on line k + 2 (line 1 is the header).
"""

from __future__ import annotations

import os
from typing import List, Optional

HEADERS = {
    "inter": ["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
    "item": ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"],
    "user": ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"],
}

T0 = 1_600_000_000  # 2020-09-13, an ordinary unix time in seconds


def users() -> List[List[str]]:
  return [["1", "31", "F", "engineer", "00001"], ["2", "45", "M", "artist", "00002"],
          ["3", "22", "F", "student", "00003"], ["4", "60", "M", "retired", "00004"]]


def items() -> List[List[str]]:
  return [["10", "Quiet Harbour", "1994", "Drama"],
          ["11", "Paper Comets (1996)", "1996", "Comedy Romance"],
          ["12", "Iron Orchard", "1997", "Action Sci-Fi"],
          ["13", "Late Bloom", "1999", "Drama Romance"],
          ["14", "Glass Tide (1999)", "unknown", "Thriller"],
          ["15", "Never Rated", "1999", "Documentary"]]


def interactions() -> List[List[str]]:
  rows = []
  # 4 users x items 10..14, times spread so the quantile cut and the year rule both bite.
  for u in range(1, 5):
    for k, item in enumerate((10, 11, 12, 13, 14)):
      rating = str(1 + (u * 3 + k * 2) % 5)
      rows.append([str(u), str(item), rating, str(T0 + 1000 * (k * 4 + u))])
  rows.append(["1", "12", "4", str(T0 + 1000 * 9)])  # same time as another of user 1's rows
  return rows


def write_atomic(path: str, header: List[str], rows: List[List[str]], crlf: bool = False) -> None:
  end = "\r\n" if crlf else "\n"
  with open(path, "w", encoding="utf-8", newline="") as f:
    f.write("\t".join(header) + end)
    for row in rows:
      f.write("\t".join(row) + end)


def write_ml100k(directory: str, inter: Optional[List[List[str]]] = None,
                 item: Optional[List[List[str]]] = None, user: Optional[List[List[str]]] = None,
                 crlf: bool = False) -> str:
  os.makedirs(directory, exist_ok=True)
  for ext, rows in (("inter", inter if inter is not None else interactions()),
                    ("item", item if item is not None else items()),
                    ("user", user if user is not None else users())):
    write_atomic(os.path.join(directory, f"ml-100k.{ext}"), HEADERS[ext], rows, crlf=crlf)
  return str(directory)
