"""ContentAligner's keys and ComponentSpec (every key the component and executor use)."""
from tfx import types
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from contracts import artifacts

ITEM_EMBEDDINGS_KEY = "item_embeddings"
ITEM_VECTORS_KEY = "item_vectors"
ALIGNED_EMBEDDINGS_KEY = "aligned_embeddings"
ALIGNMENT_CONFIG_KEY = "alignment_config"
SEED_KEY = "seed"


class ContentAlignerSpec(types.ComponentSpec):
  PARAMETERS = {
      # JSON of contracts.config.AlignmentConfig: one value, so any change busts the cache.
      ALIGNMENT_CONFIG_KEY: ExecutionParameter(type=str),
      # The codebook seed (PipelineConfig.codebook.seed): one seed for alignment and codebooks.
      SEED_KEY: ExecutionParameter(type=int),
  }
  INPUTS = {
      # The raw content embeddings of every catalog item (ContentEmbedder).
      ITEM_EMBEDDINGS_KEY: ChannelParameter(type=artifacts.ItemEmbeddings),
      # The item table the item_id_vocab Trainer learned (training items only).
      ITEM_VECTORS_KEY: ChannelParameter(type=artifacts.ItemVectors),
  }
  OUTPUTS = {
      ALIGNED_EMBEDDINGS_KEY: ChannelParameter(type=artifacts.ItemEmbeddings),
  }
