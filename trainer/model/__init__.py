"""TFRS ranking model with pluggable item representations (DESIGN.md §1, §2 step 6).

Public API (loaded lazily: `from trainer.model import features` imports no TensorFlow, so the
Transform preprocessing_fn can use the feature names without pulling in TFRS / tf_keras):
  features                      feature-name constants, VocabSizes, input_signature
  make_item_representation      representation layers by name (RankingConfig.REPRESENTATIONS)
  SidRankingModel               the tfrs.models.Model (DCN-v2 over user, candidate, history)
  build_ranking_model           a compiled SidRankingModel (optimizer: make_optimizer/LazyAdam)
  make_dataset, serving_function, export_saved_model
"""
import importlib as _importlib
import os as _os

# TFRS needs Keras 2 (tf_keras): set before anything imports TensorFlow (DESIGN.md §3).
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

_RANKING = ("LazyAdam", "SidRankingModel", "build_ranking_model", "export_saved_model",
            "make_dataset", "make_optimizer", "masked_mean", "serving_function")
_REPRESENTATIONS = ("REPRESENTATIONS", "BottleneckSelfGating", "DenseContent", "Hybrid",
                    "ItemIdEmbedding", "ItemRepresentation", "MixtureOfCodesEmbedding", "NoItem",
                    "RandomIdEmbedding", "SeedStream", "SidNgramEmbedding",
                    "SidPrefixNgramEmbedding", "SidSpmEmbedding", "make_item_representation")
_LAZY = {**{n: "trainer.model.ranking" for n in _RANKING},
         **{n: "trainer.model.representations" for n in _REPRESENTATIONS},
         "VocabSizes": "trainer.model.features"}

__all__ = ["features", *_LAZY]


def __getattr__(name):
  if name in _LAZY:
    return getattr(_importlib.import_module(_LAZY[name]), name)
  if name in ("features", "ranking", "representations", "synthetic"):
    return _importlib.import_module(f"trainer.model.{name}")
  raise AttributeError(f"module 'trainer.model' has no attribute {name!r}")
