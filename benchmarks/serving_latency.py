"""In-process latency of a pushed ranker's serving_default signature (no server, no RPC).

    TF_USE_LEGACY_KERAS=1 python benchmarks/serving_latency.py [--serving-dir sidrec_output/serving]
        [--data-dir sidrec_output/data] [--model sid_spm] [--calls 500] [--quick]

What: the pushed SavedModel (the newest version of --model under --serving-dir, what `make demo`
pushes) loaded with tf.saved_model.load, its `serving_default` concrete function called
directly, the way serving/servables.py's LoadedVersion.run calls it (numpy inputs ->
tf.constant -> signature -> .numpy() outputs; the server adds only the RPC and proto work).
Requests are built from real eval examples (--data-dir/interactions/eval): one user's fields
and history (repeated over the candidates) and the item ids of other eval examples as the
candidates (distinct movie titles).

Why: the ranking step of a recommender is one user x K candidates; this is the floor the model
server can reach, and the figure serving_load.py compares the server's gRPC latency against.

Figures:
- one user x 100 candidates: p50 / p90 / p99 / max over --calls calls after warm-up
  (target: p99 < 20 ms on 2 cores), also with pre-built input tensors (interleaved with the
  first in rounds of 50 calls), and the numpy -> tf.constant conversion alone;
- cost per candidate at 1, 10, 100, 1000 candidates: p50 ms per call and us per candidate,
  and the fixed per-call cost this implies (the 1-candidate call) vs the marginal cost
  per candidate (slope between 100 and 1000), which says how much server-side batching of
  many small requests can gain.
The dense matmul rate is printed at the start and the end: these shared 2-core VMs drift by
+-30% within minutes and absolute times mean nothing without it.

serving_load.py and serving_version_switch.py import the helpers here (data, requests,
percentiles, the in-process timing loop).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from contracts import schema as S
from contracts import serving_api as api

TARGET_P99_MS = 20.0
CANDIDATE_COUNTS = (1, 10, 100, 1000)
SERVER_NAME = "sidrec's local model server (a stand-in for tensorflow_model_server)"


class MissingInput(Exception):
  """An input directory that `make demo` writes is absent (printed as one line, exit 2)."""


# --- inputs -----------------------------------------------------------------------------------

def add_input_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
  parser.add_argument("--serving-dir", default="sidrec_output/serving",
                      help="serving directory (one folder per model, numeric versions): what "
                           "`make demo` pushes")
  parser.add_argument("--data-dir", default="sidrec_output/data",
                      help="prepared data directory (interactions/eval/*.tfrecord.gz)")
  parser.add_argument("--model", default="sid_spm", help="the served model to measure")
  return parser


def eval_files(data_dir: str) -> List[str]:
  files = sorted(glob.glob(os.path.join(data_dir, "interactions", "eval", "*.tfrecord*")))
  if not files:
    raise MissingInput(f"no eval data under {data_dir}/interactions/eval: run `make demo` "
                       f"first (or pass --data-dir DIR)")
  return files


def model_versions(serving_dir: str, model: str) -> List[int]:
  from serving import model_config as mc  # light: no TensorFlow runtime
  versions = mc.discover_versions(os.path.join(serving_dir, model))
  if not versions:
    raise MissingInput(f"no pushed version of model {model!r} under {serving_dir}: run "
                       f"`make demo` first (or pass --serving-dir DIR / --model NAME)")
  return versions


def model_path(serving_dir: str, model: str, version: Optional[int] = None) -> str:
  versions = model_versions(serving_dir, model)
  return os.path.join(serving_dir, model, str(version if version is not None else versions[-1]))


def check_inputs(args) -> None:
  """Raises MissingInput (one line naming `make demo`) when a directory is absent."""
  if not os.path.isdir(args.serving_dir):
    raise MissingInput(f"serving directory {args.serving_dir} does not exist: run `make demo` "
                       f"first (or pass --serving-dir DIR)")
  if not os.path.isdir(args.data_dir):
    raise MissingInput(f"data directory {args.data_dir} does not exist: run `make demo` first "
                       f"(or pass --data-dir DIR)")
  eval_files(args.data_dir)
  model_versions(args.serving_dir, args.model)


def read_examples(data_dir: str, limit: int = 3000) -> List[Dict[str, object]]:
  """The first `limit` eval examples' raw fields (bytes / int), history padded to a list."""
  import tensorflow as tf
  out = []
  ds = tf.data.TFRecordDataset(eval_files(data_dir), compression_type="GZIP").take(limit)
  for record in ds:
    feats = tf.train.Example.FromString(record.numpy()).features.feature
    row = {}
    # user_id, every user feature the data declares (its `user_*` features), item and history.
    names = [S.USER_ID, *S.user_features_in(feats), S.ITEM_ID, S.HISTORY_ITEM_IDS]
    for name in names:
      f = feats[name]
      values = list(f.int64_list.value) if f.HasField("int64_list") else list(f.bytes_list.value)
      row[name] = values if name == S.HISTORY_ITEM_IDS else values[0]
    out.append(row)
  return out


def make_request(examples: Sequence[Dict[str, object]], user_index: int, num_candidates: int,
                 history_length: int = 10, seed: int = 0) -> Dict[str, np.ndarray]:
  """One user (example `user_index`: its fields and history) x `num_candidates` item ids of
  other eval examples (distinct titles while there are enough), as serving_default takes it."""
  user = examples[user_index]
  titles = sorted({e[S.ITEM_ID] for e in examples} - {user[S.ITEM_ID]})
  rng = np.random.default_rng(seed + user_index)
  picks = rng.choice(len(titles), size=num_candidates, replace=num_candidates > len(titles))
  candidates = np.array([user[S.ITEM_ID]] + [titles[i] for i in picks[:num_candidates - 1]],
                        dtype=object)
  history = list(user[S.HISTORY_ITEM_IDS])[-history_length:]
  history = [S.HISTORY_PAD.encode()] * (history_length - len(history)) + history
  n = num_candidates
  request = {S.USER_ID: np.array([user[S.USER_ID]] * n, dtype=object)}
  for name in S.user_features_in(user):  # int64 or bytes, as the data declares them
    value = user[name]
    request[name] = np.array([value] * n, dtype=object if isinstance(value, bytes) else np.int64)
  request[S.ITEM_ID] = candidates
  request[S.HISTORY_ITEM_IDS] = np.array([history] * n, dtype=object)
  return request


def request_pool(examples, count: int, num_candidates: int = 100) -> List[Dict[str, np.ndarray]]:
  """`count` requests of distinct users (spread over the examples read)."""
  step = max(1, len(examples) // max(count, 1))
  return [make_request(examples, (i * step) % len(examples), num_candidates) for i in range(count)]


# --- the model --------------------------------------------------------------------------------

def load_signature(path: str, signature: str = api.SERVING_DEFAULT):
  import tensorflow as tf
  module = tf.saved_model.load(path)
  return module, module.signatures[signature]


def call_numpy(fn, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """What LoadedVersion.run does: numpy -> tf.constant -> signature -> numpy."""
  import tensorflow as tf
  outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
  return {k: v.numpy() for k, v in outputs.items()}


def time_calls(call, calls: int, warmup: int = 20) -> np.ndarray:
  """Wall ms of each of `calls` calls of `call()` after `warmup` untimed ones."""
  for _ in range(warmup):
    call()
  out = np.empty(calls)
  for i in range(calls):
    t = time.perf_counter()
    call()
    out[i] = (time.perf_counter() - t) * 1e3
  return out


def in_process_latency(fn, requests, calls: int = 300, warmup: int = 20) -> np.ndarray:
  """ms per call of `fn` the way the server calls it (numpy in, numpy out), cycling over
  `requests` (one inputs dict or a list of them): serving_load.py's baseline."""
  requests = [requests] if isinstance(requests, dict) else list(requests)
  state = {"i": 0}

  def one():
    state["i"] += 1
    return call_numpy(fn, requests[state["i"] % len(requests)])
  return time_calls(one, calls, warmup)


def pct(ms: Sequence[float], q: float) -> float:
  return float(np.percentile(np.asarray(ms), q)) if len(ms) else float("nan")


def summary(ms: Sequence[float]) -> Dict[str, float]:
  return {"p50_ms": round(pct(ms, 50), 3), "p90_ms": round(pct(ms, 90), 3),
          "p99_ms": round(pct(ms, 99), 3), "max_ms": round(float(np.max(ms)), 3) if len(ms)
          else float("nan"), "n": len(ms)}


def machine_line(label: str) -> float:
  from machine_rate import matmul_gflops  # benchmarks/machine_rate.py
  rate = matmul_gflops()
  print(f"[{label}] load average {os.getloadavg()[0]:.2f}, cores {os.cpu_count()}, "
        f"dense matmul {rate:.0f} GFLOP/s", flush=True)
  return rate


def verdict(ok: bool, text: str) -> str:
  line = f"{'PASS' if ok else 'FAIL'}: {text}"
  print(line, flush=True)
  return line


# --- main -------------------------------------------------------------------------------------

def main(argv=None) -> int:
  parser = add_input_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
  parser.add_argument("--calls", type=int, default=1000,
                      help="timed calls for the 100-candidate percentiles (>= 300)")
  parser.add_argument("--quick", action="store_true", help="smoke run (~1 min)")
  args = parser.parse_args(argv)
  try:
    check_inputs(args)
  except MissingInput as e:
    print(f"serving_latency: {e}", file=sys.stderr)
    return 2
  calls = 300 if args.quick else max(300, args.calls)
  sweep_calls = {1: 100, 10: 100, 100: 100, 1000: 20} if args.quick else \
      {1: 300, 10: 300, 100: 300, 1000: 60}
  rate_start = machine_line("start")
  import tensorflow as tf
  path = model_path(args.serving_dir, args.model)
  t = time.perf_counter()
  _, fn = load_signature(path)
  load_s = time.perf_counter() - t
  examples = read_examples(args.data_dir, 1000 if args.quick else 3000)
  print(f"model {args.model} ({path}), loaded in {load_s:.1f} s; {len(examples)} eval "
        f"examples read", flush=True)

  # One user x 100 candidates, several users cycled (a fresh user per call).
  pool = request_pool(examples, 16, 100)
  state = {"i": 0}
  tensors_pool = [{k: tf.constant(v) for k, v in r.items()} for r in pool]

  def prebuilt():
    state["i"] += 1
    out = fn(**tensors_pool[state["i"] % len(pool)])
    return {k: v.numpy() for k, v in out.items()}

  def convert():
    state["i"] += 1
    return {k: tf.constant(v) for k, v in pool[state["i"] % len(pool)].items()}
  # Interleaved in rounds of 50 calls each, so a drift of the machine hits both alike.
  ms, ms_pre = [], []
  in_process_latency(fn, pool, 0, warmup=30)
  for _ in range(-(-calls // 50)):
    ms += list(in_process_latency(fn, pool, 50, warmup=0))
    ms_pre += list(time_calls(prebuilt, 50, warmup=0))
  ms, ms_pre = ms[:calls], ms_pre[:calls]
  convert_ms = float(np.median(time_calls(convert, 200, warmup=10)))
  s100, s_pre = summary(ms), summary(ms_pre)
  print(json.dumps({"one_user_x_100": s100, "prebuilt_tensors": s_pre,
                    "convert_ms": round(convert_ms, 3)}), flush=True)

  sweep = {}
  for n in CANDIDATE_COUNTS:
    reqs = request_pool(examples, 8, n)
    state["i"] = 0

    def call(reqs=reqs):
      state["i"] += 1
      return call_numpy(fn, reqs[state["i"] % len(reqs)])
    t_ms = time_calls(call, sweep_calls[n], warmup=5)
    sweep[n] = {"p50_ms": round(pct(t_ms, 50), 3), "p99_ms": round(pct(t_ms, 99), 3),
                "us_per_candidate": round(pct(t_ms, 50) * 1e3 / n, 2), "calls": len(t_ms)}
    print(json.dumps({"candidates": n, **sweep[n]}), flush=True)
  rate_end = machine_line("end")

  fixed = sweep[1]["p50_ms"]
  slope_us = (sweep[1000]["p50_ms"] - sweep[100]["p50_ms"]) * 1e3 / 900
  print(f"\n{'in-process serving_default, ' + args.model:<44} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'calls':>6}")
  for name, s in (("1 user x 100 candidates (numpy in/out)", s100),
                  ("  same, pre-built input tensors", s_pre)):
    print(f"{name:<44} {s['p50_ms']:>8.2f} {s['p90_ms']:>8.2f} {s['p99_ms']:>8.2f} "
          f"{s['max_ms']:>8.2f} {s['n']:>6}")
  print(f"\n{'candidates':>10} {'p50 ms/call':>12} {'p99 ms/call':>12} {'us/candidate':>13}")
  for n, r in sweep.items():
    print(f"{n:>10} {r['p50_ms']:>12.2f} {r['p99_ms']:>12.2f} {r['us_per_candidate']:>13.1f}")
  share = 100 * fixed / sweep[100]["p50_ms"]
  print(f"fixed cost per call (1 candidate) {fixed:.2f} ms; marginal cost per candidate "
        f"(100 -> 1000) {slope_us:.1f} us; at 100 candidates the fixed cost is {share:.0f}% "
        f"of the call (what merging requests can save)")
  print(f"input conversion alone (numpy -> tf.constant, 6 inputs x 100 rows): median "
        f"{convert_ms:.3f} ms per request")
  print(f"dense matmul {rate_start:.0f} GFLOP/s at the start, {rate_end:.0f} at the end")
  verdict(s100["p99_ms"] < TARGET_P99_MS,
          f"one user x 100 candidates p99 {s100['p99_ms']:.2f} ms < {TARGET_P99_MS:.0f} ms "
          f"(in process, {os.cpu_count()} cores)")
  print(json.dumps({"summary": {"model": args.model, "one_user_x_100": s100,
                                "prebuilt_tensors": s_pre, "convert_ms": round(convert_ms, 3),
                                "sweep": sweep,
                                "fixed_ms": fixed, "marginal_us_per_candidate": round(slope_us, 2),
                                "matmul_gflops": [round(rate_start), round(rate_end)]}}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
