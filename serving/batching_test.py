"""Server-side batching: merging, splitting, padding, queue limits (no timing assertions)."""

import concurrent.futures
import threading
import time

import grpc
import numpy as np
import pytest

from serving import batching
from serving import model_config as mc
from serving import tensors

LONG = 60_000_000  # a minute: batches in these tests run because they are full, not late


class FakeVersion:
  """A loaded version whose signature doubles `x`; records the batch sizes it was called on."""

  model_name, version = "ranker", 1

  def __init__(self, gate=None, fail=False):
    self.calls, self.gate, self.fail = [], gate, fail
    self.started = threading.Event()

  def run(self, signature, inputs):
    self.calls.append(inputs["x"].shape[0])
    self.started.set()
    if self.gate is not None:
      self.gate.wait(30)
    if self.fail:
      raise tensors.invalid("the graph rejected input x")
    return {"y": inputs["x"] * 2, "row": np.arange(inputs["x"].shape[0])}


def _inputs(values, width=1):
  return {"x": np.array(values, np.float32).reshape(-1, width)}


@pytest.fixture
def make():
  schedulers = []

  def build(**kwargs):
    scheduler = batching.BatchScheduler(mc.BatchingParameters(**kwargs))
    schedulers.append(scheduler)
    return scheduler
  yield build
  for scheduler in schedulers:
    scheduler.stop()


def test_concurrent_requests_run_as_one_batch_and_get_their_own_rows(make):
  scheduler, version = make(max_batch_size=4, batch_timeout_micros=LONG), FakeVersion()
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    futures = [pool.submit(scheduler.run, version, "s", _inputs([i])) for i in range(4)]
    results = [f.result(timeout=30) for f in futures]
  assert version.calls == [4]  # one signature call for four requests
  assert list(scheduler.batches_run) == [(4, 4, 4)]
  for i, out in enumerate(results):
    assert out["y"].tolist() == [[2.0 * i]]


def test_a_lone_request_runs_after_the_timeout(make):
  scheduler, version = make(max_batch_size=8, batch_timeout_micros=1000), FakeVersion()
  out = scheduler.run(version, "s", _inputs([1, 2]))
  assert out["y"].tolist() == [[2.0], [4.0]]
  assert list(scheduler.batches_run) == [(2, 2, 1)]


def test_padding_to_an_allowed_size_is_dropped_from_the_outputs(make):
  scheduler = make(max_batch_size=4, batch_timeout_micros=1000, allowed_batch_sizes=(2, 4))
  version = FakeVersion()
  out = scheduler.run(version, "s", _inputs([1, 2, 3]))
  assert version.calls == [4]  # padded up to 4 rows
  assert out["y"].tolist() == [[2.0], [4.0], [6.0]] and out["row"].tolist() == [0, 1, 2]


def test_with_splitting_a_request_is_cut_into_max_execution_batch_size_pieces(make):
  scheduler = make(max_batch_size=10, max_execution_batch_size=4, batch_timeout_micros=1000)
  version = FakeVersion()
  out = scheduler.run(version, "s", _inputs(list(range(10))))
  assert sorted(version.calls) == [2, 4, 4]  # no batch runs more than 4 rows
  assert out["y"][:, 0].tolist() == [2.0 * i for i in range(10)]  # in order


def test_a_split_request_first_fills_the_open_batch(make):
  scheduler = make(max_batch_size=16, max_execution_batch_size=4, batch_timeout_micros=LONG)
  version = FakeVersion()
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    first = pool.submit(scheduler.run, version, "s", _inputs([0]))
    while not scheduler._queues:  # pylint: disable=protected-access
      time.sleep(0.001)
    second = pool.submit(scheduler.run, version, "s", _inputs([1, 2, 3, 4, 5, 6, 7]))
    assert first.result(30)["y"].tolist() == [[0.0]]
    assert second.result(30)["y"][:, 0].tolist() == [2.0 * i for i in range(1, 8)]
  assert version.calls == [4, 4]  # 1 + 3 rows, then 4 rows: both batches full


def test_a_request_larger_than_max_batch_size_is_invalid_as_tf(make):
  for splitting in (True, False):
    scheduler = make(max_batch_size=8, batch_timeout_micros=1000,
                     enable_large_batch_splitting=splitting)
    with pytest.raises(tensors.ServingError) as e:
      scheduler.run(FakeVersion(), "s", _inputs(list(range(9))))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.message == "Task size 9 is larger than maximum input batch size 8"


def test_without_splitting_batches_hold_up_to_max_batch_size_and_requests_stay_whole(make):
  scheduler = make(max_batch_size=8, batch_timeout_micros=LONG, enable_large_batch_splitting=False)
  version = FakeVersion()
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    futures = [pool.submit(scheduler.run, version, "s", _inputs(list(range(n))))
               for n in (5, 3)]
    assert [f.result(30)["y"].shape[0] for f in futures] == [5, 3]
  assert version.calls == [8]  # one batch of 8 rows, more than the 256 default piece size
  scheduler2 = make(max_batch_size=8, batch_timeout_micros=1000,
                    enable_large_batch_splitting=False)
  version2 = FakeVersion()
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    futures = [pool.submit(scheduler2.run, version2, "s", _inputs(list(range(6))))
               for _ in range(2)]
    for f in futures:
      assert f.result(30)["y"].shape[0] == 6
  assert sorted(version2.calls) == [6, 6]  # 6 + 6 > 8: not merged, not split


def test_stop_runs_or_fails_every_queued_request(make):
  scheduler = make(max_batch_size=8, batch_timeout_micros=LONG)  # never due before stop
  version = FakeVersion()
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    future = pool.submit(scheduler.run, version, "s", _inputs([1, 2]))
    while not scheduler._queues:  # pylint: disable=protected-access
      time.sleep(0.001)
    scheduler.stop()
    assert future.result(10)["y"].tolist() == [[2.0], [4.0]]  # ran at stop, not dropped
  with pytest.raises(tensors.ServingError, match="shutting down") as e:
    scheduler.run(version, "s", _inputs([1]))
  assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_stop_fails_unavailable_what_the_workers_cannot_run(make):
  gate = threading.Event()
  scheduler = make(max_batch_size=1, batch_timeout_micros=LONG, num_batch_threads=1)
  version = FakeVersion(gate)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    running = pool.submit(scheduler.run, version, "s", _inputs([1]))
    assert version.started.wait(30)
    queued = pool.submit(scheduler.run, version, "s", _inputs([2]))
    while not any(q.batches for q in list(scheduler._queues.values())):  # pylint: disable=protected-access
      time.sleep(0.001)
    scheduler.stop(timeout=0.2)  # the only worker is stuck in the gated batch
    with pytest.raises(tensors.ServingError, match="shutting down") as e:
      queued.result(10)
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    gate.set()
    assert running.result(10)["y"].tolist() == [[2.0]]


def test_a_caller_waits_a_bounded_time(make):
  gate = threading.Event()
  scheduler = batching.BatchScheduler(mc.BatchingParameters(max_batch_size=1, num_batch_threads=1),
                                      wait_timeout_seconds=0.2)
  try:
    version = FakeVersion(gate)
    with pytest.raises(tensors.ServingError, match="did not run within") as e:
      scheduler.run(version, "s", _inputs([1]))
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
  finally:
    gate.set()
    scheduler.stop()


def test_a_full_queue_is_unavailable(make):
  gate = threading.Event()
  scheduler = make(max_batch_size=2, batch_timeout_micros=LONG, max_enqueued_batches=1,
                   num_batch_threads=1)
  version = FakeVersion(gate)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    running = pool.submit(scheduler.run, version, "s", _inputs([1, 2]))
    assert version.started.wait(30)  # the worker holds the first batch
    waiting = pool.submit(scheduler.run, version, "s", _inputs([3, 4]))
    # Until the second request has opened its batch (the queue's only slot).
    queues = scheduler._queues  # pylint: disable=protected-access
    while not any(q.batches for q in list(queues.values())):
      time.sleep(0.001)
    with pytest.raises(tensors.ServingError, match="The batch scheduling queue .* is full") as e:
      scheduler.run(version, "s", _inputs([5, 6]))
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    gate.set()
    assert running.result(30)["y"].tolist() == [[2.0], [4.0]]
    assert waiting.result(30)["y"].tolist() == [[6.0], [8.0]]


def test_requests_of_different_shapes_are_not_merged(make):
  scheduler, version = make(max_batch_size=4, batch_timeout_micros=LONG), FakeVersion()
  scheduler._enqueue(version, "s", _inputs([1, 2], width=2))  # pylint: disable=protected-access
  scheduler._enqueue(version, "s", _inputs([1, 2, 3], width=3))  # pylint: disable=protected-access
  queue = next(iter(scheduler._queues.values()))  # pylint: disable=protected-access
  assert [b.size for b in queue.batches] == [1, 1]


def test_an_error_reaches_every_caller_of_the_batch(make):
  scheduler, version = make(max_batch_size=2, batch_timeout_micros=LONG), FakeVersion(fail=True)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    futures = [pool.submit(scheduler.run, version, "s", _inputs([i])) for i in range(2)]
    for future in futures:
      with pytest.raises(tensors.ServingError, match="rejected input x"):
        future.result(30)
  assert version.calls == [2]
