"""Names, dtypes and shapes of the (transformed) features the ranking model reads.

Every feature is a dense tensor with the batch as its first axis:

  user          USER_ID                 int64   [B]     user-id token (0 = OOV)
                user_token(f)           int64   [B]     token of every user feature `f` the data
                                                        declares (contracts/schema.py:
                                                        user_features_in), 0 = OOV
  candidate     ITEM_RANDOM_ID          int64   [B]     hash(item_id) mod random_id_rows
                ITEM_VOCAB_ID           int64   [B]     0..train_items-1, then OOV buckets
                ITEM_EMBEDDING          float32 [B, D]  frozen content embedding
                item_codes(c)           int64   [B, C]  codebook c's codes, each in [0, K)
                item_spm_tokens(c)      int64   [B, C]  SentencePiece piece ids of codebook c's
                                                        SID, 0 = padding
  history       history_<candidate name> with an extra axis [B, N, ...] (same representation
                as the candidate), and HISTORY_MASK float32 [B, N] (1 = real item, 0 = padding)
  label         LABEL float32 or int64 [B] (0/1)

Codebook features are keyed by the codebook's name in the pipeline (`rqvae`, `moc`, ...), and
user features by their raw name (`user_age` -> `user_age_token`), so a new codebook or a new
user column adds features without new names here. A representation reads only the candidate
features it needs (`ItemRepresentation.feature_names`) and their `history_` twins; the model
reads the user features whose vocabulary size is > 0.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Optional, Tuple

from contracts import transform_settings as transform_names

TOKEN_SUFFIX = "_token"
USER_ID = "user_id_token"

ITEM_RANDOM_ID = "item_random_id"
ITEM_VOCAB_ID = "item_vocab_id"
ITEM_EMBEDDING = "item_embedding"
ITEM_CODES_PREFIX = transform_names.ITEM_CODES_PREFIX
ITEM_SPM_TOKENS_PREFIX = transform_names.ITEM_SPM_TOKENS_PREFIX

# Raw item id string (candidate [B], history [B, N], "" = padding), passed through Transform
# only for in-graph content lookup (trainer/item_tables.py); never an embedding input.
ITEM_KEY = "item_key"

HISTORY_PREFIX = transform_names.HISTORY_PREFIX
HISTORY_MASK = "history_mask"
LABEL = "label"


def user_token(raw_name: str) -> str:
  """`user_country` -> `user_country_token`: the model input of a raw user feature (the
  user-id token too: user_token("user_id") == USER_ID)."""
  return raw_name + TOKEN_SUFFIX


def item_codes(codebook: str) -> str:
  """`rqvae` -> `item_codes_rqvae`."""
  return ITEM_CODES_PREFIX + codebook


def item_spm_tokens(codebook: str) -> str:
  """`rqvae` -> `item_spm_tokens_rqvae`."""
  return ITEM_SPM_TOKENS_PREFIX + codebook


def codebook_of(name: str) -> Optional[str]:
  """The codebook a candidate feature belongs to (`item_codes_moc` -> `moc`), else None."""
  for prefix in (ITEM_CODES_PREFIX, ITEM_SPM_TOKENS_PREFIX):
    if name.startswith(prefix):
      return name[len(prefix):]
  return None


def history_name(item_feature: str) -> str:
  """`item_codes_rqvae` -> `history_item_codes_rqvae`."""
  return HISTORY_PREFIX + item_feature


def item_feature_rank(name: str) -> int:
  """Per-item rank of a candidate feature: 0 = one scalar per item, 1 = a vector per item."""
  return 0 if name in (ITEM_RANDOM_ID, ITEM_VOCAB_ID) else 1


def feature_dtype(name: str) -> str:
  """TF dtype name of a feature: float32 for content embeddings, the mask and the label
  (int64 labels are accepted too), int64 for every token/code/id."""
  base = name[len(HISTORY_PREFIX):] if name.startswith(HISTORY_PREFIX) else name
  return "float32" if name in (HISTORY_MASK, LABEL) or base == ITEM_EMBEDDING else "int64"


@dataclasses.dataclass(frozen=True)
class CodebookSizes:
  """Sizes of one codebook's features: C code columns, codes in [0, K), and the SentencePiece
  sub-ID table (every piece id including the padding id 0; 0 = no SPM tokens built)."""
  code_columns: int
  codebook_size: int
  spm_vocab_size: int = 0


@dataclasses.dataclass(frozen=True)
class VocabSizes:
  """Sizes that come from the data, not from RankingConfig (0 = feature absent / unknown).

  User vocabularies count rows *including* the OOV id 0 (tokens are in [0, n)): `user_id` for
  the user-id token, `user_features` for the data's declared user features, keyed by their
  token name (`user_age_token`: 8, ...; empty for data that declares none). `num_items` is
  the number of training items in the item-id vocabulary (ids 0..num_items-1; the model adds
  RankingConfig.item_oov_buckets rows). `codebooks` holds each codebook's sizes by name.
  `content_dim` (D) fixes the serving signature's shape (needed by `dense_content`).
  `history_length` (N) is the data's (SplitConfig.history_length); 0 = no history.
  """
  user_id: int = 0
  user_features: Dict[str, int] = dataclasses.field(default_factory=dict)
  num_items: int = 0
  codebooks: Dict[str, CodebookSizes] = dataclasses.field(default_factory=dict)
  content_dim: int = 0
  history_length: int = 0

  def __post_init__(self):
    # JSON round trips (SidRankingModel.get_config) give plain dicts back.
    object.__setattr__(self, "codebooks", {
        name: c if isinstance(c, CodebookSizes) else CodebookSizes(**c)
        for name, c in self.codebooks.items()})
    bad = sorted(n for n in self.user_features
                 if n == USER_ID or not n.endswith(TOKEN_SUFFIX))
    if bad:
      raise ValueError(f"VocabSizes.user_features {bad}: key every declared user feature by "
                       f"its token name, user_token('user_<name>') (e.g. 'user_age_token'); "
                       f"the user-id token's size is VocabSizes.user_id")
    # Sorted by name, so that the user tower's order (and a JSON round trip) never depends on
    # the order the data listed its columns in.
    object.__setattr__(self, "user_features", {
        name: int(rows) for name, rows in sorted(self.user_features.items())})

  def user_vocab(self) -> Dict[str, int]:
    """User token name -> rows for the user features present (size > 0): the user id first,
    then the declared user features sorted by name."""
    sizes = {USER_ID: self.user_id, **self.user_features}
    return {k: int(v) for k, v in sizes.items() if v > 0}

  def codebook(self, name: str, what: str) -> CodebookSizes:
    """The sizes of codebook `name`, or a ValueError naming `what` needs it."""
    if name not in self.codebooks:
      raise ValueError(f"{what} reads codebook {name!r}, but the data has the codebooks "
                       f"{sorted(self.codebooks)}; train it in the pipeline "
                       f"(PipelineConfig.codebook_methods) or choose another")
    return self.codebooks[name]

  def item_shape(self, name: str) -> Tuple[Optional[int], ...]:
    """Per-item trailing shape of a candidate feature (None = variable)."""
    if item_feature_rank(name) == 0:
      return ()
    if name == ITEM_EMBEDDING:
      return (self.content_dim or None,)
    sizes = self.codebooks.get(codebook_of(name))
    return (sizes.code_columns if sizes else None,)


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
