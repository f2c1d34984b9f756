"""Registry of item representations (the ranker's pluggable item input, DESIGN.md §1).

Each entry names its layer builder, `builder(ctx: BuildContext) -> ItemRepresentation`
(trainer/model/representations/base.py), and what it reads: the codes of one codebook
(SID_CODEBOOK: the one `RankingConfig.sid_codebook` names; ALIGNED_SID_CODEBOOK: the aligned
twin of `RankingConfig.aligned_sid_codebook`) and / or the content embeddings (then the DAG
hands the Trainer the ItemEmbeddings; `aligned`: the ContentAligner's instead of the raw
ones). A hybrid lists its parts. An aligned representation has the same builder as its raw
counterpart (`raw_counterpart`, which the report shows beside it): only its input differs.
Config validation, the DAG, the trainer's factory, the CLI help and the tests read this list.
"""
import dataclasses
from typing import Dict, Optional, Tuple

from contracts.registry.codebook_methods import ALIGNED_PREFIX

SID_CODEBOOK = "<sid_codebook>"
ALIGNED_SID_CODEBOOK = "<aligned_sid_codebook>"
_MODULE = "trainer.model.representations"


@dataclasses.dataclass(frozen=True)
class Representation:
  name: str
  builder: str = ""
  codebook: Optional[str] = None
  needs_content: bool = False
  parts: Tuple[str, ...] = ()
  summary: str = ""
  # Reads the ContentAligner's embeddings (as content, or through an aligned codebook).
  aligned: bool = False
  raw_counterpart: str = ""
  # Reads the SentencePiece sub-ID tokens of its codebook's SIDs.
  spm: bool = False
  # Gives the ranker item vectors (candidate and history), so ranking.use_history and
  # history_table apply to it; False only for the no-item floor.
  item_vectors: bool = True

  def codebooks(self, sid_codebook: str, aligned_sid_codebook: str) -> Tuple[str, ...]:
    """The codebooks whose codes this representation (or its parts) reads."""
    if self.parts:
      return tuple(dict.fromkeys(c for p in self.parts for c in get(p).codebooks(
          sid_codebook, aligned_sid_codebook)))
    if self.codebook is None:
      return ()
    return ({SID_CODEBOOK: sid_codebook,
             ALIGNED_SID_CODEBOOK: ALIGNED_PREFIX + aligned_sid_codebook}.get(
                 self.codebook, self.codebook),)

  def reads_content(self) -> bool:
    return self.needs_content or any(get(p).reads_content() for p in self.parts)

  def reads_spm(self) -> bool:
    return self.spm or any(get(p).reads_spm() for p in self.parts)

  def reads_aligned_sid_codebook(self) -> bool:
    """Its codes depend on ranking.aligned_sid_codebook (aligned_sid_* and their hybrids)."""
    return self.codebook == ALIGNED_SID_CODEBOOK or any(
        get(p).reads_aligned_sid_codebook() for p in self.parts)

  def reads_aligned(self) -> bool:
    """Needs the alignment stage (the item_id_vocab Trainer's table and the ContentAligner)."""
    return self.aligned or any(get(p).reads_aligned() for p in self.parts)


REPRESENTATIONS: Dict[str, Representation] = {r.name: r for r in (
    Representation("random_id", f"{_MODULE}.ids:random_id",
                   summary="hashed item ID, random_id_rows rows (the papers' baseline)"),
    Representation("item_id_vocab", f"{_MODULE}.ids:item_id_vocab",
                   summary="one row per training item + item_oov_buckets rows for unseen items"),
    Representation("no_item", f"{_MODULE}.ids:no_item", item_vectors=False,
                   summary="no item input at all: the user-features-only floor"),
    Representation("dense_content", f"{_MODULE}.content:dense_content", needs_content=True,
                   summary="linear projection of the frozen content embedding"),
    Representation("sid_unigram", f"{_MODULE}.sid_ngram:sid_unigram", codebook=SID_CODEBOOK,
                   summary="one table of K rows per SID level, summed"),
    Representation("sid_bigram", f"{_MODULE}.sid_ngram:sid_bigram", codebook=SID_CODEBOOK,
                   summary="non-overlapping code pairs, min(K^2, table_budget) rows each"),
    Representation("sid_prefix_ngram", f"{_MODULE}.sid_ngram:sid_prefix_ngram",
                   codebook=SID_CODEBOOK,
                   summary="one token per SID prefix, one table per prefix length"),
    Representation("sid_spm", f"{_MODULE}.sid_spm:sid_spm", codebook=SID_CODEBOOK, spm=True,
                   summary="SentencePiece pieces of the SID, one row per piece"),
    Representation("moc", f"{_MODULE}.moc:moc", codebook="moc",
                   summary="Mixture-of-Codes: one table per codebook + bottleneck self-gating "
                           "fusion"),
    Representation("sid_spm+item_id_vocab", f"{_MODULE}.hybrid:hybrid",
                   parts=("sid_spm", "item_id_vocab"),
                   summary="SentencePiece sub-IDs and the item-id table (hybrid_combiner)"),
    Representation("sid_prefix_ngram+item_id_vocab", f"{_MODULE}.hybrid:hybrid",
                   parts=("sid_prefix_ngram", "item_id_vocab"),
                   summary="prefix n-grams and the item-id table (hybrid_combiner)"),
    # Collaboratively aligned: the same layers over the ContentAligner's embeddings, which map
    # content into the item space the item_id_vocab ranker learned (DESIGN.md §1.4).
    Representation("aligned_sid_prefix_ngram", f"{_MODULE}.sid_ngram:sid_prefix_ngram",
                   codebook=ALIGNED_SID_CODEBOOK, aligned=True,
                   raw_counterpart="sid_prefix_ngram",
                   summary="prefix n-grams of the SID of the aligned embedding"),
    Representation("aligned_sid_unigram", f"{_MODULE}.sid_ngram:sid_unigram",
                   codebook=ALIGNED_SID_CODEBOOK, aligned=True, raw_counterpart="sid_unigram",
                   summary="one table per level of the SID of the aligned embedding"),
    Representation("aligned_sid_spm", f"{_MODULE}.sid_spm:sid_spm",
                   codebook=ALIGNED_SID_CODEBOOK, aligned=True, spm=True,
                   raw_counterpart="sid_spm",
                   summary="SentencePiece pieces of the aligned SID (vocabulary trained by the "
                           "Trainer on the training split's SIDs)"),
    Representation("aligned_moc", f"{_MODULE}.moc:moc", codebook="aligned_moc", aligned=True,
                   raw_counterpart="moc",
                   summary="Mixture-of-Codes over the aligned embeddings"),
    Representation("aligned_dense", f"{_MODULE}.content:dense_content", needs_content=True,
                   aligned=True, raw_counterpart="dense_content",
                   summary="linear projection of the aligned embedding (a reference: it "
                           "cannot memorise seen items)"),
    # The SID's tables memorise seen items; the aligned vector's linear layer carries the map's
    # output to new items unquantised (alone it was level with dense_content on AUC new with
    # half its spread, README "A nonlinear map").
    Representation("aligned_sid_prefix_ngram+aligned_dense", f"{_MODULE}.hybrid:hybrid",
                   parts=("aligned_sid_prefix_ngram", "aligned_dense"),
                   summary="prefix n-grams of the aligned SID and the aligned embedding, "
                           "projected (hybrid_combiner)"),
)}
NAMES = tuple(REPRESENTATIONS)


def get(name: str) -> Representation:
  if name not in REPRESENTATIONS:
    raise ValueError(f"unknown representation {name!r}; known: {', '.join(NAMES)}")
  return REPRESENTATIONS[name]


def _check_content_source(entry: Representation) -> None:
  # A model has one content table: the DAG gives an aligned representation the aligned
  # embeddings, so a hybrid may not mix aligned codes with the raw content.
  if entry.parts and entry.reads_aligned() and any(
      REPRESENTATIONS[p].reads_content() and not REPRESENTATIONS[p].reads_aligned()
      for p in entry.parts):
    raise ValueError(f"representation {entry.name!r} mixes aligned parts with raw content; "
                     f"use aligned_dense for the content part")


for _entry in REPRESENTATIONS.values():
  _check_content_source(_entry)

