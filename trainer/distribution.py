"""How run_fn runs distributed (RankingConfig.distribution): the tf.distribute strategy, this
process's part in the cluster, how the workers split the input, where each one exports.

  none                   the default strategy: one process, one device
  mirrored               MirroredStrategy: synchronous replicas on the devices of one machine
  multi_worker_mirrored  MultiWorkerMirroredStrategy: synchronous replicas on the workers of
                         TF_CONFIG; every worker holds every variable, gradients are all-reduced
  parameter_server       ParameterServerStrategy: the chief coordinates, the workers run steps
                         asynchronously, the variables live on the parameter servers, and
                         every variable larger than MIN_SHARD_BYTES (the embedding tables) is
                         partitioned across them by rows

TFX's Trainer starts no cluster: every replica of a multi-worker job (TFX's Google Cloud
Trainer extension, README) runs the same executor and run_fn with its own TF_CONFIG. Under
parameter_server the `worker` and `ps` replicas only serve (`serve_if_server_task`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from typing import Iterator, Optional

import tensorflow as tf

NONE, MIRRORED, MULTI_WORKER, PARAMETER_SERVER = (
    "none", "mirrored", "multi_worker_mirrored", "parameter_server")

# A variable larger than this is split by rows into ceil(bytes / MIN_SHARD_BYTES) shards, at
# most one per parameter server (the figure of TF's parameter-server guide). It leaves the
# ranker's dense layers whole (a 128 x 128 float kernel is 64 KiB) and splits every embedding
# table of more than 2,048 rows at E = 32.
MIN_SHARD_BYTES = 256 << 10


@dataclasses.dataclass(frozen=True)
class Distribution:
  """A strategy and this process's part in it."""
  name: str
  strategy: tf.distribute.Strategy
  is_chief: bool  # writes the serving model, train_stats.json and TensorBoard logs
  num_workers: int  # processes that run training steps


def is_chief(resolver) -> bool:
  """TF's convention: the `chief` task, else worker 0 of a cluster without one."""
  task_type, task_id = resolver.task_type, resolver.task_id
  if not task_type:  # no TF_CONFIG: a one-process "cluster"
    return True
  if task_type == "chief":
    return True
  return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def _workers(resolver, chief_trains: bool) -> int:
  jobs = resolver.cluster_spec().jobs
  count = len(resolver.cluster_spec().job_tasks("worker")) if "worker" in jobs else 0
  return max(1, count + int(chief_trains and "chief" in jobs))


def _resolver(cluster_resolver):
  return cluster_resolver or tf.distribute.cluster_resolver.TFConfigClusterResolver()


def make_distribution(name: str, cluster_resolver=None,
                      min_shard_bytes: Optional[int] = None) -> Distribution:
  """The strategy `name` over `cluster_resolver` (default: TF_CONFIG's cluster); tables are
  sharded above `min_shard_bytes` (default MIN_SHARD_BYTES, read at the call).

  Call it before anything else runs a TF op: MultiWorkerMirroredStrategy configures the
  collective ops of the process's eager context, which TF allows only at start-up.
  """
  if name == NONE:
    return Distribution(name, tf.distribute.get_strategy(), True, 1)
  if name == MIRRORED:
    return Distribution(name, tf.distribute.MirroredStrategy(), True, 1)
  resolver = _resolver(cluster_resolver)
  if name == MULTI_WORKER:
    # Every worker trains (the chief too, if the cluster has one); TF_CONFIG gives the peers.
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    return Distribution(name, strategy, is_chief(resolver), _workers(resolver, True))
  if name == PARAMETER_SERVER:
    if "ps" not in resolver.cluster_spec().jobs or resolver.task_type != "chief":
      raise ValueError(f"parameter_server needs a TF_CONFIG cluster with chief, worker and ps "
                       f"tasks, run as the chief (got task {resolver.task_type!r} of "
                       f"{sorted(resolver.cluster_spec().jobs)})")
    num_ps = len(resolver.cluster_spec().job_tasks("ps"))
    # At most one row shard per parameter server: a table's lookups and sparse updates then
    # spread over the servers instead of queueing on one, and no server holds it whole.
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=min_shard_bytes or MIN_SHARD_BYTES, max_shards=num_ps)
    strategy = tf.distribute.experimental.ParameterServerStrategy(
        resolver, variable_partitioner=partitioner)
    return Distribution(name, strategy, True, _workers(resolver, False))
  raise ValueError(f"unknown distribution {name!r}")


def shard_by_file_or_batch(dataset: tf.data.Dataset, num_files: int,
                           distribution: Distribution) -> tf.data.Dataset:
  """How MultiWorkerMirrored workers split `dataset` (read from `num_files` files).

  By file when every worker gets one (each reads only its own files); else by batch, every
  worker reading all files and keeping its part of each global batch. tf.data's AUTO policy
  would fail instead: the DirectRunner's Transform writes a single file.
  """
  if distribution.name != MULTI_WORKER:
    return dataset
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.FILE if num_files >= distribution.num_workers
      else tf.data.experimental.AutoShardPolicy.DATA)
  return dataset.with_options(options)


def serve_if_server_task(name: str, cluster_resolver=None) -> None:
  """Under parameter_server, a `worker` or `ps` replica serves the chief's requests here and
  never returns (the chief's job ends the cluster); any other process returns at once."""
  if name != PARAMETER_SERVER:
    return
  resolver = _resolver(cluster_resolver)
  if resolver.task_type not in ("worker", "ps"):
    return
  server = tf.distribute.Server(
      resolver.cluster_spec(), job_name=resolver.task_type, task_index=resolver.task_id,
      protocol=resolver.rpc_layer or "grpc", start=True)
  server.join()


@contextlib.contextmanager
def export_dir(serving_model_dir: str, distribution: Distribution) -> Iterator[str]:
  """Where this process writes the serving model: `serving_model_dir` on the chief, a local
  temporary directory (removed afterwards) on every other worker.

  Every MultiWorkerMirrored worker must run the export, since saving can read variables
  through collectives that wait for all workers; on a shared output (Vertex: the same URI for
  every replica) only the chief's copy may land. TFX's executor then checks that
  serving_model_dir exists on every replica, so a non-chief leaves it there, empty.
  """
  if distribution.is_chief:
    yield serving_model_dir
    return
  tmp = tempfile.mkdtemp(prefix="sidrec-worker-export-")
  try:
    yield tmp
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  tf.io.gfile.makedirs(serving_model_dir)
