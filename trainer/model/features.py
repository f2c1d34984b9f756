"""Names, dtypes and shapes of the (transformed) features the ranking model reads.

Every feature is a dense tensor with the batch as its first axis:

  user          USER_ID, USER_AGE, USER_GENDER, USER_OCCUPATION   int64 [B]  (0 = OOV)
  candidate     ITEM_RANDOM_ID    int64   [B]     hash(item_id) mod random_id_rows
                ITEM_VOCAB_ID     int64   [B]     0..train_items-1, then OOV buckets
                ITEM_EMBEDDING    float32 [B, D]  frozen content embedding
                ITEM_SID          int64   [B, L]  one code per level, each in [0, K)
                ITEM_MOC_CODES    int64   [B, M]  one code per parallel codebook, in [0, K)
                ITEM_SPM_TOKENS   int64   [B, S]  SentencePiece piece ids, 0 = padding
  history       history_<candidate name> with an extra axis [B, N, ...] (same representation
                as the candidate), and HISTORY_MASK float32 [B, N] (1 = real item, 0 = padding)
  label         LABEL float32 or int64 [B] (0/1)

A representation reads only the candidate features it needs (`ItemRepresentation.feature_names`)
and their `history_` twins; the model reads the user features whose vocabulary size is > 0.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable

USER_ID = "user_id_token"
USER_AGE = "user_age_token"
USER_GENDER = "user_gender_token"
USER_OCCUPATION = "user_occupation_token"
USER_FEATURES = (USER_ID, USER_AGE, USER_GENDER, USER_OCCUPATION)

ITEM_RANDOM_ID = "item_random_id"
ITEM_VOCAB_ID = "item_vocab_id"
ITEM_EMBEDDING = "item_embedding"
ITEM_SID = "item_sid"
ITEM_MOC_CODES = "item_moc_codes"
ITEM_SPM_TOKENS = "item_spm_tokens"
ITEM_FEATURES = (ITEM_RANDOM_ID, ITEM_VOCAB_ID, ITEM_EMBEDDING, ITEM_SID, ITEM_MOC_CODES,
                 ITEM_SPM_TOKENS)

# Raw item id string (candidate [B], history [B, N], "" = padding), passed through Transform
# only for in-graph content lookup (trainer/item_tables.py); never an embedding input.
ITEM_KEY = "item_key"

HISTORY_PREFIX = "history_"
HISTORY_MASK = "history_mask"
LABEL = "label"

# Per-item rank of each candidate feature (0 = scalar per item, 1 = a vector per item).
ITEM_FEATURE_RANK = {ITEM_RANDOM_ID: 0, ITEM_VOCAB_ID: 0, ITEM_EMBEDDING: 1, ITEM_SID: 1,
                     ITEM_MOC_CODES: 1, ITEM_SPM_TOKENS: 1}


def history_name(item_feature: str) -> str:
  """`item_sid` -> `history_item_sid`."""
  return HISTORY_PREFIX + item_feature


def feature_dtype(name: str) -> str:
  """TF dtype name of a feature: float32 for content embeddings, the mask and the label
  (int64 labels are accepted too), int64 for every token/code/id."""
  base = name[len(HISTORY_PREFIX):] if name.startswith(HISTORY_PREFIX) else name
  return "float32" if name in (HISTORY_MASK, LABEL) or base == ITEM_EMBEDDING else "int64"


@dataclasses.dataclass(frozen=True)
class VocabSizes:
  """Sizes that come from the data, not from RankingConfig (0 = feature absent / unknown).

  User vocabularies count rows *including* the OOV id 0 (tokens are in [0, n)). `num_items` is
  the number of training items in the item-id vocabulary (ids 0..num_items-1; the model adds
  RankingConfig.item_oov_buckets rows). `spm_vocab_size` counts every piece id including the
  padding id 0. `spm_max_pieces` (S) and `content_dim` (D) only fix the serving signature's
  shapes (0 = variable S; D is needed by `dense_content`).
  """
  user_id: int = 0
  user_age: int = 0
  user_gender: int = 0
  user_occupation: int = 0
  num_items: int = 0
  sid_levels: int = 0
  sid_codebook_size: int = 0
  moc_codebooks: int = 0
  moc_codebook_size: int = 0
  spm_vocab_size: int = 0
  spm_max_pieces: int = 0
  content_dim: int = 0

  def user_vocab(self) -> Dict[str, int]:
    """User feature name -> rows, for the user features present (size > 0)."""
    sizes = {USER_ID: self.user_id, USER_AGE: self.user_age, USER_GENDER: self.user_gender,
             USER_OCCUPATION: self.user_occupation}
    return {k: int(v) for k, v in sizes.items() if v > 0}

  def item_shape(self, name: str):
    """Per-item trailing shape of a candidate feature (None = variable)."""
    trailing = {ITEM_RANDOM_ID: (), ITEM_VOCAB_ID: (),
                ITEM_EMBEDDING: (self.content_dim or None,),
                ITEM_SID: (self.sid_levels or None,),
                ITEM_MOC_CODES: (self.moc_codebooks or None,),
                ITEM_SPM_TOKENS: (self.spm_max_pieces or None,)}
    return trailing[name]


def input_signature(item_features: Iterable[str], sizes: VocabSizes, *, history: bool = True,
                    history_length=None, label: bool = False):
  """{name: tf.TensorSpec} of the features a model with these item features reads.

  The batch axis is None; the history axis is `history_length` (None = any length).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  specs = {name: tf.TensorSpec([None], tf.int64, name=name) for name in sizes.user_vocab()}
  item_features = tuple(item_features)
  for name in item_features:
    dtype = tf.float32 if name == ITEM_EMBEDDING else tf.int64
    trailing = list(sizes.item_shape(name))
    specs[name] = tf.TensorSpec([None] + trailing, dtype, name=name)
    if history:
      hname = history_name(name)
      specs[hname] = tf.TensorSpec([None, history_length] + trailing, dtype, name=hname)
  if history and item_features:
    specs[HISTORY_MASK] = tf.TensorSpec([None, history_length], tf.float32, name=HISTORY_MASK)
  if label:
    specs[LABEL] = tf.TensorSpec([None], tf.float32, name=LABEL)
  return specs
