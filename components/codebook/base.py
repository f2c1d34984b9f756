"""What every codebook shares: input checks, the public interface and batched inference.

A codebook maps float32 embeddings [n, d] to int64 codes [n, C] (C = levels for residual
codebooks, number of parallel codebooks for Mixture-of-Codes) and back to a reconstruction
[n, d]. Inference always runs through one TensorFlow function per codebook (`_infer`) so that
`assign`, `reconstruct` and the exported SavedModel compute exactly the same thing.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import json
from typing import Any, Dict, Optional

import numpy as np

from contracts.config import CodebookConfig

# Items per call of the inference function. 2-4k rows keep the [chunk, K] distance matrices in
# cache: measured ~1.3x faster assignment than 16-32k rows on 2 cores.
INFERENCE_CHUNK = 4096


def tf_function(fn, **kwargs):
  """tf.function of a per-instance partial: tf.function keys its "frequent retracing" warning
  on the Python code object, so every trained codebook (each tracing its own functions once)
  would otherwise count as a retrace of the same function."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.function(functools.partial(fn), **kwargs)


class CodebookInputError(ValueError):
  """Embeddings (or settings relative to them) a codebook cannot be trained/applied on.

  The message names the problem and how to fix it.
  """


class NotFittedError(RuntimeError):
  """A codebook was used before `fit`."""


def validate_embeddings(embeddings: Any,
                        *,
                        expected_dim: Optional[int] = None,
                        what: str = "embeddings") -> np.ndarray:
  """Returns `embeddings` as a C-contiguous float32 [n, d] array or raises CodebookInputError."""
  try:
    x = np.asarray(embeddings)
  except Exception as e:  # ragged lists and the like
    raise CodebookInputError(
        f"{what} could not be converted to a numeric array ({e}); pass a float32 numpy "
        f"array of shape [num_items, dim]") from e
  if x.dtype == object or not (np.issubdtype(x.dtype, np.floating) or
                               np.issubdtype(x.dtype, np.integer)):
    raise CodebookInputError(
        f"{what} must be numeric, got dtype {x.dtype}; pass a float32 array [num_items, dim] "
        f"(ragged rows? check that every embedding has the same length)")
  if x.ndim != 2:
    raise CodebookInputError(
        f"{what} must be 2-D [num_items, dim], got shape {x.shape}; "
        f"use embeddings.reshape(-1, dim) for a single vector or stack the vectors")
  if x.shape[0] == 0:
    raise CodebookInputError(
        f"{what} is empty (0 items, shape {x.shape}); the item catalog or the embedding "
        f"step produced no rows: check the upstream ItemEmbeddings artifact")
  if x.shape[1] == 0:
    raise CodebookInputError(f"{what} has dimension 0 (shape {x.shape}); embeddings need dim >= 1")
  if expected_dim is not None and x.shape[1] != expected_dim:
    raise CodebookInputError(
        f"{what} have dimension {x.shape[1]} but the codebook was trained on dimension "
        f"{expected_dim}; embed the items with the same encoder as the training catalog "
        f"(or retrain the codebook on {x.shape[1]}-d embeddings)")
  x = np.ascontiguousarray(x, dtype=np.float32)
  finite = np.isfinite(x)
  if not finite.all():
    bad_rows = np.flatnonzero(~finite.all(axis=1))
    n_nan = int(np.isnan(x).sum())
    n_inf = int(np.isinf(x).sum())
    raise CodebookInputError(
        f"{what} contain non-finite values ({n_nan} NaN, {n_inf} Inf, or values that overflow "
        f"float32) in {bad_rows.size} row(s), first rows {bad_rows[:5].tolist()}; drop or "
        f"re-embed those items before training/assignment")
  return x


def check_codebook_size(num_items: int, codebook_size: int) -> None:
  if codebook_size > num_items:
    raise CodebookInputError(
        f"codebook_size K={codebook_size} is larger than the number of items n={num_items}: "
        f"k-means initialisation needs at least K distinct points and most codes would stay "
        f"empty; set CodebookConfig.codebook_size <= {num_items} (a few items per code, e.g. "
        f"K ~ n/10 = {max(2, num_items // 10)}) or train on more items")


class Codebook(abc.ABC):
  """Common interface of RqVaeCodebook, MixtureOfCodesCodebook and RqKMeansCodebook."""

  method: str = ""

  def __init__(self, config: Optional[CodebookConfig] = None):
    config = config or CodebookConfig()
    if config.method != self.method:
      config = dataclasses.replace(config, method=self.method)
    self.config = config
    self.input_dim: Optional[int] = None
    # Per-epoch/phase training statistics (losses, resets, timings); JSON-serialisable.
    self.training_stats: Dict[str, Any] = {}
    self._infer = None  # tf.function: float32 [None, d] -> {"codes", "reconstruction"}
    self._codes_fn = None  # tf.function: float32 [None, d] -> int64 codes

  # --- to implement --------------------------------------------------------------------
  @property
  @abc.abstractmethod
  def num_code_columns(self) -> int:
    """Codes per item: levels (residual) or number of parallel codebooks (MoC)."""

  @abc.abstractmethod
  def fit(self, embeddings: np.ndarray) -> "Codebook":
    """Trains on float32 [n, d] embeddings and returns self."""

  @abc.abstractmethod
  def _serving_module(self):
    """A tf.Module holding the variables, with `infer(embeddings) -> dict` (tf ops only)."""

  # --- shared ----------------------------------------------------------------------------
  @property
  def codebook_size(self) -> int:
    return self.config.codebook_size

  @property
  def is_fitted(self) -> bool:
    return self._infer is not None

  def _check_fitted(self):
    if not self.is_fitted:
      raise NotFittedError(f"{type(self).__name__} is not trained yet: call fit(embeddings)")

  def _build_inference(self):
    """Wraps the serving module's functions once the input dimension is known."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    module = self._serving_module()
    spec = [tf.TensorSpec([None, self.input_dim], tf.float32, name="embeddings")]
    self._infer = tf_function(module.infer, input_signature=spec)
    self._codes_fn = tf_function(module.codes, input_signature=spec)

  def _run(self, fn, embeddings, key=None) -> np.ndarray:
    self._check_fitted()
    x = validate_embeddings(embeddings, expected_dim=self.input_dim)
    outs = []
    for start in range(0, x.shape[0], INFERENCE_CHUNK):
      out = fn(x[start:start + INFERENCE_CHUNK])
      outs.append((out[key] if key else out).numpy())
    return np.concatenate(outs, axis=0)

  def assign(self, embeddings: np.ndarray) -> np.ndarray:
    """int64 codes [n, num_code_columns] for any items (training or new ones)."""
    return self._run(self._codes_fn, embeddings).astype(np.int64, copy=False)

  def reconstruct(self, embeddings: np.ndarray) -> np.ndarray:
    """float32 [n, d]: the decoder's reconstruction of each item from its codes."""
    return self._run(self._infer, embeddings, key="reconstruction")

  def assign_and_reconstruct(self, embeddings: np.ndarray):
    """(codes, reconstruction) in one pass."""
    self._check_fitted()
    x = validate_embeddings(embeddings, expected_dim=self.input_dim)
    codes, recon = [], []
    for start in range(0, x.shape[0], INFERENCE_CHUNK):
      out = self._infer(x[start:start + INFERENCE_CHUNK])
      codes.append(out["codes"].numpy())
      recon.append(out["reconstruction"].numpy())
    return np.concatenate(codes).astype(np.int64, copy=False), np.concatenate(recon)

  def export(self, export_dir: str) -> str:
    """Writes a SavedModel (see export.py); returns its directory."""
    from components.codebook import export as export_lib  # pylint: disable=g-import-not-at-top
    return export_lib.export_codebook(self, export_dir)

  def describe(self) -> Dict[str, Any]:
    """JSON-serialisable description stored beside the SavedModel."""
    return {
        "method": self.method,
        "input_dim": self.input_dim,
        "num_code_columns": self.num_code_columns,
        "codebook_size": self.codebook_size,
        "config": json.loads(json.dumps(dataclasses.asdict(self.config))),
    }
