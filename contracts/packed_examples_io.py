"""On-disk layout of a `sidrec.PackedExamples` artifact (written by ExamplePacker).

Under the artifact URI: `Split-<name>/chunks-SSSSS-of-NNNNN.tfrecord`, uncompressed TFRecords of
tf.Examples, one per chunk of ~chunk_size examples drawn at random (by a hash of each record)
from the split: every transformed feature holds the chunk's values concatenated in example
order, plus `num_examples`. Read with `trainer.run.read_packed`.
Custom properties: `chunk_size` (int), `split_names` (str, encoded as on Examples).
"""
import functools
import os
from typing import List

from contracts import schema

NUM_EXAMPLES = "num_examples"  # int64 feature of every chunk: its number of examples
FILE_PREFIX = "chunks"
FILE_SUFFIX = ".tfrecord"
CHUNK_SIZE_PROPERTY = "chunk_size"
SPLIT_NAMES_PROPERTY = "split_names"  # no sidrec type declares PROPERTIES (contracts/artifacts.py)
# A record's chunk is drawn from its features other than the codes (the packer keys Transform's
# input, the joined examples), so which codebooks a run joins does not move an example to
# another chunk.
CODE_FEATURE_PREFIXES = (schema.ITEM_CODES_PREFIX, schema.HISTORY_CODES_PREFIX)


@functools.lru_cache(maxsize=None)  # called for every feature of every record the packer keys
def is_code_feature(name: str) -> bool:
  return name.startswith(CODE_FEATURE_PREFIXES)


def split_names(packed) -> List[str]:
  from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
  return artifact_utils.decode_split_names(
      packed.get_string_custom_property(SPLIT_NAMES_PROPERTY))


def split_uri(packed, split: str) -> str:
  """Where a split's chunks are: the Examples layout, `<uri>/Split-<split>`."""
  return os.path.join(packed.uri, f"Split-{split}")


def split_pattern(packed, split: str) -> str:
  return os.path.join(split_uri(packed, split), "*")
