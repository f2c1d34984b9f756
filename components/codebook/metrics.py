"""Codebook quality metrics (numpy). Usable on any codes, whoever produced them.

Conventions: `codes` is an integer array [n, C] (C = levels or parallel codebooks, codes in
[0, K)), `embeddings` float [n, d]. Every function returns plain Python floats/lists so the
result of `codebook_metrics` is JSON-serialisable; undefined values are None (not NaN).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

from absl import logging
import numpy as np
import scipy.sparse


def _codes_2d(codes) -> np.ndarray:
  codes = np.asarray(codes)
  if codes.ndim == 1:
    codes = codes[:, None]
  if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
    raise ValueError(f"codes must be an integer array [n, levels], got {codes.dtype} {codes.shape}")
  return codes


def _dense_ids(column: np.ndarray) -> np.ndarray:
  return np.unique(column, return_inverse=True)[1].reshape(-1).astype(np.int64)


def prefix_group_ids(codes) -> List[np.ndarray]:
  """For p = 1..C, an int64 [n] array numbering the distinct code prefixes codes[:, :p]."""
  codes = _codes_2d(codes)
  n = codes.shape[0]
  groups, current = [], np.zeros(n, np.int64)
  for level in range(codes.shape[1]):
    col = _dense_ids(codes[:, level])
    current = _dense_ids(current * (int(col.max(initial=0)) + 1) + col)  # < n * n: fits int64
    groups.append(current)
  return groups


def relative_reconstruction_error(embeddings, reconstruction) -> float:
  """sum ||x - x_hat||^2 / sum ||x||^2 (0 = perfect, 1 = as bad as predicting zeros)."""
  x = np.asarray(embeddings, np.float64)
  x_hat = np.asarray(reconstruction, np.float64)
  if x.shape != x_hat.shape:
    raise ValueError(f"shapes differ: embeddings {x.shape} vs reconstruction {x_hat.shape}")
  denom = float(np.sum(x * x))
  if denom == 0.0:
    return 0.0 if np.all(x_hat == 0) else math.inf
  return float(np.sum((x - x_hat) ** 2) / denom)


def unique_sid_ratio(codes) -> float:
  """Distinct full SIDs / items (1.0 = no collisions)."""
  codes = _codes_2d(codes)
  if codes.shape[0] == 0:
    return 0.0
  return float(np.unique(codes, axis=0).shape[0] / codes.shape[0])


def _level_counts(codes, codebook_size: int) -> List[np.ndarray]:
  codes = _codes_2d(codes)
  if codes.size and (codes.min() < 0 or codes.max() >= codebook_size):
    raise ValueError(f"codes must lie in [0, {codebook_size}), got [{codes.min()}, {codes.max()}]")
  return [np.bincount(codes[:, l], minlength=codebook_size) for l in range(codes.shape[1])]


def code_usage(codes, codebook_size: int) -> List[float]:
  """Per level: fraction of the K codes used by at least one item."""
  return [float(np.count_nonzero(c) / codebook_size) for c in _level_counts(codes, codebook_size)]


def perplexity(codes, codebook_size: int) -> List[float]:
  """Per level: exp(entropy of the code-usage distribution); K = uniform use, 1 = collapse."""
  out = []
  for c in _level_counts(codes, codebook_size):
    total = c.sum()
    if total == 0:
      out.append(0.0)
      continue
    p = c[c > 0] / total
    out.append(float(np.exp(-np.sum(p * np.log(p)))))
  return out


def prefix_cosine(embeddings, codes) -> List[Optional[float]]:
  """Mean content cosine of item pairs sharing a SID prefix of length p = 1..C.

  Exact and O(n d) per level: for a group of g unit vectors with sum s, the sum of cosines
  over its g (g - 1) / 2 pairs is (|s|^2 - g) / 2. Groups are weighted by their pair count.
  None where no two items share a prefix of that length.
  """
  x = np.asarray(embeddings, np.float64)
  codes = _codes_2d(codes)
  if x.shape[0] != codes.shape[0]:
    raise ValueError(f"{x.shape[0]} embeddings but {codes.shape[0]} code rows")
  norms = np.linalg.norm(x, axis=1, keepdims=True)
  unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
  out = []
  for gid in prefix_group_ids(codes):
    order = np.argsort(gid, kind="stable")
    sorted_gid = gid[order]
    starts = np.flatnonzero(np.r_[True, sorted_gid[1:] != sorted_gid[:-1]])
    sizes = np.diff(np.r_[starts, gid.size]).astype(np.float64)
    sums = np.add.reduceat(unit[order], starts, axis=0)
    # Unit vectors of zero-norm items contribute 0 to s and must not count in g: use
    # sum |u|^2 (= g for unit rows) instead of g.
    self_terms = np.add.reduceat(np.einsum("ij,ij->i", unit, unit)[order], starts)
    pair_cos = (np.einsum("ij,ij->i", sums, sums) - self_terms) / 2.0
    pairs = sizes * (sizes - 1.0) / 2.0
    total_pairs = pairs.sum()
    out.append(float(pair_cos.sum() / total_pairs) if total_pairs > 0 else None)
  return out


def is_strictly_increasing(values: Sequence[Optional[float]]) -> bool:
  vals = [v for v in values if v is not None]
  return len(vals) == len(values) and all(b > a for a, b in zip(vals, vals[1:]))


def nmi(codes, labels) -> Dict[str, Any]:
  """Normalised mutual information (sklearn, arithmetic normalisation) of codes vs labels.

  Returns {"per_level": [NMI(level l, labels)], "prefix": [NMI(prefix 1..l, labels)],
  "full_sid": NMI(full SID, labels)}.
  """
  from sklearn.metrics import normalized_mutual_info_score  # pylint: disable=g-import-not-at-top
  codes = _codes_2d(codes)
  labels = np.asarray(labels)
  if labels.shape[0] != codes.shape[0]:
    raise ValueError(f"{labels.shape[0]} labels but {codes.shape[0]} code rows")
  if labels.ndim > 1:
    labels = prefix_group_ids(labels)[-1]
  per_level = [float(normalized_mutual_info_score(labels, codes[:, l]))
               for l in range(codes.shape[1])]
  prefix = [float(normalized_mutual_info_score(labels, g)) for g in prefix_group_ids(codes)]
  return {"per_level": per_level, "prefix": prefix, "full_sid": prefix[-1]}


def _spectrum_from_eigenvalues(eigenvalues: np.ndarray, top: int) -> Dict[str, Any]:
  s = np.sqrt(np.clip(np.sort(np.asarray(eigenvalues, np.float64))[::-1], 0.0, None))
  if s.size == 0 or s[0] <= 0:
    return {"normalized_singular_values": [], "effective_rank": 0.0, "rank": 0}
  p = s / s.sum()
  nz = p[p > 0]
  eff_rank = float(np.exp(-np.sum(nz * np.log(nz))))
  tol = s[0] * max(s.size, 1) * np.finfo(np.float32).eps
  return {
      "normalized_singular_values": [float(v) for v in (s / s[0])[:top]],
      # Roy & Vetterli (2007): exp(entropy of the normalised singular values).
      "effective_rank": eff_rank,
      "rank": int(np.count_nonzero(s > tol)),
  }


def singular_value_spectrum(representation, center: bool = True,
                            top: int = 64) -> Dict[str, Any]:
  """Singular values of a representation matrix [n, m] (normalised by the largest) + effective rank.

  Computed from the m x m Gram matrix (m is small: a latent or code dimension).
  """
  a = np.asarray(representation, np.float64)
  if a.ndim != 2:
    raise ValueError(f"representation must be 2-D, got shape {a.shape}")
  if center:
    a = a - a.mean(axis=0, keepdims=True)
  return _spectrum_from_eigenvalues(np.linalg.eigvalsh(a.T @ a), top)


def one_hot_spectrum(codes, codebook_size: int, center: bool = True,
                     top: int = 64) -> Dict[str, Any]:
  """Spectrum of the concatenated one-hot code representation [n, C*K] without building it."""
  codes = _codes_2d(codes)
  n, c = codes.shape
  _level_counts(codes, codebook_size)  # range check
  cols = (codes + np.arange(c)[None, :] * codebook_size).reshape(-1)
  rows = np.repeat(np.arange(n), c)
  a = scipy.sparse.csr_matrix((np.ones(n * c), (rows, cols)), shape=(n, c * codebook_size))
  gram = np.asarray((a.T @ a).todense(), np.float64)
  if center:
    mean = np.asarray(a.mean(axis=0)).reshape(-1)
    gram -= n * np.outer(mean, mean)
  return _spectrum_from_eigenvalues(np.linalg.eigvalsh(gram), top)


def codebook_metrics(embeddings, codes, codebook_size: int, reconstruction=None,
                     labels=None, log: bool = True, prefix: str = "") -> Dict[str, Any]:
  """All metrics in one JSON-serialisable dict (and logged with absl)."""
  codes = _codes_2d(codes)
  m: Dict[str, Any] = {
      "num_items": int(codes.shape[0]),
      "num_code_columns": int(codes.shape[1]),
      "codebook_size": int(codebook_size),
      "unique_sid_ratio": unique_sid_ratio(codes),
      "code_usage": code_usage(codes, codebook_size),
      "perplexity": perplexity(codes, codebook_size),
      "prefix_cosine": prefix_cosine(embeddings, codes),
  }
  m["min_code_usage"] = float(min(m["code_usage"]))
  m["prefix_cosine_increasing"] = is_strictly_increasing(m["prefix_cosine"])
  if reconstruction is not None:
    m["relative_reconstruction_error"] = relative_reconstruction_error(embeddings, reconstruction)
  if labels is not None:
    m["nmi"] = nmi(codes, labels)
  if codes.shape[1] * codebook_size <= 8192:  # Gram of the one-hot representation fits easily
    m["one_hot_spectrum"] = one_hot_spectrum(codes, codebook_size)
  if log:
    for key in ("unique_sid_ratio", "code_usage", "perplexity", "prefix_cosine",
                "relative_reconstruction_error", "nmi"):
      if key in m:
        logging.info("codebook %s%s = %s", prefix, key, m[key])
    if "one_hot_spectrum" in m:
      logging.info("codebook %sone_hot effective_rank = %.1f (rank %d)", prefix,
                   m["one_hot_spectrum"]["effective_rank"], m["one_hot_spectrum"]["rank"])
  return m
