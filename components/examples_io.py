"""Reading tf.Example artifacts (ExampleGen outputs) outside Beam, for small side inputs.

The item catalog is small next to the interactions (thousands to a million rows), so codebook
training reads the columns it needs straight into numpy.
"""
import os
from typing import Dict, Iterable, List

import numpy as np
import tensorflow as tf
from tfx.types import artifact_utils


def split_files(examples_artifact, split: str) -> List[str]:
  """The TFRecord files of one split of an Examples artifact."""
  uri = artifact_utils.get_split_uri([examples_artifact], split)
  files = sorted(tf.io.gfile.glob(os.path.join(uri, "*")))
  if not files:
    raise FileNotFoundError(f"split {split!r} of {examples_artifact.uri} holds no files")
  return files


def read_string_columns(files: Iterable[str], columns: Iterable[str],
                        batch_size: int = 4096) -> Dict[str, np.ndarray]:
  """Reads scalar bytes features of every example into numpy arrays of str."""
  columns = list(columns)
  spec = {c: tf.io.FixedLenFeature([], tf.string, default_value=b"") for c in columns}
  dataset = tf.data.TFRecordDataset(list(files), compression_type="GZIP").batch(batch_size)
  out = {c: [] for c in columns}
  for batch in dataset:
    parsed = tf.io.parse_example(batch, spec)
    for c in columns:
      out[c].append(parsed[c].numpy())
  # Bytes features are UTF-8 (titles carry accents): decode explicitly, never as ASCII.
  return {c: np.array([b.decode("utf-8") for b in np.concatenate(v)] if v else [], dtype=object)
          for c, v in out.items()}
