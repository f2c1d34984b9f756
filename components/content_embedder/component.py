"""ContentEmbedder: a Beam-powered TFX component that embeds every catalog item.

    from components.content_embedder import ContentEmbedder
    content_embedder = ContentEmbedder(
        catalog=catalog_gen.outputs["examples"],   # Examples with split "items"
        embedding_config=config.embedding)          # contracts.config.EmbeddingConfig
    content_embedder.outputs["item_embeddings"]     # sidrec.ItemEmbeddings

The whole `EmbeddingConfig` is one JSON string exec property, so any changed setting
invalidates the cached execution. `beam_pipeline_args` of the TFX pipeline (or
`.with_beam_pipeline_args(...)`) pick the Beam runner.
"""

from __future__ import annotations

from typing import Union

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from components.content_embedder import executor
from components.content_embedder.spec import ContentEmbedderSpec
from contracts import artifacts
from contracts import config as config_lib


class ContentEmbedder(base_beam_component.BaseBeamComponent):
  """Embeds catalog items with all-MiniLM-L6-v2 (TensorFlow port) or takes user-brought vectors.

  Output `item_embeddings` (sidrec.ItemEmbeddings): GZIP TFRecords of tf.Examples
  {item_id, embedding} under `<uri>/embeddings/`, `<uri>/metadata.json`, custom properties
  `dimension`, `count`, `encoder`. Load with
  `contracts.embeddings_io.load_item_embeddings(uri)`.
  """

  SPEC_CLASS = ContentEmbedderSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self,
               catalog: types.BaseChannel,
               embedding_config: Union[config_lib.EmbeddingConfig, str, None] = None):
    """Constructs a ContentEmbedder.

    Args:
      catalog: Examples channel whose split "items" holds one tf.Example per catalog item.
      embedding_config: an `EmbeddingConfig` or its JSON (`contracts.config.to_json`);
        default `EmbeddingConfig()` (MiniLM). Checked here, so a bad setting fails at pipeline
        construction rather than at run time.
    """
    if embedding_config is None:
      embedding_config = config_lib.EmbeddingConfig()
    elif isinstance(embedding_config, str):
      embedding_config = config_lib.from_json(config_lib.EmbeddingConfig, embedding_config)
    if not isinstance(embedding_config, config_lib.EmbeddingConfig):
      raise TypeError("embedding_config must be an EmbeddingConfig or its JSON, got "
                      f"{type(embedding_config).__name__}")
    executor.check_embedding_config(embedding_config)
    spec = ContentEmbedderSpec(
        catalog=catalog,
        embedding_config=config_lib.to_json(embedding_config),
        item_embeddings=types.Channel(type=artifacts.ItemEmbeddings))
    super().__init__(spec=spec)
