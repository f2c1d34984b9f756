"""Item-id representations: hashed random ids (the papers' baseline), the item-id
vocabulary, and no item input at all (the user-features-only floor)."""

from __future__ import annotations

import tensorflow as tf

from trainer.model import features as F
from trainer.model.representations.base import (BuildContext, ItemRepresentation,
                                                 check_positive, ids_of, lookup)


class RandomIdEmbedding(ItemRepresentation):
  """Hashed item id (`item_random_id` = hash(item_id) mod rows): the papers' baseline."""

  def __init__(self, rows: int, dim: int, initializer=None, **kwargs):
    super().__init__(dim, (F.ITEM_RANDOM_ID,), **kwargs)
    check_positive("random_id", random_id_rows=rows)
    self.rows = int(rows)
    self.table = self._add_table(self.rows, dim, initializer or "uniform")

  def tables(self):
    return {f"{self.name}/random_id": self.rows}

  def call(self, inputs):
    ids = tf.math.floormod(ids_of(inputs[F.ITEM_RANDOM_ID]), self.rows)
    return lookup(self.table, ids)


class ItemIdEmbedding(ItemRepresentation):
  """One row per training item (ids 0..num_items-1) + `oov_buckets` rows for unseen items.

  Ids outside [0, num_items + oov_buckets) are sent to an OOV bucket (id mod oov_buckets).
  """

  def __init__(self, num_items: int, oov_buckets: int, dim: int, initializer=None, **kwargs):
    super().__init__(dim, (F.ITEM_VOCAB_ID,), **kwargs)
    check_positive("item_id_vocab", num_items=num_items)
    self.num_items, self.oov_buckets = int(num_items), int(oov_buckets)
    self.rows = self.num_items + self.oov_buckets
    self.table = self._add_table(self.rows, dim, initializer or "uniform")

  def tables(self):
    return {f"{self.name}/item_id": self.num_items, f"{self.name}/oov": self.oov_buckets}

  def call(self, inputs):
    ids = ids_of(inputs[F.ITEM_VOCAB_ID])
    valid = (ids >= 0) & (ids < self.rows)
    if self.oov_buckets:
      fallback = self.num_items + tf.math.floormod(ids, self.oov_buckets)
    else:
      fallback = tf.math.floormod(ids, self.rows)
    return lookup(self.table, tf.where(valid, ids, fallback))


class NoItem(ItemRepresentation):
  """No item input: the user-features-only floor. Returns [T, 0]; reads no features."""

  def __init__(self, **kwargs):
    super().__init__(0, (), **kwargs)
    self.built = True  # no weights; the model never calls it

  def call(self, inputs):
    tensors = [t for t in tf.nest.flatten(inputs) if isinstance(t, tf.Tensor)]
    if not tensors:
      raise ValueError("NoItem needs any tensor to read the batch size from")
    return tf.zeros(tf.stack([tf.shape(tensors[0])[0], 0]), tf.float32)


def random_id(ctx: BuildContext) -> ItemRepresentation:
  return RandomIdEmbedding(ctx.config.random_id_rows, ctx.config.embedding_dim,
                           ctx.seeds.embedding(), name="random_id")


def item_id_vocab(ctx: BuildContext) -> ItemRepresentation:
  return ItemIdEmbedding(ctx.sizes.num_items, ctx.config.item_oov_buckets,
                         ctx.config.embedding_dim, ctx.seeds.embedding(), name="item_id")


def no_item(ctx: BuildContext) -> ItemRepresentation:
  del ctx  # no weights, no seeds drawn
  return NoItem(name="no_item")
