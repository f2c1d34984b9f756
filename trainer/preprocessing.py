"""Transform `preprocessing_fn`: raw joined examples -> the ranking model's features.

Input: the interactions after SemanticIdJoiner (contracts/schema.py: `user_id`, the user
features the data declares (every other `user_<name>`, bytes or int64), `item_id`,
`history_item_ids` [N], and for every codebook c `item_codes_<c>` [C], `history_codes_<c>`
[N*C], `label`, `item_cohort`). Output: the names in trainer/model/features.py, every
codebook's codes under its own name, every user feature's token under its own name
(`user_age` -> `user_age_token`, vocabulary `user_age_vocab`). Analyzers (vocabularies, the SentencePiece sub-ID
vocabulary) see only the training split, so new items are outside the item-ID vocabulary and
their SID pieces come from codes other items trained. Passed to Transform as a dotted path
(`trainer.preprocessing.preprocessing_fn`) with the settings in `custom_config`
(contracts/transform_settings.py); widths come from the joined schema's fixed shapes.
"""
from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft

from contracts import schema as S
from contracts.transform_settings import TransformSettings
from trainer.model import features as F
from trainer.spm import analyzer as spm_analyzer

ITEM_VOCAB = "item_id_vocab"


def user_vocab_name(raw_name: str) -> str:
  """`user_age` -> `user_age_vocab`: the vocabulary file of `user_id` or of a declared user
  feature, by which the Trainer reads its table size (TFTransformOutput.vocabulary_size_by_name)."""
  return raw_name + "_vocab"


def spm_analyzer_name(codebook: str) -> str:
  """Name of a codebook's SentencePiece analyzer (its asset is `<name>.spm_subid_vocab.tsv`)."""
  return f"item_spm_{codebook}"


def static_width(x, what: str) -> int:
  """Trailing dimension of a dense [B, W] input, which the joined schema fixes."""
  if isinstance(x, tf.sparse.SparseTensor) or x.shape.rank != 2 or x.shape[-1] is None:
    raise ValueError(f"preprocessing_fn: {what} has no fixed shape in the schema; it needs one "
                     f"(SemanticIdJoiner writes it, and the data step pads histories to "
                     f"SplitConfig.history_length)")
  return int(x.shape[-1])


def _dense(x, default):
  """A [B] or [B, 1] feature (dense or sparse) as a [B] tensor."""
  if isinstance(x, tf.sparse.SparseTensor):
    x = tf.sparse.to_dense(x, default_value=default)
  return tf.reshape(x, [-1])


def _history(flat, n: int, width: int) -> tf.Tensor:
  """History values [B, n*width], flattened per example, -> [B, n, width] ([B, n] if width 1)."""
  return tf.reshape(flat, [-1, n, width]) if width > 1 else tf.reshape(flat, [-1, n])


def _vocab_token(x: tf.Tensor, name: str) -> tf.Tensor:
  """Vocabulary id + 1, so that 0 is the OOV id the model expects."""
  return tft.compute_and_apply_vocabulary(x, default_value=-1, vocab_filename=name) + 1


def _user_values(x, name: str) -> tf.Tensor:
  """A declared user feature as [B] strings, the vocabulary's input: bytes as they are, int64
  as their decimal text; "" (out of vocabulary) where the value is missing or MISSING_INT64."""
  if x.dtype == tf.string:
    return _dense(x, b"")
  if x.dtype.is_integer:
    values = _dense(x, tf.constant(S.MISSING_INT64, x.dtype))
    return tf.where(tf.equal(values, S.MISSING_INT64), b"", tf.strings.as_string(values))
  raise ValueError(f"preprocessing_fn: user feature {name} is {x.dtype.name}; user features "
                   f"are categorical (contracts/schema.py): write it as bytes or int64 (bucket "
                   f"a continuous value first), or name it without the `user_` prefix")


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Dict[str, Any]) -> Dict[str, Any]:
  settings = TransformSettings.from_custom_config(custom_config)
  n = static_width(inputs[S.HISTORY_ITEM_IDS], S.HISTORY_ITEM_IDS)
  out = {}

  # Whatever user features the data declares (MovieLens: age, gender, occupation), one
  # vocabulary each over the training split; a non-categorical one is refused up front.
  user_values = {name: _user_values(inputs[name], name) for name in S.user_features_in(inputs)}
  out[F.USER_ID] = _vocab_token(_dense(inputs[S.USER_ID], b""), user_vocab_name(S.USER_ID))
  for name, values in user_values.items():
    out[F.user_token(name)] = _vocab_token(values, user_vocab_name(name))

  item_id = _dense(inputs[S.ITEM_ID], b"")
  history_ids = _history(inputs[S.HISTORY_ITEM_IDS], n, 1)
  out[F.HISTORY_MASK] = tf.cast(tf.not_equal(history_ids, S.HISTORY_PAD), tf.float32)
  # Raw ids, for representations that look item content up in the model's graph.
  out[F.ITEM_KEY] = item_id
  out[F.history_name(F.ITEM_KEY)] = history_ids

  rows = settings.random_id_rows
  out[F.ITEM_RANDOM_ID] = tf.strings.to_hash_bucket_fast(item_id, rows)
  out[F.history_name(F.ITEM_RANDOM_ID)] = tf.strings.to_hash_bucket_fast(history_ids, rows)

  # Item-ID vocabulary over training items; unseen items fall into the OOV buckets.
  oov = settings.item_oov_buckets
  vocab_path = tft.vocabulary(item_id, vocab_filename=ITEM_VOCAB)
  out[F.ITEM_VOCAB_ID] = tft.apply_vocabulary(item_id, vocab_path, num_oov_buckets=oov)
  out[F.history_name(F.ITEM_VOCAB_ID)] = tft.apply_vocabulary(
      history_ids, vocab_path, num_oov_buckets=oov)

  for codebook in S.codebooks_in(inputs):
    codes = tf.cast(inputs[S.item_codes(codebook)], tf.int64)
    width = static_width(codes, S.item_codes(codebook))
    history_codes = _history(tf.cast(inputs[S.history_codes(codebook)], tf.int64), n, width)
    out[F.item_codes(codebook)] = codes
    out[F.history_name(F.item_codes(codebook))] = history_codes
    if codebook not in settings.spm_codebooks:
      continue
    # SentencePiece sub-IDs: the analyzer trains on the training split's SIDs (one per
    # example, so impressed items weighted by interactions); segmentation is core TF ops over
    # its asset.
    asset = spm_analyzer.spm_subid_vocabulary(
        codes, levels=width, codebook_size=settings.codebook_sizes[codebook],
        vocab_size=settings.spm_vocab_size, name=spm_analyzer_name(codebook))
    out[F.item_spm_tokens(codebook)] = spm_analyzer.segment_sids(codes, asset)
    history_tokens = spm_analyzer.segment_sids(tf.reshape(history_codes, [-1, width]), asset)
    out[F.history_name(F.item_spm_tokens(codebook))] = tf.reshape(history_tokens,
                                                                  [-1, n, width])

  out[F.LABEL] = tf.cast(_dense(inputs[S.LABEL], 0), tf.float32)
  # Passed through for TFMA slicing (new vs seen items).
  out[S.ITEM_COHORT] = _dense(inputs[S.ITEM_COHORT], b"")
  return out
