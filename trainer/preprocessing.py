"""Transform `preprocessing_fn`: raw joined examples -> the ranking model's features.

Input: the interactions after SemanticIdJoiner (user fields, `item_id`, `history_item_ids`,
`item_sid` [L], `history_sid` [n*L], `item_moc_codes` [M], `history_moc_codes` [n*M],
`item_embedding` [D], `label`, `item_cohort`). Output: the names in trainer/model/features.py.
Analyzers (vocabularies, the SentencePiece sub-ID vocabulary) see only the training split, so
new items are outside the item-ID vocabulary and their SID pieces come from codes other items
trained. Passed to Transform as a dotted path (`trainer.preprocessing.preprocessing_fn`), with
the sizes in `custom_config` (see `transform_custom_config`).
"""
from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft

from trainer.model import features as F
from trainer.spm import analyzer as spm_analyzer

# Raw feature names (tfx_pipeline/data/schema.py and SemanticIdJoiner).
RAW_USER_ID, RAW_AGE, RAW_GENDER, RAW_OCCUPATION = (
    "user_id", "user_age", "user_gender", "user_occupation")
RAW_ITEM_ID, RAW_HISTORY_IDS = "item_id", "history_item_ids"
RAW_SID, RAW_HISTORY_SID = "item_sid", "history_sid"
RAW_MOC, RAW_HISTORY_MOC = "item_moc_codes", "history_moc_codes"
RAW_EMBEDDING = "item_embedding"
ITEM_COHORT = "item_cohort"

# Vocabulary file names, for the Trainer's table sizes (TFTransformOutput.vocabulary_size_by_name).
USER_VOCABS = {F.USER_ID: "user_id_vocab", F.USER_AGE: "user_age_vocab",
               F.USER_GENDER: "user_gender_vocab", F.USER_OCCUPATION: "user_occupation_vocab"}
ITEM_VOCAB = "item_id_vocab"
SPM_ANALYZER_NAME = "item_spm"


def transform_custom_config(codebook_size: int, history_length: int, random_id_rows: int,
                            item_oov_buckets: int, spm_vocab_size: int, levels: int = 0,
                            moc_codebooks: int = 0, content_dim: int = 0,
                            item_keys: bool = False) -> Dict[str, Any]:
  """The settings preprocessing_fn needs, as Transform's `custom_config`.

  `levels` / `moc_codebooks` / `content_dim` are only fallbacks: the joined schema gives the
  candidate codes and embedding a fixed shape, and that static shape wins. `item_keys` passes
  the raw candidate and history item ids through (as ITEM_KEY), for representations that look
  item content up in a table in the model's graph (`dense_content`).
  """
  return dict(levels=levels, codebook_size=codebook_size, moc_codebooks=moc_codebooks,
              content_dim=content_dim, history_length=history_length,
              random_id_rows=random_id_rows, item_oov_buckets=item_oov_buckets,
              spm_vocab_size=spm_vocab_size, item_keys=bool(item_keys))


def _static_width(x, fallback: int) -> int:
  """Trailing dimension of a dense [B, W] input when known, else the configured fallback."""
  if not isinstance(x, tf.sparse.SparseTensor) and x.shape.rank == 2 and x.shape[-1]:
    return int(x.shape[-1])
  if not fallback:
    raise ValueError("preprocessing_fn: the width of a code feature is not in the schema "
                     "(no fixed shape) and custom_config does not give it")
  return int(fallback)


def _dense(x, default):
  """A [B] or [B, 1] feature (dense or sparse) as a [B] tensor."""
  if isinstance(x, tf.sparse.SparseTensor):
    x = tf.sparse.to_dense(x, default_value=default)
  return tf.reshape(x, [-1])


def _fixed_history(flat, n: int, width: int, default) -> tf.Tensor:
  """History values, flattened per example, -> [B, n, width] ([B, n] when width is 1).

  `flat` is either dense [B, n*width] (the pipeline's padded histories) or var-length
  [B, k*width] with k <= n items (padded here, at the end). Padding to n*width first and
  reshaping after never depends on the batch's values (tf.Transform also traces this with
  placeholder batches).
  """
  if isinstance(flat, tf.sparse.SparseTensor):
    flat = tf.RaggedTensor.from_sparse(flat).to_tensor(default_value=default,
                                                       shape=[None, n * width])
  return tf.reshape(flat, [-1, n, width]) if width > 1 else tf.reshape(flat, [-1, n])


def _vocab_token(x: tf.Tensor, name: str) -> tf.Tensor:
  """Vocabulary id + 1, so that 0 is the OOV id the model expects."""
  return tft.compute_and_apply_vocabulary(x, default_value=-1, vocab_filename=name) + 1


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Dict[str, Any]) -> Dict[str, Any]:
  c = custom_config
  n = int(c["history_length"])
  levels = _static_width(inputs[RAW_SID], int(c.get("levels", 0)))
  out = {}

  out[F.USER_ID] = _vocab_token(_dense(inputs[RAW_USER_ID], b""), USER_VOCABS[F.USER_ID])
  out[F.USER_AGE] = _vocab_token(tf.strings.as_string(_dense(inputs[RAW_AGE], 0)),
                                 USER_VOCABS[F.USER_AGE])
  out[F.USER_GENDER] = _vocab_token(_dense(inputs[RAW_GENDER], b""), USER_VOCABS[F.USER_GENDER])
  out[F.USER_OCCUPATION] = _vocab_token(_dense(inputs[RAW_OCCUPATION], b""),
                                        USER_VOCABS[F.USER_OCCUPATION])

  item_id = _dense(inputs[RAW_ITEM_ID], b"")
  history_ids = _fixed_history(inputs[RAW_HISTORY_IDS], n, 1, b"")
  history_mask = tf.cast(tf.not_equal(history_ids, b""), tf.float32)
  out[F.HISTORY_MASK] = history_mask
  if c.get("item_keys"):
    out[F.ITEM_KEY] = item_id
    out[F.history_name(F.ITEM_KEY)] = history_ids

  rows = int(c["random_id_rows"])
  out[F.ITEM_RANDOM_ID] = tf.strings.to_hash_bucket_fast(item_id, rows)
  out[F.history_name(F.ITEM_RANDOM_ID)] = tf.strings.to_hash_bucket_fast(history_ids, rows)

  # Item-ID vocabulary over training items; unseen items fall into the OOV buckets.
  oov = int(c["item_oov_buckets"])
  vocab_path = tft.vocabulary(item_id, vocab_filename=ITEM_VOCAB)
  out[F.ITEM_VOCAB_ID] = tft.apply_vocabulary(item_id, vocab_path, num_oov_buckets=oov)
  out[F.history_name(F.ITEM_VOCAB_ID)] = tft.apply_vocabulary(
      history_ids, vocab_path, num_oov_buckets=oov)

  sid = tf.cast(inputs[RAW_SID], tf.int64)
  out[F.ITEM_SID] = sid
  history_sid = _fixed_history(inputs[RAW_HISTORY_SID], n, levels, 0)
  out[F.history_name(F.ITEM_SID)] = history_sid

  # SentencePiece sub-IDs: the analyzer trains on the training split's SIDs (one per example,
  # so impressed items weighted by interactions); segmentation is core TF ops over its asset.
  asset = spm_analyzer.spm_subid_vocabulary(
      sid, levels=levels, codebook_size=int(c["codebook_size"]),
      vocab_size=int(c["spm_vocab_size"]), name=SPM_ANALYZER_NAME)
  out[F.ITEM_SPM_TOKENS] = spm_analyzer.segment_sids(sid, asset)
  history_tokens = spm_analyzer.segment_sids(tf.reshape(history_sid, [-1, levels]), asset)
  out[F.history_name(F.ITEM_SPM_TOKENS)] = tf.reshape(history_tokens, [-1, n, levels])

  if RAW_MOC in inputs:
    m = _static_width(inputs[RAW_MOC], int(c.get("moc_codebooks", 0)))
    out[F.ITEM_MOC_CODES] = tf.cast(inputs[RAW_MOC], tf.int64)
    out[F.history_name(F.ITEM_MOC_CODES)] = _fixed_history(inputs[RAW_HISTORY_MOC], n, m, 0)
  if RAW_EMBEDDING in inputs:
    out[F.ITEM_EMBEDDING] = tf.cast(inputs[RAW_EMBEDDING], tf.float32)

  out[F.LABEL] = tf.cast(_dense(inputs["label"], 0), tf.float32)
  # Passed through for TFMA slicing (new vs seen items).
  out[ITEM_COHORT] = _dense(inputs[ITEM_COHORT], b"")
  return out
