"""SemanticIdJoiner: adds each example's item codes (and its history's) before Transform.

Stock Transform reads only Examples, so the item-side features the ranker needs are joined here:
for every codebook of the pipeline the candidate item's codes and the codes of the user's
history (`history_item_ids`) flattened in order, so the model sees the history in the same
representation as the candidate. Feature names: contracts/schema.py (`item_codes_<codebook>`,
`history_codes_<codebook>`).
"""
from typing import Mapping

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from components.semantic_id_joiner import executor
from components.semantic_id_joiner import spec


class SemanticIdJoiner(base_beam_component.BaseBeamComponent):
  """Beam join of every codebook's item codes onto every example of every split.

  `codes` maps codebook names to their SemanticIds channels. Also emits the input schema
  extended with the joined features, for Transform and TFMA (statistics and validation stay on
  the un-joined interactions, so a new codebook does not recompute them).
  """

  SPEC_CLASS = spec.SemanticIdJoinerSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, schema: types.BaseChannel,
               codes: Mapping[str, types.BaseChannel]):
    if not codes:
      raise ValueError("SemanticIdJoiner needs the codes of at least one codebook")
    spec_class = spec.joiner_spec(codes)
    super().__init__(spec=spec_class(
        examples=examples, schema=schema,
        **{spec.codes_key(name): channel for name, channel in codes.items()},
        joined_examples=types.Channel(type=standard_artifacts.Examples),
        joined_schema=types.Channel(type=standard_artifacts.Schema)))
