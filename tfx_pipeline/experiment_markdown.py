"""DIR/experiment.md and its plots: experiment.json as tables of mean ± std over seeds.

Beside every spread it says which seeds it covers: ranking seeds on one codebook seed (the
codebooks fixed) or cells each with its own codebook seed (codebook training included)."""
import os
from typing import Dict, List, Optional

from contracts.registry import metrics as metric_registry
from tfx_pipeline.report import atomic_write_text

PLOTS_DIR = "plots"
MAIN_PLOT = "experiment_auc.png"
MOC_PLOT = "experiment_moc_scaling.png"
TABLE_METRICS = tuple((m.key, m.label) for m in metric_registry.TABLE)


def _ms(stat: Optional[dict], digits: int = 4) -> str:
  if not stat or stat.get("mean") is None:
    return "–"
  std = stat.get("std")
  return f"{stat['mean']:.{digits}f} ± {std:.{digits}f}" if std is not None else \
      f"{stat['mean']:.{digits}f}"


def _seed_list(seeds) -> str:
  """0, 1, 2, 3, 5 -> "0-3, 5"."""
  runs: List[List[int]] = []
  for seed in sorted(seeds):
    if runs and seed == runs[-1][-1] + 1:
      runs[-1].append(seed)
    else:
      runs.append([seed])
  return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def seed_coverage(pairs, detail: bool = True) -> str:
  """Which seeds a spread covers, from its cells' (codebook seed, ranking seed) pairs: whether
  it includes codebook training is what a reader needs to weigh it."""
  pairs = sorted(tuple(p) for p in pairs)
  if not pairs:
    return "no cells in common"
  codebooks = sorted({c for c, _ in pairs})
  if len(codebooks) == 1:
    ranking = [s for _, s in pairs]
    return (f"ranking seed{'s' if len(ranking) > 1 else ''} {_seed_list(ranking)} on "
            f"codebook seed {codebooks[0]}")
  text = (f"{len(pairs)} cells, each its own codebook seed and ranking seed"
          if len(codebooks) == len(pairs) else
          f"{len(pairs)} cells over codebook seeds {_seed_list(codebooks)}")
  pairs_text = ", ".join(f"{c}/{s}" for c, s in pairs)
  return f"{text} (codebook/ranking seed {pairs_text})" if detail else text


def _coverage_note(items: List[dict], label, lead: str) -> str:
  """One sentence beside a table: the seeds its spreads cover, per group of rows when the rows
  differ (a representation added later on fewer seeds)."""
  groups: Dict[str, List[str]] = {}
  for item in items:
    groups.setdefault(seed_coverage(item["seed_pairs"]), []).append(label(item))
  if len(groups) == 1:
    return f"{lead} {next(iter(groups))}."
  return f"{lead} " + "; ".join(f"{cov} ({', '.join(labels)})"
                                for cov, labels in groups.items()) + "."


def _seeds_paragraph(result: dict) -> str:
  """The opening statement of what varies between runs."""
  pairs = sorted({tuple(p) for c in result["cells"] for p in c["seed_pairs"]})
  codebook_seeds = sorted({c for c, _ in pairs})
  if len(codebook_seeds) > 1:
    return (f"Seeds: {seed_coverage(pairs)}. A codebook seed re-trains the codebooks and "
            "everything downstream of them, so the spreads include codebook training; data, "
            "split and embeddings are the same in every run.")
  return (f"Ranking seeds {list(result['plan']['seeds'])} (the ranking model's initialisation "
          f"and input order) on codebook seed {codebook_seeds[0]}: data, split, embeddings "
          "and codebooks are the same in every run, so the spreads leave out codebook "
          "training (`--codebook-seeds` varies it too).")


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _save(fig, path: str) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=110)
  os.replace(tmp, path)
  return path


def plot_main(cells: List[dict], path: str) -> Optional[str]:
  main = [c for c in cells if c["group"] == "main"]
  if not main:
    return None
  budgets = sorted({c["table_budget"] for c in main})
  main = [c for c in main if c["table_budget"] == budgets[0]]
  plt = _plt()
  names = [c["representation"] for c in main]
  fig, ax = plt.subplots(figsize=(max(8, 1.5 * len(names) + 3), 4.5))
  width = 0.2
  for i, (key, label) in enumerate((("auc", "AUC"), ("auc_new_items", "AUC new items"),
                                    ("gauc", "GAUC"), ("gauc_new_items", "GAUC new items"))):
    means = [c[key]["mean"] or 0.0 for c in main]
    stds = [c[key]["std"] or 0.0 for c in main]
    ax.bar([x + (i - 1.5) * width for x in range(len(names))], means, width, yerr=stds,
           capsize=2, label=label)
  ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
  ax.set_xticks(range(len(names)))
  ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
  ax.set_ylim(0.45, max(0.8, max((c["auc"]["mean"] or 0) for c in main) + 0.05))
  ax.set_title(f"mean ± std over {seed_coverage(main[0]['seed_pairs'], detail=False)}, "
               f"table budget {budgets[0]:,}", fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  out = _save(fig, path)
  plt.close(fig)
  return out


def plot_moc(cells: List[dict], path: str) -> Optional[str]:
  moc = [c for c in cells if c["group"] == "moc_scaling"]
  if not moc:
    return None
  plt = _plt()
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, key in zip(axes, ("auc_new_items", "auc")):
    for rep in sorted({c["representation"] for c in moc}):
      rows = sorted((c for c in moc if c["representation"] == rep), key=lambda c: c["moc_scaling"])
      ax.errorbar([c["moc_scaling"] for c in rows], [c[key]["mean"] for c in rows],
                  yerr=[c[key]["std"] or 0.0 for c in rows], marker="o", capsize=3, label=rep)
    ax.set_xlabel("codes per item / levels (scaling factor)")
    ax.set_title(key)
    ax.legend(fontsize=8)
  fig.tight_layout()
  out = _save(fig, path)
  plt.close(fig)
  return out


def render(result: dict, main_plot: Optional[str], moc_plot: Optional[str]) -> str:
  cells = result["cells"]
  out = [f"# sidrec experiment: {result['dataset']}", "",
         _seeds_paragraph(result) + " Each cell: mean ± sample standard deviation over its "
         "seeds. Wall time "
         f"{result['seconds'] / 60:.1f} min for {result.get('runs_this_invocation', 0)} "
         "representation-runs; "
         f"{result.get('runs_recorded_earlier', 0)} more were recorded by earlier invocations "
         "under the same settings (DIR/experiment_runs). Rows per code version: "
         + ", ".join(f"`{v}` {n}" for v, n in result.get("code_versions", {}).items())
         + ".", ""]
  main = [c for c in cells if c["group"] == "main"]
  for budget in sorted({c["table_budget"] for c in main}):
    out += [f"## Representations, table budget {budget:,}", "",
            "| representation | " + " | ".join(l for _, l in TABLE_METRICS)
            + " | table rows | train ex/s | n |",
            "|" + "---|" * (len(TABLE_METRICS) + 4)]
    rows = [c for c in main if c["table_budget"] == budget]
    for c in rows:
      out.append(f"| `{c['representation']}` | "
                 + " | ".join(_ms(c[k]) for k, _ in TABLE_METRICS)
                 + f" | {_ms(c['table_rows'], 0)} | {_ms(c['train_examples_per_sec'], 0)}"
                 + f" | {c['auc']['n']} |")
    out += ["", _coverage_note(rows, lambda c: f"`{c['representation']}`", "Spread over"), ""]
  if main_plot:
    out += [f"![AUC over seeds]({PLOTS_DIR}/{main_plot})", ""]
  comps = [c for c in result["comparisons"] if "moc_scaling" not in c]
  if comps:
    out += ["## Paired comparisons (same codebook seed and ranking seed; a − b)", "",
            "| a | b | metric | a | b | a − b | a − b > 2·max(std a, std b) |",
            "|---|---|---|---|---|---|---|"]
    for c in comps:
      d, sa, sb = c["difference"], c["a_stats"], c["b_stats"]
      spread = max(sa.get("std") or 0.0, sb.get("std") or 0.0)
      verdict = "–" if d["mean"] is None or d["n"] < 2 else (
          "yes" if d["mean"] > 2 * spread else "no")
      out.append(f"| `{c['a']}` | `{c['b']}` | {c['metric']} | {_ms(sa)} | {_ms(sb)} | "
                 f"{_ms(d)} | {verdict} |")
    out += ["", _coverage_note(comps, lambda c: f"`{c['a']}` − `{c['b']}` {c['metric']}",
                               "Paired over"), ""]
  moc = [c for c in cells if c["group"] == "moc_scaling"]
  if moc:
    out += ["## Mixture-of-Codes scaling", "",
            "`moc`: M = L·s parallel codebooks, one table each + fusion; `sid_unigram` over an "
            "RQ-VAE of L·s levels (same codes and table rows per item).", "",
            "| s | representation | AUC | AUC new | GAUC new | table rows | n |",
            "|---|---|---|---|---|---|---|"]
    moc = sorted(moc, key=lambda c: (c["moc_scaling"], c["representation"]))
    for c in moc:
      out.append(f"| {c['moc_scaling']} | `{c['representation']}` | {_ms(c['auc'])} | "
                 f"{_ms(c['auc_new_items'])} | {_ms(c['gauc_new_items'])} | "
                 f"{_ms(c['table_rows'], 0)} | {c['auc']['n']} |")
    out += ["", _coverage_note(
        moc, lambda c: f"s = {c['moc_scaling']} `{c['representation']}`", "Spread over"), ""]
    paired = [c for c in result["comparisons"] if "moc_scaling" in c]
    if paired:
      out += ["`moc` − `sid_unigram`, paired per cell (same codebook seed and ranking seed):",
              "", "| s | metric | `moc` − `sid_unigram` | seeds |", "|---|---|---|---|"]
      for c in sorted(paired, key=lambda c: c["moc_scaling"]):
        out.append(f"| {c['moc_scaling']} | {c['metric']} | {_ms(c['difference'])} | "
                   f"{seed_coverage(c['seed_pairs'])} |")
      out.append("")
    if moc_plot:
      out += [f"![MoC scaling]({PLOTS_DIR}/{moc_plot})", ""]
  return "\n".join(out) + "\n"


def write_markdown(result: dict, output_dir: str) -> str:
  plots = os.path.join(output_dir, PLOTS_DIR)
  main_plot = plot_main(result["cells"], os.path.join(plots, MAIN_PLOT))
  moc_plot = plot_moc(result["cells"], os.path.join(plots, MOC_PLOT))
  path = os.path.join(output_dir, "experiment.md")
  atomic_write_text(path, render(result, MAIN_PLOT if main_plot else None,
                                 MOC_PLOT if moc_plot else None))
  return path
