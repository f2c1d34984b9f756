"""SemanticIdAssigner: runs a Codebook SavedModel over every item -> SemanticIds.

Every item of the ItemEmbeddings artifact gets codes, new items (never in training) included:
that is what lets the ranker score a brand-new item from its SID.
"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec

from contracts import artifacts
from components.semantic_id_assigner import executor
from components.semantic_id_assigner import spec


class SemanticIdAssigner(base_beam_component.BaseBeamComponent):
  """Beam job: item embeddings x codebook -> item_id -> codes, with collision statistics."""

  SPEC_CLASS = spec.SemanticIdAssignerSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, item_embeddings: types.BaseChannel, codebook: types.BaseChannel,
               batch_size: int = spec.DEFAULT_BATCH_SIZE,
               codebook_name: Optional[str] = None):
    super().__init__(spec=spec.SemanticIdAssignerSpec(
        item_embeddings=item_embeddings, codebook=codebook, batch_size=batch_size,
        codebook_name=codebook_name, semantic_ids=types.Channel(type=artifacts.SemanticIds)))
