"""`train_codebook`: one entry point for the three codebook methods.

    codebook, metrics = train_codebook(embeddings, CodebookConfig(method="rqvae"))
    codes = codebook.assign(new_embeddings)
    codebook.export("/path/to/codebook")   # SavedModel, see export.py

The trainers only see a float32 [n, d] array; where it came from (ContentEmbedder artifact,
precomputed file, synthetic data) is the caller's business.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple

from absl import logging
import numpy as np

from components.codebook import base
from components.codebook import metrics as metrics_lib
from contracts.config import CodebookConfig
from contracts.registry import codebook_methods
from contracts.registry import resolve


def make_codebook(config: CodebookConfig, strategy=None) -> base.Codebook:
  """An untrained codebook of `config.method` (contracts/registry/codebook_methods.py)."""
  method = codebook_methods.get(config.method)
  codebook_class = resolve(method.codebook_class)
  return codebook_class(config, strategy=strategy) if method.takes_strategy else codebook_class(
      config)


def train_codebook(embeddings: np.ndarray,
                   config: CodebookConfig,
                   labels: Optional[np.ndarray] = None,
                   strategy=None) -> Tuple[base.Codebook, Dict[str, Any]]:
  """Trains a codebook on float32 [n, d] embeddings, assigns codes to all of them and measures.

  Args:
    embeddings: float32 [n, d] item embeddings (one row per item).
    config: CodebookConfig (method, sizes, training settings).
    labels: optional [n] (or [n, k]) item labels (e.g. genres) for the NMI metric.
    strategy: optional tf.distribute.Strategy for the neural codebooks.

  Returns:
    (trained codebook, JSON-serialisable metrics dict). The metrics hold the quality metrics of
    metrics.codebook_metrics on the training set, plus "training" (timings, throughput,
    dead-code resets) and "assign_items_per_second".

  Raises:
    CodebookInputError: empty / non-finite / wrongly shaped embeddings, or K > n.
  """
  x = base.validate_embeddings(embeddings)
  base.check_codebook_size(x.shape[0], config.codebook_size)
  if labels is not None and len(labels) != x.shape[0]:
    raise base.CodebookInputError(
        f"labels has {len(labels)} rows but embeddings has {x.shape[0]}; pass one label per item")
  logging.info("training %s codebook on %d x %d embeddings: %s", config.method, x.shape[0],
               x.shape[1], config)
  codebook = make_codebook(config, strategy).fit(x)
  t0 = time.perf_counter()
  codes, recon = codebook.assign_and_reconstruct(x)
  assign_seconds = time.perf_counter() - t0
  metrics = metrics_lib.codebook_metrics(x, codes, config.codebook_size, reconstruction=recon,
                                         labels=labels, prefix=f"{config.method} ")
  metrics["method"] = config.method
  metrics["assign_items_per_second"] = x.shape[0] / max(assign_seconds, 1e-9)
  metrics["training"] = {k: v for k, v in codebook.training_stats.items()}
  return codebook, metrics
