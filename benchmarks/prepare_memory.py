"""Memory of preparing your own data, per interaction, at 10^6 and 10^7 rows.

    TF_USE_LEGACY_KERAS=1 python benchmarks/prepare_memory.py [--rows 1000000,10000000]
        [--work /tmp/sidrec-prepare-memory] [--items 20000] [--users-per-row 0.05]

Writes a synthetic interactions CSV of each size (users u0.., items from a catalog of --items,
increasing times, a 0/1 label, two user feature columns) and, each in a fresh process:
  load       the streaming loader alone (read, validate, keep the per-row arrays)
  streaming  `prepare_data` on it (dataset "files": load, validate, split, write the examples)
  baseline   pandas.read_csv of the same file into one DataFrame (what reading it whole costs;
             the streaming loader keeps arrays, not the file's rows)
and prints, per size, the peak resident memory above the process's memory after its imports,
bytes per interaction, seconds, and the ratios streaming / baseline and 10^7 / 10^6 bytes per
interaction (flat = memory linear in the rows with a constant the split needs, not the file).
The matmul rate is printed beside the times (the VMs drift ±30%).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def write_inputs(directory: str, rows: int, items: int, users_per_row: float) -> dict:
  os.makedirs(directory, exist_ok=True)
  inter = os.path.join(directory, f"interactions-{rows}.csv")
  catalog = os.path.join(directory, "items.csv")
  if not os.path.exists(catalog):
    with open(catalog, "w") as f:
      f.write("item_id,text\n")
      for k in range(items):
        f.write(f"i{k},item {k} of kind {k % 97}\n")
  if not os.path.exists(inter):
    rng = np.random.default_rng(0)
    users = max(int(rows * users_per_row), 1)
    tmp = inter + ".tmp"
    with open(tmp, "w") as f:
      f.write("user_id,item_id,timestamp,label,country,device\n")
      for lo in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - lo)
        u = rng.integers(0, users, n)
        # Items enter over time: item k first appears around row k * rows / items.
        i = np.minimum((lo + np.arange(n)) * items // rows + rng.integers(0, 50, n), items - 1)
        t = 1_600_000_000 + (lo + np.arange(n)) * 3
        lines = [f"u{a},i{b},{c},{d},c{a % 40},d{a % 3}" for a, b, c, d in
                 zip(u, i, t, rng.integers(0, 2, n))]
        f.write("\n".join(lines) + "\n")
    os.rename(tmp, inter)
  return {"interactions": inter, "catalog": catalog}


def _rss_bytes() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(mode: str, inter: str, catalog: str, out: str) -> None:
  """Runs one measurement in this (fresh) process and prints one JSON line."""
  import pandas as pd  # noqa: F401
  from contracts import config as config_lib
  from tfx_pipeline.data import prepare_data
  import tensorflow  # noqa: F401  (imported by prepare_data anyway: count it as a base)
  base = _rss_bytes()
  start = time.time()
  files = config_lib.FilesConfig(interactions=inter, catalog=catalog,
                                 user_features=("country", "device"))
  config = config_lib.PipelineConfig(output_dir=out)
  config = config_lib.replace_section(config, "data", dataset="files", files=files)
  if mode == "streaming":
    stats = prepare_data(config)
    rows = stats["interactions"]
  elif mode == "load":
    from tfx_pipeline.data.files import load_files
    rows = len(load_files(config.data).interactions)
  else:
    frame = pd.read_csv(inter, dtype=str)
    rows = len(frame)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  print(json.dumps({"mode": mode, "rows": rows, "peak_above_base": peak - base,
                    "seconds": round(time.time() - start, 1)}))


def measure(mode: str, paths: dict, out: str) -> dict:
  result = subprocess.run(
      [sys.executable, __file__, "--child", mode, paths["interactions"], paths["catalog"], out],
      check=True, capture_output=True, text=True, cwd=ROOT)
  return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
  if len(sys.argv) > 1 and sys.argv[1] == "--child":
    child(*sys.argv[2:6])
    return
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rows", default="1000000,10000000")
  parser.add_argument("--work", default="/tmp/sidrec-prepare-memory")
  parser.add_argument("--items", type=int, default=20000)
  parser.add_argument("--users-per-row", type=float, default=0.05)
  args = parser.parse_args()
  from benchmarks.machine_rate import matmul_gflops
  sizes = [int(r) for r in args.rows.split(",")]
  per_row = {}
  for rows in sizes:
    paths = write_inputs(args.work, rows, args.items, args.users_per_row)
    print(f"matmul {matmul_gflops():.0f} GFLOP/s; {rows:,} interactions "
          f"({os.path.getsize(paths['interactions']) / 1e6:.0f} MB CSV)", flush=True)
    for mode in ("load", "streaming", "baseline"):
      got = measure(mode, paths, os.path.join(args.work, f"out-{rows}"))
      per_row[(rows, mode)] = got["peak_above_base"] / got["rows"]
      print(f"  {mode:<9} peak +{got['peak_above_base'] / 1e6:8.0f} MB  "
            f"{per_row[(rows, mode)]:6.0f} bytes/interaction  {got['seconds']:7.1f} s",
            flush=True)
    print(f"  bytes per interaction / baseline: load "
          f"{per_row[(rows, 'load')] / per_row[(rows, 'baseline')]:.2f}, streaming prepare "
          f"{per_row[(rows, 'streaming')] / per_row[(rows, 'baseline')]:.2f}")
  if len(sizes) > 1:
    a, b = sizes[0], sizes[-1]
    print(f"bytes per interaction, {b:,} / {a:,} rows: load "
          f"{per_row[(b, 'load')] / per_row[(a, 'load')]:.2f}, streaming prepare "
          f"{per_row[(b, 'streaming')] / per_row[(a, 'streaming')]:.2f}, baseline "
          f"{per_row[(b, 'baseline')] / per_row[(a, 'baseline')]:.2f}")


if __name__ == "__main__":
  main()
