"""DIR/report.md and DIR/plots/*.png: report.json made readable.

One run is one seed: the markdown says so, names the baselines every row is compared with
(`no_item`, the user-features-only floor, and `random_id`, the papers' baseline) and points to
`sidrec experiment` for means and spreads over seeds.
"""
import os
from typing import Dict, List, Optional

from contracts.registry import metrics as metric_registry
from tfx_pipeline.report import atomic_write_text
from tfx_pipeline.report import push_verdicts

PLOTS_DIR = "plots"
AUC_PLOT = "auc_by_representation.png"
METRICS = tuple((m.key, m.label) for m in metric_registry.TABLE)


def _f(value, digits=4) -> str:
  return "–" if value is None else f"{value:.{digits}f}"


def _delta(value, base) -> str:
  return "–" if value is None or base is None else f"{value - base:+.4f}"


def plot_auc_by_representation(representations: Dict[str, dict], path: str) -> Optional[str]:
  """Grouped bars: AUC and GAUC, overall / new / seen items, per representation."""
  if not representations:
    return None
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = list(representations)
  fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(names) + 4), 4.5), sharey=True)
  width = 0.26
  for ax, (prefix, title) in zip(axes, (("auc", "pooled AUC"), ("gauc", "per-user AUC (GAUC)"))):
    for i, (suffix, label) in enumerate((("", "all"), ("_new_items", "new items"),
                                         ("_seen_items", "seen items"))):
      values = [representations[n].get(prefix + suffix) or 0.0 for n in names]
      ax.bar([x + (i - 1) * width for x in range(len(names))], values, width, label=label)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_title(title)
    ax.set_ylim(0.4, max(0.8, max((representations[n].get(prefix) or 0) for n in names) + 0.05))
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def representation_table(reps: Dict[str, dict]) -> List[str]:
  floor = reps.get("no_item", {})
  baseline = reps.get("random_id", {})
  header = ("| representation | " + " | ".join(label for _, label in METRICS)
            + " | GAUC new − no_item | AUC new − random_id | table rows | train ex/s | blessed |")
  lines = [header, "|" + "---|" * (len(METRICS) + 6)]
  for name, r in reps.items():
    cells = [_f(r.get(key)) for key, _ in METRICS]
    lines.append(
        f"| `{name}` | " + " | ".join(cells)
        + f" | {_delta(r.get('gauc_new_items'), floor.get('gauc_new_items'))}"
        + f" | {_delta(r.get('auc_new_items'), baseline.get('auc_new_items'))}"
        + f" | {r.get('table_rows') if r.get('table_rows') is not None else '–'}"
        + f" | {_f(r.get('train_examples_per_sec'), 0)}"
        + f" | {'yes' if r.get('blessed') else 'no'} |")
  verdicts = push_verdicts(reps)
  if verdicts:
    lines += [""] + [f"- {line}" for line in verdicts]
  return lines


def popularity_table(reps: Dict[str, dict]) -> List[str]:
  buckets = sorted({b for r in reps.values() for b in r.get("by_popularity", {})},
                   key=lambda b: int(b.split("-")[0].rstrip("+")))
  if not buckets:
    return []
  lines = ["| representation | " + " | ".join(f"AUC / GAUC, {b} train ratings" for b in buckets)
           + " |", "|" + "---|" * (len(buckets) + 1)]
  for name, r in reps.items():
    pop = r.get("by_popularity", {})
    lines.append(f"| `{name}` | " + " | ".join(
        f"{_f(pop.get(b, {}).get('auc'), 3)} / {_f(pop.get(b, {}).get('gauc'), 3)}"
        for b in buckets) + " |")
  counts = {b: next((r["by_popularity"][b]["eval_examples"] for r in reps.values()
                     if b in r.get("by_popularity", {})), 0) for b in buckets}
  lines.append("| eval examples | " + " | ".join(f"{counts[b]:,}" for b in buckets) + " |")
  return lines


def alignment_seconds(report: dict) -> Dict[str, float]:
  """Seconds of the stages alignment adds (report.alignment_stages, plus exporting the item
  table when the item_id_vocab Trainer is a listed representation's) and of the pipeline."""
  components = report.get("components") or {}
  seconds = components.get("seconds") or {}
  alignment = report.get("alignment") or {}
  stages = alignment.get("stages") or []
  export = (0.0 if "ItemIdVocabTrainer" in (components.get("cached") or [])
            else alignment.get("item_vectors_seconds") or 0.0)  # a cache hit exported nothing
  return {"alignment": round(sum(seconds.get(s, 0.0) for s in stages) + export, 2),
          "pipeline": (report.get("components") or {}).get("pipeline_seconds") or 0.0}


def alignment_lines(report: dict, reps: Dict[str, dict]) -> List[str]:
  from contracts.registry import representations as registry  # pylint: disable=g-import-not-at-top
  a = report.get("alignment")
  if not a:
    return []
  out = ["## Collaborative alignment", "",
         f"Content embeddings mapped ({a.get('method')}) onto the item table the "
         f"`item_id_vocab` ranker learned, fit on {a.get('fit_items', 0):,} training items with "
         f">= {a.get('min_train_interactions')} training interactions, cross-fitted over "
         f"{a.get('folds')} folds: held-out R² {_f(a.get('r2_held_out'), 3)} (in sample "
         f"{_f(a.get('r2_in_sample'), 3)}). Every other item, new ones included, gets the "
         f"map fit on all fit items."]
  t = alignment_seconds(report)
  if t["pipeline"]:
    out[-1] += (f" The alignment stages took {t['alignment']:.0f} s of this run's "
                f"{t['pipeline']:.0f} s ({100 * t['alignment'] / t['pipeline']:.0f}%).")
  rows = [(n, registry.get(n).raw_counterpart) for n in reps
          if n in registry.REPRESENTATIONS and registry.get(n).raw_counterpart]
  if rows:
    out += ["", "| aligned | raw | AUC (aligned − raw) | AUC new | GAUC new |",
            "|---|---|---|---|---|"]
    for name, raw in rows:
      a_, r_ = reps[name], reps.get(raw, {})
      out.append(f"| `{name}` | `{raw}` | " + " | ".join(
          f"{_f(a_.get(k))} ({_delta(a_.get(k), r_.get(k))})"
          for k in ("auc", "auc_new_items", "gauc_new_items")) + " |")
  return out + [""]


def render(report: dict, plot_name: Optional[str]) -> str:
  split = report.get("split", {})
  reps = report.get("representations") or {}
  seeds = sorted({r.get("seed") for r in reps.values() if r.get("seed") is not None})
  out = [f"# sidrec run report: {report.get('dataset')}", ""]
  out.append(f"Eval split: {split.get('eval_examples', 0):,} examples, of which "
             f"{split.get('new_item_eval_examples', 0):,} on {split.get('new_items', 0):,} new "
             f"items (not in the training split); training split "
             f"{split.get('train_examples', 0):,} examples.")
  out.append("")
  if reps:
    out += ["## Item representations", "",
            f"One training run per representation, seed {', '.join(map(str, seeds)) or '?'}: "
            "no spread is measured here (`sidrec experiment` runs several seeds and reports "
            "mean ± standard deviation). AUC is pooled over the slice; GAUC is the mean AUC "
            "over users with both labels in the slice, which removes what user features alone "
            "explain. Baselines: `no_item` (user features only, the floor every item "
            "representation must beat) and `random_id` (hashed item ID, the papers' baseline).",
            ""]
    out += representation_table(reps)
    out.append("")
    if plot_name:
      out += [f"![AUC by representation]({PLOTS_DIR}/{plot_name})", ""]
    pop = popularity_table(reps)
    if pop:
      out += ["### By item popularity (train interactions of the item)", ""] + pop + [""]
  out += alignment_lines(report, reps)
  codebooks = report.get("codebooks") or {}
  if codebooks:
    out += ["## Codebooks", "", "| method | levels × codes | unique SIDs | min code usage | "
            "rel. reconstruction error | prefix cosine | train s |", "|---|---|---|---|---|---|---|"]
    for method, m in codebooks.items():
      cos = ", ".join(_f(c, 2) for c in m.get("prefix_cosine", []))
      out.append(f"| {method} | {m.get('levels')} × {m.get('codebook_size')} | "
                 f"{_f(m.get('unique_sid_ratio'), 3)} | {_f(m.get('min_code_usage'), 2)} | "
                 f"{_f(m.get('relative_reconstruction_error'), 3)} | {cos} | "
                 f"{_f(m.get('train_seconds'), 1)} |")
    out.append("")
  return "\n".join(out) + "\n"


def write_markdown(report: dict, output_dir: str) -> str:
  plot = plot_auc_by_representation(report.get("representations") or {},
                                    os.path.join(output_dir, PLOTS_DIR, AUC_PLOT))
  path = os.path.join(output_dir, "report.md")
  atomic_write_text(path, render(report, AUC_PLOT if plot else None))
  return path
