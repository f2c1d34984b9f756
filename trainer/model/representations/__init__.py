"""Pluggable item representations: tf_keras layers mapping item features to item vectors.

The registry (contracts/registry/representations.py) lists them and names each one's builder;
`make_item_representation` builds one by name. The layers (DESIGN.md §1):
  ids.py        RandomIdEmbedding (hashed item id: the papers' baseline), ItemIdEmbedding (one
                row per training item + OOV buckets), NoItem (the user-features-only floor)
  content.py    DenseContent: linear projection of the frozen content embedding
  sid_ngram.py  SidNgramEmbedding(n), SidPrefixNgramEmbedding over one codebook's codes
  sid_spm.py    SidSpmEmbedding: SentencePiece pieces of the SID, one row per piece, pooled
  moc.py        MixtureOfCodesEmbedding: one table per parallel codebook + bottleneck
                self-gating fusion (BottleneckSelfGating)
  hybrid.py     Hybrid(a, b): sum or concat of two representations
  base.py       ItemRepresentation, SeedStream, hash_codes, BuildContext
"""

from __future__ import annotations

from typing import Optional

from contracts.config import RankingConfig
from contracts.registry import representations as registry
from contracts.registry import resolve
from trainer.model import features as F
from trainer.model.representations.base import (BuildContext, ItemRepresentation, SeedStream,
                                                 StreamInitializer, hash_codes)
from trainer.model.representations.content import DenseContent
from trainer.model.representations.hybrid import Hybrid
from trainer.model.representations.ids import ItemIdEmbedding, NoItem, RandomIdEmbedding
from trainer.model.representations.moc import BottleneckSelfGating, MixtureOfCodesEmbedding
from trainer.model.representations.sid_ngram import SidNgramEmbedding, SidPrefixNgramEmbedding
from trainer.model.representations.sid_spm import SidSpmEmbedding

REPRESENTATIONS = registry.NAMES


def make_item_representation(name: str, config: RankingConfig, sizes: F.VocabSizes,
                             seeds: Optional[SeedStream] = None) -> ItemRepresentation:
  """Builds the registered representation `name`.

  `config` gives E, table_budget, random_id_rows, item_oov_buckets, the combiners, the MoC
  sizes and `sid_codebook`; `sizes` the data-derived vocabularies and each codebook's sizes.
  A codebook missing from `sizes` raises ValueError naming it.
  """
  seeds = seeds or SeedStream(config.seed)
  entry = registry.get(name)
  codebooks = entry.codebooks(config.sid_codebook, config.aligned_sid_codebook)
  ctx = BuildContext(config=config, sizes=sizes, seeds=seeds, entry=entry,
                     codebook=codebooks[0] if len(codebooks) == 1 and not entry.parts else None,
                     build=lambda part: make_item_representation(part, config, sizes, seeds))
  return resolve(entry.builder)(ctx)


__all__ = [
    "REPRESENTATIONS", "BottleneckSelfGating", "BuildContext", "DenseContent", "Hybrid",
    "ItemIdEmbedding", "ItemRepresentation", "MixtureOfCodesEmbedding", "NoItem",
    "RandomIdEmbedding", "SeedStream", "SidNgramEmbedding", "SidPrefixNgramEmbedding",
    "SidSpmEmbedding", "StreamInitializer", "hash_codes", "make_item_representation",
]
