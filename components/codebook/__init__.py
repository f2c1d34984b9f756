"""Codebook trainers: semantic IDs from item content embeddings.

The methods are registered in contracts/registry/codebook_methods.py:
- `RqVaeCodebook` (rqvae.py): RQ-VAE, L levels x K codes (Singh et al. 2024).
- `MixtureOfCodesCodebook` (moc.py): M parallel codebooks, decoder on their mean (Zhang et al.).
- `RqKMeansCodebook` (rqkmeans.py): residual k-means on the raw embeddings (cheap baseline).
- `train_codebook(embeddings, config) -> (codebook, metrics)` (train.py).
- Every codebook: `fit(x)`, `assign(x) -> int64 [n, C]`, `reconstruct(x) -> float32 [n, d]`,
  `export(dir)` -> SavedModel (export.py; `load_codebook(dir)` reloads it).
- `metrics.py`: reconstruction error, unique-SID ratio, code usage, perplexity, prefix cosine,
  NMI, singular-value spectrum; numpy, usable on any codes.

TensorFlow is imported lazily (the trainers need it, metrics/kmeans do not).
"""

from components.codebook.base import Codebook, CodebookInputError, NotFittedError

__all__ = [
    "Codebook", "CodebookInputError", "NotFittedError", "RqVaeCodebook",
    "MixtureOfCodesCodebook", "RqKMeansCodebook", "train_codebook", "load_codebook",
]


def __getattr__(name):  # lazy: importing the package must not import TensorFlow
  # pylint: disable=g-import-not-at-top
  if name == "RqVaeCodebook":
    from components.codebook.rqvae import RqVaeCodebook
    return RqVaeCodebook
  if name == "MixtureOfCodesCodebook":
    from components.codebook.moc import MixtureOfCodesCodebook
    return MixtureOfCodesCodebook
  if name == "RqKMeansCodebook":
    from components.codebook.rqkmeans import RqKMeansCodebook
    return RqKMeansCodebook
  if name == "train_codebook":
    from components.codebook.train import train_codebook
    return train_codebook
  if name == "load_codebook":
    from components.codebook.export import load_codebook
    return load_codebook
  raise AttributeError(name)
