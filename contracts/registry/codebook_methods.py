"""Registry of codebook methods (the trainers that turn content embeddings into codes).

Each entry names the `components.codebook.base.Codebook` subclass that trains it (built as
`cls(config, strategy=...)` when `takes_strategy`, else `cls(config)`), the component-id prefix
of its CodebookTrainer / SemanticIdAssigner in the DAG, and
`defaults`: CodebookConfig values for this method that sit under the user's
`codebook_overrides` (the shared `codebook` section < `defaults` < overrides).
"""
import dataclasses
from typing import Dict, Mapping

_MODULE = "components.codebook"


@dataclasses.dataclass(frozen=True)
class CodebookMethod:
  name: str
  codebook_class: str
  component_prefix: str
  takes_strategy: bool = True
  defaults: Mapping[str, object] = dataclasses.field(default_factory=dict)
  summary: str = ""


METHODS: Dict[str, CodebookMethod] = {m.name: m for m in (
    CodebookMethod("rqvae", f"{_MODULE}.rqvae:RqVaeCodebook", "RqVae",
                   summary="RQ-VAE, L levels x K codes (Singh et al. 2024)"),
    CodebookMethod("moc", f"{_MODULE}.moc:MixtureOfCodesCodebook", "MixtureOfCodes",
                   summary="levels x moc_scaling_factor parallel codebooks (Zhang et al.)"),
    CodebookMethod("rqkmeans", f"{_MODULE}.rqkmeans:RqKMeansCodebook", "RqKMeans",
                   takes_strategy=False, summary="residual k-means on the raw embeddings"),
)}
NAMES = tuple(METHODS)


def get(name: str) -> CodebookMethod:
  if name not in METHODS:
    raise ValueError(f"unknown codebook method {name!r}; known: {', '.join(NAMES)}")
  return METHODS[name]
