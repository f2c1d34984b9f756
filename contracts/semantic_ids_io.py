"""On-disk layout of a `sidrec.SemanticIds` artifact (written by SemanticIdAssigner).

Under the artifact URI:
  sids/part-*.tfrecord.gz   GZIP TFRecords of tf.Examples {item_id: bytes, codes: int64 [C]}
  stats.json                items, code_columns, unique_sids, unique_sid_ratio, colliding_items,
                            max_items_per_sid, items_per_sid_histogram, codes_used_per_column
Custom properties: `codebook` (str: the codebook's name in the pipeline), `items` (int),
`code_columns` (int, C), `codebook_size` (int, K: codes are in [0, K)), `unique_sid_ratio`.
Every item of the catalog has codes, new items included.
"""
import json
import os
from typing import Dict, Optional, Tuple

import numpy as np

SIDS_DIR = "sids"
STATS_FILE = "stats.json"
SHARD_PREFIX = "part"
SHARD_SUFFIX = ".tfrecord.gz"
ITEM_ID_FEATURE = "item_id"
CODES_FEATURE = "codes"
# Custom properties.
CODEBOOK_PROPERTY = "codebook"
CODE_COLUMNS_PROPERTY = "code_columns"
CODEBOOK_SIZE_PROPERTY = "codebook_size"


def encode_codes(item_id: str, codes) -> bytes:
  """One record of the sids/ shards."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.train.Example(features=tf.train.Features(feature={
      ITEM_ID_FEATURE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[item_id.encode()])),
      CODES_FEATURE: tf.train.Feature(int64_list=tf.train.Int64List(
          value=[int(c) for c in codes])),
  })).SerializeToString(deterministic=True)


def read_sids(uri: str) -> Dict[str, np.ndarray]:
  """Loads a SemanticIds artifact: item_id -> int64 codes [C]."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  files = sorted(tf.io.gfile.glob(os.path.join(uri, SIDS_DIR, "*")))
  out = {}
  for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    item_id = feature[ITEM_ID_FEATURE].bytes_list.value[0].decode()
    out[item_id] = np.array(feature[CODES_FEATURE].int64_list.value, np.int64)
  return out


def read_stats(uri: str) -> Optional[dict]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(uri, STATS_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def code_shape(artifact) -> Tuple[int, int]:
  """(C code columns, K codebook size) of a SemanticIds artifact, from its custom properties."""
  return (int(artifact.get_int_custom_property(CODE_COLUMNS_PROPERTY)),
          int(artifact.get_int_custom_property(CODEBOOK_SIZE_PROPERTY)))


def codebook_name(artifact) -> str:
  return artifact.get_string_custom_property(CODEBOOK_PROPERTY)


# Components that take every codebook's SemanticIds (SemanticIdJoiner, SidRankingTrainer) have
# one input per codebook, keyed `codes_<codebook name>`: Kubeflow V2 compiles only single
# channels per input (no union of channels).
CODES_INPUT_PREFIX = "codes_"


def codes_input_key(codebook: str) -> str:
  return CODES_INPUT_PREFIX + codebook


def codes_inputs(input_dict: Dict[str, list]) -> Dict[str, object]:
  """{codebook name: its SemanticIds artifact} from an executor's input_dict, sorted by name."""
  return {key[len(CODES_INPUT_PREFIX):]: artifacts[0] for key, artifacts in sorted(
      input_dict.items()) if key.startswith(CODES_INPUT_PREFIX) and artifacts}
