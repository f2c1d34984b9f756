"""Codebook training and assignment throughput at 10^4, 10^5 and 10^6 synthetic items.

    TF_USE_LEGACY_KERAS=1 python benchmarks/codebook_throughput.py [--max-items 100000]
        [--methods rqvae,rqkmeans] [--train-steps 200]

For each size n (10^4 .. --max-items) and method:
- training throughput: embeddings/s over the quantised training steps of `fit` with the default
  CodebookConfig (L=3, K=256, batch 1024), capped at --train-steps steps (default 200) so every
  size trains for the same number of steps: a full 100 epochs of 10^6 items would be ~98,000
  steps and measure the same per-step rate. Warm-up, k-means init (on <= 20,000 sampled items)
  and tracing are reported separately as fixed costs.
- assignment throughput: items/s through the exported SavedModel reloaded with
  tf.saved_model.load, both the `assign` signature (codes only) and `serving_default`
  (codes + reconstruction), over all n items; the time ratio per 10x items shows whether
  assignment scales linearly (ideal ratio 10).
Pass/fail against the targets: RQ-VAE training >= 20,000 embeddings/s, assignment >= 50,000
items/s, assignment time ratio per 10x within [7, 13].

Also printed: the load average and the dense float32 matmul rate measured at start, because on
a shared 2-core machine both vary with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging
import numpy as np
import tensorflow as tf

from components.codebook import base
from components.codebook.train import make_codebook
from contracts.config import CodebookConfig
from machine_rate import matmul_gflops  # benchmarks/machine_rate.py

TRAIN_TARGET = 20_000.0
ASSIGN_TARGET = 50_000.0
RATIO_RANGE = (7.0, 13.0)


def synthetic_items(n: int, dim: int = 384, clusters: int = 1024, seed: int = 0) -> np.ndarray:
  """Clustered unit vectors, generated in float32 chunks (10^6 x 384 = 1.5 GB)."""
  rng = np.random.default_rng(seed)
  centers = rng.standard_normal((clusters, dim), dtype=np.float32)
  centers /= np.linalg.norm(centers, axis=1, keepdims=True)
  out = np.empty((n, dim), np.float32)
  for s in range(0, n, 100_000):
    m = min(100_000, n - s)
    x = centers[rng.integers(clusters, size=m)] + rng.standard_normal(
        (m, dim), dtype=np.float32) * np.float32(0.6 / np.sqrt(dim))
    out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
  return out


def flops_per_item(cfg: CodebookConfig, dim: int):
  """Approximate FLOPs per item: (training step, assign, serve). Dense layers cost 3x their
  forward in a training step (forward + two backward products); the code search 1x."""
  if cfg.method == "rqkmeans":
    search = cfg.levels * cfg.codebook_size * dim
    return None, 2 * search, 2 * search
  dims = [dim] + list(cfg.hidden_dims) + [cfg.latent_dim]
  enc = sum(a * b for a, b in zip(dims[:-1], dims[1:]))
  books = cfg.levels * (cfg.moc_scaling_factor if cfg.method == "moc" else 1)
  search = books * cfg.codebook_size * cfg.latent_dim
  return 2 * (3 * 2 * enc + search), 2 * (enc + search), 2 * (2 * enc + search)


def timed_assign(fn, x: np.ndarray, chunk: int = base.INFERENCE_CHUNK) -> float:
  fn(embeddings=tf.constant(x[:chunk]))  # warm
  t = time.perf_counter()
  for s in range(0, x.shape[0], chunk):
    fn(embeddings=tf.constant(x[s:s + chunk]))["codes"].numpy()
  return time.perf_counter() - t


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--max-items", type=int, default=1_000_000)
  parser.add_argument("--methods", default="rqvae")
  parser.add_argument("--train-steps", type=int, default=200)
  parser.add_argument("--json", default="", help="also write the results to this file")
  args = parser.parse_args(argv)
  logging.set_verbosity(logging.WARNING)

  sizes = [n for n in (10_000, 100_000, 1_000_000) if n <= args.max_items]
  peak = matmul_gflops()
  print(f"load average {os.getloadavg()[0]:.2f}, cores {os.cpu_count()}, "
        f"dense matmul {peak:.0f} GFLOP/s")
  data = synthetic_items(max(sizes))
  results, ok = [], True
  for method in args.methods.split(","):
    prev = None
    for n in sizes:
      x = data[:n]
      cfg = CodebookConfig(method=method, max_steps=args.train_steps)
      peak = matmul_gflops()  # re-measured per row: other jobs come and go
      t0 = time.perf_counter()
      codebook = make_codebook(cfg).fit(x)
      fit_seconds = time.perf_counter() - t0
      st = codebook.training_stats
      tmp = tempfile.mkdtemp(prefix="codebook_bench_")
      try:
        path = codebook.export(os.path.join(tmp, "codebook"))
        loaded = tf.saved_model.load(path)
        assign_s = timed_assign(loaded.signatures["assign"], x)
        serve_s = timed_assign(loaded.signatures["serving_default"], x)
      finally:
        shutil.rmtree(tmp, ignore_errors=True)
      train_flops, assign_flops, _ = flops_per_item(cfg, x.shape[1])
      train_rate = st["train_examples_per_second"] if train_flops else None
      row = {
          "method": method, "items": n, "fit_seconds": round(fit_seconds, 2),
          "load_average": round(os.getloadavg()[0], 2),
          "matmul_gflops": round(peak),
          "train_steps": st.get("train_steps"),
          "train_embeddings_per_s": round(train_rate) if train_rate else None,
          # Share of the dense-matmul rate measured before the row that the step achieves.
          "train_matmul_efficiency": (round(train_rate * train_flops / 1e9 / peak, 2)
                                      if train_rate else None),
          "warmup_seconds": round(st.get("warmup_seconds", 0.0), 2),
          "kmeans_init_seconds": round(st.get("kmeans_init_seconds", st.get("fit_seconds")), 2),
          "assign_seconds": round(assign_s, 3),
          "assign_items_per_s": round(n / assign_s),
          "assign_matmul_efficiency": round(n / assign_s * assign_flops / 1e9 / peak, 2),
          "serve_items_per_s": round(n / serve_s),
      }
      if prev is not None:
        decades = np.log10(n / prev["items"])
        row["assign_time_ratio_per_10x"] = round(
            (assign_s / prev["assign_seconds"]) ** (1.0 / decades), 2)
      checks = {"assign": bool(row["assign_items_per_s"] >= ASSIGN_TARGET)}
      if method == "rqvae":
        checks["train"] = bool(row["train_embeddings_per_s"] >= TRAIN_TARGET)
      if "assign_time_ratio_per_10x" in row and n >= 100_000:
        lo, hi = RATIO_RANGE
        checks["linear"] = bool(lo <= row["assign_time_ratio_per_10x"] <= hi)
      row["pass"] = checks
      ok &= all(checks.values())
      results.append(row)
      prev = row
      print(json.dumps(row), flush=True)

  print("\nmethod    items      train emb/s  assign items/s  serve items/s  time x per 10x  "
        "pass")
  for r in results:
    train = f"{r['train_embeddings_per_s']:,}" if r["train_embeddings_per_s"] else "-"
    print(f"{r['method']:<9} {r['items']:>9,}  {train:>11}  "
          f"{r['assign_items_per_s']:>14,}  {r['serve_items_per_s']:>13,}  "
          f"{r.get('assign_time_ratio_per_10x', '-'):>14}  "
          f"{' '.join(k + ('=ok' if v else '=FAIL') for k, v in r['pass'].items())}")
  print("dense matmul GFLOP/s per row: " + ", ".join(str(r["matmul_gflops"]) for r in results)
        + " (a shared machine: the rates scale with it)")
  print(f"targets: RQ-VAE training >= {TRAIN_TARGET:,.0f} embeddings/s, assignment >= "
        f"{ASSIGN_TARGET:,.0f} items/s, assignment time ratio per 10x in {RATIO_RANGE}; "
        f"training capped at {args.train_steps} steps per size")
  print("PASS" if ok else "FAIL")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=1)
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
