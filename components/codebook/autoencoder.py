"""The quantised autoencoder shared by RQ-VAE (residual) and Mixture-of-Codes (parallel).

MLP encoder (hidden_dims) -> latent_dim -> quantiser -> MLP decoder (reversed hidden_dims).
Loss per example = ||x - x_hat||^2 summed over dimensions + the quantiser's codebook and
commitment terms (also summed over dimensions); the batch loss is the mean over examples.

Training, for reproducibility and speed on CPU:
1. Warm-up: `warmup_epochs` of plain autoencoder training (decoder on the continuous latent).
2. k-means++ / Lloyd initialisation of the codebooks on the encoded latents of a sample of
   items (residual k-means for RQ-VAE, one k-means per codebook for MoC). We initialise
   *after* the warm-up, not on the random initial encoder: a random ReLU encoder squashes the
   inputs into a few directions whose geometry changes completely in the first hundred steps,
   so centroids fitted there go stale and die (measured: more dead-code resets and lower final
   code usage); after a short warm-up the latent is already organised by content and moves
   slowly, so the initial codebook stays useful.
3. Quantised training with dead-code reset (quantizer.py) every step.
4. Codes for the whole set are assigned by the inference function (`Codebook.assign`).

Everything is built under `strategy.scope()` (the default strategy if none is given), and one
training step is `strategy.run(replica_step)` + a cross-replica dead-code update, so the same
code runs under MirroredStrategy / MultiWorkerMirroredStrategy. Batches are fed from numpy
with a seeded permutation per epoch; all random ops are stateless and seeded by
(config.seed, step): same seed and data -> identical codes.
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from components.codebook import base
from components.codebook import kmeans as kmeans_lib
from components.codebook import quantizer as quantizer_lib
from contracts.config import CodebookConfig


def _glorot(shape, seed):
  limit = math.sqrt(6.0 / (shape[0] + shape[1]))
  return tf.random.stateless_uniform(shape, seed=seed, minval=-limit, maxval=limit)


class Mlp(tf.Module):
  """Dense layers with ReLU between them (none after the last)."""

  def __init__(self, dims: Sequence[int], seed: int, name: str):
    super().__init__(name=name)
    self.kernels, self.biases = [], []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
      self.kernels.append(tf.Variable(_glorot([a, b], [seed, 101 + i]), name=f"kernel_{i}"))
      self.biases.append(tf.Variable(tf.zeros([b]), name=f"bias_{i}"))

  def __call__(self, x):
    last = len(self.kernels) - 1
    for i, (w, b) in enumerate(zip(self.kernels, self.biases)):
      x = tf.matmul(x, w) + b
      if i < last:
        x = tf.nn.relu(x)
    return x


class QuantizedAutoencoder(tf.Module):
  """Encoder -> (optional per-codebook projections) -> quantiser -> decoder."""

  def __init__(self, input_dim: int, config: CodebookConfig, quantizer_kind: str,
               num_books: int, per_book_projection: bool = False):
    super().__init__(name="quantized_autoencoder")
    seed = config.seed
    hidden = list(config.hidden_dims)
    self.encoder = Mlp([input_dim] + hidden + [config.latent_dim], seed, "encoder")
    self.decoder = Mlp([config.latent_dim] + hidden[::-1] + [input_dim], seed + 1, "decoder")
    self.projection = None
    if per_book_projection:
      d = config.latent_dim
      eye = np.tile(np.eye(d, dtype=np.float32)[None], [num_books, 1, 1])
      noise = tf.random.stateless_normal([num_books, d, d], seed=[seed, 4243], stddev=0.1 / d**.5)
      self.projection = tf.Variable(eye + noise, name="per_codebook_projection")
    self.quantizer = quantizer_lib.quantizer_from_config(
        quantizer_kind, num_books, config.codebook_size, config.latent_dim, seed)
    # Training step counter (seeds the stateless reset sampling).
    self.step = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="step")

  def encode(self, x):
    """[B, D] latent, or [M, B, D] per-codebook latents when projections are on."""
    z = self.encoder(x)
    if self.projection is not None:
      z = tf.einsum("bd,mde->mbe", z, self.projection)
    return z

  def autoencode(self, x):
    """Warm-up path: decoder on the continuous latent (mean over codebooks if projected)."""
    z = self.encode(x)
    if self.projection is not None:
      z = tf.reduce_mean(z, axis=0)
    return self.decoder(z)

  # Inference (exported). tf ops only.
  def codes(self, embeddings):
    codes, _ = self.quantizer.quantize(self.encode(embeddings))
    return codes

  def infer(self, embeddings):
    codes, quantized = self.quantizer.quantize(self.encode(embeddings))
    return {"codes": codes, "reconstruction": self.decoder(quantized)}


class QuantizedAutoencoderCodebook(base.Codebook):
  """Trainer shared by RqVaeCodebook and MixtureOfCodesCodebook."""

  quantizer_kind = "residual"

  def __init__(self, config: Optional[CodebookConfig] = None,
               strategy: Optional[tf.distribute.Strategy] = None):
    super().__init__(config)
    self.strategy = strategy
    self.model: Optional[QuantizedAutoencoder] = None

  # Subclasses choose the number of codebooks and projections.
  @property
  def num_code_columns(self) -> int:
    return self.config.levels

  def _per_book_projection(self) -> bool:
    return False

  def _serving_module(self):
    return self.model

  # --- batching ----------------------------------------------------------------------------
  def _batches(self, x: np.ndarray, rng: np.random.Generator, steps: int) -> Iterator[np.ndarray]:
    """`steps` fixed-size batches; a fresh permutation per epoch, the remainder dropped (it is
    in the next epoch's batches with high probability). One batch of all items if n < batch."""
    n = x.shape[0]
    bs = min(self.config.batch_size, n)
    done = 0
    while done < steps:
      perm = rng.permutation(n)
      for s in range(0, n - bs + 1, bs):
        if done == steps:
          return
        idx = np.sort(perm[s:s + bs])  # sorted gather is faster; order inside a batch is moot
        yield x[idx]
        done += 1

  def _distribute(self, strategy, batch: np.ndarray):
    if strategy.num_replicas_in_sync == 1:
      return tf.constant(batch)
    parts = np.array_split(batch, strategy.num_replicas_in_sync)
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(parts[ctx.replica_id_in_sync_group]))

  # --- training steps ------------------------------------------------------------------------
  def _make_steps(self, strategy, optimizer, global_batch: int):
    model, cfg = self.model, self.config
    window = int(cfg.dead_code_window)
    seed = int(cfg.seed)
    all_vars = list(model.trainable_variables)
    warm_vars = [v for v in all_vars if v.ref() not in
                 {w.ref() for w in model.quantizer.trainable_variables}]

    def warm_replica(x):
      with tf.GradientTape() as tape:
        recon = tf.reduce_sum(tf.square(x - model.autoencode(x)), axis=1)
        loss = tf.nn.compute_average_loss(recon, global_batch_size=global_batch)
      grads = tape.gradient(loss, warm_vars)
      optimizer.apply_gradients(zip(grads, warm_vars))
      return loss

    def train_replica(x):
      with tf.GradientTape() as tape:
        out = model.quantizer(model.encode(x), beta=cfg.beta, rotation=cfg.rotation_trick)
        recon = tf.reduce_sum(tf.square(x - model.decoder(out.quantized)), axis=1)
        recon_loss = tf.nn.compute_average_loss(recon, global_batch_size=global_batch)
        vq_loss = tf.nn.compute_average_loss(out.loss, global_batch_size=global_batch)
        loss = recon_loss + vq_loss
      grads = tape.gradient(loss, all_vars)
      grads = [tf.convert_to_tensor(g) for g in grads]  # dense: deterministic accumulation
      optimizer.apply_gradients(zip(grads, all_vars))
      counts = model.quantizer.usage_counts(out.codes)
      step_seed = tf.stack([tf.constant(seed, tf.int64), model.step])
      candidates = model.quantizer.reset_candidates(out.inputs, step_seed)
      return recon_loss, vq_loss, counts, candidates

    def warm_step(batch):
      loss = strategy.run(warm_replica, args=(batch,))
      return strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)

    def train_step(batch):
      recon, vq, counts, candidates = strategy.run(train_replica, args=(batch,))
      counts = strategy.reduce(tf.distribute.ReduceOp.SUM, counts, axis=None)
      candidates = strategy.experimental_local_results(candidates)[0]
      if window > 0:
        resets = model.quantizer.update_dead_codes(counts, candidates, window)
      else:
        resets = tf.constant(0, tf.int64)
      model.step.assign_add(1)
      return (strategy.reduce(tf.distribute.ReduceOp.SUM, recon, axis=None),
              strategy.reduce(tf.distribute.ReduceOp.SUM, vq, axis=None), resets)

    return base.tf_function(warm_step), base.tf_function(train_step)

  # --- k-means initialisation --------------------------------------------------------------
  def _kmeans_init(self, x: np.ndarray, rng: np.random.Generator) -> None:
    cfg, model = self.config, self.model
    n = x.shape[0]
    m = min(n, max(cfg.kmeans_init_samples, 4 * cfg.codebook_size))
    sample = x[np.sort(rng.choice(n, size=m, replace=False))] if m < n else x
    z = np.concatenate([model.encode(tf.constant(sample[s:s + 16384])).numpy()
                        for s in range(0, m, 16384)], axis=-2)  # eager: a few calls only
    if self.quantizer_kind == "residual":
      books = kmeans_lib.residual_kmeans(z, cfg.levels, cfg.codebook_size,
                                         cfg.kmeans_iterations, rng)
    else:
      zs = z if z.ndim == 3 else np.broadcast_to(z, (self.num_code_columns,) + z.shape)
      books = [kmeans_lib.kmeans(zs[i], cfg.codebook_size, cfg.kmeans_iterations, rng)[0]
               for i in range(self.num_code_columns)]
    model.quantizer.set_codebooks(np.stack(books))

  # --- fit -----------------------------------------------------------------------------------
  def fit(self, embeddings: np.ndarray) -> "QuantizedAutoencoderCodebook":
    cfg = self.config
    x = base.validate_embeddings(embeddings)
    n, d = x.shape
    base.check_codebook_size(n, cfg.codebook_size)
    strategy = self.strategy or tf.distribute.get_strategy()
    rng = np.random.default_rng(cfg.seed)
    t_start = time.perf_counter()

    with strategy.scope():
      self.model = QuantizedAutoencoder(d, cfg, self.quantizer_kind, self.num_code_columns,
                                        self._per_book_projection())
      optimizer = tf.keras.optimizers.Adam(learning_rate=cfg.learning_rate)
      optimizer.build(self.model.trainable_variables)
    self.input_dim = d

    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // bs)
    train_steps = cfg.epochs * steps_per_epoch
    warm_steps = cfg.warmup_epochs * steps_per_epoch
    if cfg.max_steps > 0:
      train_steps = min(train_steps, cfg.max_steps)
      warm_steps = min(warm_steps, max(1, cfg.max_steps // 10))
    warm_step, train_step = self._make_steps(strategy, optimizer, bs)
    stats: Dict[str, Any] = {"num_items": n, "input_dim": d, "batch_size": bs,
                             "steps_per_epoch": steps_per_epoch, "warmup_steps": warm_steps,
                             "train_steps": train_steps}

    # 1. Warm-up.
    t0 = time.perf_counter()
    warm_loss = None
    for batch in self._batches(x, rng, warm_steps):
      warm_loss = warm_step(self._distribute(strategy, batch))
    stats["warmup_seconds"] = time.perf_counter() - t0
    if warm_loss is not None:
      stats["warmup_final_reconstruction"] = float(warm_loss)

    # 2. k-means initialisation.
    t0 = time.perf_counter()
    if cfg.kmeans_init:
      self._kmeans_init(x, rng)
    stats["kmeans_init_seconds"] = time.perf_counter() - t0

    # 3. Quantised training with dead-code reset.
    history: List[Dict[str, float]] = []
    log_every = max(1, train_steps // 10)
    t0 = time.perf_counter()
    recon = vq = None
    for i, batch in enumerate(self._batches(x, rng, train_steps)):
      recon, vq, resets = train_step(self._distribute(strategy, batch))
      if (i + 1) % log_every == 0 or i + 1 == train_steps:
        entry = {"step": i + 1, "reconstruction": float(recon), "quantization": float(vq),
                 "resets_last_step": int(resets),
                 "resets_total": int(tf.reduce_sum(self.model.quantizer.resets))}
        history.append(entry)
        logging.info("%s step %d/%d: reconstruction %.4f quantization %.4f resets %d",
                     self.method, i + 1, train_steps, entry["reconstruction"],
                     entry["quantization"], entry["resets_total"])
    train_seconds = time.perf_counter() - t0
    stats["train_seconds"] = train_seconds
    stats["train_examples_per_second"] = train_steps * bs / max(train_seconds, 1e-9)
    stats["history"] = history
    stats["dead_code_resets"] = [int(v) for v in self.model.quantizer.resets.numpy()]
    stats["fit_seconds"] = time.perf_counter() - t_start
    self.training_stats = stats
    self._build_inference()
    return self
