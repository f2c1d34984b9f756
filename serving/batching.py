"""Server-side batching, as tensorflow_model_server's --enable_batching does it.

Small concurrent requests are worth merging: one signature call on 64 rows costs little more
than one on a single row. Like TF Serving's shared batch scheduler, there is one queue per
(model, version, signature), with TF's limits (shared_batch_scheduler.h):

- a request with more rows than `max_batch_size` -> INVALID_ARGUMENT "Task size N is larger
  than maximum input batch size M";
- with `enable_large_batch_splitting` a request first fills the room left in the open batch,
  the rest is cut into pieces of at most `max_execution_batch_size` rows, and no batch runs
  more than `max_execution_batch_size` rows; the caller gets its pieces' outputs
  concatenated;
- without it a request is never split: it joins the open batch when its rows fit in
  `max_batch_size` (and its non-batch dimensions match), otherwise it opens a new batch;
- a batch runs when it is full or `batch_timeout_micros` after its first request, on one of
  `num_batch_threads` workers; with `allowed_batch_sizes` it is padded up to the next allowed
  size (repeating its first row) and the padding is dropped from the outputs;
- more than `max_enqueued_batches` waiting batches on one queue -> UNAVAILABLE.

On stop every queued batch still runs (or fails UNAVAILABLE): no caller is left waiting.
The server replays a version's warmup records through this scheduler, as the stock server
replays them through its batching-wrapped session, so a record the batching parameters refuse
fails the version's load.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Deque, Dict, List, Optional, Tuple

import grpc
import numpy as np

from serving import model_config as mc
from serving import tensors
from serving.servables import LoadedVersion


class _Task:
  def __init__(self, inputs: Dict[str, np.ndarray]):
    self.inputs = inputs
    self.size = next(iter(inputs.values())).shape[0]
    self.shape_key = tuple(sorted((k, v.shape[1:], v.dtype.str) for k, v in inputs.items()))
    self.done = threading.Event()
    self.outputs: Optional[Dict[str, np.ndarray]] = None
    self.error: Optional[tensors.ServingError] = None


class _Batch:
  def __init__(self, queue: "_Queue", task: _Task, deadline: float):
    self.queue, self.tasks, self.size = queue, [task], task.size
    self.shape_key, self.deadline, self.closed = task.shape_key, deadline, False


class _Queue:
  def __init__(self, loaded: LoadedVersion, signature: str):
    self.loaded, self.signature = loaded, signature
    self.batches: Deque[_Batch] = collections.deque()


class BatchScheduler:
  """Merges concurrent requests per (model, version, signature); `run` is a servables.Runner."""

  def __init__(self, params: mc.BatchingParameters, wait_timeout_seconds: float = 600.0):
    self.params = params
    self.wait_timeout_seconds = wait_timeout_seconds
    self._cond = threading.Condition()
    self._queues: Dict[Tuple[str, int, str, int], _Queue] = {}
    self._stopping = False
    # (batch size, size after padding, requests in the batch) of every batch run: what a
    # test or an operator checks to see that batching happens.
    self.batches_run: Deque[Tuple[int, int, int]] = collections.deque(maxlen=10000)
    self._workers = [threading.Thread(target=self._work, name=f"sidrec-batch-{i}", daemon=True)
                     for i in range(params.num_batch_threads)]
    for worker in self._workers:
      worker.start()

  def stop(self, timeout: float = 10.0) -> None:
    """Runs every queued batch (deadline or not), then fails whatever is left UNAVAILABLE."""
    with self._cond:
      self._stopping = True
      self._cond.notify_all()
    for worker in self._workers:
      worker.join(timeout=timeout)
    with self._cond:
      left = [b for q in self._queues.values() for b in q.batches]
      self._queues.clear()
    error = tensors.ServingError(grpc.StatusCode.UNAVAILABLE,
                                 "the server is shutting down; the batch did not run")
    for batch in left:
      for task in batch.tasks:
        if not task.done.is_set():
          task.error = error
          task.done.set()

  def run(self, loaded: LoadedVersion, signature: str,
          inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Queues `inputs` (validated) and returns this request's rows of the batch outputs."""
    if not inputs or any(v.ndim == 0 for v in inputs.values()):
      return loaded.run(signature, inputs)  # nothing to batch along
    size = next(iter(inputs.values())).shape[0]
    if size > self.params.max_batch_size:
      raise tensors.invalid(f"Task size {size} is larger than maximum input batch size "
                            f"{self.params.max_batch_size}")
    tasks = self._enqueue(loaded, signature, inputs)
    deadline = time.monotonic() + self.wait_timeout_seconds
    for task in tasks:
      if not task.done.wait(timeout=max(0.0, deadline - time.monotonic())):
        raise tensors.ServingError(
            grpc.StatusCode.UNAVAILABLE, f"the batch holding this request did not run within "
            f"{self.wait_timeout_seconds:.0f}s (the batch threads are busy or stuck)")
    errors = [t.error for t in tasks if t.error is not None]
    if errors:
      raise errors[0]
    if len(tasks) == 1:
      return tasks[0].outputs
    return {k: np.concatenate([t.outputs[k] for t in tasks]) for k in tasks[0].outputs}

  def _enqueue(self, loaded: LoadedVersion, signature: str,
               inputs: Dict[str, np.ndarray]) -> List[_Task]:
    """Adds the request (split into pieces with large-batch splitting) to its queue."""
    limit = self.params.execution_batch_size
    splitting = self.params.enable_large_batch_splitting
    size = next(iter(inputs.values())).shape[0]
    shape_key = _Task(inputs).shape_key
    # id(loaded): a version reloaded under the same number gets its own queue.
    key = (loaded.model_name, loaded.version, signature, id(loaded))
    with self._cond:
      if self._stopping:
        raise tensors.ServingError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
      queue = self._queues.get(key)
      if queue is None:
        queue = self._queues[key] = _Queue(loaded, signature)
      open_batch = queue.batches[-1] if queue.batches else None
      if open_batch is not None and (open_batch.closed or open_batch.shape_key != shape_key):
        open_batch = None
      room = limit - open_batch.size if open_batch is not None else 0
      # The pieces: with splitting, the open batch's room first, then `limit` rows each (TF's
      # split_input_task_func); without, the whole request in one piece.
      if splitting:
        bounds, start = [], 0
        if room > 0:
          bounds.append((0, min(room, size)))
          start = bounds[-1][1]
        bounds += [(i, min(i + limit, size)) for i in range(start, size, limit)]
      else:
        bounds = [(0, size)]
      joins = bool(open_batch is not None and bounds[0][1] - bounds[0][0] <= room)
      new_batches = len(bounds) - (1 if joins else 0)
      if new_batches and len(queue.batches) + new_batches > self.params.max_enqueued_batches:
        raise tensors.ServingError(
            grpc.StatusCode.UNAVAILABLE,
            f"The batch scheduling queue to which this task was submitted is full (model "
            f"{key[0]} version {key[1]} signature {signature}: "
            f"{self.params.max_enqueued_batches} batches waiting); retry later or raise "
            f"max_enqueued_batches")
      tasks = []
      for i, (lo, hi) in enumerate(bounds):
        task = _Task({k: v[lo:hi] for k, v in inputs.items()} if len(bounds) > 1 else inputs)
        tasks.append(task)
        if i == 0 and joins:
          open_batch.tasks.append(task)
          open_batch.size += task.size
          open_batch.closed = open_batch.size >= limit
          continue
        if queue.batches:
          queue.batches[-1].closed = True
        deadline = time.monotonic() + self.params.batch_timeout_micros / 1e6
        batch = _Batch(queue, task, deadline)
        batch.closed = task.size >= limit
        queue.batches.append(batch)
      self._cond.notify_all()
    return tasks

  def _next_batch(self) -> Optional[_Batch]:
    """The ready batch (full, past its timeout, or any when stopping) that has waited
    longest; None if none."""
    now, best = time.monotonic(), None
    for key, queue in list(self._queues.items()):
      if not queue.batches:
        del self._queues[key]  # an idle queue (or an unloaded version's) holds nothing
        continue
      head = queue.batches[0]
      ready = head.closed or head.deadline <= now or self._stopping
      if ready and (best is None or head.deadline < best.deadline):
        best = head
    if best is not None:
      best.queue.batches.popleft()
    return best

  def _work(self) -> None:
    while True:
      with self._cond:
        while True:
          batch = self._next_batch()
          if batch is not None or self._stopping:
            break
          deadlines = [q.batches[0].deadline for q in self._queues.values() if q.batches]
          self._cond.wait(timeout=max(0.0, min(deadlines) - time.monotonic())
                          if deadlines else None)
        if batch is None:
          return  # stopping, and nothing left to run
      self._run_batch(batch)

  def _run_batch(self, batch: _Batch) -> None:
    tasks, size = batch.tasks, batch.size
    padded = next((s for s in self.params.allowed_batch_sizes if s >= size), size)
    try:
      merged = {k: np.concatenate([t.inputs[k] for t in tasks]) for k in tasks[0].inputs}
      if padded > size:  # repeat the first row; its outputs are dropped below
        merged = {k: np.concatenate([v, np.repeat(v[:1], padded - size, axis=0)])
                  for k, v in merged.items()}
      outputs = batch.queue.loaded.run(batch.queue.signature, merged)
      for alias, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != padded:
          raise tensors.ServingError(
              grpc.StatusCode.FAILED_PRECONDITION,
              f"output {alias} has shape {list(value.shape)}, not one row per example of the "
              f"batch ({padded}); this signature cannot be batched (serve it with --no-batching)")
      start = 0
      for task in tasks:
        task.outputs = {k: v[start:start + task.size] for k, v in outputs.items()}
        start += task.size
    except tensors.ServingError as e:
      for task in tasks:
        task.error = e
    except Exception as e:  # pylint: disable=broad-except  (a caller must never hang)
      for task in tasks:
        task.error = tensors.ServingError(grpc.StatusCode.INTERNAL, f"batch failed: {e}")
    with self._cond:
      self.batches_run.append((size, padded, len(tasks)))
    for task in tasks:
      task.done.set()
