"""AlignedItemEncoder: a new item's aligned embedding and aligned SIDs, inside the ranker.

    aligned = f(content)                       the ContentAligner's map (its SavedModel)
    codes_c = assign_c(aligned)                each aligned codebook's `assign` SavedModel

The exported ranker embeds both, so `serve_new_items` ranks an item the pipeline never saw
from its raw content embedding alone (trainer/signatures.py): the same map and the same
codebooks that gave the catalog its aligned SIDs, with no client-side step that could drift.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import tensorflow as tf

from contracts import alignment_io
from contracts import codebook_io
from contracts import files


class AlignedItemEncoder(tf.Module):
  """`AlignedItemEncoder(alignment_uri, {codebook: Codebook saved_model dir})`."""

  def __init__(self, alignment_uri: str, codebook_dirs: Mapping[str, str],
               name: str = "aligned_items"):
    super().__init__(name=name)
    self.alignment = tf.saved_model.load(alignment_io.map_dir(alignment_uri))
    align = self.alignment.signatures[alignment_io.ALIGN_SIGNATURE]
    self.content_dim = int(align.structured_input_signature[1][
        alignment_io.EMBEDDINGS_INPUT].shape[1])
    self.codebooks = {c: tf.saved_model.load(d) for c, d in sorted(codebook_dirs.items())}

  def aligned(self, content: tf.Tensor) -> tf.Tensor:
    """Raw content embeddings [B, D] -> aligned embeddings [B, E]."""
    return self.alignment.align(tf.cast(content, tf.float32))[alignment_io.ALIGNED_OUTPUT]

  def codes(self, codebook: str, content: tf.Tensor) -> tf.Tensor:
    """Raw content embeddings [B, D] -> the aligned codebook's codes [B, C] (int64)."""
    if codebook not in self.codebooks:
      raise ValueError(f"this encoder holds the aligned codebooks {sorted(self.codebooks)}, "
                       f"not {codebook!r}")
    out = self.codebooks[codebook].assign(self.aligned(content))
    return tf.cast(out[codebook_io.CODES_OUTPUT], tf.int64)


def train_aligned_spm(item_codes: Mapping[str, np.ndarray], train_counts: Mapping[str, int],
                      codebook: str, codebook_size: int, vocab_size: int, asset_dir: str):
  """The SentencePiece sub-ID vocabulary of an aligned codebook's SIDs, trained as Transform's
  analyzer trains the raw one (trainer/spm/analyzer.py): BPE on the training split's SIDs, each
  item weighted by its training interactions, the table budget as its size, seed 0. The
  aligned codes exist only after Transform, so the Trainer trains it (every replica the same
  vocabulary: BPE on sorted counts is deterministic). -> (vocabulary, asset path)."""
  from trainer.spm import vocabulary  # pylint: disable=g-import-not-at-top
  sid_counts = {}
  for item, count in train_counts.items():
    if item in item_codes and count > 0:
      sid = tuple(int(c) for c in item_codes[item])
      sid_counts[sid] = sid_counts.get(sid, 0) + int(count)
  levels = len(next(iter(item_codes.values())))
  smallest = vocabulary.min_vocab_size(levels, codebook_size)
  if vocab_size < smallest:
    raise ValueError(f"ranking.table_budget {vocab_size} is below the {smallest} rows the "
                     f"SentencePiece vocabulary of {codebook} needs (levels {levels} x "
                     f"{codebook_size} codes + padding): raise ranking.table_budget")
  vocab = vocabulary.train_spm(sid_counts, levels, codebook_size, vocab_size, seed=0)
  path = os.path.join(asset_dir, f"{codebook}.spm_subid_vocab.tsv")
  tf.io.gfile.makedirs(asset_dir)
  files.gfile_write_atomic(path, vocab.asset_bytes())
  return vocab, path
