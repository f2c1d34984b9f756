"""The `sidrec.ItemVectors` artifact: the item table a ranking Trainer learned.

Written by the `item_id_vocab` Trainer's run_fn (trainer/run.py) beside its model, read by the
ContentAligner. Under the artifact URI:
  embeddings/part-*.tfrecord.gz   {item_id, embedding}: one row per training item (the
                                  item-id vocabulary), the layout of contracts/embeddings_io
                                  (so `embeddings_io.load_item_embeddings` reads it)
  train_interactions.tsv          `item_id<TAB>count`: the item's training interactions
  metadata.json                   dimension, count, representation, seed
Items outside the vocabulary (new ones) have no row: their vectors were never trained.
"""
import os
from typing import Dict, Sequence, Tuple

import numpy as np

from contracts import embeddings_io
from contracts import files

COUNTS_FILE = "train_interactions.tsv"


def write_item_vectors(uri: str, item_ids: Sequence[str], vectors: np.ndarray,
                       train_interactions: Sequence[int], **metadata) -> None:
  """Writes the artifact; metadata.json last, so a reader never takes a partial one."""
  vectors = np.asarray(vectors, np.float32)
  if not len(item_ids) == len(vectors) == len(train_interactions):
    raise ValueError(f"{len(item_ids)} ids, {len(vectors)} vectors and "
                     f"{len(train_interactions)} counts: one of each per item")
  write_train_interactions(uri, item_ids, train_interactions)
  embeddings_io.write_item_embeddings(uri, item_ids, vectors, **metadata)


def write_train_interactions(uri: str, item_ids: Sequence[str],
                             train_interactions: Sequence[int]) -> None:
  """`train_interactions.tsv` under `uri` (the ContentAligner copies it to its output)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.io.gfile.makedirs(uri)
  files.gfile_write_atomic(
      os.path.join(uri, COUNTS_FILE),
      "".join(f"{i}\t{int(c)}\n" for i, c in zip(item_ids, train_interactions)))


def read_train_interactions(uri: str) -> Dict[str, int]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(uri, COUNTS_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{uri} has no {COUNTS_FILE}: is it an ItemVectors artifact "
                            f"(the item_id_vocab Trainer's) or a ContentAligner output?")
  with tf.io.gfile.GFile(path) as f:
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
  return {item: int(count) for item, count in rows}


def read_item_vectors(uri: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(item_ids [n] sorted, vectors float32 [n, d], training interactions int64 [n])."""
  ids, vectors = embeddings_io.load_item_embeddings(uri)
  counts = read_train_interactions(uri)
  missing = [i for i in ids if i not in counts]
  if missing:
    raise ValueError(f"{uri}: {len(missing)} item(s) have a vector but no count in "
                     f"{COUNTS_FILE}, e.g. {missing[:3]}; the artifact is incomplete")
  return ids, vectors, np.asarray([counts[i] for i in ids], np.int64)
