"""ContentEmbedder TFX component: catalog texts (or user-brought vectors) -> ItemEmbeddings.

Heavy modules (TFX, Beam, TensorFlow) load on first use of the names below, so importing
`components.content_embedder.minilm` or `.embeddings_io` alone stays light.
"""

__all__ = [
    "ContentEmbedder", "ContentEmbedderSpec", "Executor", "EmbeddingValidationError",
    "MiniLmEncoder", "load_item_embeddings",
]


def __getattr__(name):
  if name in ("ContentEmbedder", "ContentEmbedderSpec"):
    from components.content_embedder import component  # pylint: disable=g-import-not-at-top
    return getattr(component, name)
  if name == "Executor":
    from components.content_embedder import executor  # pylint: disable=g-import-not-at-top
    return executor.Executor
  if name in ("EmbeddingValidationError", "load_item_embeddings"):
    from contracts import embeddings_io  # pylint: disable=g-import-not-at-top
    return getattr(embeddings_io, name)
  if name == "MiniLmEncoder":
    from components.content_embedder import minilm  # pylint: disable=g-import-not-at-top
    return minilm.MiniLmEncoder
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
