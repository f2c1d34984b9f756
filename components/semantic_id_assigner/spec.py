"""SemanticIdAssigner's keys and ComponentSpec (every key the component and executor use)."""
from tfx import types
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from contracts import artifacts

ITEM_EMBEDDINGS_KEY = "item_embeddings"
CODEBOOK_KEY = "codebook"
SEMANTIC_IDS_KEY = "semantic_ids"
BATCH_SIZE_KEY = "batch_size"
# The codebook's name in the pipeline, recorded on the SemanticIds artifact (default: the
# Codebook artifact's method).
CODEBOOK_NAME_KEY = "codebook_name"
DEFAULT_BATCH_SIZE = 4096


class SemanticIdAssignerSpec(types.ComponentSpec):
  PARAMETERS = {
      BATCH_SIZE_KEY: ExecutionParameter(type=int, optional=True),
      CODEBOOK_NAME_KEY: ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {
      ITEM_EMBEDDINGS_KEY: ChannelParameter(type=artifacts.ItemEmbeddings),
      CODEBOOK_KEY: ChannelParameter(type=artifacts.Codebook),
  }
  OUTPUTS = {
      SEMANTIC_IDS_KEY: ChannelParameter(type=artifacts.SemanticIds),
  }
