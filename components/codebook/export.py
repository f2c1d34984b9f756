"""SavedModel export and loading of trained codebooks.

Layout of an exported codebook directory (a standard SavedModel):
  saved_model.pb, variables/          the encoder + quantiser (+ decoder) variables
  assets.extra/codebook.json          method, input_dim, code columns, K, config, metrics
Signatures (input `embeddings`: float32 [None, d]):
  serving_default -> {"codes": int64 [None, C], "reconstruction": float32 [None, d]}
  assign          -> {"codes": int64 [None, C]}   (no decoder: cheaper for bulk assignment)
C = levels (RQ-VAE, RQ-KMeans) or number of parallel codebooks (MoC).

The model is written to a temporary sibling directory and renamed into place, so readers never
see a half-written export (an existing export at the same path is replaced).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from components.codebook import base
from contracts.codebook_io import (ASSIGN_SIGNATURE, CODES_OUTPUT, EMBEDDINGS_INPUT,
                                   RECONSTRUCTION_OUTPUT, SERVING_SIGNATURE)

METADATA_FILE = os.path.join("assets.extra", "codebook.json")


class _ExportModule(tf.Module):

  def __init__(self, model: tf.Module, input_dim: int):
    super().__init__(name="codebook")
    self.model = model
    spec = tf.TensorSpec([None, input_dim], tf.float32, name=EMBEDDINGS_INPUT)

    @tf.function(input_signature=[spec])
    def serve(embeddings):
      out = model.infer(embeddings)
      return {CODES_OUTPUT: tf.cast(out["codes"], tf.int64),
              RECONSTRUCTION_OUTPUT: tf.cast(out["reconstruction"], tf.float32)}

    @tf.function(input_signature=[spec])
    def assign(embeddings):
      return {CODES_OUTPUT: tf.cast(model.codes(embeddings), tf.int64)}

    self.serve = serve
    self.assign = assign


def export_codebook(codebook: base.Codebook, export_dir: str,
                    metrics: Optional[Dict[str, Any]] = None) -> str:
  """Writes `codebook` as a SavedModel at `export_dir` (atomically on local file systems)."""
  codebook._check_fitted()  # pylint: disable=protected-access
  export_dir = os.path.abspath(export_dir) if "://" not in export_dir else export_dir
  parent = os.path.dirname(export_dir.rstrip("/"))
  if parent:
    tf.io.gfile.makedirs(parent)
  tmp = f"{export_dir.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
  module = _ExportModule(codebook._serving_module(), codebook.input_dim)  # pylint: disable=protected-access
  try:
    tf.saved_model.save(module, tmp, signatures={
        SERVING_SIGNATURE: module.serve.get_concrete_function(),
        ASSIGN_SIGNATURE: module.assign.get_concrete_function(),
    })
    meta = codebook.describe()
    if metrics is not None:
      meta["metrics"] = metrics
    tf.io.gfile.makedirs(os.path.join(tmp, "assets.extra"))
    with tf.io.gfile.GFile(os.path.join(tmp, METADATA_FILE), "w") as f:
      f.write(json.dumps(meta, indent=1, sort_keys=True))
    _replace_dir(tmp, export_dir)
  finally:
    if tf.io.gfile.exists(tmp):
      tf.io.gfile.rmtree(tmp)
  return export_dir


def _replace_dir(src: str, dst: str) -> None:
  if "://" not in dst:  # local: rename is atomic; keep the old export until the new one is in
    old = None
    if os.path.exists(dst):
      old = f"{dst.rstrip('/')}.old-{uuid.uuid4().hex[:8]}"
      os.rename(dst, old)
    os.rename(src, dst)
    if old:
      shutil.rmtree(old, ignore_errors=True)
    return
  # Object stores have no directory rename: copy file by file, then delete the temp dir.
  if tf.io.gfile.exists(dst):
    tf.io.gfile.rmtree(dst)
  for root, _, files in tf.io.gfile.walk(src):
    rel = os.path.relpath(root, src)
    target_root = os.path.join(dst, rel) if rel != "." else dst
    tf.io.gfile.makedirs(target_root)
    for name in files:
      tf.io.gfile.copy(os.path.join(root, name), os.path.join(target_root, name), overwrite=True)


class LoadedCodebook:
  """A codebook reloaded from its SavedModel: same `assign` / `reconstruct` as the trainer's."""

  def __init__(self, export_dir: str):
    self.export_dir = export_dir
    self._loaded = tf.saved_model.load(export_dir)
    self._serve = self._loaded.signatures[SERVING_SIGNATURE]
    self._assign = self._loaded.signatures.get(ASSIGN_SIGNATURE)
    meta_path = os.path.join(export_dir, METADATA_FILE)
    self.metadata: Dict[str, Any] = {}
    if tf.io.gfile.exists(meta_path):
      with tf.io.gfile.GFile(meta_path) as f:
        self.metadata = json.load(f)
    spec = self._serve.structured_input_signature[1][EMBEDDINGS_INPUT]
    self.input_dim = int(spec.shape[1])

  def _run(self, fn, embeddings, key):
    x = base.validate_embeddings(embeddings, expected_dim=self.input_dim)
    outs = [fn(embeddings=tf.constant(x[s:s + base.INFERENCE_CHUNK]))[key].numpy()
            for s in range(0, x.shape[0], base.INFERENCE_CHUNK)]
    return np.concatenate(outs, axis=0)

  def assign(self, embeddings) -> np.ndarray:
    return self._run(self._assign or self._serve, embeddings, CODES_OUTPUT).astype(np.int64)

  def reconstruct(self, embeddings) -> np.ndarray:
    return self._run(self._serve, embeddings, RECONSTRUCTION_OUTPUT)


def load_codebook(export_dir: str) -> LoadedCodebook:
  return LoadedCodebook(export_dir)
