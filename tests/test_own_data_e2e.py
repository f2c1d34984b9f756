"""End-to-end: your own files through `sidrec run`, `sidrec predict` and `sidrec serve-demo`.

1. MovieLens 100K fed in as a user's own files gives what `--dataset ml-100k` gives.

The rows `--dataset ml-100k` prepares (interactions with their users' age, gender and
occupation, the catalog with its text) are exported at test time from the installed package
(tests/fixtures/own_data.py; never committed), the interactions to Parquet and the catalog to
CSV, and the whole pipeline runs twice through
`sidrec run`: once on `--dataset ml-100k`, once on `--interactions/--catalog` with the user's
column names, a rating column and `--user-features`. Same seeds, same small settings: the split
statistics, every item's semantic ID and the report's figures (TFMA metrics overall and per
slice, the codebook's metrics, table sizes) must be equal. CSV, Parquet and TFRecord copies of
both files are held to the same prepared examples in tests/test_data_files.py.

2. A synthetic Parquet log whose user features are country (text) and tier (integer), not
MovieLens's: the pushed model's serving signature takes exactly those, the model server ranks
through `sidrec predict --user-feature`, and a MovieLens field is refused in one line.
"""
import dataclasses
import json
import os
import subprocess

import pytest

from contracts import semantic_ids_io
from tests.fixtures import cli_process
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
  # Interactions from Parquet, the catalog from CSV: both readers feed the whole pipeline.
  parquet = own_data.export_ml100k(str(root / "export"), "parquet")
  files = own_data.export_ml100k(str(root / "export"), "csv")
  files = dataclasses.replace(files, interactions=parquet.interactions)
  reference = root / "dataset"
  own = root / "files"
  # The two runs are independent (own output directories and metadata stores): both at once,
  # as the command a user types, each mostly one busy core.
  runs = {"dataset": ["--dataset", "ml-100k", "--output", str(reference)],
          "files": ["--output", str(own), "--interactions", files.interactions,
                    "--catalog", files.catalog,
                    "--columns", "user=uid,item=sku,time=ts,rating=stars,title=title,"
                    "genres=genres,release=year", "--positive-threshold", "4",
                    "--user-features", "age,gender,occupation"]}
  started = {}
  try:
    for name, args in runs.items():
      log = open(root / f"{name}.log", "w")
      started[name] = (cli_process.start_sidrec(["run", "--config", str(config_file)] + args,
                                                stdout=log, stderr=subprocess.STDOUT), log)
    for name, (process, _) in started.items():
      code = process.wait(timeout=1800)
      assert code == 0, f"sidrec run ({name}): " + (root / f"{name}.log").read_text()[-3000:]
  finally:  # neither run outlives a failure of the other
    for process, log in started.values():
      if process.poll() is None:
        process.kill()
        process.wait()
      log.close()
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


# --- 2. other user features, served ------------------------------------------------------------
OWN_CONFIG = dict(CONFIG, codebook=dict(CONFIG["codebook"], codebook_size=16,
                                        kmeans_init_samples=200),
                  ranking={"epochs": 8, "batch_size": 256},
                  evaluation={"min_auc": 0.0, "min_auc_new_items": 0.0})


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("own_features")
  config_file = root / "config.json"
  config_file.write_text(json.dumps(OWN_CONFIG))
  inter, items = own_data.synthetic_frames(n_items=200, n_users=100, n=8000, signal=True)
  (root / "logs").mkdir()
  for k, part in enumerate((inter[:4000], inter[4000:])):  # a directory of shards
    own_data.write_frame(part, str(root / "logs" / f"part-{k}.parquet"))
  catalog = own_data.write_frame(items, str(root / "items.parquet"))
  flags = ["--config", str(config_file), "--output", str(root / "out"),
           "--interactions", str(root / "logs"), "--catalog", catalog,
           "--columns", "user=user,item=item,time=time,label=clicked",
           "--user-features", "country,tier"]
  assert cli.main(["run"] + flags) == 0
  report = json.loads((root / "out" / "report.json").read_text())
  return report, flags, inter


def test_the_model_takes_and_serves_the_declared_user_features(own_run, capsys):
  from serving import server as server_lib
  report, _, inter = own_run
  assert report["split"]["user_features"] == {"user_country": "bytes", "user_tier": "int64"}
  sid_spm = report["representations"]["sid_spm"]
  assert sid_spm["auc"] > 0.6 and sid_spm["pushed_to"]  # country x kind is learnable
  from tensorflow.core.protobuf import saved_model_pb2
  model = saved_model_pb2.SavedModel()
  with open(os.path.join(sid_spm["pushed_to"], "saved_model.pb"), "rb") as f:
    model.ParseFromString(f.read())
  inputs = model.meta_graphs[0].signature_def["serving_default"].inputs
  assert {n for n in inputs if n.startswith("user_")} == {"user_id", "user_country",
                                                          "user_tier"}
  assert inputs["user_tier"].dtype == 9 and inputs["user_country"].dtype == 7  # int64, string
  serving_dir = os.path.dirname(os.path.dirname(sid_spm["pushed_to"]))
  capsys.readouterr()
  with server_lib.LocalModelServer(serving_dir, grpc_port=0, rest_port=0) as server:
    server.wait_until_ready(timeout=120)
    address = f"127.0.0.1:{server.rest_port}"
    predict = ["predict", "--server", address, "--protocol", "rest", "--model", "sid_spm",
               "--user-id", "u4", "--item-ids", "sku-0,sku-1,sku-2,sku-3"]
    scores = {}
    for country in ("de", "fr"):  # u4's country is fr; the scores follow what is sent
      assert cli.main(predict + ["--user-feature", f"country={country}",
                                 "--user-feature", "tier=0"]) == 0
      out = capsys.readouterr().out
      ranked = [l.split() for l in out.splitlines() if l.strip()[:1].isdigit()]
      assert sorted(r[1] for r in ranked) == ["sku-0", "sku-1", "sku-2", "sku-3"]
      scores[country] = {r[1]: float(r[2]) for r in ranked}
    # Even countries (de) like red (even) items, fr blue ones: the model learnt it.
    assert scores["de"]["sku-0"] - scores["de"]["sku-1"] > 0
    assert scores["fr"]["sku-1"] - scores["fr"]["sku-0"] > 0
    assert cli.main(predict + ["--user-feature", "age=30"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sidrec: error: predict:")
    assert "'age'" in err[0] and "user_country" in err[0] and "user_tier" in err[0]


def test_serve_demo_ranks_a_user_of_the_own_data(own_run, capsys):
  _, flags, _ = own_run
  capsys.readouterr()
  assert cli.main(["serve-demo"] + flags) == 0
  out = capsys.readouterr().out
  assert "--user-feature country=" in out and "--user-feature tier=" in out
