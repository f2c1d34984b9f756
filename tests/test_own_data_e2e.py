"""End-to-end: MovieLens 100K fed in as a user's own CSV files gives what `--dataset ml-100k` gives.

The rows `--dataset ml-100k` prepares (interactions with their users' age, gender and
occupation, the catalog with its text) are exported at test time from the installed package
(tests/fixtures/own_data.py; never committed) to CSV, and the whole pipeline runs twice through
`sidrec run`: once on `--dataset ml-100k`, once on `--interactions/--catalog` with the user's
column names, a rating column and `--user-features`. Same seeds, same small settings: the split
statistics, every item's semantic ID and the report's figures (TFMA metrics overall and per
slice, the codebook's metrics, table sizes) must be equal. The Parquet and TFRecord copies are
held to the same prepared examples in tests/test_data_files.py; the pipeline reads prepared
examples only, so that is the same guarantee for them.
"""
import json
import os

import pytest

from contracts import semantic_ids_io
from tests.fixtures import own_data
from tfx_pipeline import cli
from tfx_pipeline import report as report_lib

pytestmark = pytest.mark.e2e

# Small settings: one codebook and one representation keep each run to about three minutes.
CONFIG = {
    "codebook_methods": ["rqvae"],
    "codebook": {"levels": 2, "codebook_size": 32, "latent_dim": 16, "hidden_dims": [64],
                 "epochs": 10, "batch_size": 256, "kmeans_init_samples": 1682},
    "ranking": {"epochs": 1, "batch_size": 1024},
    "representations": ["sid_spm"],
}
TIMINGS = {"pushed_to", "evaluation_uri", "train_seconds", "train_examples_per_sec", "assign_items_per_second", "uri",
           "seconds", "prepare_seconds", "load_seconds", "output_dir", "dataset", "sources"}


def _figures(value):
  """The report without paths, timings and where the data came from."""
  if isinstance(value, dict):
    return {k: _figures(v) for k, v in value.items() if k not in TIMINGS}
  if isinstance(value, list):
    return [_figures(v) for v in value]
  return value


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("own_data")
  config_file = root / "config.json"
  config_file.write_text(json.dumps(CONFIG))
  files = own_data.export_ml100k(str(root / "export"), "csv")
  reference = root / "dataset"
  own = root / "files"
  assert cli.main(["run", "--config", str(config_file), "--dataset", "ml-100k",
                   "--output", str(reference)]) == 0
  assert cli.main([
      "run", "--config", str(config_file), "--output", str(own),
      "--interactions", files.interactions, "--catalog", files.catalog,
      "--columns", "user=uid,item=sku,time=ts,rating=stars,title=title,"
      "genres=genres,release=year", "--positive-threshold", "4",
      "--user-features", "age,gender,occupation"]) == 0
  return {name: json.loads((path / "report.json").read_text())
          for name, path in (("dataset", reference), ("files", own))}


def test_same_split_statistics(runs):
  assert runs["files"]["dataset"] == "files" and runs["dataset"]["dataset"] == "ml-100k"
  assert runs["files"]["split"]["user_features"] == {
      "user_age": "int64", "user_gender": "bytes", "user_occupation": "bytes"}
  assert _figures(runs["files"]["split"]) == _figures(runs["dataset"]["split"])


def test_same_semantic_ids(runs):
  sids = {name: semantic_ids_io.read_sids(r["codebooks"]["rqvae"]["assignment"]["uri"])
          for name, r in runs.items()}
  assert len(sids["files"]) == 1682
  assert sids["files"].keys() == sids["dataset"].keys()
  assert all((sids["files"][k] == sids["dataset"][k]).all() for k in sids["dataset"])
  assert _figures(runs["files"]["codebooks"]) == _figures(runs["dataset"]["codebooks"])


def test_same_report_figures(runs):
  got, want = (_figures(runs[n]["representations"]) for n in ("files", "dataset"))
  assert got == want
  assert got["sid_spm"]["auc"] > 0.5 and got["sid_spm"]["blessed"]


def test_the_pushed_model_takes_the_declared_user_features(runs):
  from tensorflow.core.protobuf import saved_model_pb2
  model = saved_model_pb2.SavedModel()
  pushed = runs["files"]["representations"]["sid_spm"]["pushed_to"]
  with open(os.path.join(pushed, "saved_model.pb"), "rb") as f:
    model.ParseFromString(f.read())
  inputs = model.meta_graphs[0].signature_def["serving_default"].inputs
  assert {n for n in inputs if n.startswith("user_")} == {
      "user_id", "user_age", "user_gender", "user_occupation"}
