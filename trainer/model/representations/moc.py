"""Mixture-of-Codes (Zhang et al., "Towards Scalable Semantic Representation for
Recommendation"): one table per parallel codebook, fused by bottleneck self-gating."""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from trainer.model import features as F
from trainer.model.representations.base import (BuildContext, ItemRepresentation, SeedStream,
                                                 check_positive, ids_of, lookup)


class BottleneckSelfGating(tf.keras.layers.Layer):
  """MoC fusion network: gate = sigmoid(up(relu(down(z)))), output z * gate (same shape)."""

  def __init__(self, bottleneck_dim: int, seeds: Optional[SeedStream] = None, **kwargs):
    super().__init__(**kwargs)
    seeds = seeds or SeedStream(0)
    self.bottleneck_dim = int(bottleneck_dim)
    self.down = tf.keras.layers.Dense(self.bottleneck_dim, activation="relu",
                                      kernel_initializer=seeds.dense(), name="down")
    self._up_initializer = seeds.dense()
    self.up = None

  def build(self, input_shape):
    self.up = tf.keras.layers.Dense(int(input_shape[-1]), kernel_initializer=self._up_initializer,
                                    name="up")
    super().build(input_shape)

  def gate(self, z: tf.Tensor) -> tf.Tensor:
    if not self.built:
      self.build(z.shape)
    return tf.sigmoid(self.up(self.down(z)))

  def call(self, z, return_gate: bool = False):
    gate = self.gate(z)
    return (z * gate, gate) if return_gate else z * gate


class MixtureOfCodesEmbedding(ItemRepresentation):
  """Mixture-of-Codes: one table of K rows per parallel codebook (M tables), the M code
  embeddings concatenated [T, M*d], fused by bottleneck self-gating (down-projection -> ReLU ->
  up-projection -> sigmoid gate, multiplied elementwise with the concat), projected to E.
  """

  def __init__(self, num_codebooks: int, codebook_size: int, dim: int, code_dim: int = 0,
               bottleneck_dim: int = 16, seeds: Optional[SeedStream] = None, *, feature: str,
               **kwargs):
    super().__init__(dim, (feature,), **kwargs)
    self.feature = feature
    check_positive("moc", code_columns=num_codebooks, codebook_size=codebook_size)
    seeds = seeds or SeedStream(0)
    self.num_codebooks, self.codebook_size = int(num_codebooks), int(codebook_size)
    self.code_dim = int(code_dim) or int(dim)
    self.table = self._add_table(self.num_codebooks * self.codebook_size, self.code_dim,
                                 seeds.embedding())
    self.fusion = BottleneckSelfGating(bottleneck_dim, seeds, name="fusion")
    self.projection = tf.keras.layers.Dense(dim, kernel_initializer=seeds.dense(),
                                            name="projection")

  def tables(self):
    return {f"{self.name}/codebook{m}": self.codebook_size for m in range(self.num_codebooks)}

  def fuse(self, inputs):
    """-> (item vectors [T, E], gate [T, M*d]) for inspection."""
    codes = tf.clip_by_value(ids_of(inputs[self.feature]), 0, self.codebook_size - 1)
    offsets = tf.range(self.num_codebooks, dtype=tf.int64) * self.codebook_size
    emb = lookup(self.table, codes + offsets)  # [T, M, d]
    z = tf.reshape(emb, [-1, self.num_codebooks * self.code_dim])
    fused, gate = self.fusion(z, return_gate=True)
    return self.projection(fused), gate

  def call(self, inputs):
    return self.fuse(inputs)[0]


def moc(ctx: BuildContext) -> ItemRepresentation:
  sizes = ctx.codebook_sizes()
  return MixtureOfCodesEmbedding(sizes.code_columns, sizes.codebook_size,
                                 ctx.config.embedding_dim, ctx.config.moc_code_dim,
                                 ctx.config.moc_bottleneck_dim, ctx.seeds,
                                 feature=F.item_codes(ctx.codebook), name=ctx.entry.name)
