"""What every item representation shares: the layer base class, seeding and code hashing.

An `ItemRepresentation` maps {candidate feature name: tensor with one row per item} to
[T, output_dim] item vectors. The ranking model calls the same layer (same weights) on the
candidate and on the flattened history items, so a layer only ever sees a flat batch of items.
Each layer reports `table_rows` (total embedding rows it owns) and `tables()` (rows per table)
for the run report. Tables that the papers describe as "one table per group/codebook/prefix"
are stored as disjoint row ranges of one variable (`tables()` lists each range) so that a
batch needs one gather and the optimizer one sparse update per representation.

A representation is built by a builder function registered in
contracts/registry/representations.py: `builder(ctx: BuildContext) -> ItemRepresentation`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Sequence, Tuple

import tensorflow as tf

from contracts.config import RankingConfig
from contracts.registry.representations import Representation
from trainer.model import features as F


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


def ids_of(t: tf.Tensor) -> tf.Tensor:
  return tf.cast(t, tf.int64)


def lookup(table, ids: tf.Tensor) -> tf.Tensor:
  """Rows `ids` (any shape) of an embedding table -> [*ids.shape, dim].

  tf.nn.embedding_lookup rather than tf.gather: on a table partitioned over parameter servers
  (a ShardedVariable, trainer/distribution.py) it gathers from each shard, where tf.gather
  would first concatenate the whole table onto the worker. On a plain variable it is the same
  gather.
  """
  return tf.nn.embedding_lookup(table, ids)


def hash_codes(codes: tf.Tensor, rows: int) -> tf.Tensor:
  """farmhash64 of each row of int64 codes [T, l] -> bucket in [0, rows), int64 [T].

  Stable across processes and platforms (tf.fingerprint), so training and serving agree.
  """
  fp = tf.fingerprint(ids_of(codes), method="farmhash64")  # [T, 8] uint8
  return tf.math.floormod(tf.bitcast(fp, tf.int64), rows)


def check_positive(what: str, **values):
  bad = {k: v for k, v in values.items() if not v or int(v) < 1}
  if bad:
    raise ValueError(f"{what} needs {sorted(bad)} >= 1 (got {bad}); VocabSizes gives them "
                     f"(a codebook's CodebookSizes, num_items, ...)")


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


@dataclasses.dataclass(frozen=True)
class BuildContext:
  """What a registered builder gets: the settings, the data's sizes, the seed stream (draw
  initializers in construction order: it is what makes a seed reproduce a model), the registry
  entry, the codebook it reads (resolved: RankingConfig.sid_codebook for SID representations)
  and `build(name)` for the parts of a hybrid."""
  config: RankingConfig
  sizes: F.VocabSizes
  seeds: SeedStream
  entry: Representation
  codebook: Optional[str]
  build: Callable[[str], ItemRepresentation]

  def codebook_sizes(self) -> F.CodebookSizes:
    return self.sizes.codebook(self.codebook, f"representation {self.entry.name!r}")
