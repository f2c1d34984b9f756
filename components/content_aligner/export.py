"""The alignment map as a SavedModel (contracts/alignment_io.py), and loading it back.

The exported ranker loads this SavedModel into its own graph (trainer/signatures.py), so the
map that aligned the catalog is the one that aligns a brand-new item's content embedding.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from components.content_aligner import aligner as aligner_lib
from contracts import alignment_io as io


class AlignmentModule(tf.Module):
  """`align(embeddings [n, d_content]) -> {"aligned": [n, d_item]}` for a RidgeMap or MlpMap."""

  def __init__(self, fitted, content_dim: int):
    super().__init__(name="content_alignment")
    self.kind = "ridge" if isinstance(fitted, aligner_lib.RidgeMap) else "mlp"
    self.params = {k: tf.Variable(v, trainable=False, name=k)
                   for k, v in fitted.variables().items()}
    spec = tf.TensorSpec([None, content_dim], tf.float32, name=io.EMBEDDINGS_INPUT)

    @tf.function(input_signature=[spec])
    def align(embeddings):
      p = self.params
      if self.kind == "ridge":
        out = (embeddings - p["x_mean"]) @ p["weights"] + p["y_mean"]
      else:
        out = tf.nn.relu(embeddings @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
      return {io.ALIGNED_OUTPUT: out}

    self.align = align


def export_alignment(fitted, content_dim: int, export_dir: str) -> str:
  """Writes the map's SavedModel at `export_dir`, inside the ContentAligner's fresh output
  artifact (which TFX publishes only once the executor has written alignment.json last)."""
  module = AlignmentModule(fitted, content_dim)
  tf.saved_model.save(module, export_dir, signatures={
      io.ALIGN_SIGNATURE: module.align.get_concrete_function()})
  return export_dir


class LoadedAlignment:
  """The exported map: `align(embeddings) -> aligned` in numpy, as the pipeline aligned (for
  tests and tools; the exported ranker loads the same SavedModel in trainer/aligned_items.py)."""

  def __init__(self, export_dir: str):
    self.module = tf.saved_model.load(export_dir)
    self._align = self.module.signatures[io.ALIGN_SIGNATURE]
    self.content_dim = int(self._align.structured_input_signature[1][
        io.EMBEDDINGS_INPUT].shape[1])

  def align(self, embeddings) -> np.ndarray:
    x = np.asarray(embeddings, np.float32)
    return self._align(embeddings=tf.constant(x))[io.ALIGNED_OUTPUT].numpy()
