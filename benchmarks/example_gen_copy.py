"""InteractionExampleGen: the copying executor against the stock ImportExampleGen executor.

    TF_USE_LEGACY_KERAS=1 python benchmarks/example_gen_copy.py [--interactions 4000000]
        [--items 100000] [--output /tmp/sidrec-example-gen] [--rounds 2]

Prepares synthetic interactions (as benchmarks/stage_costs.py does), then runs the DAG's
InteractionExampleGen executor over them, stock and copying in turn (`--rounds` pairs), each in
a fresh process on the local Beam arguments, so each process's peak resident set is its own.
Prints each run's seconds, seconds per 10^6 interactions and peak memory, the matmul rate
before and after, and the paired time ratio (copying / stock) of each round.
"""
import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine_rate import matmul_gflops  # noqa: E402
from contracts import config as config_lib  # noqa: E402
from contracts import schema  # noqa: E402

EXECUTORS = {"stock": "tfx.components.example_gen.import_example_gen.executor",
             "copying": "components.import_example_gen.executor"}


def prepared_config(args) -> config_lib.PipelineConfig:
  from tfx_pipeline import local_runner
  base = config_lib.replace_section(config_lib.PipelineConfig(output_dir=args.output), "data",
                                    dataset="synthetic")
  data = dataclasses.replace(base.data, synthetic=dataclasses.replace(
      base.data.synthetic, num_interactions=args.interactions, num_items=args.items,
      num_users=max(500, args.interactions // 100)))
  config = config_lib.with_dataset_defaults(dataclasses.replace(base, data=data))
  local_runner.ensure_data(config)
  return config


def run_one(which: str, data_dir: str, out: str) -> dict:
  """One executor's Do over the interactions, in this (fresh) process."""
  import importlib
  from tfx.types import standard_artifacts
  from tfx.utils import proto_utils
  from tfx_pipeline import pipeline
  component = pipeline._import_example_gen(
      os.path.join(data_dir, schema.INTERACTIONS_DIR), [schema.TRAIN_SPLIT, schema.EVAL_SPLIT],
      "InteractionExampleGen")
  properties = {k: proto_utils.proto_to_json(v) if hasattr(v, "DESCRIPTOR") else v
                for k, v in component.exec_properties.items()}
  executor_class = importlib.import_module(EXECUTORS[which]).Executor
  examples = standard_artifacts.Examples()
  examples.uri = out
  shutil.rmtree(out, ignore_errors=True)
  from tfx.dsl.components.base import base_beam_executor
  from tfx_pipeline import local_runner
  beam_args = local_runner.local_beam_args(
      config_lib.PipelineConfig(output_dir=os.path.dirname(data_dir)))
  context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=list(beam_args))
  start = time.perf_counter()
  executor_class(context).Do({}, {"examples": [examples]}, properties)
  seconds = time.perf_counter() - start
  shutil.rmtree(out, ignore_errors=True)
  return dict(seconds=seconds,
              peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def count(data_dir: str) -> int:
  import tensorflow as tf
  pattern = os.path.join(data_dir, schema.INTERACTIONS_DIR, "*", "*")
  return sum(1 for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), "GZIP"))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--interactions", type=int, default=4_000_000)
  parser.add_argument("--items", type=int, default=100_000)
  parser.add_argument("--output", default="/tmp/sidrec-example-gen")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # which, data dir, result
  args = parser.parse_args()
  if args.child:
    which, data_dir, result = args.child
    with open(result, "w") as f:
      json.dump(run_one(which, data_dir, os.path.join(args.output, f"examples-{which}")), f)
    return
  config = prepared_config(args)
  data_dir = os.path.abspath(config.data_dir)
  n = count(data_dir)
  rate = matmul_gflops()
  print(f"{os.cpu_count()} cores; {n:,} interactions in {data_dir}; matmul {rate:.0f} GFLOP/s")
  ratios = []
  for round_ in range(args.rounds):
    seconds = {}
    for which in EXECUTORS:
      result = os.path.join(args.output, f"result-{which}.json")
      subprocess.run([sys.executable, os.path.abspath(__file__), "--output", args.output,
                      "--child", which, data_dir, result], check=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
      with open(result) as f:
        r = json.load(f)
      seconds[which] = r["seconds"]
      print(f"round {round_ + 1} {which:8s} {r['seconds']:8.1f} s  "
            f"{r['seconds'] / n * 1e6:7.1f} s per 10^6  peak {r['peak_gb']:.2f} GB", flush=True)
    ratios.append(seconds["copying"] / seconds["stock"])
    print(f"round {round_ + 1} copying / stock: {ratios[-1]:.3f}")
  print(f"matmul after: {matmul_gflops():.0f} GFLOP/s; paired ratios copying / stock: "
        + ", ".join(f"{r:.3f}" for r in ratios))


if __name__ == "__main__":
  main()
