"""ServingPusher: the stock Pusher (same spec, inputs, outputs and push layout) whose executor
does not push again a model that is already the newest version (executor.py)."""
from tfx.components.pusher import component as pusher_component
from tfx.dsl.components.base import executor_spec

from components.pusher import executor


class ServingPusher(pusher_component.Pusher):
  """`tfx.components.Pusher` with components/pusher/executor.py's executor."""

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
