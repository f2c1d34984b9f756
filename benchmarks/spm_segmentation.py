"""SentencePiece sub-ID vocabulary: TF segmentation throughput and SentencePiece training time.

    TF_USE_LEGACY_KERAS=1 python benchmarks/spm_segmentation.py [--batch 1024] [--seconds 3]
        [--sizes 10000,100000] [--configs 3x256,8x2048]

For each SID shape LxK in --configs:
- training time of `train_spm` (writes the .tsv, trains BPE with num_threads=1, reads the model
  back, adds the fallback tokens) on 10^4 and 10^5 distinct synthetic clustered SIDs with Zipf
  counts; budget = L * K + distinct / 2 rows;
- TF segmentation throughput (SIDs/s) of SpmSubIdSegmenter in a tf.function at --batch rows per
  call over the 10^5-SID vocabulary (all SIDs distinct, 20 % of them new combinations), after
  one warm-up call; plus the pure-Python reference's rate for comparison;
- the same on ranking-like batches: 11 x --batch rows (a candidate and 10 history slots per
  example) drawn from the distinct SIDs by their counts, so popular SIDs repeat in a batch;
- mean tokens per SID (BPE pieces merge runs of codes: < L means multi-code pieces are used).
Prints one JSON line per measurement and the load average (2 shared cores: numbers vary).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tensorflow as tf

from tests.fixtures.sids import synthetic_sids
from trainer.spm.tf_segment import SpmSubIdSegmenter
from trainer.spm.vocabulary import train_spm


def _emit(**kv):
  print(json.dumps(kv), flush=True)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--batch", type=int, default=1024)
  p.add_argument("--seconds", type=float, default=3.0)
  p.add_argument("--sizes", default="10000,100000")
  p.add_argument("--configs", default="3x256,8x2048")
  args = p.parse_args()
  _emit(loadavg=os.getloadavg(), cpus=os.cpu_count())
  sizes = [int(s) for s in args.sizes.split(",")]
  for cfg in args.configs.split(","):
    L, K = (int(x) for x in cfg.split("x"))
    vocab = None
    for n in sizes:
      sids, counts = synthetic_sids(n, L, K, seed=0, children=max(8, K // 10))
      budget = L * K + n // 2
      t0 = time.perf_counter()
      vocab = train_spm((sids, counts), L, K, budget)
      dt = time.perf_counter() - t0
      lengths = [len(vocab.segment(s)) for s in sids[:20000]]
      _emit(what="train_spm", config=cfg, distinct_sids=len(sids), budget=budget,
            seconds=round(dt, 3), num_tokens=vocab.num_tokens,
            multi_code_pieces=vocab.num_multi_code_pieces, fallback=vocab.num_fallback,
            tokens_per_sid=round(float(np.mean(lengths)), 3))
    # Throughput on the last (largest) vocabulary.
    new, _ = synthetic_sids(args.batch * 8, L, K, seed=1, children=max(8, K // 10))
    pool = np.concatenate([sids[:args.batch * 32], new])
    pool = pool[np.random.default_rng(0).permutation(len(pool))]
    batches = [tf.constant(pool[i:i + args.batch]) for i in
               range(0, len(pool) - args.batch + 1, args.batch)]
    with tempfile.TemporaryDirectory() as d:
      seg = SpmSubIdSegmenter(vocab.to_asset(os.path.join(d, "v.tsv")))
      fn = tf.function(seg.__call__, input_signature=[tf.TensorSpec([None, L], tf.int64)])
      rng = np.random.default_rng(2)
      ranking = [tf.constant(sids[rng.choice(len(sids), args.batch * 11, p=counts / counts.sum())])
                 for _ in range(8)]
      for what, inputs in (("tf_segment", batches), ("tf_segment_ranking_batches", ranking)):
        fn(inputs[0])
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
          fn(inputs[calls % len(inputs)]).numpy()
          calls += 1
        dt = time.perf_counter() - t0
        rows = int(inputs[0].shape[0])
        _emit(what=what, config=cfg, batch=rows, calls=calls,
              sids_per_s=round(calls * rows / dt), ms_per_batch=round(1000 * dt / calls, 3))
    t0 = time.perf_counter()
    m = 0
    for s in pool[:20000]:
      vocab.segment(s)
      m += 1
    _emit(what="python_reference", config=cfg, sids_per_s=round(m / (time.perf_counter() - t0)))


if __name__ == "__main__":
  main()
