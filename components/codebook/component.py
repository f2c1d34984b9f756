"""CodebookTrainer: ItemEmbeddings -> Codebook (SavedModel + metrics.json).

One component for the three methods (`CodebookConfig.method`: rqvae | moc | rqkmeans); a
pipeline that compares them instantiates it once per method with `.with_id(...)`. The trainer
only sees the embedding matrix, so it works the same on MiniLM vectors, embeddings the user
brings, or content embeddings aligned to a collaborative item space.
"""
from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components import artifacts
from components.codebook import executor

CODEBOOK_CONFIG_KEY = "codebook_config"
ITEM_EMBEDDINGS_KEY = "item_embeddings"
CATALOG_KEY = "catalog"
CODEBOOK_KEY = "codebook"


class CodebookTrainerSpec(types.ComponentSpec):
  PARAMETERS = {
      # JSON of tfx_pipeline.config.CodebookConfig: one value, so any change busts the cache.
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


class CodebookTrainer(base_component.BaseComponent):
  """Trains an RQ-VAE, Mixture-of-Codes or RQ-KMeans codebook over item embeddings."""

  SPEC_CLASS = CodebookTrainerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, item_embeddings: types.BaseChannel, codebook_config: str,
               catalog: types.BaseChannel = None):
    super().__init__(spec=CodebookTrainerSpec(
        item_embeddings=item_embeddings, catalog=catalog,
        codebook_config=codebook_config,
        codebook=types.Channel(type=artifacts.Codebook)))
