"""CodebookTrainer's keys and ComponentSpec (every key the component and executor use)."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from contracts import artifacts

CODEBOOK_CONFIG_KEY = "codebook_config"
ITEM_EMBEDDINGS_KEY = "item_embeddings"
CATALOG_KEY = "catalog"
CODEBOOK_KEY = "codebook"


class CodebookTrainerSpec(types.ComponentSpec):
  PARAMETERS = {
      # JSON of contracts.config.CodebookConfig: one value, so any change busts the cache.
      CODEBOOK_CONFIG_KEY: ExecutionParameter(type=str),
  }
  INPUTS = {
      ITEM_EMBEDDINGS_KEY: ChannelParameter(type=artifacts.ItemEmbeddings),
      # Optional: item genres for the code/genre NMI metric.
      CATALOG_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
  }
  OUTPUTS = {
      CODEBOOK_KEY: ChannelParameter(type=artifacts.Codebook),
  }
