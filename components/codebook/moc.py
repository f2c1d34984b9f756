"""Mixture-of-Codes codebook (Zhang et al. 2024, "Towards Scalable Semantic Representation
for Recommendation").

M = levels * moc_scaling_factor *independent, parallel* codebooks of K codes (not residual):
each item gets one code per codebook, and the shared decoder reconstructs the input from the
*mean* of the M chosen code vectors. As in the paper all codebooks quantise the encoder output
(the shared latent); they differ by their own k-means initialisation (each codebook is
initialised from an independently seeded k-means++ run) and train independently. With
`moc_per_codebook_projection` each codebook instead quantises its own learned linear
projection of the latent (initialised near the identity), which lets codebooks specialise and
decorrelates their codes; off by default to follow the paper.

Codes [n, M] have no prefix hierarchy (codebooks are exchangeable), so prefix metrics are
reported but not expected to rise.
"""

from __future__ import annotations

from components.codebook import autoencoder


class MixtureOfCodesCodebook(autoencoder.QuantizedAutoencoderCodebook):
  """MoC: `MixtureOfCodesCodebook(config, strategy=None).fit(embeddings)`; codes [n, M]."""

  method = "moc"
  quantizer_kind = "parallel"

  @property
  def num_code_columns(self) -> int:
    return self.config.levels * self.config.moc_scaling_factor

  def _per_book_projection(self) -> bool:
    return bool(self.config.moc_per_codebook_projection)
