"""RQ-KMeans: residual k-means on the raw embeddings, no neural encoder (the cheap baseline).

Level 1 is k-means on the (optionally L2-normalised) embeddings, level l k-means on what
levels < l left over. Centroids are fitted on a sample of `kmeans_init_samples` items (all
items if fewer) with k-means++ and Lloyd (kmeans.py); codes for any item come from the same
TensorFlow residual quantiser the neural codebooks use, so the SavedModel is identical in form.

With `rqkmeans_normalize` the reconstruction is the sum of the chosen centroids rescaled to the
input's norm (the codes describe the direction; the norm is passed through).
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import tensorflow as tf

from components.codebook import base
from components.codebook import kmeans as kmeans_lib
from components.codebook import quantizer as quantizer_lib
from contracts.config import CodebookConfig

_EPS = 1e-12


class RqKMeansModel(tf.Module):
  """Residual quantiser over the (normalised) raw embeddings."""

  def __init__(self, levels: int, size: int, dim: int, normalize: bool, seed: int):
    super().__init__(name="rqkmeans")
    self.normalize = bool(normalize)
    self.quantizer = quantizer_lib.ResidualQuantizer(levels, size, dim, seed=seed)

  def _prepare(self, x):
    if not self.normalize:
      return x, None
    norm = tf.norm(x, axis=1, keepdims=True)
    return x / tf.maximum(norm, _EPS), norm

  def codes(self, embeddings):
    x, _ = self._prepare(embeddings)
    return self.quantizer.quantize(x)[0]

  def infer(self, embeddings):
    x, norm = self._prepare(embeddings)
    codes, quantized = self.quantizer.quantize(x)
    recon = quantized if norm is None else quantized * norm
    return {"codes": codes, "reconstruction": recon}


class RqKMeansCodebook(base.Codebook):
  """Residual k-means: `RqKMeansCodebook(config).fit(embeddings)`; codes [n, levels]."""

  method = "rqkmeans"

  def __init__(self, config: Optional[CodebookConfig] = None):
    super().__init__(config)
    self.model: Optional[RqKMeansModel] = None

  @property
  def num_code_columns(self) -> int:
    return self.config.levels

  def _serving_module(self):
    return self.model

  def fit(self, embeddings: np.ndarray) -> "RqKMeansCodebook":
    cfg = self.config
    x = base.validate_embeddings(embeddings)
    n, d = x.shape
    base.check_codebook_size(n, cfg.codebook_size)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    m = min(n, max(cfg.kmeans_init_samples, 4 * cfg.codebook_size))
    sample = x[np.sort(rng.choice(n, size=m, replace=False))] if m < n else x
    if cfg.rqkmeans_normalize:
      sample = sample / np.maximum(np.linalg.norm(sample, axis=1, keepdims=True), _EPS)
    books = kmeans_lib.residual_kmeans(sample, cfg.levels, cfg.codebook_size,
                                       cfg.kmeans_iterations, rng)
    self.model = RqKMeansModel(cfg.levels, cfg.codebook_size, d, cfg.rqkmeans_normalize,
                               cfg.seed)
    self.model.quantizer.set_codebooks(np.stack(books))
    self.input_dim = d
    seconds = time.perf_counter() - t0
    self.training_stats = {"num_items": n, "input_dim": d, "fit_samples": m,
                           "fit_seconds": seconds,
                           "train_examples_per_second": m / max(seconds, 1e-9)}
    self._build_inference()
    return self
