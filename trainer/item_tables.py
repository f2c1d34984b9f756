"""ItemTables: every codebook's codes of the catalog (and content embeddings) inside the
model's graph.

The exported ranker takes an item *id*; its codes come from here, so TF Serving clients never
send codes for items the pipeline has already assigned. The tables hold every item the
SemanticIdAssigners saw (the whole catalog, new items included), one table per codebook keyed
by the codebook's name. An id missing from them (an item added after training) is flagged, and
the `serve_new_items` signature takes its codes as inputs instead (trainer/signatures.py).

Features Transform never produced are looked up here by raw item id, in the Trainer's input
and in the exported model alike (`looked_up_features`): the content embedding, and the codes
of the aligned codebooks (trained after Transform) with, for `aligned_sid_spm`, their
SentencePiece tokens (`set_segmenter`, a vocabulary the Trainer trained).

Values are non-trainable variables, not constants: a constant is written into the graph proto
(2 GB limit), a variable into the checkpoint shards.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

from trainer.model import features as F

import numpy as np
import tensorflow as tf

from contracts import embeddings_io
from contracts import semantic_ids_io
from contracts.trainer_io import TrainerInputs


def _rows_in_order(ids: Sequence[str], table: Dict[str, np.ndarray], what: str,
                   dtype) -> np.ndarray:
  missing = [i for i in ids if i not in table]
  if missing:
    raise ValueError(f"{what}: {len(missing)} item(s) of the catalog are missing, e.g. "
                     f"{missing[:3]}; assign codes and embed content over the same catalog")
  return np.stack([np.asarray(table[i], dtype) for i in ids])


class ItemTables(tf.Module):
  """`ItemTables(codes, embeddings=None)`: codes {codebook: {item_id: codes}}, embeddings
  {item_id: vector}.

  `lookup(ids)` -> (row [..], found [..]); `codes(codebook, ids)` / `content(ids)` ->
  values [..., width] (zeros where not found, and for the padding id "").
  """

  def __init__(self, codes: Dict[str, Dict[str, np.ndarray]],
               embeddings: Optional[Dict[str, np.ndarray]] = None, name: str = "item_tables"):
    super().__init__(name=name)
    # SentencePiece segmenters of codebooks Transform never saw (set_segmenter).
    self.segmenters = {}
    if not codes or not any(codes.values()):
      raise ValueError("ItemTables needs the codes of at least one item of one codebook")
    self.codebooks = tuple(sorted(codes))
    self.item_ids = sorted(codes[self.codebooks[0]])
    n = len(self.item_ids)
    self._index = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(self.item_ids, tf.string),
                                            tf.range(n, dtype=tf.int64)), default_value=-1)
    self._codes = {c: tf.Variable(_rows_in_order(self.item_ids, codes[c], f"codebook {c!r}",
                                                 np.int64),
                                  trainable=False, name=f"codes_{c}") for c in self.codebooks}
    self._content = None if embeddings is None else tf.Variable(
        _rows_in_order(self.item_ids, embeddings, "content embedding", np.float32),
        trainable=False, name="content")

  @property
  def num_items(self) -> int:
    return len(self.item_ids)

  def code_columns(self, codebook: str) -> int:
    return int(self._table(codebook).shape[1])

  @property
  def content_dim(self) -> int:
    return 0 if self._content is None else int(self._content.shape[1])

  def lookup(self, ids: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Item ids (any shape) -> (row, found); the padding id "" is never found."""
    row = self._index.lookup(ids)
    return row, row >= 0

  def _table(self, codebook: str) -> tf.Variable:
    if codebook not in self._codes:
      raise ValueError(f"these ItemTables hold the codebooks {list(self.codebooks)}, "
                       f"not {codebook!r}")
    return self._codes[codebook]

  def _gather(self, table: tf.Variable, ids: tf.Tensor) -> tf.Tensor:
    row, found = self.lookup(ids)
    values = tf.gather(table, tf.maximum(row, 0))
    return tf.where(found[..., None], values, tf.zeros_like(values))

  def codes(self, codebook: str, ids: tf.Tensor) -> tf.Tensor:
    return self._gather(self._table(codebook), ids)

  def content(self, ids: tf.Tensor) -> tf.Tensor:
    if self._content is None:
      raise ValueError("these ItemTables hold no content embeddings")
    return self._gather(self._content, ids)

  def set_segmenter(self, codebook: str, segmenter: tf.Module) -> None:
    """The SentencePiece segmenter (trainer/spm/tf_segment.py) of a codebook's SIDs."""
    self._table(codebook)
    self.segmenters[codebook] = segmenter

  def segment(self, codebook: str, codes: tf.Tensor) -> tf.Tensor:
    """Codes [..., C] of `codebook` -> SentencePiece token ids [..., C] (0 = padding)."""
    if codebook not in self.segmenters:
      raise ValueError(f"these ItemTables segment {sorted(self.segmenters)}, not {codebook!r}")
    width = self.code_columns(codebook)
    tokens = self.segmenters[codebook](tf.reshape(codes, [-1, width]))
    return tf.reshape(tokens, tf.shape(codes))

  def spm_tokens(self, codebook: str, ids: tf.Tensor) -> tf.Tensor:
    """Item ids (any shape) -> their SID's SentencePiece token ids [..., C]; 0 where not found."""
    _, found = self.lookup(ids)
    tokens = self.segment(codebook, self.codes(codebook, ids))
    return tf.where(found[..., None], tokens, tf.zeros_like(tokens))


CONTENT, CODES, SPM_TOKENS = "content", "codes", "spm_tokens"


def looked_up_features(names, transformed_names) -> Dict[str, Tuple[str, Optional[str]]]:
  """Candidate features of `names` the input looks up by raw item id in the item tables
  instead of parsing them: {name: (CONTENT, None) | (CODES | SPM_TOKENS, codebook)}.

  The content embedding always (caching 384-d vectors per history slot would cost ~20x the
  memory of the ids), and the codes and SentencePiece tokens of every codebook Transform never
  saw: the aligned ones, trained after the Trainer that feeds their alignment.
  """
  out = {}
  for name in names:
    codebook = F.codebook_of(name)
    if name == F.ITEM_EMBEDDING:
      out[name] = (CONTENT, None)
    elif codebook and name not in transformed_names:
      out[name] = (CODES if name == F.item_codes(codebook) else SPM_TOKENS, codebook)
  return out


def lookup_feature(tables: "ItemTables", kind: str, codebook: Optional[str],
                   ids: tf.Tensor) -> tf.Tensor:
  if kind == CONTENT:
    return tables.content(ids)
  return tables.codes(codebook, ids) if kind == CODES else tables.spm_tokens(codebook, ids)


def add_looked_up(features, tables: "ItemTables", looked_up, names, keys, history_keys):
  """`features` plus each looked-up candidate feature (and its history twin when read)."""
  for name, (kind, codebook) in looked_up.items():
    features[name] = lookup_feature(tables, kind, codebook, keys)
    if F.history_name(name) in names:
      features[F.history_name(name)] = lookup_feature(tables, kind, codebook, history_keys)
  return features


def load_item_tables(inputs: TrainerInputs) -> ItemTables:
  """ItemTables from the pipeline's SemanticIds (and ItemEmbeddings) artifacts."""
  codes = {name: semantic_ids_io.read_sids(c.uri) for name, c in inputs.codes.items()}
  embeddings = None
  if inputs.item_embeddings_uri:
    ids, vectors = embeddings_io.load_item_embeddings(inputs.item_embeddings_uri)
    embeddings = dict(zip(ids, vectors))
  return ItemTables(codes, embeddings)
