"""RepresentationEvaluator: the stock Evaluator (same spec, TFMA run and blessing) whose
blessing also names the representation of the model it blessed (executor.py)."""
from tfx.components.evaluator import component as evaluator_component
from tfx.dsl.components.base import executor_spec

from components.representation_evaluator import executor


class RepresentationEvaluator(evaluator_component.Evaluator):
  """`tfx.components.Evaluator` with components/representation_evaluator/executor.py."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
