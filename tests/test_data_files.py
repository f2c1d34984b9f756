"""Your own data (`dataset="files"`): formats, the column contract, user features, validation.

ML-100K exported at test time from the installed package (tests/fixtures/own_data.py) must
prepare to exactly the examples `--dataset ml-100k` prepares, from CSV, Parquet and TFRecord;
small synthetic files cover timestamps, labels, templates and user features; one table covers
every bad input of issue 13 §2 (one line naming file, row, column and fix; nothing written).
"""
import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest

from contracts import config as config_lib
from contracts import schema
from tests.fixtures import own_data
from tfx_pipeline.data import DataValidationError, prepare_data, read_examples

SPLITS = (schema.TRAIN_DIR, schema.EVAL_DIR, schema.CATALOG_DIR)
NOT_COMPARED = {"dataset", "sources", "load_seconds", "prepare_seconds", "output_dir"}


def files_config(output_dir, files, **data):
  config = config_lib.PipelineConfig(output_dir=str(output_dir))
  config = config_lib.replace_section(config, "codebook", codebook_size=4)
  return config_lib.replace_section(config, "data", dataset="files", files=files, **data)


@pytest.fixture(scope="module")
def ml100k_prepared(tmp_path_factory):
  out = tmp_path_factory.mktemp("ml100k")
  config = config_lib.replace_section(config_lib.PipelineConfig(output_dir=str(out)), "data",
                                      dataset="ml-100k")
  stats = prepare_data(config)
  return stats, config.data_dir


@pytest.mark.parametrize("fmt", ["csv", "parquet", "tfrecord.gz"])
def test_ml100k_as_own_files_prepares_the_same_split_and_examples(fmt, ml100k_prepared,
                                                                  tmp_path):
  stats, reference_dir = ml100k_prepared
  files = own_data.export_ml100k(str(tmp_path / "export"), fmt)
  config = config_lib.replace_section(files_config(tmp_path / "out", files), "codebook",
                                      codebook_size=256)
  got = prepare_data(config)
  assert got["dataset"] == "files" and got["sources"]["interactions"] == files.interactions
  assert {k: v for k, v in got.items() if k not in NOT_COMPARED} == \
      {k: v for k, v in stats.items() if k not in NOT_COMPARED}
  assert got["train_examples"] == 86308 and got["new_item_eval_examples"] > 0
  for split in SPLITS:
    assert own_data.canonical_examples(config.data_dir, split).equals(
        own_data.canonical_examples(reference_dir, split)), split


# --- small synthetic files ------------------------------------------------------------------
_synthetic = own_data.synthetic_frames


def _write(tmp_path, inter, items, fmt="csv", **files):
  d = tmp_path / "in"
  d.mkdir(exist_ok=True)
  cfg = dict(interactions=own_data.write_frame(inter, str(d / f"inter.{fmt}")),
             catalog=own_data.write_frame(items, str(d / f"items.{fmt}")),
             user_column="user", item_column="item", time_column="time", label_column="clicked",
             user_features=("country", "tier"))
  cfg.update(files)
  return config_lib.FilesConfig(**cfg)


def test_declared_user_features_become_example_features_by_kind(tmp_path):
  inter, items = _synthetic()
  config = files_config(tmp_path / "out", _write(tmp_path, inter, items))
  stats = prepare_data(config)
  assert stats["user_features"] == {"user_country": "bytes", "user_tier": "int64"}
  rows = read_examples(os.path.join(config.data_dir, schema.TRAIN_DIR),
                       {"user_country": "bytes", "user_tier": "int64"})
  by_user = inter.groupby("user").first()
  for row in rows[:50]:
    assert row["user_country"] == by_user.loc[row["user_id"], "country"]
    assert row["user_tier"] == by_user.loc[row["user_id"], "tier"]
    assert not {"user_age", "user_gender", "user_occupation"} & set(row)
  assert {r["label"] for r in rows} == {0, 1}


def test_no_user_features_and_iso_times_and_a_text_template(tmp_path):
  inter, items = _synthetic()
  iso = inter.assign(time=pd.to_datetime(inter["time"], unit="s", utc=True)
                     .dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
  a = prepare_data(files_config(tmp_path / "a", _write(tmp_path, inter, items,
                                                       user_features=())))
  b_config = files_config(tmp_path / "b", _write(
      tmp_path, iso.drop(columns=["country", "tier"]), items.drop(columns=["text"]),
      user_features=(), text_template="{name}, {kind}"))
  b = prepare_data(b_config)
  assert a["user_features"] == {} and b["user_features"] == {}
  assert {k: v for k, v in a.items() if k not in NOT_COMPARED} == \
      {k: v for k, v in b.items() if k not in NOT_COMPARED}
  for split in SPLITS:  # same times, same text: the same examples
    assert own_data.canonical_examples(str(tmp_path / "a" / "data"), split).equals(
        own_data.canonical_examples(b_config.data_dir, split))
  rows = read_examples(os.path.join(b_config.data_dir, schema.TRAIN_DIR))
  assert not [k for k in rows[0] if schema.user_features_in([k])]


def test_tsv_directory_of_shards_and_lenient_counts(tmp_path):
  inter, items = _synthetic()
  shards = tmp_path / "logs"
  shards.mkdir()
  for k, part in enumerate(np.array_split(inter, 3)):
    part.to_csv(shards / f"part-{k}.tsv", sep="\t", index=False)
  bad = inter.copy()
  bad.loc[5, "clicked"] = 7
  bad.loc[9, "item"] = "sku-unknown"
  bad.to_csv(shards / "part-3.tsv", sep="\t", index=False)
  (shards / "_SUCCESS").write_text("")
  files = _write(tmp_path, inter, items)
  files = dataclasses.replace(files, interactions=str(shards))
  stats = prepare_data(files_config(tmp_path / "out", files, lenient=True))
  assert stats["interactions"] == 2 * len(inter) - 2
  assert stats["dropped_rows"] == {"interactions:bad_label": 1, "interactions:unknown_item": 1}


# --- every bad input: one line, named, nothing written --------------------------------------
def _case_files(tmp_path, change):
  inter, items = _synthetic()
  files = {}
  change(inter, items, files)
  return inter, items, files


BAD_INPUTS = [
    # id, change(inter, items, files_kwargs), fragments the message must hold
    ("missing_file", lambda i, c, f: f.update(interactions="/nonexistent/logs.csv"),
     ["/nonexistent/logs.csv", "does not exist", "--interactions"]),
    ("missing_column", lambda i, c, f: f.update(user_column="uid"),
     ["inter.csv", "no column 'uid'", "--columns"]),
    ("bad_time", lambda i, c, f: i.__setitem__("time", i["time"].astype(object))
     or i.loc.__setitem__((6, "time"), "yesterday"),
     ["inter.csv, line 8", "'time'", "'yesterday'", "ISO-8601"]),
    ("milliseconds", lambda i, c, f: i.loc.__setitem__((3, "time"), 1_600_000_000_000),
     ["line 5", "milliseconds", "divide milliseconds by 1000"]),
    ("label_not_01", lambda i, c, f: i.loc.__setitem__((2, "clicked"), 2),
     ["line 4", "'clicked'", "not 0 or 1", "--positive-threshold"]),
    ("rating_not_numeric", lambda i, c, f: (i.__setitem__("clicked", i["clicked"].astype(object)),
                                            i.loc.__setitem__((4, "clicked"), "five"),
                                            f.update(rating_column="clicked")),
     ["line 6", "rating 'five' is not a number"]),
    ("empty_user", lambda i, c, f: (i.__setitem__("user", i["user"].astype(object)),
                                    i.loc.__setitem__((7, "user"), "")),
     ["line 9", "'user'", "user id is empty"]),
    ("empty_item", lambda i, c, f: i.loc.__setitem__((8, "item"), ""),
     ["line 10", "'item'", "item id is empty"]),
    ("unknown_item", lambda i, c, f: i.loc.__setitem__((10, "item"), "sku-999"),
     ["line 12", "'sku-999' is not in the catalog", "add the item to the catalog"]),
    ("duplicate_catalog_id", lambda i, c, f: c.loc.__setitem__((5, "item"), "sku-2"),
     ["items.csv, line 7", "'sku-2' is listed again", "line 4"]),
    ("empty_text", lambda i, c, f: c.loc.__setitem__((3, "text"), ""),
     ["items.csv, line 5", "'sku-3' has empty text and no embedding", "precomputed"]),
    ("too_few_items_for_codes", lambda i, c, f: f.update(codebook_size=64),
     ["40 items", "64 codes", "codebook_size to at most 40"]),
    ("no_positives", lambda i, c, f: i.__setitem__("clicked", 0),
     ["training split has no positives", "label column"]),
    ("no_new_items", lambda i, c, f: (c.__setitem__("released", "1999"),
                                      f.update(release_column="released", rule="release_year")),
     ["'release year >= 2000' holds out 0 items", "lower split.new_item_year"]),
]


def _prepare_case(tmp_path, change):
  inter, items, extra = _case_files(tmp_path, change)
  codebook_size = extra.pop("codebook_size", 4)
  rule = extra.pop("rule", "auto")
  files = _write(tmp_path, inter, items, **extra)
  config = config_lib.replace_section(files_config(tmp_path / "out", files), "codebook",
                                      codebook_size=codebook_size)
  return config_lib.replace_section(config, "split", rule=rule)


def _cli_data(config, tmp_path, capsys):
  """`sidrec data --config FILE` on `config`: (exit status, stderr lines)."""
  from tfx_pipeline import cli
  path = tmp_path / f"config-{len(list(tmp_path.glob('config-*.json')))}.json"
  path.write_text(config.to_json())
  status = cli.main(["data", "--config", str(path)])
  return status, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("name,change,fragments", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_naming_it_and_writes_nothing(name, change, fragments, tmp_path,
                                                            capsys):
  good = _prepare_case(tmp_path, lambda i, c, f: None)
  assert _cli_data(good, tmp_path, capsys)[0] == 0
  stats_file = os.path.join(good.data_dir, schema.SPLIT_STATS_FILE)
  before = open(stats_file).read()
  status, err = _cli_data(_prepare_case(tmp_path, change), tmp_path, capsys)
  assert status == 2 and len(err) == 1 and err[0].startswith("sidrec: error: data: "), err
  for fragment in fragments:
    assert fragment in err[0], (name, err)
  assert open(stats_file).read() == before  # the previous prepared data is untouched
  assert sorted(os.listdir(tmp_path / "out")) == ["data"]  # and no temp dir is left


def test_bad_csv_line_width_is_named(tmp_path):
  inter, items = _synthetic()
  files = _write(tmp_path, inter, items)
  with open(files.interactions, "a") as f:
    f.write("u1,sku-1,1600000000,1,de,0,extra\n")
  with pytest.raises(DataValidationError, match=r"inter.csv, line 602: the line has 7 "
                     r"field\(s\) but the header has 6"):
    prepare_data(files_config(tmp_path / "out", files))


def _embeddings(tmp_path, items, change=None, dim=8):
  vectors = np.random.default_rng(0).normal(size=(len(items), dim)).astype(np.float32)
  ids = list(items["item"])
  if change:
    vectors, ids = change(vectors, ids)
  np.save(tmp_path / "emb.npy", vectors)
  (tmp_path / "emb_ids.txt").write_text("\n".join(ids) + "\n")
  return str(tmp_path / "emb.npy")


@pytest.mark.parametrize("name,change,fragment", [
    ("nan", lambda v, i: (np.where(np.arange(len(v))[:, None] == 4, np.nan, v), i),
     "item 'sku-4' (row 5) has a NaN or infinite value"),
    ("inf", lambda v, i: (np.where(np.arange(len(v))[:, None] == 2, np.inf, v), i),
     "item 'sku-2' (row 3) has a NaN or infinite value"),
    ("zero", lambda v, i: (np.where(np.arange(len(v))[:, None] == 7, 0.0, v), i),
     "item 'sku-7' (row 8) has an all-zero vector"),
    ("missing", lambda v, i: (v[:-1], i[:-1]), "1 catalog item(s) have no embedding, e.g. "
     "'sku-39'"),
    ("missized", None, "vectors have 8 dimensions, but embedding.dimension is 16"),
])
def test_brought_embeddings_are_checked_before_anything_runs(name, change, fragment, tmp_path,
                                                            capsys):
  inter, items = _synthetic()
  items = items.assign(text="")  # no text: the embeddings are all there is
  config = files_config(tmp_path / "out", _write(tmp_path, inter, items))
  config = config_lib.replace_section(
      config, "embedding", encoder="precomputed", precomputed_format="npy",
      precomputed_path=_embeddings(tmp_path, items, change),
      dimension=16 if name == "missized" else 0)
  status, err = _cli_data(config, tmp_path, capsys)
  assert status == 2 and len(err) == 1 and err[0].startswith("sidrec: error: data: "), err
  assert fragment in err[0]
  assert not os.path.exists(config.data_dir)


def test_brought_embeddings_let_items_come_without_text(tmp_path):
  inter, items = _synthetic()
  items = items.assign(text="")
  config = files_config(tmp_path / "out", _write(tmp_path, inter, items))
  config = config_lib.replace_section(config, "embedding", encoder="precomputed",
                                      precomputed_format="npy",
                                      precomputed_path=_embeddings(tmp_path, items))
  stats = prepare_data(config)
  assert stats["items"] == 40
  assert json.load(open(os.path.join(config.data_dir, schema.SPLIT_STATS_FILE)))["items"] == 40


# --- what a careless export looks like -------------------------------------------------------
def _csv(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def _tiny_files(tmp_path, inter_text, **files):
  catalog = _csv(tmp_path, "items.csv", "item_id,text\n" + "".join(
      f"i{k},item {k}\n" for k in range(8)))
  return config_lib.FilesConfig(interactions=_csv(tmp_path, "inter.csv", inter_text),
                                catalog=catalog, **files)


def _load(files, lenient=False):
  from tfx_pipeline.data.files import load_files
  return load_files(config_lib.DataConfig(dataset="files", files=files, lenient=lenient))


def test_line_numbers_count_blank_and_dropped_lines(tmp_path):
  text = ("user_id,item_id,timestamp,label\n"
          "u1,i1,1700000000,1\n"
          "\n"                      # line 3: blank
          "u2,i2,1700000001\n"      # line 4: a field short
          "u3,i3,1700000002,0,x\n"  # line 5: a field too many
          "u4,i4,1700000003,1\n"
          "u5,i9,1700000004,0\n")   # line 7: not in the catalog
  with pytest.raises(DataValidationError, match=r"inter.csv, line 4: the line has 3 field"):
    _load(_tiny_files(tmp_path, text))
  with pytest.raises(DataValidationError, match=r"inter.csv, line 7, field 'item_id': item "
                     r"'i9' is not in the catalog"):
    _load(_tiny_files(tmp_path, text.replace("u2,i2,1700000001\n", "u2,i2,1700000001,1\n")
                      .replace("u3,i3,1700000002,0,x\n", "u3,i3,1700000002,0\n")))
  dataset = _load(_tiny_files(tmp_path, text), lenient=True)
  assert dataset.dropped_rows == {"interactions:bad_line": 2, "interactions:empty_line": 1,
                                  "interactions:unknown_item": 1}
  assert len(dataset.interactions) == 2


def test_times_in_every_form_a_file_may_hold(tmp_path):
  from tfx_pipeline.data.files import parse_times
  import pyarrow as pa
  want = 1700000000.0
  strings = pa.array(["2023-11-14T23:13:20+01:00", "2023-11-14 22:13:20", "2023-11-14T22:13:20Z",
                      "1700000000", "yesterday", "2023-11-14"])
  got = parse_times(strings)
  assert got[:4].tolist() == [want] * 4  # zoneless = UTC, even beside a zoned one
  assert np.isnan(got[4]) and got[5] == want - 22 * 3600 - 13 * 60 - 20
  assert parse_times(pa.array([b"2023-11-14T22:13:20Z"], pa.large_binary())).tolist() == [want]
  stamps = pa.array([want * 1e9, want * 1e9 + 5e8], pa.int64()).cast(pa.timestamp("ns"))
  assert parse_times(stamps).tolist() == [want, want + 0.5]  # the fraction is refused later
  assert parse_times(pa.array([want], pa.float64())).tolist() == [want]


def test_parquet_timestamps_and_tfrecord_iso_times_load(tmp_path):
  inter, items = _synthetic()
  reference = prepare_data(files_config(tmp_path / "a", _write(tmp_path, inter, items)))
  typed = inter.assign(time=pd.to_datetime(inter["time"], unit="s"))
  b = files_config(tmp_path / "b", _write(tmp_path, typed, items, fmt="parquet"))
  iso = inter.assign(time=pd.to_datetime(inter["time"], unit="s", utc=True).dt.strftime(
      "%Y-%m-%dT%H:%M:%S+00:00"))
  c = files_config(tmp_path / "c", _write(tmp_path, iso, items, fmt="tfrecord"))
  for config in (b, c):
    stats = prepare_data(config)
    assert stats["time_cut"] == reference["time_cut"]
    assert stats["user_features"] == {"user_country": "bytes", "user_tier": "int64"}
    for split in SPLITS:
      assert own_data.canonical_examples(config.data_dir, split).equals(
          own_data.canonical_examples(str(tmp_path / "a" / "data"), split))


@pytest.mark.parametrize("template,fragment", [
    ("{title", "text_template '{title'"), ("{}. x", "must name catalog columns"),
    ("plain text", "must name catalog columns"), ("{name!r}", "must name catalog columns")])
def test_broken_text_templates_are_refused_by_name(template, fragment):
  with pytest.raises(ValueError) as raised:
    config_lib.FilesConfig(interactions="a", catalog="b", text_template=template)
  assert fragment in str(raised.value)


def test_headerless_files_a_positional_template_and_zero_categories(tmp_path):
  catalog = _csv(tmp_path, "items.csv", "".join(f"i{k},item {k},k{k % 2}\n" for k in range(8)))
  inter = _csv(tmp_path, "inter.csv", "".join(
      f"u{k},i{k % 8},{1700000000 + k},{k % 2},{['0', '-0', '7'][k % 3]}\n" for k in range(9)))
  files = config_lib.FilesConfig(interactions=inter, catalog=catalog, header=False,
                                 catalog_item_column="0", text_template="{1} ({2})",
                                 user_features=("4",), user_column="0", item_column="1",
                                 time_column="2", label_column="3")
  dataset = _load(files)
  assert list(dataset.items["text"][:2]) == ["item 0 (k0)", "item 1 (k1)"]
  assert len(dataset.interactions) == 9  # no line taken for a header
  # "-0" is not a plain integer, so the feature is categorical text, and "0" one category.
  assert dataset.user_features == {"user_4": "bytes"}
  values, index = dataset.user_feature_values("user_4")
  assert sorted(values) == ["-0", "0", "7"] and len(index) == 9


def test_inputs_on_another_tf_file_system(tmp_path):
  """Paths go through tf.io.gfile (gs:// on Kubeflow): TensorFlow's in-memory ram:// file
  system stands in for a remote one here, read through the same code path."""
  import tensorflow as tf
  inter, items = _synthetic()
  local = _write(tmp_path, inter, items)
  remote = f"ram://sidrec-test-{os.getpid()}"
  tf.io.gfile.makedirs(remote + "/logs")
  catalog = own_data.write_frame(items, str(tmp_path / "items.parquet"))
  for source, target in ((local.interactions, remote + "/logs/part-0.csv"),
                         (catalog, remote + "/items.parquet")):  # both readers, through gfile
    tf.io.gfile.copy(source, target, overwrite=True)
  a = prepare_data(files_config(tmp_path / "a", local))
  b_config = files_config(tmp_path / "b", dataclasses.replace(
      local, interactions=remote + "/logs/*.csv", catalog=remote + "/items.parquet"))
  b = prepare_data(b_config)
  assert b["sources"]["interactions"].startswith("ram://")
  assert {k: v for k, v in a.items() if k not in NOT_COMPARED} == \
      {k: v for k, v in b.items() if k not in NOT_COMPARED}
  for split in SPLITS:
    assert own_data.canonical_examples(str(tmp_path / "a" / "data"), split).equals(
        own_data.canonical_examples(b_config.data_dir, split))
