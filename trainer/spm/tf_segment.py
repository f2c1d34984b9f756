"""SentencePiece (BPE) segmentation of SIDs in standard TensorFlow ops.

No tensorflow_text, no py_function: only UnicodeEncode, StringJoin, hash-table lookups (tables
initialised from the vocabulary asset with tf.lookup.TextFileInitializer), UniqueV2, a While
loop, ArgMin/Where/Gather/BooleanMask/TensorScatterUpdate and assertions, i.e. core ops every
TensorFlow Serving build has. The tables take the asset path as a
tensor, so the same code runs on a tf.Transform analyzer output (`segment_sids`) and on a path
string (`SpmSubIdSegmenter`, a tf.Module whose asset is copied into a SavedModel's assets/).

Algorithm (exactly sentencepiece's BPE encoder, see vocabulary.py), over each distinct SID of
the batch once: the L codes of a SID become L one-character strings; each of at most L-1 rounds
merges, per row, the adjacent pair whose concatenation is a multi-code piece with the smallest
merge rank (= highest score), the leftmost on equal ranks; a row with no mergeable pair is done
and leaves the loop, which ends when no row is left. The remaining symbols are looked up as token ids
(learned pieces, or the fallback token of a code the model never saw). Output: token ids [B, L]
int64, padded with 0 after each row's length.

Inputs: int64 (or int32) codes [B, L] with a static L equal to the asset's levels; every code
must be in [0, codebook_size) -- checked at run time with tf.debugging assertions
(InvalidArgumentError naming the problem).
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional, Tuple, Union

import tensorflow as tf

from trainer.spm.vocabulary import PLANE15_BASE

_KEY_COL, _VALUE_COL, _RANK_COL = 0, 1, 2
_NO_MERGE = tf.int64.max


class _Tables(tf.Module):
  """The two lookup tables of one asset: piece/meta key -> value (token id or meta value) and
  piece -> merge rank (-1: not a multi-code piece). A tf.Module so that a SavedModel tracks them
  (and through their initializers, the asset)."""

  def __init__(self, asset_path):
    super().__init__(name="spm_subid_tables")
    self.values = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(asset_path, tf.string, _KEY_COL, tf.int64, _VALUE_COL,
                                      delimiter="\t"), default_value=-1)
    self.ranks = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(asset_path, tf.string, _KEY_COL, tf.int64, _RANK_COL,
                                      delimiter="\t"), default_value=-1)

  def meta(self, name: str) -> tf.Tensor:
    return self.values.lookup(tf.constant(f"<meta:{name}>"))


def _eager_tensor(t) -> bool:
  # EagerTensor is not public API; tf.is_symbolic_tensor is the supported test.
  return isinstance(t, tf.Tensor) and not tf.is_symbolic_tensor(t)


def build_tables(asset_path) -> _Tables:
  """Creates the tables. Inside a tf.function with a concrete (eager/str) path they are lifted
  out with tf.init_scope, as tf.Transform does for its vocabularies, so they are created and
  initialised once and tracked as resources of the enclosing SavedModel/Module."""
  with contextlib.ExitStack() as stack:
    if tf.inside_function() and (isinstance(asset_path, (str, bytes)) or
                                 _eager_tensor(asset_path)):
      stack.enter_context(tf.init_scope())
    return _Tables(asset_path)


def segment_with_tables(tables: _Tables, sids: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """sids [B, L] int -> (token ids [B, L] int64 padded with 0, lengths [B] int64)."""
  sids = tf.convert_to_tensor(sids)
  if not sids.dtype.is_integer:
    raise TypeError(f"SIDs must be an integer tensor, got {sids.dtype}")
  sids = tf.cast(sids, tf.int64)
  if sids.shape.rank != 2 or sids.shape[1] is None:
    raise ValueError(f"SIDs must be [batch, levels] with a static number of levels, got shape "
                     f"{sids.shape}")
  L = int(sids.shape[1])
  levels = tables.meta("levels")
  K = tables.meta("codebook_size")
  checks = [
      tf.debugging.assert_equal(
          levels, tf.constant(L, tf.int64),
          message=f"SIDs have {L} levels but the SentencePiece sub-ID vocabulary asset has a "
                  "different number of levels (or the asset lacks <meta:levels>)"),
      tf.debugging.assert_non_negative(sids, message="SID codes must be >= 0"),
      tf.debugging.assert_less(sids, K, message="SID codes must be < the vocabulary's "
                                                "codebook_size"),
  ]
  with tf.control_dependencies(checks):
    # Each distinct SID once: a batch of ranking examples repeats its items' SIDs (a candidate
    # and 10 history slots each, over a catalog of a few thousand items on ML-1M), and a row
    # costs O(L^2) string ops.
    distinct, index = tf.raw_ops.UniqueV2(x=sids, axis=tf.constant([0], tf.int64))
  ids, n = _segment_distinct(tables, distinct, L, K)
  return tf.gather(ids, index), tf.gather(n, index)


def _segment_distinct(tables: _Tables, sids: tf.Tensor, L: int,
                      K: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """The BPE merges of the module docstring over sids [B, L] int64 (codes already checked)."""
  batch = tf.shape(sids, out_type=tf.int64)[0]
  flat = sids + tf.range(L, dtype=tf.int64)[tf.newaxis, :] * K
  codepoints = tf.cast(flat + PLANE15_BASE, tf.int32)
  chars = tf.strings.unicode_encode(tf.reshape(codepoints, [-1, 1]), "UTF-8")
  sym = tf.reshape(chars, tf.stack([batch, L]))
  n = tf.fill(tf.reshape(batch, [1]), tf.constant(L, tf.int64))  # symbols per row
  pos = tf.range(L - 1, dtype=tf.int64)[tf.newaxis, :]
  col = tf.range(L, dtype=tf.int64)[tf.newaxis, :]

  def merge_round(round_, sym, n, active):
    """One merge in each row of `active` (row indices) that has a mergeable pair; the rows
    that merged stay active. Rows leave as they finish, so a round costs what is left."""
    a_sym, a_n = tf.gather(sym, active), tf.gather(n, active)
    cand = tf.strings.join([a_sym[:, :-1], a_sym[:, 1:]])  # [A, L-1]
    rank = tables.ranks.lookup(cand)
    ok = (rank >= 0) & (pos < (a_n - 1)[:, tf.newaxis])
    key = tf.where(ok, rank * L + pos, _NO_MERGE)  # leftmost among equal ranks
    j = tf.argmin(key, axis=1, output_type=tf.int64)
    has = tf.reduce_any(ok, axis=1)
    merged_piece = tf.gather(cand, j, batch_dims=1)[:, tf.newaxis]
    shifted = tf.concat([a_sym[:, 1:], tf.fill(tf.stack([tf.size(active), 1]), "")], axis=1)
    jj = j[:, tf.newaxis]
    merged = tf.where(col < jj, a_sym, tf.where(tf.equal(col, jj), merged_piece, shifted))
    still = tf.boolean_mask(active, has)[:, tf.newaxis]
    sym = tf.tensor_scatter_nd_update(sym, still, tf.boolean_mask(merged, has))
    n = tf.tensor_scatter_nd_sub(n, still, tf.ones_like(still[:, 0]))
    return round_ + 1, sym, n, still[:, 0]

  # At most L-1 rounds, each over the rows still merging (pieces are a few codes long, so a
  # long SID stops well before L-1 merges).
  if L > 1:
    _, sym, n, _ = tf.while_loop(
        lambda round_, sym, n, active: (round_ < L - 1) & (tf.size(active) > 0), merge_round,
        (tf.constant(0), sym, n, tf.range(batch)),
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, L]), tf.TensorShape([None]),
                          tf.TensorShape([None])))
  valid = col < n[:, tf.newaxis]
  ids = tables.values.lookup(sym)
  ids = tf.where(valid, ids, tf.zeros_like(ids))
  with tf.control_dependencies([
      tf.debugging.assert_non_negative(
          ids, message="a SID symbol is missing from the SentencePiece sub-ID asset "
                       "(corrupt asset?)")]):
    ids = tf.identity(ids)
  return ids, n


class SpmSubIdSegmenter(tf.Module):
  """Segments SIDs into SentencePiece sub-ID token ids with standard TF ops.

  Args:
    asset_path: the vocabulary asset (SpmSubIdVocabulary.to_asset / the analyzer's output): a
      path string, or a scalar string tensor. Built from a path string (or eager tensor) the
      tables are created once here, tracked by this module, and `tf.saved_model.save` copies the
      asset into the SavedModel's assets/ directory.

  Call: `segmenter(sids)` -> token ids [B, L] int64 padded with 0;
  `segmenter.segment_with_lengths(sids)` -> (ids, lengths [B] int64);
  `segmenter.segment_ragged(sids)` -> RaggedTensor [B, None] int64;
  `segmenter.num_tokens()` -> int64 scalar (embedding-table rows).
  """

  def __init__(self, asset_path: Union[str, bytes, os.PathLike, tf.Tensor],
               name: Optional[str] = None):
    super().__init__(name=name)
    if isinstance(asset_path, os.PathLike):
      asset_path = os.fspath(asset_path)
    with self.name_scope:
      self._tables = build_tables(asset_path)

  def segment_with_lengths(self, sids) -> Tuple[tf.Tensor, tf.Tensor]:
    return segment_with_tables(self._tables, sids)

  def __call__(self, sids) -> tf.Tensor:
    return segment_with_tables(self._tables, sids)[0]

  def segment_ragged(self, sids) -> tf.RaggedTensor:
    ids, n = segment_with_tables(self._tables, sids)
    return tf.RaggedTensor.from_tensor(ids, lengths=n)

  def num_tokens(self) -> tf.Tensor:
    return self._tables.meta("num_tokens")
