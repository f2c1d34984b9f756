"""Registry of codebook methods (the trainers that turn content embeddings into codes).

Each entry names the `components.codebook.base.Codebook` subclass that trains it (built as
`cls(config, strategy=...)` when `takes_strategy`, else `cls(config)`), the component-id prefix
of its CodebookTrainer / SemanticIdAssigner in the DAG, and
`defaults`: CodebookConfig values for this method that sit under the user's
`codebook_overrides` (the shared `codebook` section < `defaults` < overrides).

Every method also has an aligned twin, `aligned_<method>`: the same trainer over the
ContentAligner's embeddings instead of the raw content (components/content_aligner). Its codes
are a codebook like any other, keyed by that name.
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


ALIGNED_PREFIX = "aligned_"


def aligned(method: str) -> str:
  """`rqkmeans` -> `aligned_rqkmeans`: the codebook of that method over aligned embeddings."""
  return ALIGNED_PREFIX + method


def is_aligned(codebook: str) -> bool:
  return codebook.startswith(ALIGNED_PREFIX)


def method_of(codebook: str) -> str:
  """The method that trains a codebook: `aligned_moc` -> `moc`, `rqvae` -> `rqvae`."""
  return codebook[len(ALIGNED_PREFIX):] if is_aligned(codebook) else codebook


def get(name: str) -> CodebookMethod:
  """The method entry of a codebook name (an aligned twin gets its method's entry)."""
  method = method_of(name)
  if method not in METHODS:
    raise ValueError(f"unknown codebook method {name!r}; known: {', '.join(NAMES)} (and "
                     f"{ALIGNED_PREFIX}<method> for each)")
  return METHODS[method]


def component_prefix(codebook: str) -> str:
  """Component-id prefix of a codebook's trainer and assigner (`AlignedRqKMeans`, ...)."""
  prefix = get(codebook).component_prefix
  return "Aligned" + prefix if is_aligned(codebook) else prefix
