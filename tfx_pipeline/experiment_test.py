"""The experiment driver over a stand-in runner: which runs it makes, and its statistics."""
import dataclasses
import json
import os

import pytest

from contracts import config as config_lib
from tfx_pipeline import experiment


def _fake_runner(calls):
  def run(config):
    calls.append(config)
    reps = {}
    for i, rep in enumerate(config.representations):
      # A deterministic function of (representation, seed): sid_spm beats random_id by 0.05.
      base = {"random_id": 0.60, "sid_spm": 0.65, "no_item": 0.55, "moc": 0.62,
              "sid_unigram": 0.61}[rep]
      jitter = 0.001 * config.ranking.seed
      reps[rep] = {"auc": base + jitter, "auc_new_items": base - 0.05 + jitter,
                   "auc_seen_items": base + 0.01, "gauc": base, "gauc_new_items": base - 0.1,
                   "gauc_seen_items": base, "calibration": 1.0,
                   "train_examples_per_sec": 1000.0, "table_rows": 10 * (i + 1),
                   "blessed": True, "eval_examples": 100, "eval_examples_new_items": 40}
    return {"representations": reps}
  return run


def test_grid_runs_and_statistics(tmp_path):
  base = config_lib.replace_section(
      config_lib.PipelineConfig(output_dir=str(tmp_path),
                                representations=("no_item", "random_id", "sid_spm")),
      "ranking", table_budget=4096)
  plan = experiment.ExperimentPlan(seeds=(0, 1, 2), moc_scaling_factors=(2,))
  calls = []
  result = experiment.run_experiment(base, plan, runner=_fake_runner(calls))
  main = [c for c in calls if c.representations != ("moc", "sid_unigram")]
  assert [c.ranking.seed for c in main] == [0, 1, 2]
  moc_runs = [c for c in calls if c.representations == ("moc", "sid_unigram")]
  assert len(moc_runs) == 3
  # MoC with M = L*2 codebooks against an RQ-VAE of 2L levels: same codes per item.
  m = moc_runs[0]
  assert m.codebook_for("moc").moc_scaling_factor == 2
  assert m.codebook_for("rqvae").levels == 2 * base.codebook.levels
  assert m.codebook_for("moc").levels == base.codebook.levels

  cell = next(c for c in result["cells"] if c["representation"] == "sid_spm"
              and c["group"] == "main")
  assert cell["auc"]["mean"] == pytest.approx(0.651)
  assert cell["auc"]["std"] == pytest.approx(0.001)
  assert cell["auc"]["n"] == 3 and cell["seeds"] == [0, 1, 2]
  comp = next(c for c in result["comparisons"] if c["a"] == "sid_spm" and c["b"] == "random_id"
              and c["metric"] == "auc_new_items")
  assert comp["difference"]["mean"] == pytest.approx(0.05)
  assert comp["difference"]["std"] == pytest.approx(0.0, abs=1e-9)
  with open(tmp_path / "experiment.json") as f:
    assert json.load(f)["plan"]["seeds"] == [0, 1, 2]
  markdown = open(tmp_path / "experiment.md").read()
  assert "| `sid_spm` | `random_id` | auc_new_items |" in markdown
  assert "0.6510 ± 0.0010" in markdown
  assert os.path.exists(tmp_path / "plots" / "experiment_moc_scaling.png")
  # The fake MoC is 0.01 above sid_unigram in every seed.
  assert "| 2 | auc | 0.0100 ± 0.0000 | [0, 1, 2] |" in markdown


def test_mean_std_edge_cases():
  assert experiment.mean_std([]) == {"mean": None, "std": None, "n": 0}
  assert experiment.mean_std([0.5, None]) == {"mean": 0.5, "std": None, "n": 1}
  with pytest.raises(ValueError, match="distinct seeds"):
    experiment.ExperimentPlan(seeds=(1, 1))


def test_results_accumulate_across_invocations_with_the_same_settings(tmp_path):
  base = config_lib.PipelineConfig(output_dir=str(tmp_path),
                                   representations=("random_id", "sid_spm"))
  plan = experiment.ExperimentPlan(seeds=(0, 1))
  experiment.run_experiment(base, plan, runner=_fake_runner([]))
  # A later invocation adds a representation: only it runs, the summary has all three.
  calls = []
  later = dataclasses.replace(base, representations=("no_item",))
  result = experiment.run_experiment(later, plan, runner=_fake_runner(calls))
  assert [c.representations for c in calls] == [("no_item",), ("no_item",)]
  assert result["representations"] == ["random_id", "no_item", "sid_spm"]
  assert result["runs_this_invocation"] == 2 and result["runs_recorded_earlier"] == 4
  comp = next(c for c in result["comparisons"] if c["a"] == "sid_spm" and c["b"] == "no_item")
  assert comp["difference"]["mean"] == pytest.approx(0.10) and comp["seeds"] == [0, 1]
  assert "| `sid_spm` | `no_item` | gauc_new_items |" in open(tmp_path / "experiment.md").read()

  # Rebuilding the summary runs nothing and gives the same cells.
  again = experiment.run_experiment(later, plan, runner=_fake_runner(calls),
                                    summarize_only=True)
  assert len(calls) == 2 and again["cells"] == result["cells"]

  # Settings that change results (here: epochs) leave the earlier rows out.
  changed = config_lib.replace_section(later, "ranking", epochs=3)
  result = experiment.run_experiment(changed, plan, runner=_fake_runner([]))
  assert result["representations"] == ["no_item"] and result["runs_recorded_earlier"] == 0


def test_moc_sweep_alone_runs_no_main_grid_but_reports_it(tmp_path):
  base = config_lib.PipelineConfig(output_dir=str(tmp_path), representations=("random_id",))
  experiment.run_experiment(base, experiment.ExperimentPlan(seeds=(0, 1)),
                            runner=_fake_runner([]))
  calls = []
  result = experiment.run_experiment(
      base, experiment.ExperimentPlan(seeds=(0, 1), moc_scaling_factors=(3,),
                                      run_main_grid=False), runner=_fake_runner(calls))
  assert [c.representations for c in calls] == [("moc", "sid_unigram")] * 2
  groups = {(c["group"], c["representation"]) for c in result["cells"]}
  assert groups == {("main", "random_id"), ("moc_scaling", "moc"),
                    ("moc_scaling", "sid_unigram")}
  assert result["runs_this_invocation"] == 4 and result["runs_recorded_earlier"] == 2
  with pytest.raises(ValueError, match="MoC scaling factors"):
    experiment.ExperimentPlan(run_main_grid=False)


def test_rows_are_counted_per_code_version(tmp_path):
  base = config_lib.PipelineConfig(output_dir=str(tmp_path), representations=("random_id",))
  plan = experiment.ExperimentPlan(seeds=(0, 1))
  experiment.run_experiment(base, plan, runner=_fake_runner([]))
  # A row recorded before code versions were kept (older sidrec) counts as "not recorded".
  path = tmp_path / "experiment_runs" / "main-budget65536-seed1" / "random_id.json"
  record = json.loads(path.read_text())
  del record["code"]
  path.write_text(json.dumps(record))
  result = experiment.run_experiment(base, plan, summarize_only=True)
  version = experiment.code_version()
  assert version != "unknown"
  assert result["code_versions"] == {version: 1, "not recorded": 1}
  markdown = (tmp_path / "experiment.md").read_text()
  assert f"`{version}` 1" in markdown and "`not recorded` 1" in markdown


def test_summarize_only_without_recorded_runs_names_the_directory(tmp_path):
  base = config_lib.PipelineConfig(output_dir=str(tmp_path))
  with pytest.raises(ValueError, match="experiment_runs"):
    experiment.run_experiment(base, experiment.ExperimentPlan(seeds=(0,)), summarize_only=True)


def test_settings_fingerprints_match_the_rows_recorded_before_the_codebook_keyed_config():
  """Rows recorded before `sid_method` moved to ranking.sid_codebook (and the history length
  to split only) keep matching: the fingerprints are the ones that code computed (commit
  938866a) for the same settings."""
  base = config_lib.PipelineConfig()
  assert experiment.settings_fingerprint(base) == "05adcc315a9daacc"
  changed = config_lib.replace_section(
      config_lib.replace_section(base, "split", history_length=5), "ranking", seed=3,
      table_budget=8192, sid_codebook="moc")
  assert experiment.settings_fingerprint(changed) == "fb8a46ca042e3369"
  assert experiment.settings_fingerprint(dataclasses.replace(
      base, representations=("moc",))) == "05adcc315a9daacc"  # the representations are not
  # ranking.distribution came later: its default hashes as before, another strategy does not.
  assert experiment.settings_fingerprint(config_lib.replace_section(
      base, "ranking", distribution="parameter_server")) != "05adcc315a9daacc"
