"""`sidrec` flags turn into the one PipelineConfig; bad values fail with a message."""
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
  runs = [(group, seed, budget, scaling)
          for group, seed, budget, scaling, _ in experiment.plan_configs(config, plan)]
  assert runs[:4] == [("main", 3, 65536, None), ("main", 1, 65536, None),
                      ("main", 3, 8192, None), ("main", 1, 8192, None)]
  assert [(g, s, f) for g, s, _, f in runs[4:]] == [
      ("moc_scaling", seed, factor) for factor in (1, 2, 3, 7) for seed in (3, 1)]


def test_experiment_defaults_and_sweep_only(monkeypatch):
  from tfx_pipeline import experiment
  _, plan, summarize_only = _experiment_plan(monkeypatch, [])
  assert plan == experiment.ExperimentPlan(seeds=(0, 1, 2, 3, 4), table_budgets=(),
                                           moc_scaling_factors=(), run_main_grid=True)
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
      "sidrec experiment: error: experiment needs distinct seeds, got [0, 0]"]
  config = tmp_path / "config.json"
  config.write_text('{"ranking": {"embeding_dim": 16}}')
  assert cli.main(["run", "--config", str(config)]) == 2
  (line,) = capsys.readouterr().err.strip().splitlines()
  assert line.startswith("sidrec run: error: unknown RankingConfig field(s) ['embeding_dim']")
  assert line.endswith(f"(--config {config})")


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
  assert cli.main(["data", "--dataset", "synthetic", "--output", str(out),
                   "--synthetic-items", "150", "--synthetic-interactions", "2500"]) == 0
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
    # A model the server does not have: one line naming it, exit 1, no traceback.
    assert cli.main(["predict", "--server", f"127.0.0.1:{server.rest_port}", "--protocol",
                     "rest", "--model", "nope", "--user-id", "u1", "--item-ids", "a"]) == 1
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err


def test_sidrec_serve_names_a_missing_model_dir(tmp_path, capsys):
  assert cli.main(["serve", "--model-dir", str(tmp_path / "absent"), "--print-command"]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "absent" in err and "--model-dir" in err
