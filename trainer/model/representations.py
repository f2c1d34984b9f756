"""Pluggable item representations: tf_keras layers mapping item features to item vectors.

Every representation is an `ItemRepresentation`: called on a dict {candidate feature name:
tensor with one row per item} it returns [T, output_dim] item vectors. The ranking model calls
the same layer (same weights) on the candidate and on the flattened history items, so a layer
only ever sees a flat batch of items. Each layer reports `table_rows` (total embedding rows it
owns) and `tables()` (rows per table) for the run report.

Representations (DESIGN.md §1):
  RandomIdEmbedding        hashed item id, a table much smaller than the catalog (baseline)
  ItemIdEmbedding          one row per training item + OOV buckets for unseen items
  NoItem                   no item input (user-features-only floor); output_dim 0
  DenseContent             linear projection of the frozen content embedding
  SidNgramEmbedding(n)     non-overlapping groups of n SID codes, one table per group
                           (min(K^n, table_budget) rows; farmhash64-hashed when K^n exceeds it)
  SidPrefixNgramEmbedding  one token per prefix (c1), (c1,c2), ..., one table per prefix length
                           (min(K^l, table_budget) rows, hashed above the budget)
  SidSpmEmbedding          SentencePiece pieces of the SID, one row per piece, pooled
  MixtureOfCodesEmbedding  one table per parallel codebook + bottleneck self-gating fusion
  Hybrid(a, b)             sum or concat of two representations (e.g. SID + item id)

Tables that the papers describe as "one table per group/codebook/prefix" are stored as disjoint
row ranges of one variable (`tables()` lists each range) so that a batch needs one gather and
the optimizer one sparse update per representation, not one per table.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import tensorflow as tf

from tfx_pipeline.config import RankingConfig
from trainer.model import features as F

# ------------------------------------------------------------------------------------------
# Seeding


class SeedStream:
  """Deterministic sequence of initializer seeds derived from one config seed."""

  def __init__(self, seed: int):
    self._base = (int(seed) * 1_000_003) % (2**31 - 1)
    self._count = 0

  def next(self) -> int:
    self._count += 1
    return (self._base + 7_919 * self._count) % (2**31 - 1)

  def embedding(self) -> tf.keras.initializers.Initializer:
    return tf.keras.initializers.RandomUniform(-0.05, 0.05, seed=self.next())

  def dense(self) -> tf.keras.initializers.Initializer:
    return StreamInitializer(self.next())


class StreamInitializer(tf.keras.initializers.Initializer):
  """Glorot-uniform with a fresh seed on every call (base seed, call count).

  A seeded tf_keras initializer returns the same values on every call, so one instance shared by
  two variables (e.g. the U and V factors of a low-rank Cross layer) would correlate them.
  """

  def __init__(self, seed: int):
    self.seed = int(seed)
    self._calls = 0

  def __call__(self, shape, dtype=None, **kwargs):
    self._calls += 1
    seed = (self.seed + 104_729 * self._calls) % (2**31 - 1)
    return tf.keras.initializers.GlorotUniform(seed=seed)(shape, dtype=dtype)

  def get_config(self):
    return {"seed": self.seed}


# ------------------------------------------------------------------------------------------
# Id helpers


def _ids(t: tf.Tensor) -> tf.Tensor:
  return tf.cast(t, tf.int64)


def hash_codes(codes: tf.Tensor, rows: int) -> tf.Tensor:
  """farmhash64 of each row of int64 codes [T, l] -> bucket in [0, rows), int64 [T].

  Stable across processes and platforms (tf.fingerprint), so training and serving agree.
  """
  fp = tf.fingerprint(_ids(codes), method="farmhash64")  # [T, 8] uint8
  return tf.math.floormod(tf.bitcast(fp, tf.int64), rows)


def _check_positive(what: str, **values):
  bad = {k: v for k, v in values.items() if not v or int(v) < 1}
  if bad:
    raise ValueError(f"{what} needs {sorted(bad)} >= 1 (got {bad}); pass them in VocabSizes")


# ------------------------------------------------------------------------------------------
# Base


class ItemRepresentation(tf.keras.layers.Layer):
  """Maps {candidate feature name: [T, ...]} to item vectors [T, output_dim]."""

  def __init__(self, output_dim: int, feature_names: Sequence[str] = (), **kwargs):
    super().__init__(**kwargs)
    self._output_dim = int(output_dim)
    self._feature_names = tuple(feature_names)

  @property
  def output_dim(self) -> int:
    return self._output_dim

  @property
  def feature_names(self) -> Tuple[str, ...]:
    """Candidate features read (the model also reads their `history_` twins)."""
    return tuple(self._feature_names)

  def tables(self) -> Dict[str, int]:
    """Embedding rows per (logical) table, keyed '<layer>/<table>'."""
    return {}

  @property
  def table_rows(self) -> int:
    """Total embedding rows this representation owns."""
    return int(sum(self.tables().values()))

  def _add_table(self, rows: int, dim: int, initializer, name: str = "table") -> tf.Variable:
    return self.add_weight(name=name, shape=(int(rows), int(dim)), initializer=initializer,
                           trainable=True)


class RandomIdEmbedding(ItemRepresentation):
  """Hashed item id (`item_random_id` = hash(item_id) mod rows): the papers' baseline."""

  def __init__(self, rows: int, dim: int, initializer=None, **kwargs):
    super().__init__(dim, (F.ITEM_RANDOM_ID,), **kwargs)
    _check_positive("random_id", random_id_rows=rows)
    self.rows = int(rows)
    self.table = self._add_table(self.rows, dim, initializer or "uniform")

  def tables(self):
    return {f"{self.name}/random_id": self.rows}

  def call(self, inputs):
    ids = tf.math.floormod(_ids(inputs[F.ITEM_RANDOM_ID]), self.rows)
    return tf.gather(self.table, ids)


class ItemIdEmbedding(ItemRepresentation):
  """One row per training item (ids 0..num_items-1) + `oov_buckets` rows for unseen items.

  Ids outside [0, num_items + oov_buckets) are sent to an OOV bucket (id mod oov_buckets).
  """

  def __init__(self, num_items: int, oov_buckets: int, dim: int, initializer=None, **kwargs):
    super().__init__(dim, (F.ITEM_VOCAB_ID,), **kwargs)
    _check_positive("item_id_vocab", num_items=num_items)
    self.num_items, self.oov_buckets = int(num_items), int(oov_buckets)
    self.rows = self.num_items + self.oov_buckets
    self.table = self._add_table(self.rows, dim, initializer or "uniform")

  def tables(self):
    return {f"{self.name}/item_id": self.num_items, f"{self.name}/oov": self.oov_buckets}

  def call(self, inputs):
    ids = _ids(inputs[F.ITEM_VOCAB_ID])
    valid = (ids >= 0) & (ids < self.rows)
    if self.oov_buckets:
      fallback = self.num_items + tf.math.floormod(ids, self.oov_buckets)
    else:
      fallback = tf.math.floormod(ids, self.rows)
    return tf.gather(self.table, tf.where(valid, ids, fallback))


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


class DenseContent(ItemRepresentation):
  """Linear projection (with bias) of the frozen content embedding [T, D] to [T, E]."""

  def __init__(self, dim: int, initializer=None, **kwargs):
    super().__init__(dim, (F.ITEM_EMBEDDING,), **kwargs)
    self.projection = tf.keras.layers.Dense(dim, kernel_initializer=initializer or
                                            "glorot_uniform", name="projection")

  def call(self, inputs):
    return self.projection(tf.cast(inputs[F.ITEM_EMBEDDING], tf.float32))


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
    codes = tf.clip_by_value(_ids(codes), 0, self.codebook_size - 1)
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
    return tf.reduce_sum(tf.gather(self.table, self.token_ids(codes)), axis=1)


class SidNgramEmbedding(_CodeTokens):
  """Non-overlapping groups of n SID codes; one table per group of min(K^n, budget) rows.

  Unigram: L tables of K rows (L*K rows). Bigram: ceil(L/2) tables of K^2 rows when
  K^2 <= table_budget (K = 256: 65,536 rows per group), hashed into table_budget rows otherwise.
  An odd last group holds the remaining L mod n codes. Group embeddings are summed.
  """

  def __init__(self, n: int, levels: int, codebook_size: int, dim: int,
               table_budget: int, initializer=None, **kwargs):
    _check_positive("sid n-gram", n=n, sid_levels=levels, sid_codebook_size=codebook_size)
    groups = [(s, min(n, levels - s)) for s in range(0, levels, n)]
    super().__init__(dim, F.ITEM_SID, groups, codebook_size, table_budget, initializer,
                     kind="codes", **kwargs)
    self.n, self.levels = int(n), int(levels)


class SidPrefixNgramEmbedding(_CodeTokens):
  """One token per SID prefix (c1), (c1,c2), ..., (c1..cL); one table per prefix length of
  min(K^l, table_budget) rows (exact below the budget, farmhash64 of the prefix above); summed.
  """

  def __init__(self, levels: int, codebook_size: int, dim: int, table_budget: int,
               initializer=None, **kwargs):
    _check_positive("sid prefix-ngram", sid_levels=levels, sid_codebook_size=codebook_size)
    groups = [(0, l) for l in range(1, levels + 1)]
    super().__init__(dim, F.ITEM_SID, groups, codebook_size, table_budget, initializer,
                     kind="prefix", **kwargs)
    self.levels = int(levels)

  def _group_name(self, i):
    return f"prefix{self.groups[i][1]}"


class SidSpmEmbedding(ItemRepresentation):
  """SentencePiece pieces of the SID: one table with one row per piece id (0 = padding).

  Pooled over non-padding pieces ("mean" or "sum"); ids outside [1, vocab_size) count as
  padding. An item with no piece gets the zero vector.
  """

  def __init__(self, vocab_size: int, dim: int, combiner: str = "mean", initializer=None,
               **kwargs):
    super().__init__(dim, (F.ITEM_SPM_TOKENS,), **kwargs)
    _check_positive("sid_spm", spm_vocab_size=vocab_size)
    if combiner not in ("mean", "sum"):
      raise ValueError(f"combiner must be mean|sum, got {combiner!r}")
    self.vocab_size, self.combiner = int(vocab_size), combiner
    self.table = self._add_table(self.vocab_size, dim, initializer or "uniform")

  def tables(self):
    return {f"{self.name}/pieces": self.vocab_size}

  def call(self, inputs):
    ids = _ids(inputs[F.ITEM_SPM_TOKENS])
    real = (ids > 0) & (ids < self.vocab_size)
    # Look up the real pieces only and sum them per item: SID items average ~1.1 pieces in 3
    # slots (DESIGN.md §3), and every gathered padding slot would also cost a gradient row in
    # the optimizer's dedup (measured 23% faster steps than gather-all-then-mask).
    where = tf.where(real)  # [R, 2] (item, slot), in item order
    pieces = tf.gather(self.table, tf.gather_nd(ids, where))
    summed = tf.math.unsorted_segment_sum(pieces, where[:, 0], tf.shape(ids, out_type=tf.int64)[0])
    if self.combiner == "sum":
      return summed
    count = tf.reduce_sum(tf.cast(real, summed.dtype), axis=1, keepdims=True)
    return summed / tf.maximum(count, 1.0)


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
               bottleneck_dim: int = 16, seeds: Optional[SeedStream] = None, **kwargs):
    super().__init__(dim, (F.ITEM_MOC_CODES,), **kwargs)
    _check_positive("moc", moc_codebooks=num_codebooks, moc_codebook_size=codebook_size)
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
    codes = tf.clip_by_value(_ids(inputs[F.ITEM_MOC_CODES]), 0, self.codebook_size - 1)
    offsets = tf.range(self.num_codebooks, dtype=tf.int64) * self.codebook_size
    emb = tf.gather(self.table, codes + offsets)  # [T, M, d]
    z = tf.reshape(emb, [-1, self.num_codebooks * self.code_dim])
    fused, gate = self.fusion(z, return_gate=True)
    return self.projection(fused), gate

  def call(self, inputs):
    return self.fuse(inputs)[0]


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


# ------------------------------------------------------------------------------------------
# Factory

REPRESENTATIONS = RankingConfig.REPRESENTATIONS


def make_item_representation(name: str, config: RankingConfig, sizes: F.VocabSizes,
                             seeds: Optional[SeedStream] = None) -> ItemRepresentation:
  """Builds the representation `name` (one of RankingConfig.REPRESENTATIONS).

  `config` gives E, table_budget, random_id_rows, item_oov_buckets, the combiners and the MoC
  sizes; `sizes` the data-derived vocabularies (num_items, sid_levels/codebook_size,
  moc_codebooks/codebook_size, spm_vocab_size). Missing sizes raise ValueError naming them.
  """
  seeds = seeds or SeedStream(config.seed)
  e = config.embedding_dim
  if "+" in name:
    if name not in REPRESENTATIONS:
      raise ValueError(f"unknown representation {name!r}; known: {REPRESENTATIONS}")
    first, second = name.split("+")
    a = make_item_representation(first, config, sizes, seeds)
    b = make_item_representation(second, config, sizes, seeds)
    return Hybrid(a, b, config.hybrid_combiner, name="hybrid")
  if name == "random_id":
    return RandomIdEmbedding(config.random_id_rows, e, seeds.embedding(), name="random_id")
  if name == "item_id_vocab":
    return ItemIdEmbedding(sizes.num_items, config.item_oov_buckets, e, seeds.embedding(),
                           name="item_id")
  if name == "no_item":
    return NoItem(name="no_item")
  if name == "dense_content":
    return DenseContent(e, seeds.dense(), name="dense_content")
  if name in ("sid_unigram", "sid_bigram"):
    n = 1 if name == "sid_unigram" else 2
    return SidNgramEmbedding(n, sizes.sid_levels, sizes.sid_codebook_size, e,
                             config.table_budget, seeds.embedding(), name=name)
  if name == "sid_prefix_ngram":
    return SidPrefixNgramEmbedding(sizes.sid_levels, sizes.sid_codebook_size, e,
                                   config.table_budget, seeds.embedding(), name=name)
  if name == "sid_spm":
    return SidSpmEmbedding(sizes.spm_vocab_size, e, config.spm_combiner, seeds.embedding(),
                           name=name)
  if name == "moc":
    return MixtureOfCodesEmbedding(sizes.moc_codebooks, sizes.moc_codebook_size, e,
                                   config.moc_code_dim, config.moc_bottleneck_dim, seeds,
                                   name="moc")
  raise ValueError(f"unknown representation {name!r}; known: {REPRESENTATIONS}")
