"""CodebookTrainer: ItemEmbeddings -> Codebook (SavedModel + metrics.json).

One component for the three methods (`CodebookConfig.method`: rqvae | moc | rqkmeans); a
pipeline that compares them instantiates it once per method with `.with_id(...)`. The trainer
only sees the embedding matrix, so it works the same on MiniLM vectors, embeddings the user
brings, or content embeddings aligned to a collaborative item space.
"""
from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec

from components.codebook import executor
from components.codebook import spec
from contracts import artifacts


class CodebookTrainer(base_component.BaseComponent):
  """Trains an RQ-VAE, Mixture-of-Codes or RQ-KMeans codebook over item embeddings."""

  SPEC_CLASS = spec.CodebookTrainerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, item_embeddings: types.BaseChannel, codebook_config: str,
               catalog: types.BaseChannel = None):
    super().__init__(spec=spec.CodebookTrainerSpec(
        item_embeddings=item_embeddings, catalog=catalog,
        codebook_config=codebook_config,
        codebook=types.Channel(type=artifacts.Codebook)))
