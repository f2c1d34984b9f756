"""TFRS ranking model with pluggable item representations (DESIGN.md §1, §2 step 6).

Public API (loaded lazily: `from trainer.model import features` imports no TensorFlow, so the
Transform preprocessing_fn can use the feature names without pulling in TFRS / tf_keras):
  features                      feature-name constants, VocabSizes, input_signature
  make_item_representation      representation layers by registered name
  SidRankingModel               the tfrs.models.Model (DCN-v2 over user, candidate, history)
  build_ranking_model           a compiled SidRankingModel (optimizer: make_optimizer/LazyAdam)
"""
import importlib as _importlib

_RANKING = ("LazyAdam", "SidRankingModel", "build_ranking_model", "make_optimizer",
            "masked_mean")
_LAZY = {**{n: "trainer.model.ranking" for n in _RANKING},
         "make_item_representation": "trainer.model.representations",
         "VocabSizes": "trainer.model.features", "CodebookSizes": "trainer.model.features"}

__all__ = ["features", *_LAZY]


def __getattr__(name):
  if name in _LAZY:
    return getattr(_importlib.import_module(_LAZY[name]), name)
  if name in ("features", "ranking", "representations"):
    return _importlib.import_module(f"trainer.model.{name}")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
