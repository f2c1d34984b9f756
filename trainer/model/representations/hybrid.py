"""Hybrid: two representations of the same item (e.g. SID + item id), summed or concatenated."""

from __future__ import annotations

import tensorflow as tf

from trainer.model.representations.base import BuildContext, ItemRepresentation


class Hybrid(ItemRepresentation):
  """Two representations of the same item, summed (equal output dims) or concatenated."""

  def __init__(self, a: ItemRepresentation, b: ItemRepresentation, combiner: str = "sum",
               **kwargs):
    if combiner not in ("sum", "concat"):
      raise ValueError(f"combiner must be sum|concat, got {combiner!r}")
    if combiner == "sum" and a.output_dim != b.output_dim:
      raise ValueError(f"sum needs equal output dims, got {a.output_dim} and {b.output_dim}")
    names = tuple(dict.fromkeys(a.feature_names + b.feature_names))
    dim = a.output_dim if combiner == "sum" else a.output_dim + b.output_dim
    super().__init__(dim, names, **kwargs)
    self.a, self.b, self.combiner = a, b, combiner

  def tables(self):
    return {**self.a.tables(), **self.b.tables()}

  def call(self, inputs):
    va = self.a({k: inputs[k] for k in self.a.feature_names})
    vb = self.b({k: inputs[k] for k in self.b.feature_names})
    return va + vb if self.combiner == "sum" else tf.concat([va, vb], axis=-1)


def hybrid(ctx: BuildContext) -> ItemRepresentation:
  first, second = (ctx.build(part) for part in ctx.entry.parts)
  return Hybrid(first, second, ctx.config.hybrid_combiner, name="hybrid")
