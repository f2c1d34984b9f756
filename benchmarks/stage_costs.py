"""Every Beam stage of the DAG in seconds per 10^6 records, against a bare Beam pass.

    TF_USE_LEGACY_KERAS=1 python benchmarks/stage_costs.py [--dataset ml-1m]
        [--output /tmp/sidrec-stage-costs] [--through packer]
    ... --dataset synthetic --interactions 250000,1000000,4000000 --items 100000

Runs the sidrec DAG (the default representations, as `make demo` does) from an empty pipeline
root with LocalDagRunner and the local Beam arguments: all of it (the default) or up to the
ExamplePacker (`--through packer`). The DAG's Transform only analyses (materialize=False),
so its line is the analyzers' price; the per-record transform runs in the ExamplePacker.

The baseline, timed twice in the same process with the same runner right after the DAG: a bare
Beam pass over InteractionExampleGen's output (read the GZIP'd TFRecords, parse each
tf.Example, serialize it, write GZIP'd TFRecords). Each stage's line: its seconds, the records
it reads (the interactions; the eval split for an Evaluator; the train split for the
Transform, which analyses it; the catalog for the item stages),
seconds per 10^6 of them, and the ratio of that to the bare pass's per-record cost (issue 15's
target: no stage above 3x, Transform's analyzers apart). The machine's matmul rate and the
peak memory are printed beside them: the highest resident set of the process that ran the DAG
(the in-memory DirectRunner and the Trainers run in it) and all its descendants at once,
sampled every 0.5 s from /proc, overall and per stage (a stage that frees little shows what it
added); and, as an upper bound, the process's own peak plus its largest child's, which need not
have been at the same time (on synthetic 10^6: 11.0 GB against 4.9 GB sampled).

With several `--interactions`, each size runs in its own process (so its peak memory is its
own) and output directory, and the last table gives each stage's time ratio per 4x more
interactions (linear: 4.0; the target: at most 4.4).
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine_rate import matmul_gflops  # noqa: E402
from contracts import config as config_lib  # noqa: E402

# Stages whose records are the catalog's items, not the interactions.
ITEM_STAGES = ("CatalogExampleGen", "ContentEmbedder", "SemanticIdAssigner")
NOT_BEAM = ("CodebookTrainer", "Trainer", "SchemaGen", "ExampleValidator", "ContentAligner",
            "Resolver", "ServingGate", "Pusher")


def bare_pass(source_dir: str, beam_args: tuple) -> float:
  """Seconds of read -> parse -> serialize -> write over every split's records, same runner."""
  import apache_beam as beam
  import tensorflow as tf
  from apache_beam.options.pipeline_options import PipelineOptions
  files = os.path.join(source_dir, "Split-*", "*")
  target = tempfile.mkdtemp(prefix="sidrec-bare-pass-")
  start = time.perf_counter()
  with beam.Pipeline(options=PipelineOptions(list(beam_args))) as pipeline:
    _ = (pipeline
         | beam.io.ReadFromTFRecord(files)
         | beam.Map(tf.train.Example.FromString)
         | beam.Map(lambda e: e.SerializeToString())
         | beam.io.WriteToTFRecord(os.path.join(target, "data"), file_name_suffix=".gz"))
  seconds = time.perf_counter() - start
  shutil.rmtree(target, ignore_errors=True)
  return seconds


class MemorySampler:
  """Samples the resident set of this process plus all its descendants every `period` s."""

  def __init__(self, period: float = 0.5):
    import threading
    self.period, self.samples = period, []
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, daemon=True)

  @staticmethod
  def tree_rss_bytes(root: int) -> int:
    parents = {}
    for entry in os.listdir("/proc"):
      if entry.isdigit():
        try:
          with open(f"/proc/{entry}/stat") as f:
            parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
          continue
    tree, todo = set(), [root]
    while todo:
      pid = todo.pop()
      tree.add(pid)
      todo.extend(child for child, parent in parents.items() if parent == pid)
    page, total = os.sysconf("SC_PAGE_SIZE"), 0
    for pid in tree:
      try:
        with open(f"/proc/{pid}/statm") as f:
          total += int(f.read().split()[1]) * page
      except (OSError, IndexError, ValueError):
        continue
    return total

  def _loop(self):
    while not self._stop.wait(self.period):
      self.samples.append((time.time(), self.tree_rss_bytes(os.getpid())))

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()

  def peak_gb_between(self, start: float, end: float) -> float:
    inside = [rss for t, rss in self.samples if start <= t <= end]
    return max(inside) / 2**30 if inside else float("nan")


def count_records(pattern: str) -> int:
  import tensorflow as tf
  files = sorted(glob.glob(pattern))
  return sum(1 for _ in tf.data.TFRecordDataset(files, "GZIP" if files[0].endswith(".gz")
                                                else "")) if files else 0


def records_of(stage: str, counts: dict) -> int:
  if any(stage.endswith(suffix) or stage == suffix for suffix in ITEM_STAGES):
    return counts["items"]
  if stage.endswith("Evaluator"):
    return counts["eval"]
  if stage == "Transform":  # the analysis alone, over the training split
    return counts["train"]
  return counts["interactions"]


def run_size(base: config_lib.PipelineConfig, args, interactions) -> dict:
  from tests.fixtures import partial_pipeline
  from tfx_pipeline import local_runner
  from tfx_pipeline import pipeline as pipeline_lib
  out = os.path.join(args.output, f"n{interactions}" if interactions else base.data.dataset)
  shutil.rmtree(out, ignore_errors=True)
  data = base.data
  if interactions:
    data = dataclasses.replace(data, synthetic=dataclasses.replace(
        data.synthetic, num_interactions=interactions, num_items=args.items,
        num_users=max(500, interactions // 100)))
  # The dataset's defaults (the synthetic set's embedding files) are under this output dir.
  config = config_lib.with_dataset_defaults(dataclasses.replace(base, output_dir=out, data=data))
  local_runner.ensure_data(config)
  beam_args = local_runner.local_beam_args(config)
  full = pipeline_lib.create_pipeline(
      dataclasses.replace(config, beam_pipeline_args=beam_args), local_runner.metadata_config(config))
  ids = [c.id for c in full.components]
  targets = ["ExamplePacker"] if args.through == "packer" else ids
  rate_before = matmul_gflops()
  print(f"\n== {out}: matmul {rate_before:.0f} GFLOP/s, load {os.getloadavg()[0]:.2f}", flush=True)
  start = time.time()
  spans = {}
  with MemorySampler() as memory:
    seconds = partial_pipeline.run_partial(config, targets, started=spans)
  wall = time.time() - start
  stage_peak_gb = {stage: memory.peak_gb_between(spans[stage], spans[stage] + s)
                   for stage, s in seconds.items() if stage in spans}
  examples = glob.glob(os.path.join(config.pipeline_root, "InteractionExampleGen", "examples",
                                    "*"))
  source = max(examples, key=os.path.getmtime)
  counts = {"train": count_records(os.path.join(source, "Split-train", "*")),
            "eval": count_records(os.path.join(source, "Split-eval", "*"))}
  counts["interactions"] = counts["train"] + counts["eval"]
  catalog = max(glob.glob(os.path.join(config.pipeline_root, "CatalogExampleGen", "examples",
                                       "*")), key=os.path.getmtime)
  counts["items"] = count_records(os.path.join(catalog, "Split-*", "*"))
  bare = [bare_pass(source, beam_args)]
  bare.append(bare_pass(source, beam_args))
  rate_after = matmul_gflops()
  peak_gb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss +
             resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 2**20
  return dict(out=out, seconds=seconds, wall=wall, counts=counts, bare=bare, peak_gb=peak_gb,
              stage_peak_gb=stage_peak_gb, tree_peak_gb=memory.peak_gb_between(0, math.inf), rates=(rate_before, rate_after))


def print_size(r: dict) -> None:
  counts, seconds = r["counts"], r["seconds"]
  bare_per_m = sum(r["bare"]) / len(r["bare"]) / counts["interactions"] * 1e6
  print(f"\n{r['out']}: {counts['interactions']:,} interactions ({counts['train']:,} train, "
        f"{counts['eval']:,} eval), {counts['items']:,} items; DAG {r['wall']:.0f}s wall; "
        f"matmul {r['rates'][0]:.0f} / {r['rates'][1]:.0f} GFLOP/s (before / after)")
  print(f"peak memory: {r.get('tree_peak_gb', float('nan')):.2f} GB resident at once (the DAG "
        f"process and its descendants, sampled every 0.5 s); {r['peak_gb']:.2f} GB = the "
        f"process's peak + its largest child's (an upper bound: not at the same time)")
  print(f"bare Beam pass (read, parse, serialize, write; same runner): "
        + " / ".join(f"{b:.1f}s" for b in r["bare"]) + f" = {bare_per_m:.1f} s per 10^6 records")
  print(f"{'stage':40s}{'peak GB':>8s}{'seconds':>9s}{'records':>11s}{'s/10^6':>9s}"
        f"{'x bare':>8s}")
  for stage, s in seconds.items():
    peak = f"{r.get('stage_peak_gb', {}).get(stage, float('nan')):8.2f}"
    if any(part in stage for part in NOT_BEAM):
      print(f"{stage:40s}{peak}{s:9.1f}   (not Beam)")
      continue
    n = records_of(stage, counts)
    per_m = s / n * 1e6 if n else float("nan")
    note = "   (its analyzers, apart from the target)" if stage == "Transform" else ""
    print(f"{stage:40s}{peak}{s:9.1f}{n:11,d}{per_m:9.1f}{per_m / bare_per_m:8.2f}{note}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", default="ml-1m", choices=config_lib.DATASETS[:3])
  parser.add_argument("--output", default="/tmp/sidrec-stage-costs")
  parser.add_argument("--through", choices=("packer", "pushers"), default="pushers")
  parser.add_argument("--interactions", default="",
                      help="synthetic only: comma-separated sizes, e.g. 250000,1000000,4000000")
  parser.add_argument("--items", type=int, default=100_000, help="synthetic catalog size")
  parser.add_argument("--result-file", help=argparse.SUPPRESS)  # one size, in a child process
  args = parser.parse_args()
  sizes = [int(v) for v in args.interactions.split(",") if v.strip()]
  if sizes and args.dataset != "synthetic":
    parser.error("--interactions needs --dataset synthetic")
  base = config_lib.replace_section(config_lib.PipelineConfig(output_dir=args.output), "data",
                                    dataset=args.dataset)
  print(f"{os.cpu_count()} cores; representations {', '.join(base.representations)}")
  if args.result_file:
    with open(args.result_file, "w") as f:
      json.dump(run_size(base, args, sizes[0] if sizes else None), f)
    return
  results = []
  for n in sizes or [None]:
    result_file = os.path.join(tempfile.mkdtemp(prefix="sidrec-stage-costs-"), "result.json")
    command = [sys.executable, os.path.abspath(__file__), "--dataset", args.dataset, "--output",
               args.output, "--through", args.through, "--items", str(args.items),
               "--result-file", result_file] + (["--interactions", str(n)] if n else [])
    log = os.path.join(args.output, f"n{n}.log" if n else f"{args.dataset}.log")
    os.makedirs(args.output, exist_ok=True)
    print(f"running {n or args.dataset} (log: {log})", flush=True)
    with open(log, "w") as f:
      subprocess.run(command, check=True, stdout=f, stderr=subprocess.STDOUT)
    with open(result_file) as f:
      results.append(json.load(f))
  for r in results:
    print_size(r)
  if len(results) > 1:
    print("\ntime ratio per 4x more interactions (linear: 4.0; target: at most 4.4)")
    for small, large in zip(results, results[1:]):
      factor = large["counts"]["interactions"] / small["counts"]["interactions"]
      if factor <= 1:
        continue
      print(f"{small['counts']['interactions']:,} -> {large['counts']['interactions']:,} "
            f"({factor:.2f}x):")
      for stage, s in large["seconds"].items():
        if stage in small["seconds"] and small["seconds"][stage] > 0:
          ratio = s / small["seconds"][stage]
          per_4x = ratio ** (math.log(4) / math.log(factor))
          print(f"  {stage:40s}{ratio:8.2f}  per 4x {per_4x:.2f}")


if __name__ == "__main__":
  main()
