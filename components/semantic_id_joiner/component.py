"""SemanticIdJoiner: adds each example's item SIDs (and its history's) before Transform.

Stock Transform reads only Examples, so the item-side features the ranker needs are joined here:
for the candidate item its RQ-VAE SID, its Mixture-of-Codes codes and (optionally) its content
embedding; for the user's history (`history_item_ids`) the same codes flattened in order, so the
model sees the history in the same representation as the candidate.
"""
from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter

from components import artifacts
from components.semantic_id_joiner import executor

EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
SEMANTIC_IDS_KEY = "semantic_ids"
MOC_CODES_KEY = "moc_codes"
ITEM_EMBEDDINGS_KEY = "item_embeddings"
JOINED_EXAMPLES_KEY = "joined_examples"
JOINED_SCHEMA_KEY = "joined_schema"


class SemanticIdJoinerSpec(types.ComponentSpec):
  PARAMETERS = {}
  INPUTS = {
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
      SEMANTIC_IDS_KEY: ChannelParameter(type=artifacts.SemanticIds),
      MOC_CODES_KEY: ChannelParameter(type=artifacts.SemanticIds, optional=True),
      ITEM_EMBEDDINGS_KEY: ChannelParameter(type=artifacts.ItemEmbeddings, optional=True),
  }
  OUTPUTS = {
      JOINED_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      JOINED_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
  }


class SemanticIdJoiner(base_beam_component.BaseBeamComponent):
  """Beam join of item codes (and embeddings) onto every example of every split.

  Also emits the input schema extended with the joined features, for Transform and TFMA
  (statistics and validation stay on the un-joined interactions, so a new codebook does not
  recompute them).
  """

  SPEC_CLASS = SemanticIdJoinerSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, schema: types.BaseChannel,
               semantic_ids: types.BaseChannel, moc_codes: types.BaseChannel = None,
               item_embeddings: types.BaseChannel = None):
    super().__init__(spec=SemanticIdJoinerSpec(
        examples=examples, schema=schema, semantic_ids=semantic_ids, moc_codes=moc_codes,
        item_embeddings=item_embeddings,
        joined_examples=types.Channel(type=standard_artifacts.Examples),
        joined_schema=types.Channel(type=standard_artifacts.Schema)))
