"""tf.Transform analyzer that trains the SentencePiece sub-ID vocabulary, and its mapper.

In a preprocessing_fn:

    asset = spm_subid_vocabulary(inputs['sid'], levels=3, codebook_size=256, vocab_size=8000)
    tokens = segment_sids(inputs['sid'], asset)     # [batch, L] int64, 0 = padding

`inputs['sid']` is the item's SID [batch, L] int64 on each training example (FixedLenFeature([L])).
The analyzer sees every example of the analysed (training) split, so an item's SID is counted
once per example: SIDs of impressed items, weighted by their interactions (pass `weights` to
weight differently). Beam: per-batch counts -> CombinePerKey(sum) -> one global list ->
`train_spm` on one worker -> the asset file written under the analyzer's `base_temp_dir` -> its
path is the analyzer's single output (an asset: tf.Transform copies it into the transform
graph's assets/, and TFTransformOutput.transform_features_layer() carries it into any SavedModel
that embeds the layer).

While tf.Transform traces the preprocessing_fn, the path points to a placeholder asset (a
fallback-only vocabulary, `output_asset_default_values`) so that the tables can be built.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, List, Optional, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform import beam as tft_beam

from trainer.spm import tf_segment
from trainer.spm.vocabulary import (SpmSubIdVocabulary, SpmVocabularyError, check_code_space,
                                    min_vocab_size, train_spm)

ASSET_SUFFIX = ".spm_subid_vocab.tsv"


def _batch_counts(batch: Tuple[np.ndarray, ...], levels: int,
                  codebook_size: int) -> Iterable[Tuple[Tuple[int, ...], float]]:
  sids = np.asarray(batch[0])
  if sids.ndim != 2 or sids.shape[1] != levels:
    raise SpmVocabularyError(f"SID batch of shape {sids.shape}, expected [batch, {levels}]")
  if sids.size and (sids.min() < 0 or sids.max() >= codebook_size):
    bad = sids[((sids < 0) | (sids >= codebook_size)).any(axis=1)][0]
    raise SpmVocabularyError(f"SID codes must be in [0, codebook_size={codebook_size}); got SID "
                             f"{tuple(int(c) for c in bad)}")
  weights = (np.ones(len(sids), np.float64) if len(batch) < 2 else
             np.asarray(batch[1], np.float64).reshape(-1))
  if len(sids) == 0:
    return []
  uniq, inverse = np.unique(sids, axis=0, return_inverse=True)
  totals = np.zeros(len(uniq), np.float64)
  np.add.at(totals, inverse.reshape(-1), weights)
  return [(tuple(int(c) for c in row), float(w)) for row, w in zip(uniq, totals)]


def _train_and_write(sid_counts: List[Tuple[Tuple[int, ...], float]], levels: int,
                     codebook_size: int, vocab_size: int, model_type: str, seed: int,
                     path: str) -> bytes:
  """Runs once, on one worker, over the globally combined counts; returns the asset path."""
  vocab = train_spm(dict(sid_counts), levels, codebook_size, vocab_size, model_type=model_type,
                    seed=seed)
  # tf.io.gfile so that the temp dir may live on GCS/S3 under a distributed runner.
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(vocab.asset_bytes())
  return path.encode("utf-8")


class SpmSubIdVocabularyAnalyzer(tft_beam.experimental.PTransformAnalyzer):
  """Beam side of spm_subid_vocabulary: PCollection of (sids[, weights]) batches -> one path."""

  def __init__(self, levels: int, codebook_size: int, vocab_size: int, model_type: str = "bpe",
               seed: int = 0, asset_name: str = "spm_subid"):
    super().__init__()
    self._levels = levels
    self._codebook_size = codebook_size
    self._vocab_size = vocab_size
    self._model_type = model_type
    self._seed = seed
    self._asset_name = asset_name

  def expand(self, pcoll):
    if self.base_temp_dir is None:
      raise RuntimeError("base_temp_dir unset: run inside tf.Transform (tft_beam.Context)")
    levels, k = self._levels, self._codebook_size
    return (pcoll
            | "CountSidsPerBatch" >> beam.FlatMap(_batch_counts, levels, k)
            | "SumPerSid" >> beam.CombinePerKey(sum)
            | "ToOneList" >> beam.combiners.ToList()
            | "TrainAndWriteAsset" >> beam.Map(
                _train_and_write, levels=levels, codebook_size=k, vocab_size=self._vocab_size,
                model_type=self._model_type, seed=self._seed,
                path=os.path.join(self.base_temp_dir, self._asset_name + ASSET_SUFFIX)))


def spm_subid_vocabulary(sids: tf.Tensor,
                         levels: int,
                         codebook_size: int,
                         vocab_size: int,
                         weights: Optional[tf.Tensor] = None,
                         model_type: str = "bpe",
                         seed: int = 0,
                         name: Optional[str] = None) -> tf.Tensor:
  """Analyzer: trains the SentencePiece sub-ID vocabulary; returns the asset path (scalar string).

  Args:
    sids: int [batch, levels] SIDs (one row per example of the analysed split).
    levels, codebook_size: L and K (L * K <= 65,534).
    vocab_size: embedding-table budget: total rows incl. padding row 0 and one fallback row per
      unseen single code; >= L * K + 1 (see vocabulary.py).
    weights: optional [batch] non-negative weights (default 1 per example); per-SID totals are
      rounded to integers for SentencePiece.
    model_type: 'bpe'.
    seed: SentencePiece seed.
    name: analyzer name (also names the asset file `<name>.spm_subid_vocab.tsv`).
  """
  check_code_space(levels, codebook_size)
  if vocab_size < min_vocab_size(levels, codebook_size):
    raise SpmVocabularyError(
        f"vocab_size={vocab_size} < {min_vocab_size(levels, codebook_size)} = levels * "
        "codebook_size + 1 (one row per single code plus padding)")
  if sids.shape.rank != 2 or sids.shape[1] != levels:
    raise SpmVocabularyError(f"sids must be [batch, {levels}], got {sids.shape}")
  if not sids.dtype.is_integer:
    raise SpmVocabularyError(f"sids must be integers, got {sids.dtype}")
  inputs = [tf.cast(sids, tf.int64)]
  if weights is not None:
    inputs.append(tf.reshape(tf.cast(weights, tf.float32), [-1]))
  asset_name = re.sub(r"[^A-Za-z0-9_.-]", "_", name or "spm_subid")
  placeholder = SpmSubIdVocabulary.fallback_only(levels, codebook_size).asset_bytes()
  (path,) = tft.experimental.ptransform_analyzer(
      inputs,
      SpmSubIdVocabularyAnalyzer(levels, codebook_size, vocab_size, model_type, seed, asset_name),
      output_dtypes=[tf.string],
      output_shapes=[[]],
      output_asset_default_values=[placeholder],
      name=name or "spm_subid_vocabulary")
  return path


def segment_sids(sids: tf.Tensor, asset_path: tf.Tensor, name: Optional[str] = None) -> tf.Tensor:
  """Mapper: SIDs [batch, L] -> SentencePiece sub-ID token ids [batch, L] int64, 0-padded.

  Use with the output of spm_subid_vocabulary inside a preprocessing_fn. It goes through
  tft.apply_vocabulary's lookup_fn hook, so tf.Transform resolves the analyzer's asset, lifts
  the tables out of the traced function and records the output's domain [0, num_tokens - 1] in
  the transformed schema: in the Trainer,
  `TFTransformOutput(...).num_buckets_for_transformed_feature(<output name>)` = num_tokens =
  the embedding-table rows (inside the preprocessing_fn:
  tft.get_num_buckets_for_transformed_feature(tokens)). `sids` needs a static second dimension
  (a FixedLenFeature([L]) int64). Works with force_tf_compat_v1 True or False.
  Outside tf.Transform use tf_segment.SpmSubIdSegmenter(asset_path).
  """

  def lookup_fn(x, path):
    tables = tf_segment.build_tables(path)
    ids, _ = tf_segment.segment_with_tables(tables, x)
    return ids, tables.meta("num_tokens")

  return tft.apply_vocabulary(tf.cast(sids, tf.int64), asset_path, default_value=0,
                              lookup_fn=lookup_fn, name=name or "segment_sids")
