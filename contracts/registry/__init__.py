"""The extension points, one registry each: what exists, and where its implementation lives.

  representations   item representations of the ranker (name -> layer builder, codes it reads,
                    whether it needs the content embeddings)
  codebook_methods  codebook trainers (name -> class, component id prefix, defaults)
  metrics           the TFMA metrics the Evaluator computes and the figures every report shows

Implementations are named by dotted path ("module:attribute"), as TFX names a run_fn, so this
bottom layer imports none of them; `resolve` loads one.
"""
import importlib


def resolve(path: str):
  """"package.module:attribute" -> the attribute."""
  module, _, attribute = path.partition(":")
  if not module or not attribute:
    raise ValueError(f"expected 'module:attribute', got {path!r}")
  return getattr(importlib.import_module(module), attribute)
