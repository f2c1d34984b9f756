"""`sidrec` flags turn into the one PipelineConfig; bad values fail with a message."""
import os

import pytest

from tfx_pipeline import cli


def test_representations_and_ranking_flags():
  args = cli.make_parser().parse_args(
      ["run", "--dataset", "ml-100k", "--representations", "random_id, sid_spm,moc",
       "--seed", "3", "--epochs", "1", "--table-budget", "4096"])
  config = cli.build_config(args)
  assert config.representations == ("random_id", "sid_spm", "moc")
  assert (config.ranking.seed, config.ranking.epochs, config.ranking.table_budget) == (3, 1, 4096)
  assert config.data.dataset == "ml-100k"


def test_config_file_values_stand_unless_a_flag_is_given(tmp_path):
  from contracts import config as config_lib
  path = tmp_path / "experiment.json"
  path.write_text(config_lib.PipelineConfig(output_dir=str(tmp_path / "runs")).to_json()
                  .replace('"ml-1m"', '"ml-100k"'))
  config = cli.build_config(cli.make_parser().parse_args(["experiment", "--config", str(path)]))
  assert (config.output_dir, config.data.dataset) == (str(tmp_path / "runs"), "ml-100k")
  config = cli.build_config(cli.make_parser().parse_args(
      ["experiment", "--config", str(path), "--output", "elsewhere", "--dataset", "synthetic"]))
  assert (config.output_dir, config.data.dataset) == ("elsewhere", "synthetic")
  config = cli.build_config(cli.make_parser().parse_args(["run"]))
  assert (config.output_dir, config.data.dataset) == ("sidrec_output", "ml-1m")


def test_unknown_representation_names_the_choices(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.make_parser().parse_args(["run", "--representations", "sid_spm,sid_bpe"])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert "sid_bpe" in err and "sid_prefix_ngram" in err


def _experiment_plan(monkeypatch, argv):
  """What `sidrec experiment ...` hands to run_experiment (nothing runs)."""
  from tfx_pipeline import experiment
  calls = []
  monkeypatch.setattr(experiment, "run_experiment",
                      lambda config, plan, summarize_only=False: calls.append(
                          (config, plan, summarize_only)))
  assert cli.main(["experiment"] + argv) == 0
  assert len(calls) == 1
  return calls[0]


def test_experiment_flags_become_the_plan(monkeypatch):
  from tfx_pipeline import experiment
  config, plan, summarize_only = _experiment_plan(monkeypatch, [
      "--representations", "sid_unigram,moc", "--seeds", "3, 1", "--table-budgets",
      "65536,8192", "--moc-scaling", "1,2,3,7", "--epochs", "1"])
  assert plan == experiment.ExperimentPlan(seeds=(3, 1), table_budgets=(65536, 8192),
                                           moc_scaling_factors=(1, 2, 3, 7),
                                           run_main_grid=True)
  assert not summarize_only
  assert config.representations == ("sid_unigram", "moc") and config.ranking.epochs == 1
  # The plan's runs: 2 budgets x 2 seeds of the main grid, then 4 factors x 2 seeds of MoC.
  runs = [(cell.group, cell.seed, cell.budget, cell.scaling)
          for cell in experiment.plan_configs(config, plan)]
  assert runs[:4] == [("main", 3, 65536, None), ("main", 1, 65536, None),
                      ("main", 3, 8192, None), ("main", 1, 8192, None)]
  assert [(g, s, f) for g, s, _, f in runs[4:]] == [
      ("moc_scaling", seed, factor) for factor in (1, 2, 3, 7) for seed in (3, 1)]


def test_experiment_codebook_seeds_pair_with_the_ranking_seeds(monkeypatch, capsys):
  from tfx_pipeline import experiment
  config, plan, _ = _experiment_plan(monkeypatch, ["--seeds", "3,1", "--codebook-seeds", "7,8"])
  assert plan.codebook_seeds == (7, 8)
  assert [(c.config.codebook.seed, c.config.ranking.seed)
          for c in experiment.plan_configs(config, plan)] == [(7, 3), (8, 1)]
  help_text = " ".join(cli.make_parser().commands["experiment"].format_help().split())
  assert "paired one-to-one with --seeds" in help_text
  assert "a single value is shared by every cell" in help_text
  assert cli.main(["experiment", "--seeds", "0,1,2", "--codebook-seeds", "0,1",
                   "--summarize-only"]) == 2
  assert capsys.readouterr().err.strip().splitlines() == [
      "sidrec: error: experiment: codebook seeds pair one-to-one with the ranking seeds: got 2 "
      "codebook seeds [0, 1] for 3 ranking seeds [0, 1, 2]; give 3 codebook seeds, or one for "
      "every cell"]


def test_experiment_codebook_seeds_refuse_a_config_that_pins_a_codebook_seed(tmp_path, capsys):
  path = tmp_path / "config.json"
  path.write_text('{"codebook_overrides": {"moc": {"seed": 3}}}')
  assert cli.main(["experiment", "--config", str(path), "--output", str(tmp_path / "out"),
                   "--seeds", "0,1", "--codebook-seeds", "0,1", "--summarize-only"]) == 2
  (line,) = capsys.readouterr().err.strip().splitlines()
  assert line.startswith("sidrec: error: experiment: codebook seeds [0, 1] set codebook.seed "
                         "per cell, but codebook_overrides.moc.seed would override it: remove")


def test_experiment_defaults_and_sweep_only(monkeypatch):
  from tfx_pipeline import experiment
  _, plan, summarize_only = _experiment_plan(monkeypatch, [])
  assert plan == experiment.ExperimentPlan(seeds=(0, 1, 2, 3, 4), codebook_seeds=(),
                                           table_budgets=(), moc_scaling_factors=(),
                                           run_main_grid=True)
  assert not summarize_only
  _, plan, summarize_only = _experiment_plan(
      monkeypatch, ["--moc-scaling", "2", "--moc-scaling-only", "--summarize-only"])
  assert (plan.moc_scaling_factors, plan.run_main_grid, summarize_only) == ((2,), False, True)


def test_experiment_rejects_non_integer_lists(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["experiment", "--table-budgets", "65536,8k"])
  assert exit_info.value.code == 2
  assert "expected comma-separated integers, got '65536,8k'" in capsys.readouterr().err


def test_settings_that_cannot_work_get_one_line_not_a_traceback(tmp_path, capsys):
  assert cli.main(["experiment", "--seeds", "0,0", "--summarize-only"]) == 2
  err = capsys.readouterr().err
  assert err.strip().splitlines() == [
      "sidrec: error: experiment: experiment needs distinct seeds, got [0, 0]"]
  config = tmp_path / "config.json"
  config.write_text('{"ranking": {"embeding_dim": 16}}')
  assert cli.main(["run", "--config", str(config)]) == 2
  (line,) = capsys.readouterr().err.strip().splitlines()
  assert line == (f"sidrec: error: run: --config {config}: ranking.embeding_dim: unknown "
                  f"RankingConfig field; did you mean 'embedding_dim'?")


def _count_tfrecords(pattern):
  """Records in GZIP TFRecord files, read with the standard library (length-prefixed)."""
  import glob
  import gzip
  import struct
  count = 0
  for path in glob.glob(pattern):
    with gzip.open(path, "rb") as f:
      while header := f.read(12):  # uint64 length + uint32 CRC of the length
        (length,) = struct.unpack("<Q", header[:8])
        f.seek(length + 4, 1)  # the record and its CRC
        count += 1
  return count


def test_sidrec_data_prepares_a_synthetic_dataset(tmp_path, capsys):
  import json
  import os
  out = tmp_path / "out"
  config = tmp_path / "config.json"  # a codebook that 150 items can fill (data/checks.py)
  config.write_text('{"codebook": {"codebook_size": 32}}')
  assert cli.main(["data", "--dataset", "synthetic", "--output", str(out), "--config",
                   str(config), "--synthetic-items", "150", "--synthetic-interactions",
                   "2500"]) == 0
  data = out / "data"
  with open(data / "split_stats.json") as f:
    stats = json.load(f)
  assert stats["dataset"] == "synthetic"
  assert (stats["interactions"], stats["items"]) == (2500, 150)
  counts = {name: _count_tfrecords(os.path.join(data, *sub, "part-*.tfrecord.gz"))
            for name, sub in (("train", ("interactions", "train")),
                              ("eval", ("interactions", "eval")),
                              ("catalog", ("catalog", "items")))}
  assert counts == {"train": stats["train_examples"], "eval": stats["eval_examples"],
                    "catalog": 150}
  assert counts["train"] + counts["eval"] == 2500 and min(counts.values()) > 0
  printed = capsys.readouterr().out
  assert f"{stats['train_examples']:,}" in printed
  assert f"Prepared data written to {out / 'data'}" in printed


def test_sidrec_compile_kubeflow_writes_the_pipeline_json(tmp_path, capsys):
  import json
  path = tmp_path / "kfp" / "pipeline.json"
  assert cli.main(["compile-kubeflow", "--dataset", "synthetic", "--output",
                   str(tmp_path / "out"), "--representations", "sid_spm",
                   "--pipeline-file", str(path), "--pipeline-root", "gs://bucket/root",
                   "--image", "example.com/sidrec:cli"]) == 0
  assert f"Kubeflow V2 pipeline spec written to {path}" in capsys.readouterr().out
  with open(path) as f:
    job = json.load(f)
  tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
  assert {"Transform", "SidSpmTrainer", "SidSpmEvaluator", "SidSpmPusher"} <= set(tasks)
  assert not {"RandomIdTrainer", "NoItemTrainer"} & set(tasks)  # only what was asked for
  assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  # Every container task runs the image (resolver tasks query MLMD and run none).
  assert {e["container"]["image"] for e in executors.values() if "resolver" not in e} == {
      "example.com/sidrec:cli"}


def test_sidrec_predict_ranks_ids_holding_commas_through_a_served_model(tmp_path, capsys):
  """`sidrec serve`'s stand-in answering `sidrec predict`: MovieLens ids are titles with
  commas, given one --item-id each; a new item by its SID."""
  from serving import server as server_lib
  from tests.fixtures import serving_models
  serving_models.write_stand_in_ranker(str(tmp_path / "serving" / "ranker"), 1)
  with server_lib.LocalModelServer(str(tmp_path / "serving"), grpc_port=0,
                                   rest_port=0) as server:
    server.wait_until_ready(timeout=60)
    assert cli.main(["predict", "--server", f"127.0.0.1:{server.rest_port}", "--protocol",
                     "rest", "--model", "ranker", "--user-id", "u1", "--item-id",
                     "Beach, The (2000)", "--item-id", "Heat (1995)", "--history-item",
                     "Toy Story (1995)", "--new-item", "new, unseen=1,2,3"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()]
    assert sum("Beach, The (2000)" in l for l in lines) == 1
    assert any("new, unseen" in l and "SID" in l for l in lines)
    # A model the server does not have: one line naming it, exit 2, no traceback.
    assert cli.main(["predict", "--server", f"127.0.0.1:{server.rest_port}", "--protocol",
                     "rest", "--model", "nope", "--user-id", "u1", "--item-ids", "a"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sidrec: error: predict:") and len(err.strip().splitlines()) == 1
    assert "nope" in err and "Traceback" not in err


def test_sidrec_serve_names_a_missing_model_dir(tmp_path, capsys):
  assert cli.main(["serve", "--model-dir", str(tmp_path / "absent"), "--print-command"]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "absent" in err and "--model-dir" in err


# --- issue 13 §3: every error a user can cause is one line, exit status 2 -------------------
def _exit_status(argv):
  """cli.main's exit status: argparse exits (SystemExit), the rest returns."""
  try:
    return cli.main(argv)
  except SystemExit as e:
    return e.code


def _assert_one_line(capsys, command, fragments):
  captured = capsys.readouterr()
  lines = captured.err.splitlines()
  assert len(lines) == 1, captured.err
  (line,) = lines
  prefix = f"sidrec: error: {command}: " if command else "sidrec: error: "
  assert line.startswith(prefix), line
  for fragment in fragments:
    assert fragment in line, (fragment, line)
  assert "Traceback" not in captured.err and "usage:" not in captured.err
  return line


# (id, argv with {tmp} for tmp_path, {config: JSON text} written to {tmp}/config.json or None,
#  fragments the one line must hold). Every case fails before any work starts.
USER_ERRORS = [
    # argparse: bad values, unknown choices, missing required flags, unknown flags / commands.
    ("bad_int", ["run", "--epochs", "x"], None,
     ["argument --epochs", "invalid int value: 'x'", "`sidrec run --help`"]),
    ("unknown_choice", ["data", "--dataset", "imdb"], None,
     ["argument --dataset", "'imdb'", "ml-1m", "`sidrec data --help`"]),
    ("missing_required", ["compile-kubeflow", "--dataset", "synthetic"], None,
     ["--image", "`sidrec compile-kubeflow --help`"]),
    ("unknown_flag", ["run", "--epohcs", "2"], None,
     ["unrecognized arguments: --epohcs 2", "did you mean --epochs?", "`sidrec run --help`"]),
    ("bad_int_list", ["experiment", "--table-budgets", "65536,8k"], None,
     ["expected comma-separated integers, got '65536,8k'", "`sidrec experiment --help`"]),
    ("unknown_representation", ["run", "--representations", "sid_spm,sid_bpe"], None,
     ["unknown representation(s) ['sid_bpe']", "sid_prefix_ngram"]),
    # --config: the file, its JSON, its types, its field names, its values.
    ("config_missing", ["run", "--config", "{tmp}/absent.json"], None,
     ["--config {tmp}/absent.json: no such file"]),
    ("config_a_directory", ["run", "--config", "{tmp}"], None, ["--config {tmp}: is a directory"]),
    ("config_not_json", ["run", "--config", "{tmp}/config.json"],
     '{\n  "ranking": {"epochs": 2,}\n}',
     ["--config {tmp}/config.json: not valid JSON: line 2, column 27"]),
    ("config_not_an_object", ["run", "--config", "{tmp}/config.json"], '["ranking"]',
     ["--config {tmp}/config.json: expected a JSON object", '["ranking"] (an array)']),
    ("config_wrong_type", ["run", "--config", "{tmp}/config.json"],
     '{"ranking": {"epochs": "x"}}',
     ['--config {tmp}/config.json: ranking.epochs: expected an integer, got "x" (a string)']),
    ("config_float_for_int", ["data", "--config", "{tmp}/config.json"],
     '{"data": {"synthetic": {"num_items": 50.5}}}',
     ["data.synthetic.num_items: expected an integer, got 50.5"]),
    ("config_string_for_bool", ["run", "--config", "{tmp}/config.json"],
     '{"ranking": {"use_history": "yes"}}', ["ranking.use_history: expected true or false"]),
    ("config_number_for_section", ["run", "--config", "{tmp}/config.json"],
     '{"data": {"synthetic": 5}}',
     ["data.synthetic: expected a JSON object (the SyntheticConfig section), got 5"]),
    ("config_unknown_field", ["run", "--config", "{tmp}/config.json"],
     '{"ranking": {"epoch": 2}}',
     ["--config {tmp}/config.json: ranking.epoch: unknown RankingConfig field; "
      "did you mean 'epochs'?"]),
    ("config_unknown_synthetic_field", ["data", "--config", "{tmp}/config.json"],
     '{"data": {"synthetic": {"num_item": 50}}}',
     ["data.synthetic.num_item: unknown SyntheticConfig field; did you mean 'num_items'?"]),
    ("config_unknown_files_field", ["data", "--config", "{tmp}/config.json"],
     '{"data": {"files": {"user_colum": "uid"}}}',
     ["data.files.user_colum: unknown FilesConfig field; did you mean 'user_column'?"]),
    ("config_unknown_override", ["run", "--config", "{tmp}/config.json"],
     '{"codebook_overrides": {"rqvae": {"levls": 6}}}',
     ["codebook_overrides.rqvae.levls: unknown CodebookConfig field; did you mean 'levels'?"]),
    ("config_unknown_representation", ["run", "--config", "{tmp}/config.json"],
     '{"ranking": {"representation": "sid_bpe"}}',
     ["ranking: representation must be one of", "got 'sid_bpe'", "(--config {tmp}/config.json)"]),
    ("config_unknown_representations", ["run", "--config", "{tmp}/config.json"],
     '{"representations": ["sid_spm", "sid_bpe"]}',
     ["representations must be distinct names from", "'sid_bpe'"]),
    ("config_value_a_section_refuses", ["run", "--config", "{tmp}/config.json"],
     '{"split": {"new_item_fraction": 2}}', ["split: new_item_fraction must be in (0, 1)"]),
    ("flag_value_a_section_refuses", ["run", "--epochs", "0"], None,
     ["ranking needs", "epochs", ">= 1"]),
    # The user's own data: flags that cannot go together.
    ("interactions_without_catalog", ["data", "--interactions", "{tmp}/logs.csv"], None,
     ["--interactions needs --catalog PATH too"]),
    ("catalog_without_interactions", ["run", "--catalog", "{tmp}/items.csv"], None,
     ["--catalog needs --interactions PATH too"]),
    ("own_files_with_another_dataset",
     ["data", "--dataset", "ml-1m", "--interactions", "a.csv", "--catalog", "b.csv"], None,
     ["--interactions / --catalog read your own data", "--dataset ml-1m"]),
    ("files_dataset_without_files", ["data", "--dataset", "files"], None,
     ["data.dataset 'files' needs data.files.interactions and data.files.catalog",
      "--interactions PATH --catalog PATH"]),
    ("unknown_column_role", ["data", "--columns", "usr=uid"], None,
     ["argument --columns: unknown role 'usr' (did you mean 'user'?)",
      "user, item, time, label, rating, catalog_item, text, release"]),
    ("malformed_columns", ["data", "--columns", "user:uid"], None,
     ["argument --columns: expected ROLE=COLUMN pairs", "'user:uid'"]),
    ("column_role_twice", ["data", "--columns", "user=a,user=b"], None,
     ["role 'user' is given twice"]),
    ("empty_column", ["data", "--columns", "item="], None, ["item= needs a column name"]),
    ("threshold_without_rating",
     ["data", "--interactions", "a.csv", "--catalog", "b.csv", "--positive-threshold", "3"],
     None, ["--positive-threshold", "--columns rating=COL"]),
    ("files_flag_without_files", ["run", "--format", "csv"], None,
     ["--format describes your own data files", "'ml-1m'", "--interactions PATH --catalog PATH"]),
    ("bad_format", ["data", "--format", "xlsx"], None, ["argument --format", "'xlsx'", "parquet"]),
    ("bad_delimiter", ["data", "--delimiter", ";;"], None,
     ["argument --delimiter: expected one character", "';;'"]),
    ("bad_user_feature", ["data", "--interactions", "a.csv", "--catalog", "b.csv",
                          "--user-features", "country,device-type"], None,
     ["data.files.user_features: 'device-type'", "--user-features"]),
    ("user_feature_twice", ["data", "--interactions", "a.csv", "--catalog", "b.csv",
                            "--user-features", "country,country"], None,
     ["data.files.user_features lists a column twice"]),
]


@pytest.mark.parametrize("argv, config, fragments", [c[1:] for c in USER_ERRORS],
                         ids=[c[0] for c in USER_ERRORS])
def test_every_user_error_is_one_line_and_exit_status_2(argv, config, fragments, tmp_path,
                                                        capsys):
  if config is not None:
    (tmp_path / "config.json").write_text(config)
  argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
  command = argv[0]
  assert _exit_status(argv + ["--output", str(tmp_path / "out")]) == 2
  _assert_one_line(capsys, command, [f.replace("{tmp}", str(tmp_path)) for f in fragments])
  assert not (tmp_path / "out").exists()  # nothing ran


def test_top_level_errors_are_one_line_too(capsys):
  assert _exit_status(["rn"]) == 2
  _assert_one_line(capsys, "", ["invalid choice: 'rn'", "'run'", "`sidrec --help`"])
  assert _exit_status([]) == 2
  _assert_one_line(capsys, "", ["required: command"])


def test_debug_shows_the_traceback_instead(tmp_path, capsys):
  config = tmp_path / "config.json"
  config.write_text('{"ranking": {"epochs": "x"}}')
  for argv in (["run", "--config", str(config), "--debug"],
               ["--debug", "run", "--config", str(config)]):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ConfigError: ranking.epochs: expected an integer" in err  # the cause, chained
    assert err.rstrip().splitlines()[-1].startswith("tfx_pipeline.cli.UsageError: --config")
  assert cli.main(["run", "--config", str(config)]) == 2  # without --debug: one line again
  assert "Traceback" not in capsys.readouterr().err


def _fake_module(monkeypatch, name, **functions):
  """Stands in for a heavy module (TFX) the command imports, e.g. tfx_pipeline.local_runner."""
  import importlib
  import sys
  import types
  module = types.ModuleType(name)
  for attr, fn in functions.items():
    setattr(module, attr, fn)
  package, _, leaf = name.rpartition(".")
  monkeypatch.setitem(sys.modules, name, module)
  monkeypatch.setattr(importlib.import_module(package), leaf, module, raising=False)
  return module


def _raiser(error):
  def fn(*args, **kwargs):
    raise error
  return fn


def _data_errors():
  from contracts.embeddings_io import EmbeddingValidationError
  from tfx_pipeline.data.errors import DataError, DataValidationError, DatasetNotFoundError
  return [
      DataValidationError("logs/part-3.csv", 17, "clicked", "'yes' is not 0 or 1",
                          "write 0/1 labels or name a rating column with --columns rating=COL"),
      DatasetNotFoundError("MovieLens 1M is not installed: pip install gt-movielens-1m"),
      DataError("synthetic: the split leaves no training interactions\n(time cut 0.9)"),
      EmbeddingValidationError("emb.npy: item 'sku-4' (row 5) has a NaN or infinite value"),
  ]


@pytest.mark.parametrize("command", ["data", "run", "experiment", "serve-demo"])
def test_data_errors_of_every_command_are_one_line(command, monkeypatch, tmp_path, capsys):
  from tfx_pipeline import experiment
  from tfx_pipeline.data import prepare
  for error in _data_errors():
    raiser = _raiser(error)
    monkeypatch.setattr(prepare, "prepare_data", raiser)
    monkeypatch.setattr(experiment, "run_experiment", raiser)
    _fake_module(monkeypatch, "tfx_pipeline.local_runner", run=raiser)
    _fake_module(monkeypatch, "tfx_pipeline.serving_demo", run=raiser)
    assert cli.main([command, "--dataset", "synthetic", "--output", str(tmp_path)]) == 2
    line = _assert_one_line(capsys, command, [])
    assert line == f"sidrec: error: {command}: {' '.join(str(error).split())}"
  first = _data_errors()[0]
  assert "logs/part-3.csv, line 17, field 'clicked'" in str(first) and "Fix: " in str(first)


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
  _fake_module(monkeypatch, "tfx_pipeline.local_runner",
               run=_raiser(RuntimeError("an internal bug")))
  with pytest.raises(RuntimeError, match="an internal bug"):
    cli.main(["run", "--dataset", "synthetic", "--output", str(tmp_path / "out")])
  # A ValueError deep inside a step is a bug too (only the CLI's own checks are usage errors).
  _fake_module(monkeypatch, "tfx_pipeline.local_runner", run=_raiser(ValueError("deep")))
  with pytest.raises(ValueError, match="deep"):
    cli.main(["run", "--dataset", "synthetic", "--output", str(tmp_path / "out")])


def test_bad_own_files_fail_in_data_preparation_as_one_line(tmp_path, capsys):
  """Real tiny files: the data layer's DataError reaches the user as one line."""
  (tmp_path / "items.csv").write_text("item_id,text\nsku-1,a red shirt\nsku-2,blue jeans\n")
  (tmp_path / "logs.csv").write_text("user,item_id,timestamp,label\nu1,sku-1,1600000000,1\n")
  assert cli.main(["data", "--interactions", str(tmp_path / "logs.csv"), "--catalog",
                   str(tmp_path / "items.csv"), "--columns", "user=uid",
                   "--output", str(tmp_path / "out")]) == 2
  _assert_one_line(capsys, "data", ["logs.csv", "uid"])
  assert cli.main(["data", "--interactions", str(tmp_path / "absent.csv"), "--catalog",
                   str(tmp_path / "items.csv"), "--output", str(tmp_path / "out")]) == 2
  _assert_one_line(capsys, "data", ["absent.csv"])
  assert not (tmp_path / "out" / "data").exists()


# --- the output directory: checked before anything runs -------------------------------------
def test_an_output_that_is_a_file_is_refused_and_left_alone(tmp_path, capsys):
  existing = tmp_path / "results.txt"
  existing.write_text("precious")
  for command in ("data", "run", "experiment", "serve-demo"):
    assert cli.main([command, "--dataset", "synthetic", "--output", str(existing)]) == 2
    _assert_one_line(capsys, command, [f"--output {existing} is an existing file, not a "
                                       "directory", "give --output a directory"])
  assert cli.main(["data", "--dataset", "synthetic", "--output", str(existing / "sub")]) == 2
  _assert_one_line(capsys, "data", [f"--output {existing / 'sub'}: {existing} is a file"])
  # The same from a --config file's output_dir.
  config = tmp_path / "config.json"
  config.write_text('{"output_dir": "%s"}' % existing)
  assert cli.main(["data", "--dataset", "synthetic", "--config", str(config)]) == 2
  _assert_one_line(capsys, "data", [f"output_dir {existing} (--config {config}) is an "
                                    "existing file", "set output_dir to a directory"])
  assert existing.read_text() == "precious" and sorted(os.listdir(tmp_path)) == [
      "config.json", "results.txt"]


def test_an_output_whose_nearest_parent_is_not_writable_is_refused(tmp_path, monkeypatch,
                                                                   capsys):
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o555)
  real_access = os.access
  # As root, os.access grants everything: answer for the locked directory as for a user.
  monkeypatch.setattr(os, "access", lambda path, mode: False if os.path.abspath(path) == str(
      locked) and mode & os.W_OK else real_access(path, mode))
  try:
    for output, what in ((locked / "runs" / "a", "its nearest existing parent"),
                         (locked, "the directory")):
      assert cli.main(["data", "--dataset", "synthetic", "--output", str(output)]) == 2
      _assert_one_line(capsys, "data", [f"--output {output}: {what} {locked} is not writable",
                                        "give --output a directory you can write to"])
    assert os.listdir(locked) == []
    # Reading commands do not need to write there (compile-kubeflow, serve-demo).
    args = cli.make_parser().parse_args(["serve-demo", "--output", str(locked)])
    assert cli.build_config(args).output_dir == str(locked)
  finally:
    locked.chmod(0o755)


def test_remote_output_dirs_are_left_to_their_file_system():
  args = cli.make_parser().parse_args(["run", "--output", "gs://bucket/sidrec"])
  assert cli.build_config(args).output_dir == "gs://bucket/sidrec"


# --- the user's own data: flags onto FilesConfig ---------------------------------------------
def test_own_data_flags_map_onto_files_config(tmp_path):
  from contracts import config as config_lib
  args = cli.make_parser().parse_args([
      "data", "--interactions", "logs/*.parquet", "--catalog", "gs://b/items.csv",
      "--columns", "user=uid,item=sku,time=ts,label=clicked,rating=stars,catalog_item=id,"
      "text=desc,release=released", "--user-features", "country, device",
      "--positive-threshold", "3.5", "--format", "parquet", "--delimiter", "\\t",
      "--no-header", "--text-template", "{title}. Genres: {genres}",
      "--output", str(tmp_path / "out")])
  config = cli.build_config(args)
  assert config.data.dataset == "files"
  assert config.data.files == config_lib.FilesConfig(
      interactions="logs/*.parquet", catalog="gs://b/items.csv", format="parquet",
      delimiter="\t", header=False, user_column="uid", item_column="sku", time_column="ts",
      label_column="clicked", rating_column="stars", positive_threshold=3.5,
      user_features=("country", "device"), catalog_item_column="id", text_column="desc",
      text_template="{title}. Genres: {genres}", release_column="released")
  # The defaults stand where no flag is given.
  config = cli.build_config(cli.make_parser().parse_args(
      ["run", "--interactions", "a.csv", "--catalog", "b.csv", "--delimiter", "tab"]))
  assert config.data.files == config_lib.FilesConfig(interactions="a.csv", catalog="b.csv",
                                                     delimiter="\t")
  assert not tmp_path.joinpath("out").exists()


def test_own_data_flags_override_the_config_file(tmp_path):
  from contracts import config as config_lib
  path = tmp_path / "config.json"
  path.write_text(
      '{"data": {"dataset": "files", "files": {"interactions": "old/*.csv", '
      '"catalog": "items.csv", "user_column": "customer", "delimiter": ";", '
      '"header": false, "rating_column": "stars", "user_features": ["country"]}}}')
  config = cli.build_config(cli.make_parser().parse_args(
      ["data", "--config", str(path), "--interactions", "new/*.csv", "--columns", "user=uid",
       "--user-features", "none", "--header", "--positive-threshold", "4.5"]))
  assert config.data.files == config_lib.FilesConfig(
      interactions="new/*.csv", catalog="items.csv", user_column="uid", delimiter=";",
      header=True, rating_column="stars", positive_threshold=4.5, user_features=())
  # A config naming the dataset files without paths: the flags give them.
  path.write_text('{"data": {"dataset": "files"}}')
  config = cli.build_config(cli.make_parser().parse_args(
      ["data", "--config", str(path), "--interactions", "a.csv", "--catalog", "b.csv"]))
  assert (config.data.dataset, config.data.files.interactions) == ("files", "a.csv")
  # Giving the paths switches a config's other dataset to files; --dataset then overrides.
  path.write_text('{"data": {"dataset": "ml-100k", "files": {"interactions": "a.csv", '
                  '"catalog": "b.csv"}}}')
  args = ["data", "--config", str(path)]
  assert cli.build_config(cli.make_parser().parse_args(args)).data.dataset == "ml-100k"
  assert cli.build_config(cli.make_parser().parse_args(
      args + ["--catalog", "c.csv"])).data.dataset == "files"
  assert cli.build_config(cli.make_parser().parse_args(
      args + ["--dataset", "files"])).data.files.catalog == "b.csv"


def test_data_help_states_the_input_contract(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["data", "--help"])
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  for fragment in ("--interactions PATH", "--catalog PATH", "unix seconds", "ISO-8601",
                   "0/1 label", "--positive-threshold", "categorical", "--text-template",
                   "release time", "precomputed embeddings", "CSV/TSV", "Parquet",
                   "TFRecord of tf.Examples", "a glob or a directory", "gs://",
                   "catalog_item (the item column)", "--debug"):
    assert fragment in out, fragment
  assert ("sidrec run --interactions 'logs/*.parquet' --catalog items.csv \\\n"
          "    --columns user=uid,item=sku,time=ts,label=clicked --user-features "
          "country,device") in out


def test_summarize_only_over_an_empty_output_is_one_line_naming_the_fix(tmp_path, capsys):
  assert cli.main(["experiment", "--output", str(tmp_path / "out"), "--seeds", "0",
                   "--summarize-only"]) == 2
  (line,) = capsys.readouterr().err.strip().splitlines()
  assert line.startswith("sidrec: error: experiment: --summarize-only: nothing recorded in ")
  assert line.endswith("summarize with the config, seeds and flags the runs were made with, "
                       "or run them first")
