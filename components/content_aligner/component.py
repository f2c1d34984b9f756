"""ContentAligner: content embeddings + the learned item table -> aligned ItemEmbeddings.

Fits a map from an item's content embedding to the vector the `item_id_vocab` ranker learned
for it (training items with enough training interactions; ridge by default), cross-fitted, and
writes f(content) for every catalog item, new items included, plus the map as a SavedModel and
its held-out R^2 (contracts/alignment_io.py). Codebook trainers and SemanticIdAssigners take
the output as they take the raw embeddings, so aligned SIDs are codes like any other.
"""
from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec

from components.content_aligner import executor
from components.content_aligner import spec
from contracts import artifacts


class ContentAligner(base_component.BaseComponent):
  """Aligns content embeddings to the item space a ranker learned (DESIGN.md §1.4)."""

  SPEC_CLASS = spec.ContentAlignerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, item_embeddings: types.BaseChannel, item_vectors: types.BaseChannel,
               alignment_config: str, seed: int = 0):
    super().__init__(spec=spec.ContentAlignerSpec(
        item_embeddings=item_embeddings, item_vectors=item_vectors,
        alignment_config=alignment_config, seed=int(seed),
        aligned_embeddings=types.Channel(type=artifacts.ItemEmbeddings)))
