"""Vector-quantiser layers shared by RQ-VAE, Mixture-of-Codes and RQ-KMeans (TensorFlow).

- `ResidualQuantizer`: L levels of K codes; level l quantises what levels < l left over.
- `ParallelQuantizer`: M independent codebooks of K codes over the same input (or one input
  per codebook); the output is the mean of the M chosen codes (Mixture-of-Codes).
- Gradients: straight-through estimator (van den Oord et al. 2017) or, optionally, the
  rotation trick (Fifty et al. 2024): the encoder output is rotated and rescaled onto its
  quantised vector with a matrix treated as a constant, so the gradient reaching the encoder
  keeps the angle between the output and the code instead of being copied unchanged.
- Loss per example: sum over codebooks of ||sg(r) - e||^2 + beta ||r - sg(e)||^2, each summed
  over dimensions (never a mean over dimensions: that shrinks the codebook/commitment terms by
  1/D relative to a summed reconstruction and is a known collapse cause).
- Dead-code reset: `idle_steps[m, k]` counts consecutive training steps in which code k of
  codebook m was chosen by no item of the (global) batch; codes idle for `window` steps are
  re-seeded with the quantiser inputs (encoded residuals) of random batch items.

Layers are plain `tf.Module`s with `tf.Variable`s (no Keras), so they save into a SavedModel
as they are and can be created under any `tf.distribute.Strategy` scope.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf


class QuantizerOutput(NamedTuple):
  codes: tf.Tensor  # int64 [B, M]
  quantized: tf.Tensor  # float32 [B, D] with straight-through / rotation-trick gradients
  hard: tf.Tensor  # float32 [B, D] the quantised vector itself (no encoder gradient)
  loss: tf.Tensor  # float32 [B] codebook + beta * commitment, summed over codebooks and dims
  inputs: tf.Tensor  # float32 [M, B, D] what each codebook quantised (residuals for RQ)


def squared_distances(x: tf.Tensor, codebook: tf.Tensor) -> tf.Tensor:
  """||x_b - e_k||^2 for x [..., B, D] and codebook [..., K, D] -> [..., B, K]."""
  x_sq = tf.reduce_sum(tf.square(x), axis=-1, keepdims=True)
  e_sq = tf.expand_dims(tf.reduce_sum(tf.square(codebook), axis=-1), axis=-2)
  return x_sq - 2.0 * tf.matmul(x, codebook, transpose_b=True) + e_sq


def nearest_codes(x: tf.Tensor, codebook: tf.Tensor) -> tf.Tensor:
  """int64 index of the nearest code; ties go to the lowest index."""
  # ||x||^2 is the same for every code, so it is left out of the argmin.
  e_sq = tf.expand_dims(tf.reduce_sum(tf.square(codebook), axis=-1), axis=-2)
  return tf.argmin(e_sq - 2.0 * tf.matmul(x, codebook, transpose_b=True), axis=-1,
                   output_type=tf.int64)


def straight_through(x: tf.Tensor, q: tf.Tensor) -> tf.Tensor:
  """Forward value q, gradient copied to x unchanged."""
  return x + tf.stop_gradient(q - x)


def rotation_trick(x: tf.Tensor, q: tf.Tensor, eps: float = 1e-6) -> tf.Tensor:
  """Forward value q; gradient to x through sg(lambda R) x (Fifty et al. 2024, Alg. 1).

  R rotates x/|x| onto q/|q| (a Householder reflection through w = (u + v)/|u + v| followed by
  a reflection onto v), lambda = |q| / |x|; both are constants for the backward pass.
  """
  x_norm = tf.norm(x, axis=-1, keepdims=True)
  q_norm = tf.norm(q, axis=-1, keepdims=True)
  u = tf.stop_gradient(x / (x_norm + eps))
  v = tf.stop_gradient(q / (q_norm + eps))
  w = u + v
  w = tf.stop_gradient(w / (tf.norm(w, axis=-1, keepdims=True) + eps))
  rotated = (x - 2.0 * tf.reduce_sum(x * w, -1, keepdims=True) * w +
             2.0 * tf.reduce_sum(x * u, -1, keepdims=True) * v)
  scale = tf.stop_gradient(q_norm / (x_norm + eps))
  out = scale * rotated
  # The forward value must be exactly q (codes may sit at exact copies of inputs).
  return out + tf.stop_gradient(q - out)


def vq_loss(r: tf.Tensor, e: tf.Tensor, beta: float) -> tf.Tensor:
  """Per example: ||sg(r) - e||^2 + beta ||r - sg(e)||^2, summed over the last axis."""
  codebook = tf.reduce_sum(tf.square(tf.stop_gradient(r) - e), axis=-1)
  commitment = tf.reduce_sum(tf.square(r - tf.stop_gradient(e)), axis=-1)
  return codebook + beta * commitment


class _Quantizer(tf.Module):
  """M codebooks [M, K, D] plus the dead-code bookkeeping."""

  def __init__(self, num_books: int, size: int, dim: int, seed: int, init_scale: float,
               name: str):
    super().__init__(name=name)
    self.num_books, self.size, self.dim = num_books, size, dim
    init = tf.random.stateless_uniform([num_books, size, dim], seed=[seed, 7919],
                                       minval=-init_scale, maxval=init_scale)
    self.codebooks = tf.Variable(init, name="codebooks")
    self.idle_steps = tf.Variable(tf.zeros([num_books, size], tf.int32), trainable=False,
                                  name="idle_steps")
    self.resets = tf.Variable(tf.zeros([num_books], tf.int64), trainable=False, name="resets")

  def set_codebooks(self, books: np.ndarray) -> None:
    books = np.asarray(books, np.float32).reshape(self.num_books, self.size, self.dim)
    self.codebooks.assign(books)
    self.idle_steps.assign(tf.zeros_like(self.idle_steps))

  def usage_counts(self, codes: tf.Tensor) -> tf.Tensor:
    """[M, K] float32: how many batch items chose each code (codes: [B, M])."""
    flat = tf.transpose(codes) + tf.range(self.num_books, dtype=codes.dtype)[:, None] * self.size
    counts = tf.math.unsorted_segment_sum(tf.ones_like(flat, tf.float32), flat,
                                          self.num_books * self.size)
    return tf.reshape(counts, [self.num_books, self.size])

  def reset_candidates(self, inputs: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """[M, K, D]: for each code, the quantiser input of a random batch item (no repeats
    while K <= batch size). inputs: [M, B, D]; seed: int32/64 [2] (stateless, reproducible)."""
    inputs = tf.stop_gradient(inputs)
    batch = tf.shape(inputs)[1]
    noise = tf.random.stateless_uniform([self.num_books, batch], seed=seed)
    perm = tf.argsort(noise, axis=1, stable=True)
    take = tf.math.floormod(tf.range(self.size), batch)
    idx = tf.gather(perm, take, axis=1)  # [M, K]
    return tf.gather(inputs, idx, axis=1, batch_dims=1)

  def update_dead_codes(self, counts: tf.Tensor, candidates: tf.Tensor, window: int) -> tf.Tensor:
    """Updates idle counters and re-seeds codes idle for `window` steps; returns #reset.

    Call in cross-replica context with `counts` summed over replicas.
    """
    idle = tf.where(counts > 0, tf.zeros_like(self.idle_steps), self.idle_steps + 1)
    dead = idle >= window
    self.codebooks.assign(tf.where(dead[..., None], candidates, self.codebooks))
    self.idle_steps.assign(tf.where(dead, tf.zeros_like(idle), idle))
    per_book = tf.reduce_sum(tf.cast(dead, tf.int64), axis=1)
    self.resets.assign_add(per_book)
    return tf.reduce_sum(per_book)


class ResidualQuantizer(_Quantizer):
  """L levels x K codes; codes [B, L]; quantised vector = sum of the chosen codes."""

  def __init__(self, levels: int, size: int, dim: int, seed: int = 0, init_scale: float = 0.01,
               name: str = "residual_quantizer"):
    super().__init__(levels, size, dim, seed, init_scale, name)

  def quantize(self, z: tf.Tensor):
    """Inference: (codes int64 [B, L], quantised float32 [B, D])."""
    residual, total, codes = z, tf.zeros_like(z), []
    for level in range(self.num_books):
      book = self.codebooks[level]
      c = nearest_codes(residual, book)
      e = tf.gather(book, c)
      codes.append(c)
      total += e
      residual -= e
    return tf.stack(codes, axis=1), total

  def __call__(self, z: tf.Tensor, beta: float, rotation: bool = False) -> QuantizerOutput:
    residual = z  # r_0 = z; r_{l+1} = r_l - sg(e_l): the encoder gets commitment gradients
    total, codes, losses, inputs = 0.0, [], [], []
    for level in range(self.num_books):
      book = self.codebooks[level]
      c = nearest_codes(tf.stop_gradient(residual), book)
      e = tf.gather(book, c)
      codes.append(c)
      inputs.append(residual)
      losses.append(vq_loss(residual, e, beta))
      total += e
      residual = residual - tf.stop_gradient(e)
    hard = total
    quantized = rotation_trick(z, hard) if rotation else straight_through(z, hard)
    return QuantizerOutput(tf.stack(codes, axis=1), quantized, hard, tf.add_n(losses),
                           tf.stack(inputs, axis=0))


class ParallelQuantizer(_Quantizer):
  """M independent codebooks of K codes; codes [B, M]; output = mean of the M chosen codes."""

  def __init__(self, num_books: int, size: int, dim: int, seed: int = 0,
               init_scale: float = 0.01, name: str = "parallel_quantizer"):
    super().__init__(num_books, size, dim, seed, init_scale, name)

  def _inputs(self, z: tf.Tensor) -> tf.Tensor:
    """[B, D] (shared input) or [M, B, D] (one input per codebook) -> [M, B, D]."""
    if z.shape.rank == 2:
      return tf.broadcast_to(z[None], [self.num_books, tf.shape(z)[0], self.dim])
    return z

  def _choose(self, inputs: tf.Tensor):
    codes = nearest_codes(tf.stop_gradient(inputs), self.codebooks)  # [M, B]
    chosen = tf.gather(self.codebooks, codes, axis=1, batch_dims=1)  # [M, B, D]
    return codes, chosen

  def quantize(self, z: tf.Tensor):
    codes, chosen = self._choose(self._inputs(z))
    return tf.transpose(codes), tf.reduce_mean(chosen, axis=0)

  def __call__(self, z: tf.Tensor, beta: float, rotation: bool = False) -> QuantizerOutput:
    inputs = self._inputs(z)
    codes, chosen = self._choose(inputs)
    loss = tf.reduce_sum(vq_loss(inputs, chosen, beta), axis=0)  # [B]
    per_book = rotation_trick(inputs, chosen) if rotation else straight_through(inputs, chosen)
    return QuantizerOutput(tf.transpose(codes), tf.reduce_mean(per_book, axis=0),
                           tf.reduce_mean(chosen, axis=0), loss, inputs)


def quantizer_from_config(kind: str, num_books: int, size: int, dim: int, seed: int,
                          init_scale: Optional[float] = None) -> _Quantizer:
  cls = {"residual": ResidualQuantizer, "parallel": ParallelQuantizer}[kind]
  return cls(num_books, size, dim, seed=seed,
             init_scale=0.01 if init_scale is None else init_scale)
