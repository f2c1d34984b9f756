"""RQ-VAE specifics: codebook collapse regression and tf.distribute."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from components.codebook import metrics
from tests.fixtures import embeddings as synthetic
from components.codebook.conftest import fast_config
from components.codebook.rqvae import RqVaeCodebook


def _collapse_prone_data():
  """Badly scaled inputs far from the codebook's random init: norm ~30, offset by a constant."""
  x, labels = synthetic.clustered(n=1500, num_clusters=16, dim=64, spread=0.5, seed=4)
  return (30.0 * x + 5.0).astype(np.float32), labels


@pytest.fixture(scope="module")
def collapse_runs():
  x, _ = _collapse_prone_data()
  out = {}
  for window in (0, 3):  # 0 = dead-code reset off
    cfg = fast_config("rqvae", levels=2, codebook_size=16, kmeans_init=False,
                      dead_code_window=window, epochs=8, warmup_epochs=0)
    cb = RqVaeCodebook(cfg).fit(x)
    out[window] = (cb, metrics.code_usage(cb.assign(x), 16))
  return out


def test_dead_code_reset_prevents_collapse(collapse_runs):
  _, usage_on = collapse_runs[3]
  _, usage_off = collapse_runs[0]
  # Without reset most codes never win a single item (the regression we guard against) ...
  assert max(usage_off) <= 0.5, usage_off
  # ... with reset every level keeps (almost) all of its codes.
  assert min(usage_on) >= 0.9, usage_on


def test_resets_are_counted(collapse_runs):
  assert sum(collapse_runs[3][0].training_stats["dead_code_resets"]) > 0
  assert sum(collapse_runs[0][0].training_stats["dead_code_resets"]) == 0


def test_rotation_trick_trains(clustered_data):
  x, labels, _, _ = clustered_data
  cb = RqVaeCodebook(fast_config("rqvae", rotation_trick=True, epochs=3)).fit(x)
  from sklearn.metrics import normalized_mutual_info_score  # pylint: disable=g-import-not-at-top
  assert normalized_mutual_info_score(labels, cb.assign(x)[:, 0]) >= 0.8


def test_trains_under_an_explicit_strategy(clustered_data, trained):
  """Variables and optimizer built under the given strategy's scope; same codes as default."""
  x = clustered_data[0]
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  cb = RqVaeCodebook(fast_config("rqvae"), strategy=strategy).fit(x)
  np.testing.assert_array_equal(cb.assign(x), trained("rqvae")[0].assign(x))


_MIRRORED_SCRIPT = r"""
import tempfile
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from sklearn.metrics import normalized_mutual_info_score
from tests.fixtures import embeddings as synthetic
from components.codebook.conftest import fast_config
from components.codebook.export import load_codebook
from components.codebook.rqvae import RqVaeCodebook
x, labels = synthetic.clustered(n=600, num_clusters=8, dim=32, spread=0.5, seed=0)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
cb = RqVaeCodebook(fast_config("rqvae", codebook_size=8, epochs=3, warmup_epochs=1,
                                dead_code_window=2, hidden_dims=(32,), latent_dim=16),
                   strategy=strategy).fit(x)
codes = cb.assign(x)
with tempfile.TemporaryDirectory() as tmp:
  reloaded = load_codebook(cb.export(tmp + "/cb")).assign(x)
print("REPLICAS", strategy.num_replicas_in_sync)
print("NMI", normalized_mutual_info_score(labels, codes[:, 0]))
print("CODES_SHAPE", "x".join(map(str, codes.shape)))
print("RELOADED_SHAPE", "x".join(map(str, reloaded.shape)))
print("EXPORT_MISMATCHED_ROWS", int((reloaded != codes).any(axis=1).sum())
      if reloaded.shape == codes.shape else -1)
"""


def test_trains_under_mirrored_strategy_with_two_replicas():
  """Two logical CPUs exist only if configured before TensorFlow starts: a fresh process.

  Mirrored variables must export like plain ones: the reloaded SavedModel gives every item
  the codes the in-memory codebook gives it.
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  proc = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], cwd=root, env=env,
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = dict(l.split(" ", 1) for l in proc.stdout.splitlines()
               if l.startswith(("REPLICAS", "NMI", "CODES_SHAPE", "RELOADED_SHAPE",
                                "EXPORT_MISMATCHED_ROWS")))
  assert lines["REPLICAS"] == "2"
  assert float(lines["NMI"]) >= 0.8
  assert lines["CODES_SHAPE"] == lines["RELOADED_SHAPE"] == "600x2"
  assert lines["EXPORT_MISMATCHED_ROWS"] == "0"
