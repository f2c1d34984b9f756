"""SemanticIdAssigner: runs a Codebook SavedModel over every item -> SemanticIds.

Every item of the ItemEmbeddings artifact gets codes, new items (never in training) included:
that is what lets the ranker score a brand-new item from its SID.
"""
from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components import artifacts
from components.semantic_id_assigner import executor

ITEM_EMBEDDINGS_KEY = "item_embeddings"
CODEBOOK_KEY = "codebook"
SEMANTIC_IDS_KEY = "semantic_ids"
BATCH_SIZE_KEY = "batch_size"


class SemanticIdAssignerSpec(types.ComponentSpec):
  PARAMETERS = {
      BATCH_SIZE_KEY: ExecutionParameter(type=int, optional=True),
  }
  INPUTS = {
      ITEM_EMBEDDINGS_KEY: ChannelParameter(type=artifacts.ItemEmbeddings),
      CODEBOOK_KEY: ChannelParameter(type=artifacts.Codebook),
  }
  OUTPUTS = {
      SEMANTIC_IDS_KEY: ChannelParameter(type=artifacts.SemanticIds),
  }


class SemanticIdAssigner(base_beam_component.BaseBeamComponent):
  """Beam job: item embeddings x codebook -> item_id -> codes, with collision statistics."""

  SPEC_CLASS = SemanticIdAssignerSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, item_embeddings: types.BaseChannel, codebook: types.BaseChannel,
               batch_size: int = 4096):
    super().__init__(spec=SemanticIdAssignerSpec(
        item_embeddings=item_embeddings, codebook=codebook, batch_size=batch_size,
        semantic_ids=types.Channel(type=artifacts.SemanticIds)))
