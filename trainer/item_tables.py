"""ItemTables: the catalog's semantic IDs (and content embeddings) inside the model's graph.

The exported ranker takes an item *id*; its codes come from here, so TF Serving clients never
send codes for items the pipeline has already assigned. The tables hold every item the
SemanticIdAssigner saw (the whole catalog, new items included). An id missing from them (an
item added after training) is flagged, and the `serve_new_items` signature takes its codes as
inputs instead (serving/signatures.py).

Values are non-trainable variables, not constants: a constant is written into the graph proto
(2 GB limit), a variable into the checkpoint shards.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

PAD_ID = ""  # history padding (tfx_pipeline/data/schema.py HISTORY_PAD)


def _aligned(ids: Sequence[str], table: Dict[str, np.ndarray], what: str, dtype) -> np.ndarray:
  missing = [i for i in ids if i not in table]
  if missing:
    raise ValueError(f"{what}: {len(missing)} item(s) have semantic IDs but no {what}, e.g. "
                     f"{missing[:3]}; run both assigners over the same catalog")
  return np.stack([np.asarray(table[i], dtype) for i in ids])


class ItemTables(tf.Module):
  """`ItemTables(sids, moc=None, embeddings=None)`, each a dict item_id -> vector.

  `lookup(ids)` -> (row [..], found [..]); `sid(ids)` / `moc(ids)` / `content(ids)` ->
  values [..., width] (zeros where not found, and for the padding id "").
  """

  def __init__(self, sids: Dict[str, np.ndarray], moc: Optional[Dict[str, np.ndarray]] = None,
               embeddings: Optional[Dict[str, np.ndarray]] = None, name: str = "item_tables"):
    super().__init__(name=name)
    if not sids:
      raise ValueError("ItemTables needs the semantic IDs of at least one item")
    self.item_ids = sorted(sids)
    n = len(self.item_ids)
    self._index = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(self.item_ids, tf.string),
                                            tf.range(n, dtype=tf.int64)), default_value=-1)
    self._sid = tf.Variable(_aligned(self.item_ids, sids, "sids", np.int64), trainable=False,
                            name="sid")
    self._moc = None if moc is None else tf.Variable(
        _aligned(self.item_ids, moc, "Mixture-of-Codes codes", np.int64), trainable=False,
        name="moc")
    self._content = None if embeddings is None else tf.Variable(
        _aligned(self.item_ids, embeddings, "content embedding", np.float32), trainable=False,
        name="content")

  @property
  def num_items(self) -> int:
    return len(self.item_ids)

  @property
  def sid_levels(self) -> int:
    return int(self._sid.shape[1])

  @property
  def moc_codebooks(self) -> int:
    return 0 if self._moc is None else int(self._moc.shape[1])

  @property
  def content_dim(self) -> int:
    return 0 if self._content is None else int(self._content.shape[1])

  def lookup(self, ids: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Item ids (any shape) -> (row, found); the padding id "" is never found."""
    row = self._index.lookup(ids)
    return row, row >= 0

  def _gather(self, table: tf.Variable, ids: tf.Tensor) -> tf.Tensor:
    row, found = self.lookup(ids)
    values = tf.gather(table, tf.maximum(row, 0))
    return tf.where(found[..., None], values, tf.zeros_like(values))

  def sid(self, ids: tf.Tensor) -> tf.Tensor:
    return self._gather(self._sid, ids)

  def moc(self, ids: tf.Tensor) -> tf.Tensor:
    if self._moc is None:
      raise ValueError("these ItemTables hold no Mixture-of-Codes codes")
    return self._gather(self._moc, ids)

  def content(self, ids: tf.Tensor) -> tf.Tensor:
    if self._content is None:
      raise ValueError("these ItemTables hold no content embeddings")
    return self._gather(self._content, ids)


def load_item_tables(semantic_ids_uri: str, moc_codes_uri: Optional[str] = None,
                     item_embeddings_uri: Optional[str] = None) -> ItemTables:
  """ItemTables from the pipeline's SemanticIds (and ItemEmbeddings) artifacts."""
  from components.semantic_id_assigner.executor import read_sids  # pylint: disable=g-import-not-at-top
  sids = read_sids(semantic_ids_uri)
  moc = read_sids(moc_codes_uri) if moc_codes_uri else None
  embeddings = None
  if item_embeddings_uri:
    from components.content_embedder import embeddings_io  # pylint: disable=g-import-not-at-top
    ids, vectors = embeddings_io.load_item_embeddings(item_embeddings_uri)
    embeddings = dict(zip(ids, vectors))
  return ItemTables(sids, moc, embeddings)
