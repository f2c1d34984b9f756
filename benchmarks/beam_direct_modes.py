"""Beam DirectRunner in one process vs one worker process per core, per Beam stage of the DAG.

    TF_USE_LEGACY_KERAS=1 python benchmarks/beam_direct_modes.py [--dataset ml-1m]
        [--output /tmp/sidrec-beam-modes] [--workers 0] [--order in_memory,multi_processing]

Runs the sidrec DAG up to the ExamplePacker (every Beam stage; the codebook trainers run too,
they are not Beam) once per mode, each from an empty pipeline root on the same prepared data:
  in_memory          --direct_running_mode=in_memory --direct_num_workers=1 (the default)
  multi_processing   --direct_running_mode=multi_processing --direct_num_workers=N (0 = one
                     per core); each worker is a fresh Python that imports the Beam plugin
                     components/beam_worker.py
and prints each Beam stage's seconds in both modes and the ratio multi / in-memory (< 1 is
faster with workers).

    ... --stages SemanticIdJoiner,Transform [--rounds 2]

re-times only those stages, alternating the modes for --rounds rounds, in the `in_memory`
output of an earlier full run (upstream from the cache; a fresh `--job_name` per run keeps the
timed stages themselves out of it). The machine drifts ±30% within minutes, so the matmul rate is printed
before each mode. Each run's per-stage seconds come from the local runner's progress hook.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine_rate import matmul_gflops  # noqa: E402
from contracts import config as config_lib  # noqa: E402

BEAM_STAGES = ("InteractionExampleGen", "CatalogExampleGen", "StatisticsGen", "ContentEmbedder",
               "RqVaeSemanticIdAssigner", "MixtureOfCodesSemanticIdAssigner",
               "RqKMeansSemanticIdAssigner", "SemanticIdJoiner", "Transform", "ExamplePacker")
TARGETS = ("ExamplePacker", "StatisticsGen", "RqKMeansSemanticIdAssigner")


def mode_args(mode: str, workers: int) -> tuple:
  if mode == "in_memory":
    return ("--direct_running_mode=in_memory", "--direct_num_workers=1")
  return ("--direct_running_mode=multi_processing", f"--direct_num_workers={workers}")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--dataset", default="ml-1m")
  parser.add_argument("--output", default="/tmp/sidrec-beam-modes")
  parser.add_argument("--workers", type=int, default=0)
  parser.add_argument("--order", default="in_memory,multi_processing")
  parser.add_argument("--stages", help="comma-separated stages to re-time (see above)")
  parser.add_argument("--rounds", type=int, default=2)
  args = parser.parse_args()
  from tests.fixtures import partial_pipeline

  base = config_lib.with_dataset_defaults(config_lib.replace_section(
      config_lib.PipelineConfig(output_dir=os.path.join(args.output, "shared")), "data",
      dataset=args.dataset))
  from tfx_pipeline import local_runner
  local_runner.ensure_data(base)
  print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
  if args.stages:
    retime(base, args)
    return
  seconds, wall = {}, {}
  for mode in args.order.split(","):
    out = os.path.join(args.output, mode)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    os.symlink(os.path.abspath(base.data_dir), os.path.join(out, "data"))
    config = dataclasses.replace(base, output_dir=out,
                                 beam_pipeline_args=mode_args(mode, args.workers))
    print(f"{mode}: matmul {matmul_gflops():.0f} GFLOP/s; args {' '.join(mode_args(mode, args.workers))}",
          flush=True)
    start = time.time()
    seconds[mode] = partial_pipeline.run_partial(config, TARGETS)
    wall[mode] = time.time() - start
    print(f"{mode}: DAG up to the ExamplePacker in {wall[mode]:.1f}s", flush=True)

  modes = list(seconds)
  print(f"\n{'stage':34s}" + "".join(f"{m:>18s}" for m in modes) +
        (f"{'ratio':>8s}" if len(modes) == 2 else ""))
  for stage in BEAM_STAGES + ("(all Beam stages)",):
    if stage.startswith("("):
      values = [sum(seconds[m].get(s, 0.0) for s in BEAM_STAGES) for m in modes]
    else:
      values = [seconds[m].get(stage, float("nan")) for m in modes]
    line = f"{stage:34s}" + "".join(f"{v:17.1f}s" for v in values)
    if len(values) == 2 and values[0]:
      line += f"{values[1] / values[0]:8.2f}"
    print(line)


def retime(base, args) -> None:
  from tests.fixtures import partial_pipeline
  stages = args.stages.split(",")
  config = dataclasses.replace(base, output_dir=os.path.join(args.output, "in_memory"))
  rows = []
  for round_ in range(args.rounds):
    for mode in args.order.split(","):
      marker = f"--job_name=sidrec-bench-{mode.replace('_', '-')}-{int(time.time())}"
      rate = matmul_gflops()
      got = partial_pipeline.run_partial(
          config, stages, {s: mode_args(mode, args.workers) + (marker,) for s in stages})
      rows.append((round_, mode, rate, {s: got[s] for s in stages}))
      print(f"round {round_} {mode:17s} matmul {rate:4.0f} GFLOP/s  " +
            "  ".join(f"{s} {got[s]:.1f}s" for s in stages), flush=True)
  first, second = args.order.split(",")
  for s in stages:
    ratios = []
    for round_ in range(args.rounds):
      by_mode = {mode: times[s] for r, mode, _, times in rows if r == round_}
      ratios.append(by_mode[second] / by_mode[first])
    print(f"{s}: {second} / {first} per round: " + ", ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
  main()
