"""prepare_data end to end: tf.Example files, split_stats.json, atomic replacement."""

import collections
import dataclasses
import glob
import json
import os

import numpy as np
import pytest

from contracts import schema
from contracts.config import (CodebookConfig, DataConfig, PipelineConfig, SplitConfig,
                              SyntheticConfig)
from tests.fixtures import movielens_format as fx
from tfx_pipeline.data import (DataError, format_split_stats, load_catalog, prepare_data,
                               read_examples, writer)
from tests import ml100k_reference

SMALL = SyntheticConfig(num_items=300, num_users=80, num_interactions=4000, num_clusters=6,
                        embedding_dim=8, seed=5)
REQUIRED_STATS = ("dataset", "split_rule", "time_cut", "train_examples", "eval_examples", "items",
                  "users", "train_items", "new_items", "new_item_eval_examples",
                  "seen_item_eval_examples", "train_positive_rate", "eval_positive_rate",
                  "dropped_rows")


def _config(tmp_path, **split):
  return PipelineConfig(output_dir=str(tmp_path / "out"),
                        data=DataConfig(dataset="synthetic", synthetic=SMALL),
                        split=SplitConfig(**split))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("prep")
  config = _config(tmp, history_length=5)
  stats = prepare_data(config)
  data_dir = config.data_dir
  return stats, data_dir, {
      "train": read_examples(schema.shard_pattern(data_dir, schema.TRAIN_DIR)),
      "eval": read_examples(schema.shard_pattern(data_dir, schema.EVAL_DIR)),
      "catalog": read_examples(schema.shard_pattern(data_dir, schema.CATALOG_DIR)),
  }


def test_layout_and_stats_file(prepared):
  stats, data_dir, _ = prepared
  for sub in (schema.TRAIN_DIR, schema.EVAL_DIR, schema.CATALOG_DIR):
    assert glob.glob(os.path.join(data_dir, sub, "part-00000-of-*.tfrecord.gz"))
  assert os.path.exists(os.path.join(data_dir, schema.SYNTHETIC_EMBEDDINGS_FILE))
  with open(os.path.join(data_dir, schema.SPLIT_STATS_FILE)) as f:
    on_disk = json.load(f)
  assert on_disk == stats
  for key in REQUIRED_STATS:
    assert key in stats, key
  table = format_split_stats(stats)
  assert "train examples" in table and f"{stats['train_examples']:,}" in table
  numeric = [line for line in table.splitlines() if line.split()[-1].replace(",", "").isdigit()]
  assert len(numeric) > 5 and len({len(line) for line in numeric}) == 1  # right-aligned column


def test_examples_match_stats_and_schema(prepared):
  stats, _, ex = prepared
  train, eval_ = ex["train"], ex["eval"]
  assert len(train) == stats["train_examples"] and len(eval_) == stats["eval_examples"]
  assert len(train) + len(eval_) == SMALL.num_interactions  # nothing lost or duplicated
  for row in train[:50] + eval_[:50]:
    assert set(row) == set(schema.INTERACTION_FEATURES)
    assert isinstance(row["user_id"], str) and isinstance(row["timestamp"], int)
    assert row["label"] == int(row["rating"] >= 4)
    assert isinstance(row["history_item_ids"], list)
  assert {r["item_cohort"] for r in train} == {"seen"}
  train_items = {r["item_id"] for r in train}
  assert all(r["item_cohort"] == ("seen" if r["item_id"] in train_items else "new")
             for r in eval_)
  assert sum(r["item_cohort"] == "new" for r in eval_) == stats["new_item_eval_examples"]
  assert max(r["timestamp"] for r in train) < stats["time_cut"]
  # Popularity bucket = the item's train interaction count (eval rows never count).
  counts = collections.Counter(r["item_id"] for r in train)
  for r in train + eval_:
    n = counts.get(r["item_id"], 0)
    expected = schema.POPULARITY_BUCKETS[sum(n >= e for e in schema.POPULARITY_EDGES) - 1]
    assert r["item_popularity"] == expected, (r["item_id"], n)
  assert {r["item_popularity"] for r in eval_ if r["item_cohort"] == "new"} == {"0"}


def test_history_strictly_earlier_and_bounded(prepared):
  _, _, ex = prepared
  rows = ex["train"] + ex["eval"]
  train_items = {r["item_id"] for r in ex["train"]}
  train_ids = {id(r) for r in ex["train"]}
  by_user = {}
  for r in rows:
    by_user.setdefault(r["user_id"], []).append((r["timestamp"], r["item_id"]))
  for r in rows:
    assert len(r["history_item_ids"]) == 5  # fixed length: real ids, then "" padding
    hist = [h for h in r["history_item_ids"] if h != schema.HISTORY_PAD]
    assert r["history_item_ids"][:len(hist)] == hist  # padding only at the end
    earlier = sorted(by_user[r["user_id"]])
    earlier_items = [i for t, i in earlier if t < r["timestamp"]]
    if id(r) in train_ids:
      # Training examples' histories hold only items that are trained (never held-out ones).
      earlier_items = [i for i in earlier_items if i in train_items]
    assert len(hist) == min(5, len(earlier_items))
    assert set(hist) <= set(earlier_items)


def test_catalog(prepared):
  stats, data_dir, ex = prepared
  catalog = ex["catalog"]
  assert len(catalog) == stats["items"] == SMALL.num_items
  first = {}
  for r in ex["train"] + ex["eval"]:
    first[r["item_id"]] = min(first.get(r["item_id"], r["timestamp"]), r["timestamp"])
  for item in catalog:
    assert item["first_seen"] == first.get(item["item_id"], -1)
    assert str(item["year"]) not in item["text"]
    assert item["text"].startswith(item["title"] + ". Genres: ")
  frame = load_catalog(data_dir)
  assert list(frame.columns) == list(schema.CATALOG_FEATURES)
  ids = open(os.path.join(data_dir, schema.SYNTHETIC_EMBEDDING_IDS_FILE)).read().split()
  assert ids == list(frame["item_id"])
  assert np.load(os.path.join(data_dir, schema.SYNTHETIC_EMBEDDINGS_FILE)).shape == (300, 8)


def test_failed_run_keeps_previous_output_and_leaves_no_temp(tmp_path, monkeypatch):
  config = _config(tmp_path)
  prepare_data(config)
  stats_path = os.path.join(config.data_dir, schema.SPLIT_STATS_FILE)
  before = open(stats_path).read()
  files_before = sorted(glob.glob(os.path.join(config.data_dir, "**"), recursive=True))

  real = writer.write_examples
  calls = []

  def failing(directory, batches, num_rows, **kw):
    calls.append(directory)
    if len(calls) == 2:  # train shards are written, eval fails half-way
      raise OSError("disk full")
    return real(directory, batches, num_rows, **kw)

  monkeypatch.setattr(writer, "write_examples", failing)
  changed = PipelineConfig(output_dir=config.output_dir,
                           data=DataConfig(dataset="synthetic",
                                           synthetic=dataclasses.replace(SMALL, seed=6)))
  with pytest.raises(OSError, match="disk full"):
    prepare_data(changed)
  assert open(stats_path).read() == before
  assert sorted(glob.glob(os.path.join(config.data_dir, "**"), recursive=True)) == files_before
  assert os.listdir(os.path.dirname(config.data_dir)) == ["data"]  # no temp dirs beside it

  monkeypatch.setattr(writer, "write_examples", real)
  prepare_data(changed)  # a good run replaces the output
  assert open(stats_path).read() != before
  assert os.listdir(os.path.dirname(config.data_dir)) == ["data"]


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path):
  config = _config(tmp_path)
  parent = os.path.dirname(config.data_dir)
  os.makedirs(os.path.join(parent, ".data.tmp-999999999-abc"))  # no such pid
  prepare_data(config)
  assert os.listdir(parent) == ["data"]


def test_refuses_to_replace_a_foreign_directory(tmp_path):
  target = tmp_path / "mine"
  target.mkdir()
  (target / "notes.txt").write_text("keep me")
  with pytest.raises(DataError, match="refusing to replace"):
    prepare_data(_config(tmp_path), output_dir=str(target))
  assert (target / "notes.txt").read_text() == "keep me"


def test_lenient_drops_land_in_split_stats(tmp_path):
  inter = fx.interactions()
  inter[2] = ["1", "10", "4", "1600000000000"]  # milliseconds
  inter[3] = ["1", "77", "4", str(fx.T0)]  # unknown item
  source = fx.write_ml100k(tmp_path / "src", inter=inter)
  config = PipelineConfig(output_dir=str(tmp_path / "out"),
                          data=DataConfig(dataset="ml-100k", lenient=True),
                          split=SplitConfig(new_item_fraction=0.25),
                          codebook=CodebookConfig(codebook_size=2))  # a 6-item catalog
  stats = prepare_data(config, source_dir=source)
  assert stats["dropped_rows"] == {"interactions:bad_timestamp": 1, "interactions:unknown_item": 1}
  with open(os.path.join(config.data_dir, schema.SPLIT_STATS_FILE)) as f:
    assert json.load(f)["dropped_rows"] == stats["dropped_rows"]
  assert stats["train_examples"] + stats["eval_examples"] == len(inter) - 2
  assert "interactions:bad_timestamp" in format_split_stats(stats)


def test_real_ml100k_prepares(tmp_path):
  import tensorflow as tf
  config = PipelineConfig(output_dir=str(tmp_path), data=DataConfig(dataset="ml-100k"))
  stats = prepare_data(config)
  assert stats["dataset"] == "ml-100k" and stats["dropped_rows"] == {}
  # The same split recomputed with plain Python from the installed package's files.
  expected = ml100k_reference.ml100k_split_counts()
  assert {k: stats[k] for k in expected} == expected

  def examples(sub):
    files = glob.glob(schema.shard_pattern(config.data_dir, sub))
    return [tf.train.Example.FromString(r) for r in
            tf.data.TFRecordDataset(files, "GZIP").as_numpy_iterator()]

  def feature(example, name):
    f = example.features.feature[name]
    return (f.bytes_list.value or f.int64_list.value)[0]

  train, eval_ = examples(schema.TRAIN_DIR), examples(schema.EVAL_DIR)
  assert len(train) == expected["train_examples"]
  assert len(eval_) == expected["eval_examples"]
  assert len(examples(schema.CATALOG_DIR)) == expected["items"]
  cohorts = collections.Counter(feature(e, "item_cohort") for e in eval_)
  assert cohorts == {b"new": expected["new_item_eval_examples"],
                     b"seen": expected["seen_item_eval_examples"]}
  assert max(feature(e, "timestamp") for e in train) < expected["time_cut"]


def test_split_table_rows_and_right_aligned_numbers():
  stats = {"dataset": "ml-100k", "split_rule": "first_seen_quantile",
           "split_rule_detail": "newest 20% of items by first interaction (336 of 1682)",
           "time_cut": 891356679, "time_cut_utc": "1998-03-31 15:04:39 UTC",
           "interactions": 100000, "train_examples": 86308, "eval_examples": 13692,
           "new_item_eval_examples": 4096, "seen_item_eval_examples": 9596, "items": 1682,
           "train_items": 1346, "rule_new_items": 336, "new_items": 335, "users": 943,
           "train_positive_rate": 0.5543, "eval_positive_rate": 0.51, "history_length": 10,
           "prepare_seconds": 9.87, "not_a_table_row": 7,
           "dropped_rows": {"interactions:unknown_item": 3, "interactions:bad_rating": 12}}
  expected = [  # (label, printed value) in the printed order
      ("dataset", "ml-100k"), ("split rule", "first_seen_quantile"),
      ("new-item rule", stats["split_rule_detail"]),
      ("time cut", "1998-03-31 15:04:39 UTC (891356679)"), ("interactions", "100,000"),
      ("train examples", "86,308"), ("eval examples", "13,692"),
      ("  new-item eval examples", "4,096"), ("  seen-item eval examples", "9,596"),
      ("items (catalog)", "1,682"), ("items in train", "1,346"),
      ("items held out by the rule", "336"), ("new items in eval", "335"), ("users", "943"),
      ("train positive rate", "0.5543"), ("eval positive rate", "0.5100"),
      ("history length", "10"), ("prepare seconds", "9.9"), ("dropped rows", "15"),
      ("  interactions:bad_rating", "12"), ("  interactions:unknown_item", "3")]
  lines = format_split_stats(stats).splitlines()
  assert len(lines) == len(expected), lines
  width = max(len(label) for label, _ in expected)
  numeric_ends = set()
  for line, (label, value) in zip(lines, expected):
    assert line[:width].rstrip() == label and line[width:width + 2] == "  ", (line, label)
    assert line[width + 2:].strip() == value, (line, value)
    if value.replace(",", "").replace(".", "").isdigit():
      numeric_ends.add(len(line.rstrip()))
    else:
      assert line[width + 2:] == value, line  # text starts at the value column
  assert len(numeric_ends) == 1  # every number ends in the same column
