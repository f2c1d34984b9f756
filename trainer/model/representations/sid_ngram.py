"""SID n-grams (Singh et al. 2024): the codes of one codebook's SID, grouped into tokens.

  SidNgramEmbedding(n)     non-overlapping groups of n codes, one table per group
                           (min(K^n, table_budget) rows; farmhash64-hashed when K^n exceeds it)
  SidPrefixNgramEmbedding  one token per prefix (c1), (c1,c2), ..., one table per prefix length
                           (min(K^l, table_budget) rows, hashed above the budget)
"""

from __future__ import annotations

from typing import Sequence, Tuple

import tensorflow as tf

from trainer.model import features as F
from trainer.model.representations.base import (BuildContext, ItemRepresentation,
                                                 check_positive, hash_codes, ids_of,
                                                 lookup)


class _CodeTokens(ItemRepresentation):
  """Shared machinery: code groups -> one token per group in its own row range -> sum."""

  def __init__(self, dim: int, feature: str, groups: Sequence[Tuple[int, int]],
               codebook_size: int, table_budget: int, initializer, kind: str, **kwargs):
    super().__init__(dim, (feature,), **kwargs)
    self.feature, self.codebook_size, self.table_budget = feature, int(codebook_size), \
        int(table_budget)
    self.groups = tuple(groups)  # (start, length) of the codes each token covers
    self.group_rows, self.group_hashed, self.group_offsets = [], [], []
    offset = 0
    for _, length in self.groups:
      cardinality = self.codebook_size ** length  # Python int: exact at any size
      rows = min(cardinality, self.table_budget)
      self.group_rows.append(rows)
      self.group_hashed.append(cardinality > self.table_budget)
      self.group_offsets.append(offset)
      offset += rows
    self._kind = kind
    self.table = self._add_table(offset, dim, initializer or "uniform")

  def _group_name(self, i):
    start, length = self.groups[i]
    return f"{self._kind}{start}" + (f"-{start + length - 1}" if length > 1 else "")

  def tables(self):
    return {f"{self.name}/{self._group_name(i)}": r for i, r in enumerate(self.group_rows)}

  def token_ids(self, codes: tf.Tensor) -> tf.Tensor:
    """[T, L] codes -> [T, groups] row ids into `table` (offsets included)."""
    codes = tf.clip_by_value(ids_of(codes), 0, self.codebook_size - 1)
    out = []
    for (start, length), rows, hashed, offset in zip(self.groups, self.group_rows,
                                                    self.group_hashed, self.group_offsets):
      part = codes[:, start:start + length]
      if hashed:
        token = hash_codes(part, rows)
      else:
        token = part[:, 0]
        for j in range(1, length):
          token = token * self.codebook_size + part[:, j]
      out.append(token + offset)
    return tf.stack(out, axis=1)

  def call(self, inputs):
    codes = inputs[self.feature]
    return tf.reduce_sum(lookup(self.table, self.token_ids(codes)), axis=1)


class SidNgramEmbedding(_CodeTokens):
  """Non-overlapping groups of n SID codes; one table per group of min(K^n, budget) rows.

  Unigram: L tables of K rows (L*K rows). Bigram: ceil(L/2) tables of K^2 rows when
  K^2 <= table_budget (K = 256: 65,536 rows per group), hashed into table_budget rows otherwise.
  An odd last group holds the remaining L mod n codes. Group embeddings are summed.
  """

  def __init__(self, n: int, levels: int, codebook_size: int, dim: int,
               table_budget: int, initializer, feature: str, **kwargs):
    check_positive("sid n-gram", n=n, code_columns=levels, codebook_size=codebook_size)
    groups = [(s, min(n, levels - s)) for s in range(0, levels, n)]
    super().__init__(dim, feature, groups, codebook_size, table_budget, initializer,
                     kind="codes", **kwargs)
    self.n, self.levels = int(n), int(levels)


class SidPrefixNgramEmbedding(_CodeTokens):
  """One token per SID prefix (c1), (c1,c2), ..., (c1..cL); one table per prefix length of
  min(K^l, table_budget) rows (exact below the budget, farmhash64 of the prefix above); summed.
  """

  def __init__(self, levels: int, codebook_size: int, dim: int, table_budget: int,
               initializer, feature: str, **kwargs):
    check_positive("sid prefix-ngram", code_columns=levels, codebook_size=codebook_size)
    groups = [(0, l) for l in range(1, levels + 1)]
    super().__init__(dim, feature, groups, codebook_size, table_budget, initializer,
                     kind="prefix", **kwargs)
    self.levels = int(levels)

  def _group_name(self, i):
    return f"prefix{self.groups[i][1]}"


def _ngram(ctx: BuildContext, n: int) -> ItemRepresentation:
  sizes = ctx.codebook_sizes()
  return SidNgramEmbedding(n, sizes.code_columns, sizes.codebook_size, ctx.config.embedding_dim,
                           ctx.config.table_budget, ctx.seeds.embedding(),
                           feature=F.item_codes(ctx.codebook), name=ctx.entry.name)


def sid_unigram(ctx: BuildContext) -> ItemRepresentation:
  return _ngram(ctx, 1)


def sid_bigram(ctx: BuildContext) -> ItemRepresentation:
  return _ngram(ctx, 2)


def sid_prefix_ngram(ctx: BuildContext) -> ItemRepresentation:
  sizes = ctx.codebook_sizes()
  return SidPrefixNgramEmbedding(sizes.code_columns, sizes.codebook_size,
                                 ctx.config.embedding_dim, ctx.config.table_budget,
                                 ctx.seeds.embedding(), feature=F.item_codes(ctx.codebook),
                                 name=ctx.entry.name)
