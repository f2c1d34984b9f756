"""Feature names and the on-disk layout of prepared data (the contract with later stages).

Interactions (one tf.train.Example per rating), files `interactions/{train,eval}/*.tfrecord.gz`:
  user_id           bytes      IDs are strings everywhere: users bring arbitrary IDs.
  item_id           bytes
  timestamp         int64      unix seconds
  rating            float      your own 0/1 labels are stored as ratings 0.0 / 1.0
  label             int64      1 iff rating >= the dataset's threshold (MovieLens: POSITIVE_RATING)
  user_<name>       bytes|int64  every user feature the data declares, e.g. MovieLens's
                               user_age (int64), user_gender, user_occupation (bytes); your own
                               data's FilesConfig.user_features (USER_FEATURE_PREFIX)
  item_cohort       bytes      "seen" iff the item occurs in the train split, else "new"
  item_popularity   bytes      bucket of the item's number of train interactions: "0" (new items),
                               "1-9", "10-99", "100-999", "1000+" (an evaluation slice)
  history_item_ids  bytes list exactly `history_length` ids: the user's last items strictly before
                               `timestamp`, most recent last, then "" padding (HISTORY_PAD)

Catalog (one tf.train.Example per item), files `catalog/items/*.tfrecord.gz`:
  item_id bytes, title bytes, year int64 (0 = unknown), genres bytes ("|"-joined),
  text bytes (the encoder input; never contains the year), first_seen int64 (-1 = no interaction)

All files are GZIP-compressed TFRecord files named `part-SSSSS-of-NNNNN.tfrecord.gz`.

Joined interactions (SemanticIdJoiner's output, Transform's and TFMA's input): the interaction
features plus, for every codebook `<c>` of the pipeline (keyed by its name, e.g. `rqvae`):
  item_codes_<c>     int64 [C]    the candidate's codes (C = the codebook's code columns)
  history_codes_<c>  int64 [N*C]  the history items' codes in history order, zeros for padding
"""

from __future__ import annotations

import os
from typing import Dict

# --- interaction features ---
USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
RATING = "rating"
LABEL = "label"
USER_AGE = "user_age"
USER_GENDER = "user_gender"
USER_OCCUPATION = "user_occupation"
ITEM_COHORT = "item_cohort"
ITEM_POPULARITY = "item_popularity"
HISTORY_ITEM_IDS = "history_item_ids"
HISTORY_PAD = ""

# User features are declared by the data (MovieLens: age, gender, occupation; your own data:
# the columns of FilesConfig.user_features): every interaction feature `user_<name>` but
# user_id is one, categorical (bytes or int64), and becomes a model input by that name.
USER_FEATURE_PREFIX = "user_"


# An int64 user feature's "not given" value (a client that omits it, an example without it):
# the transform maps it to the out-of-vocabulary token, as it does "" for bytes features (0 can
# be a real category of your own data, e.g. a tier).
MISSING_INT64 = -(2 ** 63)


def user_feature(name: str) -> str:
  """`country` -> `user_country`: the interaction feature of a declared user feature."""
  return USER_FEATURE_PREFIX + name


def user_features_in(feature_names) -> list:
  """The declared user features among `feature_names` (raw names, e.g. `user_age`), sorted."""
  return sorted(n for n in feature_names if n.startswith(USER_FEATURE_PREFIX) and n != USER_ID)


# --- joined features, one pair per codebook ---
ITEM_CODES_PREFIX = "item_codes_"
HISTORY_CODES_PREFIX = "history_codes_"


def item_codes(codebook: str) -> str:
  """`rqvae` -> `item_codes_rqvae`: the candidate's codes in the joined examples."""
  return ITEM_CODES_PREFIX + codebook


def history_codes(codebook: str) -> str:
  """`rqvae` -> `history_codes_rqvae`: the history items' codes, flattened."""
  return HISTORY_CODES_PREFIX + codebook


def codebooks_in(feature_names) -> list:
  """The codebook names whose candidate codes are among `feature_names`, sorted."""
  return sorted(n[len(ITEM_CODES_PREFIX):] for n in feature_names
                if n.startswith(ITEM_CODES_PREFIX))


# --- catalog features ---
TITLE = "title"
YEAR = "year"
GENRES = "genres"
TEXT = "text"
FIRST_SEEN = "first_seen"

COHORT_NEW = "new"
COHORT_SEEN = "seen"
COHORTS = (COHORT_NEW, COHORT_SEEN)
# Lower edges of the popularity buckets (train interactions per item) and their names.
POPULARITY_EDGES = (0, 1, 10, 100, 1000)
POPULARITY_BUCKETS = ("0", "1-9", "10-99", "100-999", "1000+")

POSITIVE_RATING = 4.0  # label = rating >= 4
GENRE_SEPARATOR = "|"
UNKNOWN_YEAR = 0
NEVER_SEEN = -1

# Feature kinds: "bytes" / "int64" / "float" are scalars (exactly one value per example),
# "bytes_list" is a variable-length list.
INTERACTION_FEATURES: Dict[str, str] = {
    USER_ID: "bytes",
    ITEM_ID: "bytes",
    TIMESTAMP: "int64",
    RATING: "float",
    LABEL: "int64",
    USER_AGE: "int64",
    USER_GENDER: "bytes",
    USER_OCCUPATION: "bytes",
    ITEM_COHORT: "bytes",
    ITEM_POPULARITY: "bytes",
    HISTORY_ITEM_IDS: "bytes_list",
}

CATALOG_FEATURES: Dict[str, str] = {
    ITEM_ID: "bytes",
    TITLE: "bytes",
    YEAR: "int64",
    GENRES: "bytes",
    TEXT: "bytes",
    FIRST_SEEN: "int64",
}

# --- layout under the data directory ---
# ImportExampleGen reads <INTERACTIONS_DIR>/<split>/* (splits train, eval) and
# <CATALOG_ROOT>/<CATALOG_SPLIT>/*: the split is made by the data step, not by hashing.
INTERACTIONS_DIR = "interactions"
CATALOG_ROOT = "catalog"
TRAIN_SPLIT, EVAL_SPLIT, CATALOG_SPLIT = "train", "eval", "items"
TRAIN_DIR = os.path.join(INTERACTIONS_DIR, TRAIN_SPLIT)
EVAL_DIR = os.path.join(INTERACTIONS_DIR, EVAL_SPLIT)
CATALOG_DIR = os.path.join(CATALOG_ROOT, CATALOG_SPLIT)
SPLIT_STATS_FILE = "split_stats.json"
SYNTHETIC_EMBEDDINGS_FILE = "synthetic_embeddings.npy"
SYNTHETIC_EMBEDDING_IDS_FILE = "synthetic_embedding_ids.txt"
SHARD_SUFFIX = ".tfrecord.gz"


def shard_name(index: int, num_shards: int) -> str:
  return f"part-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def shard_pattern(data_dir: str, subdir: str) -> str:
  """Glob pattern of the shards of one output, e.g. shard_pattern(d, TRAIN_DIR)."""
  return os.path.join(data_dir, subdir, "part-*" + SHARD_SUFFIX)


def feature_spec(features: Dict[str, str]) -> dict:
  """tf.io parsing spec for INTERACTION_FEATURES or CATALOG_FEATURES (imports TensorFlow)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  dtypes = {"bytes": tf.string, "int64": tf.int64, "float": tf.float32}
  spec = {}
  for name, kind in features.items():
    if kind.endswith("_list"):
      spec[name] = tf.io.VarLenFeature(dtypes[kind[:-len("_list")]])
    else:
      spec[name] = tf.io.FixedLenFeature([], dtypes[kind])
  return spec
