"""Training throughput of SidRankingModel vs a bare tf_keras functional model, batch 1024.

    TF_USE_LEGACY_KERAS=1 python benchmarks/trainer_throughput.py [--steps 100] [--rounds 3]
        [--representations sid_spm,random_id] [--history 10] [--batch-size 1024]

Data: in-memory tensors (16 distinct pre-batched batches cycled by tf.data, so input cost is
~0), ML-1M-sized vocabularies (6,041 users, 7 ages, 2 genders, 21 occupations; 8,000 SPM
pieces, 1-3 per item, 1.12 on average as BPE gave on ML-1M SIDs (DESIGN.md §3); 1,000
random-id rows), N=10 history items per example (1-10 real, the rest padding).
Model (RankingConfig defaults): E=32, user id 32-d + 3 side features 8-d, 2 full-rank DCN-v2
cross layers, MLP [128, 64], the config's optimizer (LazyAdam 2e-3) for both models, BCE from
logits + AUC metric.

For each representation:
- `tfrs`: SidRankingModel.fit, examples/s over --steps timed steps (after warm-up), best of
  --rounds rounds interleaved with the bare model's (the machine is shared: best-of is the
  least disturbed measurement of each);
- `bare`: a tf_keras functional model with the same layers (same tables, masked SPM / history
  means, tfrs Cross, Dense MLP, same optimizer, loss and AUC metric) through Model.fit;
- ratio tfrs / bare.
Then a step-time breakdown of SidRankingModel (sid_spm): forward only, forward + backward,
item representation alone (forward + backward over the candidate and history items), and the
full train_step called directly (no Keras fit loop) with LazyAdam (default: sparse rows only),
tf_keras Adam (decays and moves every table row every step) and Adagrad; then the TF
profiler's op self-time of one step by category (what dominates the step).

The load average and a dense matmul rate are printed first: on a shared 2-core machine both
vary with whatever else runs. DESIGN.md §4 baseline: a bare model of this size ~100,000 ex/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from contracts.config import RankingConfig
from machine_rate import matmul_gflops  # benchmarks/machine_rate.py
from trainer.model import features as F
from trainer.model import ranking

BASELINE = 100_000.0
SID_CODEBOOK = "rqvae"
SPM = F.item_spm_tokens(SID_CODEBOOK)
# ML-1M-like sizes; main() sets the history length from --history.
AGE, GENDER, OCCUPATION = (F.user_token(n) for n in ("user_age", "user_gender",
                                                      "user_occupation"))
SIZES = F.VocabSizes(user_id=6041, user_features={AGE: 8, GENDER: 3, OCCUPATION: 22},
                     num_items=3000,
                     codebooks={SID_CODEBOOK: F.CodebookSizes(3, 256, spm_vocab_size=8000)},
                     history_length=10)


def make_batches(batch: int, history: int, num_batches: int = 16, seed: int = 0):
  """num_batches pre-built feature dicts of `batch` examples (numpy)."""
  rng = np.random.default_rng(seed)
  n = batch * num_batches
  s = SIZES.codebooks[SID_CODEBOOK].code_columns

  def spm(shape):
    pieces = rng.integers(1, SIZES.codebooks[SID_CODEBOOK].spm_vocab_size, shape + (s,))
    count = rng.choice([1, 2, 3], size=shape, p=[0.9, 0.08, 0.02])  # mean 1.12 pieces
    return np.where(np.arange(s) < count[..., None], pieces, 0).astype(np.int64)

  count = rng.integers(1, history + 1, n)
  feats = {F.USER_ID: rng.integers(1, 6041, n), AGE: rng.integers(1, 8, n),
           GENDER: rng.integers(1, 3, n), OCCUPATION: rng.integers(1, 22, n),
           F.ITEM_RANDOM_ID: rng.integers(0, 1000, n),
           F.history_name(F.ITEM_RANDOM_ID): rng.integers(0, 1000, (n, history)),
           SPM: spm((n,)), F.history_name(SPM): spm((n, history)),
           F.HISTORY_MASK: (np.arange(history) < count[:, None]).astype(np.float32),
           F.LABEL: (rng.random(n) < 0.3).astype(np.float32)}
  feats = {k: (v.astype(np.int64) if v.dtype.kind == "i" else v) for k, v in feats.items()}
  return [{k: v[i * batch:(i + 1) * batch] for k, v in feats.items()} for i in range(num_batches)]


def dataset(batches, with_label_split=()):
  """Cycled pre-batched tensors; with_label_split = input names -> (features, label) pairs."""
  stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
  ds = tf.data.Dataset.from_tensor_slices(stacked)
  if with_label_split:
    ds = ds.map(lambda d: ({k: v for k, v in d.items() if k in with_label_split}, d[F.LABEL]))
  return ds.cache().repeat().prefetch(4)


class StepTimer(tf.keras.callbacks.Callback):
  """Wall time from the end of batch `warmup` to the end of the last batch."""

  def __init__(self, warmup):
    super().__init__()
    self.warmup, self.start, self.end, self.count = warmup, None, None, 0

  def on_train_batch_end(self, batch, logs=None):
    if batch == self.warmup - 1:
      self.start = time.perf_counter()
    elif batch >= self.warmup:
      self.end, self.count = time.perf_counter(), self.count + 1


def fit_rate(model, ds, steps, batch, warmup=5) -> float:
  timer = StepTimer(warmup)
  model.fit(ds, epochs=1, steps_per_epoch=steps + warmup, verbose=0, callbacks=[timer])
  return timer.count * batch / (timer.end - timer.start)


def bare_model(representation: str, config: RankingConfig,
               sizes: F.VocabSizes = None) -> tf.keras.Model:
  """The same layers as SidRankingModel, wired as a plain functional tf_keras model."""
  sizes = sizes or SIZES
  e, hist_len = config.embedding_dim, sizes.history_length
  inputs, parts = {}, []
  for name, rows in sizes.user_vocab().items():
    inputs[name] = tf.keras.Input((), dtype=tf.int64, name=name)
    dim = config.user_embedding_dim if name == F.USER_ID else config.user_feature_dim
    parts.append(tf.keras.layers.Embedding(rows, dim)(inputs[name]))
  mask = inputs[F.HISTORY_MASK] = tf.keras.Input((hist_len,), name=F.HISTORY_MASK)
  if representation == "sid_spm":
    codebook = sizes.codebooks[SID_CODEBOOK]
    table = tf.keras.layers.Embedding(codebook.spm_vocab_size, e)
    s = codebook.code_columns
    cand = inputs[SPM] = tf.keras.Input((s,), dtype=tf.int64, name=SPM)
    hname = F.history_name(SPM)
    hist = inputs[hname] = tf.keras.Input((hist_len, s), dtype=tf.int64, name=hname)

    def pool(tokens):  # [T, S] -> [T, E]: the same real-pieces-only pooling as SidSpmEmbedding
      where = tf.where(tokens > 0)
      summed = tf.math.unsorted_segment_sum(table(tf.gather_nd(tokens, where)), where[:, 0],
                                            tf.shape(tokens, out_type=tf.int64)[0])
      count = tf.reduce_sum(tf.cast(tokens > 0, tf.float32), axis=-1, keepdims=True)
      return summed / tf.maximum(count, 1.0)

    cand_v = pool(cand)
    hist_v = tf.reshape(pool(tf.reshape(hist, [-1, s])), [-1, hist_len, e])
  else:
    table = tf.keras.layers.Embedding(config.random_id_rows, e)
    cand = inputs[F.ITEM_RANDOM_ID] = tf.keras.Input((), dtype=tf.int64, name=F.ITEM_RANDOM_ID)
    hname = F.history_name(F.ITEM_RANDOM_ID)
    hist = inputs[hname] = tf.keras.Input((hist_len,), dtype=tf.int64, name=hname)
    cand_v, hist_v = table(cand), table(hist)
  pooled = tf.reduce_sum(hist_v * mask[..., None], axis=1) / tf.maximum(
      tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
  x0 = tf.keras.layers.Concatenate()(parts + [cand_v, pooled])
  x = x0
  for _ in range(config.cross_layers):
    x = tfrs.layers.dcn.Cross(kernel_initializer="glorot_uniform")(x0, x)
  for d in config.mlp_dims:
    x = tf.keras.layers.Dense(d, activation="relu")(x)
  logit = tf.keras.layers.Dense(1)(x)
  model = tf.keras.Model(inputs, logit)
  model.compile(optimizer=ranking.make_optimizer(config),
                loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
                metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc")])
  return model


def _sync(out):
  for t in tf.nest.flatten(out, expand_composites=True):
    t.numpy()


def timed(fn, arg, steps) -> float:
  """Seconds per call of a tf.function after two warm-up calls."""
  for _ in range(2):
    _sync(fn(arg))
  t = time.perf_counter()
  for _ in range(steps):
    out = fn(arg)
  _sync(out)
  return (time.perf_counter() - t) / steps


def breakdown(config, batches, steps):
  """ms per step of the parts of one SidRankingModel training step."""
  feats = {k: tf.constant(v) for k, v in batches[0].items()}
  model = ranking.build_ranking_model(config, SIZES, example_features=batches[0])
  rep = model.representation

  @tf.function
  def forward(f):
    return model(f, training=True)

  @tf.function
  def forward_backward(f):
    with tf.GradientTape() as tape:
      loss = model.compute_loss(f, training=True)
    return tape.gradient(loss, model.trainable_variables)

  @tf.function
  def item_representation(f):
    with tf.GradientTape() as tape:
      cand, hist = model.item_vectors(f)
      loss = tf.reduce_sum(cand) + tf.reduce_sum(hist)
    return tape.gradient(loss, rep.trainable_variables)

  fns = [("forward", forward), ("forward+backward", forward_backward),
         ("item representation fwd+bwd", item_representation)]
  for optimizer in ("lazy_adam", "adam", "adagrad"):
    other = ranking.build_ranking_model(dataclasses.replace(config, optimizer=optimizer), SIZES,
                                        example_features=batches[0])
    fns.append((f"train_step ({optimizer})", tf.function(other.train_step)))
  return {name: 1000 * timed(fn, feats, steps) for name, fn in fns}


def direct_step_ms(model, bare, batch, rounds, calls=10):
  """Min over rounds of ms per call of each model's train_step as a bare tf.function (no fit
  loop, no input pipeline), interleaved: the least noisy comparison on a shared machine."""
  feats = {k: tf.constant(v) for k, v in batch.items()}
  args = {"tfrs": feats, "bare": ({k: feats[k] for k in bare.input_names}, feats[F.LABEL])}
  steps = {"tfrs": tf.function(model.train_step), "bare": tf.function(bare.train_step)}
  out = {name: [] for name in steps}
  for name in steps:
    _sync(steps[name](args[name]))
  for _ in range(rounds):
    for name in steps:
      out[name].append(1000 * timed(steps[name], args[name], calls))
  return {name: round(min(v), 2) for name, v in out.items()}


def _category(op_type: str, op_name: str) -> str:
  if op_type == "IDLE":
    return "idle (a thread waiting; 2 threads)"
  sparse = op_type in ("ResourceGather", "GatherV2", "GatherNd", "Where", "Unique",
                       "UnsortedSegmentSum", "ResourceScatterAdd", "ResourceScatterUpdate")
  dense = op_type in ("MatMul", "_FusedMatMul", "BiasAdd", "BiasAddGrad", "Relu", "ReluGrad")
  if op_name.startswith(("Adam/", "Adagrad/")):
    if op_type in ("Unique", "UnsortedSegmentSum"):
      return "optimizer: dedup of sparse embedding gradients"
    if op_type.startswith("ResourceScatter") or op_type == "ResourceGather":
      return "optimizer: gather/scatter of looked-up table rows"
    return "optimizer: dense updates (dense layers; every table row with plain Adam)"
  if "/" not in op_name and op_type in ("AddN", "ConcatV2"):
    return "backward: gradient aggregation (candidate + history lookups)"
  if "auc" in op_name.lower() or op_name.split("/")[0] in ("ranking", "binary_crossentropy"):
    return "loss + AUC metric"
  phase = "backward" if op_name.startswith("gradient_tape/") else "forward"
  kind = "dense layers (cross, MLP)" if dense else (
      "embedding gathers + piece pooling" if sparse else "elementwise/reductions/copies")
  return f"{phase}: {kind}"


def op_profile(config, batches, steps: int = 20):
  """ms of op self-time per train step by category, from a TF profiler trace (None if the
  profiler's converter is unavailable)."""
  import glob
  import tempfile
  try:
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin
  except ImportError:
    return None
  model = ranking.build_ranking_model(config, SIZES, example_features=batches[0])
  feats = {k: tf.constant(v) for k, v in batches[0].items()}
  step = tf.function(model.train_step)
  for _ in range(3):
    _sync(step(feats))
  logdir = tempfile.mkdtemp(prefix="trainer_profile_")
  tf.profiler.experimental.start(logdir)
  for _ in range(steps):
    out = step(feats)
  _sync(out)
  tf.profiler.experimental.stop()
  files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
  data, ok = plugin.xspace_to_tools_data(files, "framework_op_stats", {})
  if not ok:
    return None
  table = json.loads(data)
  table = table[0] if isinstance(table, list) else table
  cols = [c["id"] for c in table["cols"]]
  out = {}
  for row in table["rows"]:
    r = dict(zip(cols, [c["v"] if c else None for c in row["c"]]))
    key = _category(r["type"], r["operation"])
    out[key] = out.get(key, 0.0) + r["total_self_time"] / steps / 1000
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--no-profile", action="store_true",
                      help="skip the op-level profile of one training step")
  parser.add_argument("--batch-size", type=int, default=1024)
  parser.add_argument("--history", type=int, default=10)
  parser.add_argument("--representations", default="sid_spm,random_id")
  args = parser.parse_args(argv)
  print(f"load average {os.getloadavg()[0]:.2f}, cores {os.cpu_count()}, "
        f"dense matmul {matmul_gflops():.0f} GFLOP/s", flush=True)
  global SIZES
  SIZES = dataclasses.replace(SIZES, history_length=args.history)
  batches = make_batches(args.batch_size, args.history)
  rows = []
  for rep in args.representations.split(","):
    config = RankingConfig(representation=rep, batch_size=args.batch_size)
    model = ranking.build_ranking_model(config, SIZES, example_features=batches[0])
    bare = bare_model(rep, config)
    runs = {"tfrs": (model, dataset(batches)),
            "bare": (bare, dataset(batches, tuple(bare.input_names)))}
    rates = {name: [] for name in runs}
    for name, (m, ds) in runs.items():  # trace + warm up
      m.fit(ds, epochs=1, steps_per_epoch=10, verbose=0)
    for r in range(args.rounds):  # interleaved, alternating order: the machine is shared
      for name, (m, ds) in (list(runs.items())[::-1] if r % 2 else runs.items()):
        rates[name].append(fit_rate(m, ds, args.steps, args.batch_size))
    tfrs_rate, bare_rate = max(rates["tfrs"]), max(rates["bare"])
    step_ms = direct_step_ms(model, bare, batches[0], args.rounds)
    row = {"representation": rep, "tfrs_examples_per_s": round(tfrs_rate),
           "bare_examples_per_s": round(bare_rate), "ratio": round(tfrs_rate / bare_rate, 3),
           "median_ratio": round(float(np.median(rates["tfrs"]) / np.median(rates["bare"])), 3),
           "train_step_ms_tfrs": step_ms["tfrs"], "train_step_ms_bare": step_ms["bare"],
           "tfrs_rounds": [round(r) for r in rates["tfrs"]],
           "bare_rounds": [round(r) for r in rates["bare"]],
           "item_table_rows": model.representation.table_rows,
           "params_tfrs": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
           "params_bare": int(sum(np.prod(v.shape) for v in bare.trainable_variables)),
           "load_average": round(os.getloadavg()[0], 2)}
    rows.append(row)
    print(json.dumps(row), flush=True)
  print(f"\n{'representation':<16} {'tfrs ex/s':>10} {'bare ex/s':>10} {'ratio':>6} "
        f"{'median ratio':>12} {'train_step ms tfrs/bare':>24}")
  for r in rows:
    print(f"{r['representation']:<16} {r['tfrs_examples_per_s']:>10,} "
          f"{r['bare_examples_per_s']:>10,} {r['ratio']:>6.2f} {r['median_ratio']:>12.2f} "
          f"{r['train_step_ms_tfrs']:>13.1f} / {r['train_step_ms_bare']:<8.1f}")
  print(f"(DESIGN.md §4 baseline for a bare model of this size: ~{BASELINE:,.0f} ex/s)")
  config = RankingConfig(representation="sid_spm", batch_size=args.batch_size)
  parts = breakdown(config, batches, max(20, args.steps // 3))
  print(f"\nSidRankingModel (sid_spm) step breakdown, batch {args.batch_size}, ms per step:")
  for name, ms in parts.items():
    print(f"  {name:<30} {ms:7.2f}")
  print(json.dumps({"breakdown_ms": {k: round(v, 2) for k, v in parts.items()}}))
  if not args.no_profile:
    profile = op_profile(config, batches)
    if profile:
      total = sum(profile.values())
      print("\nOp self-time per train step (TF profiler, summed over threads), sid_spm:")
      for name, ms in sorted(profile.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<58} {ms:7.2f} ms {100 * ms / total:5.1f}%")
      print(json.dumps({"op_profile_ms": {k: round(v, 2) for k, v in profile.items()}}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
