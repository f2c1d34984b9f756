"""A version pushed mid-load onto sidrec's local model server (a stand-in for
tensorflow_model_server): no failed request, every answer from exactly one version, and the
new version answering once it is loaded.

    TF_USE_LEGACY_KERAS=1 python benchmarks/serving_version_switch.py
        [--serving-dir sidrec_output/serving] [--data-dir sidrec_output/data] [--model sid_spm]
        [--new-from random_id] [--requests 10000] [--clients 16] [--poll-seconds 1.0]
        [--push-at 0.3] [--batching] [--quick]

What: --model's directory is copied out of --serving-dir into a temporary serving directory
(the input directory is never modified), and LocalModelServer (serving/server.py, the
`sidrec serve` config: latest{2}) serves it, polling every --poll-seconds. 16 clients (threads
of one client process, each with its own channel and a raw PredictionService/Predict unary
method, pre-serialized one-user x 100-candidate requests of 16 real eval users) send
--requests gRPC requests in total, closed loop. When about --push-at of them are done, the
newest version of --new-from (another trained ranker, so its scores differ) is pushed as
version N+1 the way a pusher does: copied to a temporary name beside the versions
(`.tmp-<N+1>`, which the file-system source ignores) and renamed into place.

Checks (PASS/FAIL):
- 0 failed requests;
- every response's 100 probabilities equal (max |diff| <= 1e-5) the in-process scores of the
  version its model_spec.version names, for that request (tf.saved_model.load of each
  version's directory in this process) - so no response mixes versions; the two versions'
  scores are shown to differ, else the check would prove nothing;
- the new version answers: the server sees it (LOADING) within the poll interval, the first
  new-version answer comes within the poll interval + its load time (LOADING -> AVAILABLE as
  a monitor thread reads it from the server's VersionManager every 20 ms, under load; the
  idle tf.saved_model.load time measured here is printed beside it), and every request sent
  after that first answer is answered by the new version.
Latency is also split: requests answered while the new version loads vs the others.
The dense matmul rate is printed at the start and the end (these VMs drift +-30% in minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from serving_latency import (MissingInput, SERVER_NAME, add_input_arguments, call_numpy,
                             check_inputs, machine_line, model_path, model_versions, pct,
                             read_examples, request_pool, verdict)
from serving_load import (ClientProcess, batching_parameters, grpc_body, grpc_scores,
                          served_config)

TOLERANCE = 1e-5


def push_version(source: str, base_path: str, version: int) -> str:
  """A pusher's atomic publish: copy under a name the server ignores, then rename."""
  staging = os.path.join(base_path, f".tmp-{version}")
  shutil.copytree(source, staging)
  final = os.path.join(base_path, str(version))
  os.rename(staging, final)
  return final


def main(argv=None) -> int:
  parser = add_input_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
  parser.add_argument("--new-from", default="random_id",
                      help="the model whose newest version is pushed as version N+1")
  parser.add_argument("--requests", type=int, default=10000)
  parser.add_argument("--clients", type=int, default=16)
  parser.add_argument("--poll-seconds", type=float, default=1.0)
  parser.add_argument("--push-at", type=float, default=0.3,
                      help="push when about this fraction of the requests is done")
  parser.add_argument("--batching", action="store_true",
                      help="serve with batching on (serving_load.py's: max_batch_size 1600 "
                           "rows, 10 ms timeout, one batch thread)")
  parser.add_argument("--quick", action="store_true", help="smoke run (~1 min)")
  args = parser.parse_args(argv)
  try:
    check_inputs(args)
    model_versions(args.serving_dir, args.new_from)
  except MissingInput as e:
    print(f"serving_version_switch: {e}", file=sys.stderr)
    return 2
  total = 2000 if args.quick else args.requests
  rate_start = machine_line("start")
  import logging
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  logging.getLogger("tensorflow").setLevel(logging.WARNING)
  import tensorflow as tf
  from serving import server as server_lib

  tmp = tempfile.mkdtemp(prefix="sidrec-version-switch-")
  serving_dir = os.path.join(tmp, "serving")
  base = os.path.join(serving_dir, args.model)
  shutil.copytree(os.path.join(args.serving_dir, args.model), base)
  old_version = model_versions(serving_dir, args.model)[-1]
  new_version = old_version + 1
  new_source = model_path(args.serving_dir, args.new_from)
  print(f"{SERVER_NAME}: serving {args.model} v{old_version} from a copy in {serving_dir}; "
        f"pushing {new_source} as v{new_version} mid-run; {total} gRPC requests from "
        f"{args.clients} clients (threads of one client process, raw Predict stub, "
        f"pre-serialized requests), poll every {args.poll_seconds:g} s, batching "
        f"{'on' if args.batching else 'off'}", flush=True)

  examples = read_examples(args.data_dir, 1000 if args.quick else 3000)
  pool = request_pool(examples, 16, 100)
  payloads = [grpc_body(args.model, r) for r in pool]
  expected, load_s = {}, {}
  for version, path in ((old_version, os.path.join(base, str(old_version))),
                        (new_version, new_source)):
    t = time.perf_counter()
    fn = tf.saved_model.load(path).signatures["serving_default"]
    load_s[version] = time.perf_counter() - t
    expected[version] = [call_numpy(fn, r)["probability"] for r in pool]
  apart = min(float(np.max(np.abs(a - b))) for a, b in zip(expected[old_version],
                                                            expected[new_version]))
  print(f"in-process scores: load {load_s[old_version]:.1f} s (v{old_version}), "
        f"{load_s[new_version]:.1f} s (v{new_version}); the two versions' scores differ by "
        f"max |diff| >= {apart:.3f} on every request", flush=True)

  batching = batching_parameters() if args.batching else None
  from tensorflow_serving.apis import get_model_status_pb2
  state_name = get_model_status_pb2.ModelVersionStatus.State.Name
  server = server_lib.LocalModelServer(served_config(serving_dir, args.model), grpc_port=0,
                                       rest_port=0, batching=batching,
                                       poll_seconds=args.poll_seconds)
  clients = ClientProcess()
  result = {}
  try:
    with server:
      server.wait_until_ready(120)
      # A short warm cell: warms the server and gives the rate that times the push.
      clients.start(payloads, protocol="grpc", address=server.grpc_address,
                    clients=args.clients, requests_per_client=20, warmup_per_client=2)
      warm, _ = clients.finish()
      rate = len(warm) / (max(r[3] for r in warm) - min(r[2] for r in warm))
      push_delay = args.push_at * total / rate
      per_client = -(-total // args.clients)
      t_start = clients.start(payloads, protocol="grpc", address=server.grpc_address,
                              clients=args.clients, requests_per_client=per_client,
                              keep_responses=True)
      time.sleep(max(0.0, t_start + push_delay - time.monotonic()))
      seen = {}  # state name -> first monotonic time the new version was seen in it
      stop = threading.Event()

      def monitor():
        while not stop.is_set():
          try:
            for v, s, _, _ in server.manager.status(args.model):
              if v == new_version:
                seen.setdefault(state_name(s), time.monotonic())
          except Exception:  # pylint: disable=broad-except
            pass
          stop.wait(0.02)
      watcher = threading.Thread(target=monitor, daemon=True)
      watcher.start()
      t_push0 = time.monotonic()
      push_version(new_source, base, new_version)
      t_push = time.monotonic()
      print(f"pushed v{new_version} at +{t_push - t_start:.2f} s (copy + rename "
            f"{t_push - t_push0:.2f} s; warm rate {rate:.0f} req/s)", flush=True)
      records, answer = clients.finish()
      stop.set()
      watcher.join()
      states = server.manager.status(args.model)
  finally:
    clients.close()
    shutil.rmtree(tmp, ignore_errors=True)
  rate_end = machine_line("end")

  errors = [r for r in records if r[4] != 0]
  counts, mismatches, unknown, worst = {}, [], 0, 0.0
  answered = []  # (t0, t1, version)
  for client, p, t0, t1, status, body in records:
    if status != 0:
      continue
    version, scores = grpc_scores(body)
    counts[version] = counts.get(version, 0) + 1
    answered.append((t0, t1, version))
    if version not in expected:
      unknown += 1
      continue
    diff = float(np.max(np.abs(scores - expected[version][p]))) if scores.shape == (100,) \
        else float("inf")
    worst = max(worst, diff)
    if diff > TOLERANCE:
      mismatches.append((client, p, version, diff))
  new_answers = [a for a in answered if a[2] == new_version]
  first_new = min((a[1] for a in new_answers), default=None)
  switch_s = (first_new - t_push) if first_new is not None else float("inf")
  stragglers = [a for a in answered if first_new is not None and a[0] > first_new
                and a[2] != new_version]
  before_push_new = [a for a in new_answers if a[1] < t_push]
  last_old = max((a[1] for a in answered if a[2] == old_version), default=t_push)
  after_first = [a for a in answered if first_new is not None and a[0] > first_new]
  # The longest time no request was answered (a stall), and the first new-version answers.
  done_t = sorted(a[1] for a in answered)
  gaps = np.diff(done_t) if len(done_t) > 1 else np.zeros(1)
  g = int(np.argmax(gaps))
  stall = (float(gaps[g]), done_t[g] - t_push, done_t[g + 1] - t_push) if len(done_t) > 1 \
      else (0.0, 0.0, 0.0)
  first_new_ms = sorted((a[1] - a[0]) * 1e3 for a in sorted(new_answers, key=lambda a: a[1])
                        [:args.clients])
  lat = np.array([(r[3] - r[2]) * 1e3 for r in records if r[4] == 0])
  wall = max(r[3] for r in records) - min(r[2] for r in records)
  t_loading = seen.get("LOADING", seen.get("AVAILABLE"))
  t_available = seen.get("AVAILABLE")
  detect_s = (t_loading - t_push) if t_loading else float("inf")
  load_busy_s = (t_available - t_loading) if t_available and t_loading else float("inf")
  bound = args.poll_seconds + load_busy_s + 0.5  # + 0.5 s: the monitor's and clients' slack
  # Latency while the new version loads (push -> its first answer) vs the other requests.
  end_load = first_new if first_new is not None else t_push
  near = np.array([(t1 - t0) * 1e3 for t0, t1, _ in answered if t_push <= t1 <= end_load])
  far = np.array([(t1 - t0) * 1e3 for t0, t1, _ in answered if not t_push <= t1 <= end_load])

  print(f"\n{SERVER_NAME}: version switch under load, model {args.model}")
  rows = [("requests", len(records)), ("failed requests", len(errors)),
          ("wall s / req/s", f"{wall:.1f} / {len(records) / wall:.0f}"),
          ("p50 / p99 ms (all)", f"{pct(lat, 50):.1f} / {pct(lat, 99):.1f}"),
          ("p50 / p99 ms, answered while v(N+1) loads", f"{pct(near, 50):.1f} / "
           f"{pct(near, 99):.1f} ({len(near)} requests)"),
          ("p50 / p99 ms, the others", f"{pct(far, 50):.1f} / {pct(far, 99):.1f} "
           f"({len(far)} requests)"),
          (f"answered by v{old_version} / v{new_version}",
           f"{counts.get(old_version, 0)} / {counts.get(new_version, 0)}"),
          ("answers from an unknown version", unknown),
          ("max |diff| vs in-process scores of the named version", f"{worst:.2e}"),
          ("responses not matching their version (all 100 scores)", len(mismatches)),
          ("push at (s after start)", f"{t_push - t_start:.2f}"),
          ("new version seen LOADING (s after push)", f"{detect_s:.2f}"),
          ("its load under load, LOADING -> AVAILABLE (s)", f"{load_busy_s:.2f} (idle "
           f"tf.saved_model.load here: {load_s[new_version]:.2f} s, "
           f"{load_busy_s / load_s[new_version]:.1f}x)"),
          ("first new-version answer (s after push)", f"{switch_s:.2f}"),
          ("last old-version answer (s after push)", f"{last_old - t_push:.2f}"),
          ("longest time without any answer (s; from, to after push)",
           f"{stall[0]:.2f} (+{stall[1]:.2f} -> +{stall[2]:.2f})"),
          (f"latency of the first {args.clients} v(N+1) answers, min / max ms",
           f"{first_new_ms[0]:.0f} / {first_new_ms[-1]:.0f}" if first_new_ms else "-"),
          ("requests sent after the first new answer / old among them",
           f"{len(after_first)} / {len(stragglers)}"),
          ("versions at the end", ", ".join(f"v{v} {state_name(s)}" for v, s, _, _ in states))]
  for name, value in rows:
    print(f"  {name:<58} {value}")
  print(f"dense matmul {rate_start:.0f} GFLOP/s at the start, {rate_end:.0f} at the end")
  if errors:
    print(f"first errors: {[e[4] for e in errors[:3]]}")
  if mismatches:
    print(f"first mismatches (client, request, version, max diff): {mismatches[:3]}")
  verdict(not errors, f"{len(errors)} failed requests of {len(records)}")
  verdict(not mismatches and not unknown and apart > 100 * TOLERANCE,
          f"every response equals the in-process scores of the version it names (max |diff| "
          f"{worst:.1e} <= {TOLERANCE:g}; versions differ by >= {apart:.3f})")
  verdict(detect_s <= args.poll_seconds + 0.5,
          f"v{new_version} seen (LOADING) {detect_s:.2f} s after the push (<= poll "
          f"{args.poll_seconds:g} s + 0.5 s)")
  verdict(bool(new_answers) and switch_s <= bound and not before_push_new,
          f"v{new_version} answers {switch_s:.2f} s after the push (<= poll {args.poll_seconds:g}"
          f" s + its load {load_busy_s:.2f} s + 0.5 s = {bound:.1f} s)")
  verdict(bool(after_first) and not stragglers,
          f"all {len(after_first)} requests sent after the first v{new_version} answer were "
          f"answered by v{new_version} ({len(stragglers)} by another version)")
  print(json.dumps({"summary": {
      "requests": len(records), "errors": len(errors), "counts": counts,
      "max_abs_diff": worst, "mismatches": len(mismatches), "versions_apart": apart,
      "switch_s": round(switch_s, 3), "bound_s": round(bound, 2),
      "detect_s": round(detect_s, 3), "load_under_load_s": round(load_busy_s, 2),
      "stragglers": len(stragglers), "longest_stall_s": round(stall[0], 3), "requests_after_switch": len(after_first),
      "load_s": {str(k): round(v, 2) for k, v in load_s.items()},
      "p50_ms": round(pct(lat, 50), 2), "p99_ms": round(pct(lat, 99), 2),
      "client_cpu_s": answer.get("client_cpu_s"),
      "matmul_gflops": [round(rate_start), round(rate_end)]}}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
