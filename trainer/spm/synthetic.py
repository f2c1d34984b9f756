"""Synthetic, realistically skewed SIDs for tests and benchmarks of the SentencePiece sub-IDs.

Hierarchical like a residual quantiser's codes: a Zipf-distributed first code, a second code
drawn from a small per-parent set of children (also Zipf), deeper codes increasingly spread out,
and a Zipf number of interactions per distinct SID. Frequent prefixes thus share long code runs
that BPE can merge, while the tail stays unigram.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def synthetic_sids(num_distinct: int, levels: int = 3, codebook_size: int = 256, seed: int = 0,
                   zipf_a: float = 1.3, children: int = 24,
                   max_tries: int = 50) -> Tuple[np.ndarray, np.ndarray]:
  """Returns (sids [n, L] int64 distinct rows, counts [n] int64 >= 1) with n ~= num_distinct."""
  rng = np.random.default_rng(seed)
  K = codebook_size
  # Per-level random "child tables": child j of parent code p at level l -> code table[l][p, j].
  tables = [rng.integers(0, K, size=(K, children)) for _ in range(levels)]
  rows = np.zeros((0, levels), np.int64)
  for _ in range(max_tries):
    m = max(1024, 2 * (num_distinct - len(rows)))
    sid = np.empty((m, levels), np.int64)
    sid[:, 0] = (rng.zipf(zipf_a, m) - 1) % K
    for l in range(1, levels):
      spread = children if l < levels - 1 else K  # last level nearly uniform
      j = (rng.zipf(zipf_a + 0.2, m) - 1) % spread
      if spread == children:
        sid[:, l] = tables[l][sid[:, l - 1], j]
      else:
        sid[:, l] = (tables[l][sid[:, l - 1], 0] + j) % K
    rows = np.unique(np.concatenate([rows, sid]), axis=0)
    if len(rows) >= num_distinct:
      break
  rows = rows[rng.permutation(len(rows))[:num_distinct]]
  counts = np.minimum(rng.zipf(1.6, len(rows)), 10_000).astype(np.int64)
  return rows, counts
