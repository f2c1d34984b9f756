"""ServingGate: the candidate model must load and answer real requests in the stock model
server's environment before it is pushed.

Does the job of TFX's InfraValidator with `make_warmup=True`, which needs Docker or Kubernetes
to start tensorflow_model_server and does not compile for Kubeflow V2
(tfx/orchestration/kubeflow/v2/step_builder.py): it writes warmup requests built from eval
examples into a copy of the model, loads that copy in a fresh process that imports only
TensorFlow, TensorFlow Text and TF Serving's protos (the stock server's op set: a model that
needs a sidrec import or a Python-defined op fails here, not in production), replays every
request, and writes an `InfraBlessing` in InfraValidator's layout. The stock Pusher then
pushes `blessing/stamped_model` (the model with `assets.extra/tf_serving_warmup_requests`)
only when both this blessing and the Evaluator's hold.

    gate = ServingGate(model=trainer.outputs["model"],
                       examples=joiner.outputs["joined_examples"],   # raw ids, split "eval"
                       serving_config=config.serving)
    Pusher(model_blessing=evaluator.outputs["blessing"],
           infra_blessing=gate.outputs["blessing"], ...)
"""
from typing import Optional, Union

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec

from components.serving_gate import executor
from components.serving_gate import spec
from contracts import config as config_lib


class ServingGate(base_component.BaseComponent):
  """Warmup requests into the model, replayed in the stock server's op set; InfraBlessing."""

  SPEC_CLASS = spec.ServingGateSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model: types.BaseChannel, examples: types.BaseChannel,
               item_embeddings: Optional[types.BaseChannel] = None,
               serving_config: Union[config_lib.ServingConfig, str, None] = None,
               examples_split: str = spec.DEFAULT_EXAMPLES_SPLIT):
    """Args:
      model: the Trainer's model (a SavedModel with the signatures of contracts/serving_api).
      examples: Examples in the joined layout (raw ids and codes), e.g. SemanticIdJoiner's.
      item_embeddings: the catalog's content embeddings, for models whose serve_new_items
        takes `item_embedding`.
      serving_config: a ServingConfig or its JSON (default ServingConfig()).
      examples_split: the split the warmup requests are drawn from.
    """
    if serving_config is None:
      serving_config = config_lib.ServingConfig()
    elif isinstance(serving_config, str):
      serving_config = config_lib.from_json(config_lib.ServingConfig, serving_config)
    super().__init__(spec=spec.ServingGateSpec(
        model=model, examples=examples, item_embeddings=item_embeddings,
        serving_config=config_lib.to_json(serving_config), examples_split=examples_split,
        blessing=types.Channel(type=spec.standard_artifacts.InfraBlessing)))
