"""`sidrec experiment`: item representations over seeds, table budgets and MoC scaling factors.

Every cell is one `sidrec run` into the same output directory, so everything upstream of what a
cell changes is served from the pipeline cache:

  main grid      for each table budget, for each seed: the chosen representations
                 (a seed changes only the Trainers; a budget also re-runs Transform, whose
                 SentencePiece vocabulary size is the budget)
  MoC scaling    for each factor s: `moc` with M = L*s parallel codebooks against `sid_unigram`
                 over an RQ-VAE of L*s levels (the same number of codes and table rows per
                 item), for each seed (new codebooks, join and Transform per factor)

Seeds: by default only the ranking seed varies and every cell shares the config's codebooks,
so a spread leaves out codebook training. `codebook_seeds` pairs a codebook seed with each
ranking seed (cell i: codebook_seeds[i], seeds[i]; one codebook seed is shared by all cells):
a new codebook seed re-trains the codebooks and everything downstream of them.

Results: DIR/experiment.json (every run's metrics, and mean / sample standard deviation / n per
cell) and DIR/experiment.md with the comparisons the issue asks for, each with its baseline,
its seeds and its spread, plus plots in DIR/plots/.

Results accumulate: each representation's metrics of each run are kept in
DIR/experiment_runs/<run>/<representation>.json with a fingerprint of the run's settings (the
whole config but the representation list and output dir). The summary takes, for every run of
the plan, each representation recorded there under the same fingerprint, so adding a
representation later (`--representations item_id_vocab`) runs only it and reports it beside
the earlier ones; anything that changes results (epochs, input_cache, codebooks, data) changes
the fingerprint and leaves the earlier rows out. The fingerprint covers settings, not code: each
row also records the code version that produced it (`code_version`), and the summary counts
rows per version, so rows of a results-changing code change can be told apart (give such a
change a setting, or use a fresh output dir). `summarize_only` rebuilds the summary from
what is recorded without running anything (e.g. while an experiment is still running).
"""
import hashlib
import dataclasses
import json
import math
import os
import subprocess
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from contracts import config as config_lib
from contracts.registry import metrics as metric_registry
from contracts.registry import representations as representation_registry
from tfx_pipeline.report import atomic_write_text

# The registry's figures summarized over seeds, then the run's own figures.
METRICS = metric_registry.EXPERIMENT + ("train_examples_per_sec", "table_rows")
MOC_BASELINE = "sid_unigram"


class NothingRecordedError(ValueError):
  """summarize_only found no recorded run for the plan and its settings (a user's mistake:
  another config, output dir or seeds than the runs were made with)."""


@dataclasses.dataclass(frozen=True)
class ExperimentPlan:
  seeds: tuple = (0, 1, 2, 3, 4)  # ranking seeds
  # () = the config's codebook.seed in every cell; else paired with `seeds` (or one for all).
  codebook_seeds: tuple = ()
  table_budgets: tuple = ()  # () = the config's ranking.table_budget only
  moc_scaling_factors: tuple = ()  # () = no MoC sweep
  # False: run only the MoC sweep; the main grid's recorded rows are still summarized.
  run_main_grid: bool = True

  def __post_init__(self):
    if not self.seeds or len(set(self.seeds)) != len(self.seeds):
      raise ValueError(f"experiment needs distinct seeds, got {list(self.seeds)}")
    if len(self.codebook_seeds) not in (0, 1, len(self.seeds)):
      raise ValueError(
          f"codebook seeds pair one-to-one with the ranking seeds: got "
          f"{len(self.codebook_seeds)} codebook seeds {list(self.codebook_seeds)} for "
          f"{len(self.seeds)} ranking seeds {list(self.seeds)}; give {len(self.seeds)} "
          f"codebook seeds, or one for every cell")
    if any(int(s) < 1 for s in self.moc_scaling_factors):
      raise ValueError(f"MoC scaling factors must be >= 1, got {list(self.moc_scaling_factors)}")
    if not self.run_main_grid and not self.moc_scaling_factors:
      raise ValueError("running the MoC sweep only needs MoC scaling factors")

  def seed_pairs(self, base: config_lib.PipelineConfig) -> List[Tuple[int, int]]:
    """(codebook seed, ranking seed) of every cell of a group, in run order."""
    codebook = self.codebook_seeds or (base.codebook.seed,)
    if len(codebook) == 1:
      codebook = codebook * len(self.seeds)
    return list(zip(codebook, self.seeds))


def mean_std(values: Sequence[float]) -> Dict[str, Optional[float]]:
  """Mean, sample standard deviation (n-1; None for one value) and n, ignoring None."""
  vals = [float(v) for v in values if v is not None]
  if not vals:
    return {"mean": None, "std": None, "n": 0}
  mean = sum(vals) / len(vals)
  std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
  return {"mean": round(mean, 5), "std": None if std is None else round(std, 5), "n": len(vals)}


def _pair(row: dict) -> Tuple[Optional[int], int]:
  """A run's cell: (codebook seed, ranking seed)."""
  return row.get("codebook_seed"), row["seed"]


def summarize(runs: List[dict]) -> List[dict]:
  """Per (group, representation, table_budget, moc_scaling): mean/std/n of every metric."""
  cells: Dict[tuple, List[dict]] = {}
  for run in runs:
    key = (run["group"], run["representation"], run["table_budget"], run["moc_scaling"])
    cells.setdefault(key, []).append(run)
  out = []
  for (group, rep, budget, scaling), members in cells.items():
    out.append({"group": group, "representation": rep, "table_budget": budget,
                "moc_scaling": scaling, "seeds": sorted(m["seed"] for m in members),
                "seed_pairs": sorted(list(_pair(m)) for m in members),
                **{metric: mean_std([m.get(metric) for m in members]) for metric in METRICS}})
  return out


def paired_difference(runs: List[dict], a: str, b: str, metric: str, group: str = "main",
                      table_budget=None) -> Dict[str, object]:
  """a - b per cell (same codebook seed and ranking seed, same data), with mean/std over the
  cells and each side's spread."""
  def by_cell(rep):
    return {_pair(r): r.get(metric) for r in runs if r["group"] == group
            and r["representation"] == rep
            and (table_budget is None or r["table_budget"] == table_budget)}
  va, vb = by_cell(a), by_cell(b)
  pairs = sorted(p for p in va if p in vb and va[p] is not None and vb[p] is not None)
  diff = mean_std([va[p] - vb[p] for p in pairs])
  sa, sb = mean_std([va[p] for p in pairs]), mean_std([vb[p] for p in pairs])
  return {"a": a, "b": b, "metric": metric, "seeds": [s for _, s in pairs],
          "seed_pairs": [list(p) for p in pairs], "difference": diff, "a_stats": sa,
          "b_stats": sb}


def _run_row(report: dict, representation: str, cell: "Cell") -> dict:
  r = report["representations"][representation]
  return {"group": cell.group, "representation": representation,
          "codebook_seed": cell.codebook_seed, "seed": cell.seed,
          "table_budget": cell.budget, "moc_scaling": cell.scaling,
          **{m: r.get(m) for m in METRICS}, "blessed": r.get("blessed"),
          "eval_examples": r.get("eval_examples"),
          "eval_examples_new_items": r.get("eval_examples_new_items")}


# Config fields (paths into its JSON) that came after rows were recorded.
_ADDED_AFTER_ROWS_WERE_RECORDED = (
    ("ranking", "distribution"), ("data", "files"), ("alignment",),
    ("ranking", "aligned_sid_codebook"), ("ranking", "history_table"))
# Removed after rows were recorded, with the value every row had (TFMA never read it).
_REMOVED_AFTER_ROWS_WERE_RECORDED = {("evaluation", "inference_batch_size"): 1024}


def settings_fingerprint(config: config_lib.PipelineConfig) -> str:
  """What a run's metrics depend on: the config without its representation list / output dir.

  Hashed in the shape the config had when rows were first recorded (`sid_method` at the top,
  the history length in `ranking` too), so that rows recorded before the SID codebook moved
  into RankingConfig keep matching the same settings.
  """
  settings = json.loads(dataclasses.replace(config, representations=("sid_spm",),
                                            output_dir="").to_json())
  settings.pop("representations", None)
  settings.pop("output_dir", None)
  # What gates or serves a push, not what the metrics depend on.
  settings.pop("serving", None)
  for name in ("max_auc_drop", "max_auc_drop_new_items"):
    settings["evaluation"].pop(name, None)
  settings["sid_method"] = settings["ranking"].pop("sid_codebook")
  # Added after rows were recorded: at their defaults they hash as before.
  defaults = json.loads(config_lib.PipelineConfig().to_json())
  for path in _ADDED_AFTER_ROWS_WERE_RECORDED:
    *sections, name = path
    have, default = settings, defaults
    for section in sections:
      have, default = have.get(section, {}), default.get(section, {})
    if name in have and have[name] == default.get(name):
      have.pop(name)
  for (section, name), value in _REMOVED_AFTER_ROWS_WERE_RECORDED.items():
    settings[section][name] = value
  settings["ranking"]["history_length"] = settings["split"]["history_length"]
  return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def run_name(group: str, seed: int, budget: int, scaling: Optional[int],
             codebook_seed: Optional[int] = None) -> str:
  """The run's folder in DIR/experiment_runs. `codebook_seed` only when the plan varies it:
  names (and so the rows recorded under them) of plans without that axis stay as they were."""
  seeds = (f"codebookseed{codebook_seed}-" if codebook_seed is not None else "") + f"seed{seed}"
  return f"{group}-budget{budget}-{seeds}" + (f"-moc{scaling}" if scaling else "")


def code_version() -> str:
  """The git commit of this source checkout ("+dirty" with uncommitted changes to tracked
  files), else the installed sidrec package's version."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  def git(*args):
    return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                          check=True, timeout=10).stdout.strip()
  try:
    # Only when this source tree is the repository's root, not a package inside some
    # other repository (a virtualenv under a checkout).
    if os.path.realpath(git("rev-parse", "--show-toplevel")) == os.path.realpath(root):
      return git("rev-parse", "--short=12", "HEAD") + (
          "+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
  except (OSError, subprocess.SubprocessError):
    pass
  try:
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    return "sidrec " + metadata.version("sidrec")
  except Exception:  # pylint: disable=broad-except
    return "unknown"


def record_rows(runs_dir: str, name: str, fingerprint: str, rows: List[dict]) -> None:
  code = code_version()
  for row in rows:
    record = {"fingerprint": fingerprint, "recorded": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "row": row, "code": code}
    atomic_write_text(os.path.join(runs_dir, name, row["representation"] + ".json"),
                      json.dumps(record, indent=2, sort_keys=True))


def recorded_rows(runs_dir: str, name: str, fingerprint: str) -> List[dict]:
  """Rows recorded for run `name` under the same settings, in REPRESENTATIONS order."""
  folder = os.path.join(runs_dir, name)
  rows = []
  for file in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
    if file.endswith(".json"):
      with open(os.path.join(folder, file)) as f:
        record = json.load(f)
      if record.get("fingerprint") == fingerprint:
        rows.append(dict(record["row"], recorded=record.get("recorded"),
                         code=record.get("code", "not recorded")))
  order = {r: i for i, r in enumerate(config_lib.RankingConfig.REPRESENTATIONS)}
  return sorted(rows, key=lambda r: order.get(r["representation"], len(order)))


class Cell(NamedTuple):
  """One run of the experiment."""
  group: str  # "main" or "moc_scaling"
  codebook_seed: int
  seed: int  # the ranking seed
  budget: int
  scaling: Optional[int]  # the MoC scaling factor (moc_scaling only)
  config: config_lib.PipelineConfig
  name: str  # its folder in DIR/experiment_runs


def check_plan(base: config_lib.PipelineConfig, plan: ExperimentPlan) -> None:
  """Settings the plan cannot honour: ValueError, before anything runs."""
  if not plan.codebook_seeds:
    return
  # codebook_for() puts codebook_overrides over codebook.seed: such a method would keep its
  # one seed in every cell, and its spread would silently leave out codebook training.
  pinned = [m for m, changes in sorted(base.codebook_overrides.items()) if "seed" in changes]
  if pinned:
    raise ValueError(
        f"codebook seeds {list(plan.codebook_seeds)} set codebook.seed per cell, but "
        f"codebook_overrides.{pinned[0]}.seed would override it: remove `seed` from "
        f"codebook_overrides of {pinned} in the config (or leave out the codebook seeds)")


def plan_configs(base: config_lib.PipelineConfig, plan: ExperimentPlan) -> List[Cell]:
  """Every run of the experiment, in run order."""
  check_plan(base, plan)
  pairs = plan.seed_pairs(base)
  def name(group, codebook_seed, seed, budget, scaling):
    return run_name(group, seed, budget, scaling,
                    codebook_seed if plan.codebook_seeds else None)
  cells = []
  for budget in plan.table_budgets or (base.ranking.table_budget,):
    for codebook_seed, seed in pairs:
      config = config_lib.replace_section(
          config_lib.replace_section(base, "ranking", seed=seed, table_budget=budget),
          "codebook", seed=codebook_seed)
      cells.append(Cell("main", codebook_seed, seed, budget, None, config,
                        name("main", codebook_seed, seed, budget, None)))
  for scaling in (int(s) for s in plan.moc_scaling_factors):
    budget = base.ranking.table_budget
    for codebook_seed, seed in pairs:
      cells.append(Cell("moc_scaling", codebook_seed, seed, budget, scaling,
                        _moc_config(base, scaling, codebook_seed, seed),
                        name("moc_scaling", codebook_seed, seed, budget, scaling)))
  return cells


def _moc_config(base: config_lib.PipelineConfig, scaling: int, codebook_seed: int,
                seed: int) -> config_lib.PipelineConfig:
  """`moc` with M = L*s codebooks and `sid_unigram` over an RQ-VAE of L*s levels."""
  moc = base.codebook_for("moc")
  methods = tuple(dict.fromkeys(tuple(base.codebook_methods) + ("rqvae", "moc")))
  return dataclasses.replace(
      base, codebook_methods=methods,
      ranking=dataclasses.replace(base.ranking, seed=seed, sid_codebook="rqvae"),
      codebook=dataclasses.replace(base.codebook, moc_scaling_factor=scaling,
                                   seed=codebook_seed),
      codebook_overrides=dict(base.codebook_overrides, rqvae={"levels": moc.levels * scaling}),
      representations=("moc", MOC_BASELINE))


def run_experiment(base: config_lib.PipelineConfig, plan: ExperimentPlan,
                   runner=None, summarize_only: bool = False) -> dict:
  """Runs every cell (`local_runner.run` by default) and writes experiment.json / .md.

  `summarize_only`: run nothing; summarize what DIR/experiment_runs holds for the plan.
  """
  if runner is None and not summarize_only:
    from tfx_pipeline import local_runner  # pylint: disable=g-import-not-at-top
    runner = local_runner.run
  started = time.time()
  runs_dir = os.path.join(base.output_dir, "experiment_runs")
  todo = plan_configs(base, plan)
  runs, ran, done = [], 0, 0
  to_run = 0 if summarize_only else sum(
      1 for cell in todo if cell.group != "main" or plan.run_main_grid)
  for cell in todo:
    fingerprint = settings_fingerprint(cell.config)
    if not summarize_only and (cell.group != "main" or plan.run_main_grid):
      done += 1
      print(f"\n=== experiment run {done}/{to_run}: {_describe(cell, plan)} ===", flush=True)
      report = runner(cell.config)
      atomic_write_text(os.path.join(runs_dir, cell.name + ".json"),
                        json.dumps(report, indent=2))
      rows = [_run_row(report, rep, cell) for rep in cell.config.representations
              if rep in report.get("representations", {})]
      record_rows(runs_dir, cell.name, fingerprint, rows)
      ran += len(rows)
    # Rows recorded before rows carried their codebook seed: the fingerprint pins
    # codebook.seed, so it is this cell's.
    runs += [{"codebook_seed": cell.codebook_seed, **row}
             for row in recorded_rows(runs_dir, cell.name, fingerprint)]
  if not runs:
    raise NothingRecordedError(
        f"nothing recorded in {runs_dir} for this plan and these settings (fingerprint "
        f"{settings_fingerprint(todo[0].config)} for the first run): summarize with the "
        f"config, seeds and flags the runs were made with, or run them first")
  reps = [r for r in config_lib.RankingConfig.REPRESENTATIONS
          if any(run["representation"] == r and run["group"] == "main" for run in runs)]
  result = {
      "dataset": base.data.dataset, "plan": dataclasses.asdict(plan),
      "config": json.loads(base.to_json()), "representations": reps, "runs": runs,
      "runs_this_invocation": ran, "runs_recorded_earlier": len(runs) - ran,
      "code_versions": {v: sum(r["code"] == v for r in runs)
                        for v in sorted({r["code"] for r in runs})},
      "cells": summarize(runs), "comparisons": comparisons(runs, reps, base, plan),
      "seconds": round(time.time() - started, 1),
  }
  atomic_write_text(os.path.join(base.output_dir, "experiment.json"),
                    json.dumps(result, indent=2, sort_keys=True))
  from tfx_pipeline import experiment_markdown  # pylint: disable=g-import-not-at-top
  path = experiment_markdown.write_markdown(result, base.output_dir)
  print(f"\nExperiment finished in {result['seconds']:.0f}s ({ran} runs now, "
        f"{len(runs) - ran} recorded earlier under the same settings): "
        f"{os.path.join(base.output_dir, 'experiment.json')}, {path}")
  return result


def _describe(cell: Cell, plan: ExperimentPlan) -> str:
  seeds = (f"codebook seed {cell.codebook_seed}, ranking seed {cell.seed}"
           if plan.codebook_seeds else f"seed {cell.seed}")
  return (f"{cell.group}, {seeds}, table budget {cell.budget}"
          + (f", MoC scaling {cell.scaling}x" if cell.scaling else ""))


def comparisons(runs: List[dict], representations: Sequence[str],
                base: config_lib.PipelineConfig, plan: ExperimentPlan) -> List[dict]:
  """The paired comparisons the report states, for the representations measured."""
  reps = set(representations)
  budget = (plan.table_budgets or (base.ranking.table_budget,))[0]
  wanted = []
  if {"sid_spm", "random_id"} <= reps:
    wanted += [("sid_spm", "random_id", "auc_new_items"), ("sid_spm", "random_id", "auc"),
               ("sid_spm", "random_id", "gauc_new_items")]
  if {"sid_spm", "dense_content"} <= reps:
    wanted.append(("sid_spm", "dense_content", "auc"))
  for rep in [r for r in representations if r != "no_item"]:
    if "no_item" in reps:
      wanted.append((rep, "no_item", "gauc_new_items"))
    if "item_id_vocab" in reps and rep != "item_id_vocab":
      wanted.append((rep, "item_id_vocab", "gauc_new_items"))
  # Aligned representations: the alignment targets (new items against the floors and dense
  # content, seen items level with the item-ID table) and their raw counterparts.
  for rep in [r for r in representations if representation_registry.get(r).aligned]:
    against = [("no_item", "auc_new_items"), ("dense_content", "auc_new_items"),
               ("item_id_vocab", "auc_new_items"), ("item_id_vocab", "auc_seen_items")]
    raw = representation_registry.get(rep).raw_counterpart
    against += [(raw, "auc_new_items"), (raw, "gauc_new_items")] if raw else []
    wanted += [(rep, b, metric) for b, metric in against if b in reps]
  out = [paired_difference(runs, a, b, metric, table_budget=budget)
         for a, b, metric in dict.fromkeys(wanted)]
  for scaling in plan.moc_scaling_factors:
    for metric in ("auc_new_items", "auc", "gauc_new_items"):
      by = [r for r in runs if r["group"] == "moc_scaling" and r["moc_scaling"] == int(scaling)]
      entry = paired_difference(by, "moc", MOC_BASELINE, metric, group="moc_scaling")
      entry["moc_scaling"] = int(scaling)
      out.append(entry)
  return out
