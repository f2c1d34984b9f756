"""ContentEmbedder's keys and ComponentSpec (every key the component and executor use)."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from contracts import artifacts

CATALOG_KEY = "catalog"
ITEM_EMBEDDINGS_KEY = "item_embeddings"
EMBEDDING_CONFIG_KEY = "embedding_config"


class ContentEmbedderSpec(types.ComponentSpec):
  """ComponentSpec of ContentEmbedder."""

  PARAMETERS = {
      # contracts.config.to_json(EmbeddingConfig(...)).
      EMBEDDING_CONFIG_KEY: ExecutionParameter(type=str),
  }
  INPUTS = {
      # tf.Examples {item_id: bytes, text: bytes, ...} in split "items".
      CATALOG_KEY: ChannelParameter(type=standard_artifacts.Examples),
  }
  OUTPUTS = {
      ITEM_EMBEDDINGS_KEY: ChannelParameter(type=artifacts.ItemEmbeddings),
  }
