"""run_fn under tf.distribute (trainer/distribution.py), on real Trainer inputs
(tests/fixtures/trainer_inputs.py): two MultiWorkerMirrored workers against one process, and a
parameter-server cluster that shards the item table. The clusters run in subprocesses
(tests/fixtures/run_fn_process.py), on free localhost ports."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from contracts import serving_api as api
from contracts.config import RankingConfig
from contracts.trainer_io import TRAIN_STATS_FILE
from tests.fixtures import run_fn_process
from tests.fixtures import trainer_inputs
from trainer import distribution
from trainer import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small and quick: 2,048 training examples, 8 steps of 256 per epoch.
SETTINGS = dict(representation="sid_spm", embedding_dim=16, user_embedding_dim=8,
                user_feature_dim=4, cross_layers=1, mlp_dims=(32,), batch_size=256,
                learning_rate=1e-2, epochs=2, seed=0)
# Probabilities of the two-worker chief vs the one-process model. Both start from the same
# weights and see the same global batches (one training file, so the workers split each
# batch); only the order of float additions differs (two half-batch gradients all-reduced vs
# one full-batch sum): measured 9e-8 apart after these 16 steps. Measured on the same data,
# a one-process run whose steps take 128 examples (a worker training on its half alone) is up
# to 0.09 away, one with dense Adam instead of LazyAdam 4e-3 away: 1e-4 tells them apart and
# leaves float noise 1,000x room.
ATOL = 1e-4
TIMEOUT = 300


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  return trainer_inputs.write_trainer_inputs(str(tmp_path_factory.mktemp("trainer_inputs")))


def _fn_args_file(inputs, tmp_path, name, **changes):
  fields = trainer_inputs.fn_args_fields(
      inputs, RankingConfig(**{**SETTINGS, **changes}), str(tmp_path / name / "serving"),
      str(tmp_path / name / "model_run"))
  path = tmp_path / f"{name}_fn_args.json"
  path.write_text(json.dumps(fields))
  return str(path), fields


def _start(tmp_path, name, args, tf_config=None):
  env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
  if tf_config is not None:
    env["TF_CONFIG"] = json.dumps(tf_config)
  log = open(tmp_path / f"{name}.log", "w")
  return subprocess.Popen([sys.executable, "-m", "tests.fixtures.run_fn_process", *args],
                          cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log


def _wait(tmp_path, name, proc_log):
  proc, log = proc_log
  try:
    code = proc.wait(timeout=TIMEOUT)
  finally:
    if proc.poll() is None:
      proc.kill()
    log.close()
  tail = (tmp_path / f"{name}.log").read_text()[-3000:]
  assert code == 0, f"{name} exited with {code}:\n{tail}"


def _signatures(export_dir):
  """{signature: (input specs, output specs)} and the loaded model."""
  loaded = tf.saved_model.load(export_dir)
  return {name: (fn.structured_input_signature, fn.structured_outputs)
          for name, fn in loaded.signatures.items()}, loaded


def _probabilities(loaded, rows):
  request = trainer_inputs.serving_request(rows)
  out = loaded.signatures[api.SERVING_DEFAULT](**{k: tf.constant(v) for k, v in request.items()})
  return out[api.PROBABILITY].numpy()


def _stats(fields):
  with open(os.path.join(fields["model_run_dir"], TRAIN_STATS_FILE)) as f:
    return json.load(f)


# The two cluster tests take 35-110 s each on 2 shared cores, plus ~30 s for the Transform run
# of `inputs`: e2e (`make test-fast` skips them).
@pytest.mark.e2e
def test_two_mirrored_workers_export_once_what_one_process_trains(inputs, tmp_path):
  cluster = {"worker": [f"localhost:{run_fn_process.free_port()}" for _ in range(2)]}
  workers = []
  for index in range(2):
    path, fields = _fn_args_file(inputs, tmp_path, f"worker{index}",
                                 distribution="multi_worker_mirrored")
    workers.append((fields, _start(tmp_path, f"worker{index}", ["replica", path],
                                   {"cluster": cluster, "task": {"type": "worker",
                                                                 "index": index}})))
  # The one-process run meanwhile, here (no TF_CONFIG in this process).
  _, single = _fn_args_file(inputs, tmp_path, "single")
  run.run_fn(trainer_inputs.fn_args(inputs, RankingConfig(**SETTINGS), single["serving_model_dir"],
                                    single["model_run_dir"]))
  for index, (_, proc_log) in enumerate(workers):
    _wait(tmp_path, f"worker{index}", proc_log)
  (chief, _), (other, _) = workers

  stats = _stats(chief)
  assert (stats["distribution"], stats["workers"], stats["replicas_in_sync"]) == (
      "multi_worker_mirrored", 2, 2)
  # Worker 1 wrote no model (TFX's executor only needs its serving dir to exist), no stats,
  # and tf_keras removed its temporary TensorBoard directory.
  assert os.listdir(other["serving_model_dir"]) == []
  assert not os.path.exists(os.path.join(other["model_run_dir"], TRAIN_STATS_FILE))
  assert [f for _, _, files in os.walk(other["model_run_dir"]) for f in files] == []

  chief_signatures, chief_model = _signatures(chief["serving_model_dir"])
  single_signatures, single_model = _signatures(single["serving_model_dir"])
  assert set(chief_signatures) == set(api.SIGNATURES)
  assert chief_signatures == single_signatures
  rows = inputs.eval_rows[:256]
  two_workers, one = _probabilities(chief_model, rows), _probabilities(single_model, rows)
  assert np.isfinite(two_workers).all() and two_workers.std() > 1e-3  # not a constant
  np.testing.assert_allclose(two_workers, one, rtol=0, atol=ATOL)
  # The chief's evaluation is its model's over the whole eval split, not a sum over workers.
  assert stats["keras_eval"]["auc"] == pytest.approx(_stats(single)["keras_eval"]["auc"],
                                                     abs=ATOL)
  # Each worker read every example (the workers split each batch).
  assert stats["train_examples"] == _stats(single)["train_examples"] == 2 * 2048


@pytest.mark.e2e
def test_parameter_server_cluster_shards_the_item_table_over_both_servers(inputs, tmp_path):
  path, fields = _fn_args_file(inputs, tmp_path, "ps", distribution="parameter_server",
                               epochs=1)
  report_path = tmp_path / "report.json"
  _wait(tmp_path, "ps", _start(tmp_path, "ps", ["parameter_server", path, str(report_path)]))
  report = json.loads(report_path.read_text())

  assert report["table_type"] == "ShardedVariable"
  assert sorted(report["shard_devices"]) == report["ps_devices"]  # one shard on each server
  assert sum(report["shard_rows"]) == report["table_rows"] and min(report["shard_rows"]) > 0
  assert report["lookup_matches_table"] and report["exported_table_matches"]
  assert report["optimizer_steps"] == 8  # one epoch: 2,048 examples / 256, over both workers
  stats = _stats(fields)
  assert (stats["distribution"], stats["workers"]) == ("parameter_server", 2)
  assert any(len(set(devices)) == 2 for devices in stats["sharded_variables"].values())
  assert set(stats["keras_eval"]) == {"auc", "loss"} and 0 < stats["keras_eval"]["loss"] < 5
  # The chief's export of the sharded variables serves without a cluster.
  signatures, model = _signatures(fields["serving_model_dir"])
  assert set(signatures) == set(api.SIGNATURES)
  assert np.isfinite(_probabilities(model, inputs.eval_rows[:64])).all()


def _resolver(cluster, task_type, task_id):
  return tf.distribute.cluster_resolver.SimpleClusterResolver(
      tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)


@pytest.mark.parametrize("cluster, task_type, task_id, chief", [
    ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
    ({"worker": ["a:1", "b:1"]}, "worker", 1, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, "chief", 0, True),
    ({"chief": ["c:1"], "worker": ["a:1"]}, "worker", 0, False),
    ({}, None, None, True),
])
def test_the_chief_is_the_chief_task_else_worker_0(cluster, task_type, task_id, chief):
  assert distribution.is_chief(_resolver(cluster, task_type, task_id)) is chief


def test_a_non_chief_exports_to_a_temporary_directory_and_leaves_the_serving_dir_empty(
    tmp_path):
  serving = str(tmp_path / "serving")
  other = distribution.Distribution("multi_worker_mirrored", tf.distribute.get_strategy(),
                                    is_chief=False, num_workers=2)
  with distribution.export_dir(serving, other) as path:
    assert not path.startswith(str(tmp_path))
    open(os.path.join(path, "saved_model.pb"), "w").close()
  assert not os.path.exists(path) and os.listdir(serving) == []
  chief = distribution.Distribution("multi_worker_mirrored", tf.distribute.get_strategy(),
                                    is_chief=True, num_workers=2)
  with distribution.export_dir(serving, chief) as path:
    assert path == serving


def test_parameter_server_needs_a_cluster_with_servers_run_as_its_chief():
  with pytest.raises(ValueError, match=r"^parameter_server needs a TF_CONFIG cluster with "
                                       r"chief, worker and ps tasks, run as the chief \(got "
                                       r"task 'worker' of \['worker'\]\)$"):
    distribution.make_distribution("parameter_server",
                                   _resolver({"worker": ["a:1"]}, "worker", 0))
