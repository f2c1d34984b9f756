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
      # A deterministic function of (representation, codebook seed, ranking seed): sid_spm
      # beats random_id by 0.05; a codebook seed moves AUC 10x more than a ranking seed.
      base = {"random_id": 0.60, "sid_spm": 0.65, "no_item": 0.55, "moc": 0.62,
              "sid_unigram": 0.61}[rep]
      jitter = 0.001 * config.ranking.seed + 0.01 * config.codebook.seed
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
  assert "| 2 | auc | 0.0100 ± 0.0000 | ranking seeds 0-2 on codebook seed 0 |" in markdown


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


# --- the codebook seed axis ------------------------------------------------------------------
def _seeds(cells):
  return [(c.group, c.config.codebook.seed, c.config.ranking.seed) for c in cells]


def test_codebook_seeds_pair_one_to_one_with_the_ranking_seeds_in_every_group():
  base = config_lib.PipelineConfig(representations=("sid_spm",))
  plan = experiment.ExperimentPlan(seeds=(0, 1, 2), codebook_seeds=(5, 6, 7),
                                   moc_scaling_factors=(2,))
  cells = experiment.plan_configs(base, plan)
  assert _seeds(cells) == [(g, 5 + i, i) for g in ("main", "moc_scaling") for i in range(3)]
  # Every codebook the cell trains (the MoC sweep's RQ-VAE baseline too) gets its seed.
  moc = cells[4].config
  assert (moc.codebook_for("moc").seed, moc.codebook_for("rqvae").seed) == (6, 6)
  assert moc.codebook_for("rqvae").levels == 2 * base.codebook.levels
  # Cells that differ only in the codebook seed keep their own folders.
  assert cells[1].name == "main-budget65536-codebookseed6-seed1"
  assert len({c.name for c in cells}) == 6
  # One codebook seed with several ranking seeds: every cell shares it.
  shared = experiment.plan_configs(base, experiment.ExperimentPlan(seeds=(0, 1, 2),
                                                                   codebook_seeds=(4,)))
  assert _seeds(shared) == [("main", 4, 0), ("main", 4, 1), ("main", 4, 2)]


def test_codebook_seeds_that_cannot_pair_or_would_be_overridden_are_refused():
  with pytest.raises(ValueError, match=r"got 2 codebook seeds \[0, 1\] for 3 ranking seeds "
                     r"\[0, 1, 2\]; give 3 codebook seeds, or one for every cell"):
    experiment.ExperimentPlan(seeds=(0, 1, 2), codebook_seeds=(0, 1))
  pinned = config_lib.PipelineConfig(codebook_overrides={"moc": {"seed": 3}})
  plan = experiment.ExperimentPlan(seeds=(0, 1), codebook_seeds=(0, 1))
  with pytest.raises(ValueError, match=r"codebook_overrides.moc.seed would override it: remove "
                     r"`seed` from codebook_overrides of \['moc'\]"):
    experiment.plan_configs(pinned, plan)
  # Without the axis such a config runs as before (its pinned seed is the user's choice).
  assert len(experiment.plan_configs(pinned, experiment.ExperimentPlan(seeds=(0, 1)))) == 2


def test_without_the_codebook_seed_axis_names_fingerprints_and_recorded_rows_stay_valid(
    tmp_path):
  base = config_lib.PipelineConfig(output_dir=str(tmp_path), representations=("random_id",))
  cells = experiment.plan_configs(base, experiment.ExperimentPlan(seeds=(0, 1)))
  assert [c.name for c in cells] == ["main-budget65536-seed0", "main-budget65536-seed1"]
  # The fingerprint of the defaults (test below), as before the axis existed.
  assert experiment.settings_fingerprint(cells[0].config) == "05adcc315a9daacc"
  assert experiment.settings_fingerprint(cells[1].config) == experiment.settings_fingerprint(
      config_lib.replace_section(base, "ranking", seed=1))
  # A row recorded before rows carried their codebook seed still counts, with the config's.
  folder = tmp_path / "experiment_runs" / "main-budget65536-seed0"
  folder.mkdir(parents=True)
  old_row = {"group": "main", "representation": "random_id", "seed": 0, "table_budget": 65536,
             "moc_scaling": None, "auc": 0.6}
  (folder / "random_id.json").write_text(json.dumps(
      {"fingerprint": "05adcc315a9daacc", "recorded": "2026-11-30T00:00:00", "row": old_row}))
  result = experiment.run_experiment(base, experiment.ExperimentPlan(seeds=(0,)),
                                     summarize_only=True)
  assert [(r["codebook_seed"], r["seed"], r["auc"]) for r in result["runs"]] == [(0, 0, 0.6)]


def test_paired_difference_pairs_runs_by_codebook_seed_and_ranking_seed():
  def row(rep, codebook_seed, seed, auc):
    return {"group": "main", "representation": rep, "codebook_seed": codebook_seed,
            "seed": seed, "table_budget": 1, "auc": auc}
  runs = [row("a", 0, 0, 0.70), row("a", 1, 0, 0.60), row("b", 0, 0, 0.65),
          row("b", 1, 0, 0.55), row("b", 2, 1, 0.50)]
  diff = experiment.paired_difference(runs, "a", "b", "auc")
  # Two cells share ranking seed 0 but not their codebooks: two pairs, each 0.05 apart.
  assert diff["seed_pairs"] == [[0, 0], [1, 0]]
  assert diff["difference"]["mean"] == pytest.approx(0.05) and diff["difference"]["n"] == 2
  # Same ranking seed over other codebooks is no pair: nothing to compare.
  other = [row("a", 1, 0, 0.70), row("b", 0, 0, 0.65)]
  assert experiment.paired_difference(other, "a", "b", "auc")["difference"]["n"] == 0


def test_markdown_says_whether_each_spread_includes_codebook_training(tmp_path):
  base = config_lib.PipelineConfig(output_dir=str(tmp_path / "paired"),
                                   representations=("random_id", "sid_spm"))
  plan = experiment.ExperimentPlan(seeds=(0, 1, 2), codebook_seeds=(0, 1, 2),
                                   moc_scaling_factors=(2,))
  result = experiment.run_experiment(base, plan, runner=_fake_runner([]))
  assert {(r["codebook_seed"], r["seed"]) for r in result["runs"]} == {(0, 0), (1, 1), (2, 2)}
  cell = next(c for c in result["cells"] if c["representation"] == "sid_spm")
  assert cell["seed_pairs"] == [[0, 0], [1, 1], [2, 2]]
  markdown = (tmp_path / "paired" / "experiment.md").read_text()
  covered = ("3 cells, each its own codebook seed and ranking seed "
             "(codebook/ranking seed 0/0, 1/1, 2/2)")
  assert "so the spreads include codebook training" in markdown
  # The spread grows with the codebook seed (fake: 0.011 per cell), and says so beside it.
  assert "| `sid_spm` | 0.6610 ± 0.0110 |" in markdown
  assert f"Spread over {covered}." in markdown  # the representations' table
  assert f"Paired over {covered}." in markdown  # the paired comparisons
  assert f"| 2 | auc | 0.0100 ± 0.0000 | {covered} |" in markdown  # the MoC sweep

  fixed = dataclasses.replace(base, output_dir=str(tmp_path / "fixed"))
  experiment.run_experiment(fixed, experiment.ExperimentPlan(seeds=(0, 1, 2, 3, 4)),
                            runner=_fake_runner([]))
  markdown = (tmp_path / "fixed" / "experiment.md").read_text()
  assert "so the spreads leave out codebook training" in markdown
  assert "Spread over ranking seeds 0-4 on codebook seed 0." in markdown

  # One codebook seed shared by every cell: its codebooks are fixed too.
  shared = dataclasses.replace(base, output_dir=str(tmp_path / "shared"))
  experiment.run_experiment(shared, experiment.ExperimentPlan(seeds=(0, 1), codebook_seeds=(4,)),
                            runner=_fake_runner([]))
  markdown = (tmp_path / "shared" / "experiment.md").read_text()
  assert "on codebook seed 4: data, split, embeddings and codebooks are the same" in markdown
  assert "Spread over ranking seeds 0, 1 on codebook seed 4." in markdown


def test_aligned_representations_are_compared_on_the_alignment_targets():
  """New items against the floors and dense content, seen items against the item-ID table,
  and each aligned representation against its raw counterpart."""
  reps = ("no_item", "item_id_vocab", "dense_content", "sid_prefix_ngram",
          "aligned_sid_prefix_ngram")
  base = config_lib.PipelineConfig(representations=reps)
  runs = [{"group": "main", "representation": rep, "codebook_seed": s, "seed": s,
           "table_budget": base.ranking.table_budget, "auc_new_items": 0.60 + 0.01 * i + 0.001 * s,
           "auc_seen_items": 0.70 + 0.01 * i, "gauc_new_items": 0.5 + 0.01 * i}
          for i, rep in enumerate(reps) for s in (0, 1)]
  got = {(c["a"], c["b"], c["metric"]): c["difference"]
         for c in experiment.comparisons(runs, reps, base, experiment.ExperimentPlan(seeds=(0, 1)))}
  aligned = "aligned_sid_prefix_ngram"
  assert got[(aligned, "no_item", "auc_new_items")]["mean"] == pytest.approx(0.04)
  assert got[(aligned, "no_item", "auc_new_items")]["n"] == 2
  for b, metric in (("dense_content", "auc_new_items"), ("item_id_vocab", "auc_new_items"),
                    ("item_id_vocab", "auc_seen_items"), ("sid_prefix_ngram", "auc_new_items"),
                    ("sid_prefix_ngram", "gauc_new_items"), ("item_id_vocab", "gauc_new_items")):
    assert (aligned, b, metric) in got, (b, metric)
  # A raw representation gets none of the alignment comparisons.
  assert ("sid_prefix_ngram", "dense_content", "auc_new_items") not in got
