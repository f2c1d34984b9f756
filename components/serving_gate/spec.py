"""ServingGate's keys and ComponentSpec (every key the component and executor use)."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from contracts import artifacts

MODEL_KEY = "model"
EXAMPLES_KEY = "examples"
ITEM_EMBEDDINGS_KEY = "item_embeddings"
BLESSING_KEY = "blessing"
SERVING_CONFIG_KEY = "serving_config"  # contracts.config.ServingConfig as JSON
EXAMPLES_SPLIT_KEY = "examples_split"
DEFAULT_EXAMPLES_SPLIT = "eval"

# The blessing's layout, as TFX's InfraValidator writes it (tfx/components/infra_validator/
# executor.py), so the stock Pusher reads it: a marker file, custom properties `blessed` and
# `has_model`, and the model with its warmup requests under `stamped_model/`.
BLESSED_FILE = "INFRA_BLESSED"
NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"
BLESSED_PROPERTY = "blessed"
HAS_MODEL_PROPERTY = "has_model"
# What the fresh-process check found (read by the report).
CHECK_RESULT_FILE = "serving_check.json"


class ServingGateSpec(types.ComponentSpec):
  PARAMETERS = {
      SERVING_CONFIG_KEY: ExecutionParameter(type=str),
      EXAMPLES_SPLIT_KEY: ExecutionParameter(type=str),
  }
  INPUTS = {
      MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      ITEM_EMBEDDINGS_KEY: ChannelParameter(type=artifacts.ItemEmbeddings, optional=True),
  }
  OUTPUTS = {BLESSING_KEY: ChannelParameter(type=standard_artifacts.InfraBlessing)}
