"""RQ-VAE codebook (Singh et al., RecSys 2024; Lee et al., CVPR 2022).

MLP encoder -> latent -> L levels x K codes residual quantiser -> MLP decoder. Codes [n, L]:
level 1 is the coarsest cluster, each further level refines what the previous ones left, so
a SID prefix of length p names an increasingly specific group of items. Training details
(warm-up, k-means init, dead-code reset, straight-through / rotation trick, distribution) are
in autoencoder.py and quantizer.py.
"""

from __future__ import annotations

from components.codebook import autoencoder


class RqVaeCodebook(autoencoder.QuantizedAutoencoderCodebook):
  """RQ-VAE: `RqVaeCodebook(config, strategy=None).fit(embeddings)`; codes [n, levels]."""

  method = "rqvae"
  quantizer_kind = "residual"

  @property
  def num_code_columns(self) -> int:
    return self.config.levels
