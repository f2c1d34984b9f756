"""The records sidrec writes have the same bytes in every process.

protobuf writes a map field (a tf.Example's features) in an order that differs between
processes (upb seeds its map hash per process), so the same content got other bytes in another
process: an artifact compared byte for byte (the alignment leakage guard) then differed
although nothing in it had changed. Each process checks that its records are in the
deterministic (key-sorted) form; a writer that is not gets the other order in about half of
the processes, so over 6 processes it is caught with probability 1 - 2^-6 per record kind.
"""
import os
import subprocess
import sys

_WRITE = """
import numpy as np
import tensorflow as tf
from contracts import embeddings_io, semantic_ids_io
kinds = {
    "embeddings_io.make_embedding_example":
        [embeddings_io.make_embedding_example(f"item{i}", np.full(4, i / 7)) for i in range(5)],
    "semantic_ids_io.encode_codes":
        [semantic_ids_io.encode_codes(f"item{i}", [i, 2 * i, 3]) for i in range(5)],
}
for kind, records in kinds.items():
  canonical = [tf.train.Example.FromString(r).SerializeToString(deterministic=True)
               for r in records]
  print(kind, records == canonical)
"""


def _check(process: int) -> list:
  env = dict(os.environ, PYTHONHASHSEED=str(process), TF_CPP_MIN_LOG_LEVEL="3")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, "-c", _WRITE], env=env, cwd=root, check=True,
                       capture_output=True, text=True).stdout
  return [line for line in out.splitlines() if line.endswith((" True", " False"))]


def test_embedding_and_code_records_are_key_sorted_in_every_process():
  lines = [line for process in range(6) for line in _check(process)]
  assert len(lines) == 12
  assert not [line for line in lines if line.endswith("False")]
