"""DenseContent: the frozen content embedding fed to the ranker through a linear projection
(the papers' dense baseline)."""

from __future__ import annotations

import tensorflow as tf

from trainer.model import features as F
from trainer.model.representations.base import BuildContext, ItemRepresentation


class DenseContent(ItemRepresentation):
  """Linear projection (with bias) of the frozen content embedding [T, D] to [T, E]."""

  def __init__(self, dim: int, initializer=None, **kwargs):
    super().__init__(dim, (F.ITEM_EMBEDDING,), **kwargs)
    self.projection = tf.keras.layers.Dense(dim, kernel_initializer=initializer or
                                            "glorot_uniform", name="projection")

  def call(self, inputs):
    return self.projection(tf.cast(inputs[F.ITEM_EMBEDDING], tf.float32))


def dense_content(ctx: BuildContext) -> ItemRepresentation:
  return DenseContent(ctx.config.embedding_dim, ctx.seeds.dense(), name="dense_content")
