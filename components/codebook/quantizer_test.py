"""Quantiser layers: nearest codes, gradients, dead-code reset."""

import numpy as np
import tensorflow as tf

from components.codebook import quantizer as q_lib


def _book(values):
  return np.asarray(values, np.float32)


def test_residual_quantize_by_hand():
  q = q_lib.ResidualQuantizer(2, 2, 2)
  q.set_codebooks(_book([[[1, 0], [0, 1]], [[0.1, 0], [0, 0.1]]]))
  codes, total = q.quantize(tf.constant([[1.0, 0.12], [0.05, 0.9]]))
  np.testing.assert_array_equal(codes.numpy(), [[0, 1], [1, 0]])
  np.testing.assert_allclose(total.numpy(), [[1.0, 0.1], [0.1, 1.0]], atol=1e-6)


def test_parallel_quantize_means_codes():
  q = q_lib.ParallelQuantizer(2, 2, 1)
  q.set_codebooks(_book([[[0.0], [1.0]], [[0.4], [2.0]]]))
  codes, mean = q.quantize(tf.constant([[0.9]]))
  np.testing.assert_array_equal(codes.numpy(), [[1, 0]])
  np.testing.assert_allclose(mean.numpy(), [[0.7]], atol=1e-6)


def _encoder_grad(rotation):
  q = q_lib.ResidualQuantizer(1, 2, 2)
  q.set_codebooks(_book([[[2.0, 0.0], [0.0, -3.0]]]))
  z = tf.constant([[1.0, 1.0]])
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(z)
    out = q(z, beta=0.25, rotation=rotation)
    target = tf.reduce_sum(out.quantized * tf.constant([[1.0, 0.0]]))
    vq = tf.reduce_sum(out.loss)
  return out, tape.gradient(target, z).numpy(), tape.gradient(vq, [z, q.codebooks])


def test_straight_through_gradient_and_losses():
  out, g, (g_z_vq, g_book) = _encoder_grad(rotation=False)
  np.testing.assert_allclose(out.quantized.numpy(), [[2.0, 0.0]])  # forward = nearest code
  np.testing.assert_allclose(g, [[1.0, 0.0]])  # gradient copied unchanged
  # loss = ||sg(z) - e||^2 + 0.25 ||z - sg(e)||^2 = 2 + 0.5
  np.testing.assert_allclose(out.loss.numpy(), [2.5], rtol=1e-6)
  np.testing.assert_allclose(g_z_vq.numpy(), [[-0.5, 0.5]], rtol=1e-6)  # beta * 2 (z - e)
  np.testing.assert_allclose(tf.convert_to_tensor(g_book).numpy()[0, 0], [2.0, -2.0])


def test_rotation_trick_forward_is_code_and_gradient_is_rotated():
  out, g, _ = _encoder_grad(rotation=True)
  np.testing.assert_allclose(out.quantized.numpy(), [[2.0, 0.0]], atol=1e-6)
  # z = (1, 1) is rotated by -45 degrees and scaled by |e| / |z| = sqrt(2): the gradient of
  # e_x w.r.t. z is sqrt(2) * (cos 45, sin 45) = (1, 1), not the straight-through (1, 0).
  np.testing.assert_allclose(g, [[1.0, 1.0]], atol=1e-5)


def test_dead_code_reset_reseeds_only_idle_codes():
  q = q_lib.ResidualQuantizer(1, 4, 2)
  q.set_codebooks(_book([[[0, 0], [1, 1], [5, 5], [9, 9]]]))
  inputs = tf.constant([[[0.1, 0.0], [0.9, 1.0], [7.0, 7.0]]])  # [M=1, B=3, D=2]
  counts = tf.constant([[2.0, 1.0, 0.0, 0.0]])
  cand = q.reset_candidates(inputs, tf.constant([0, 1], tf.int64))
  assert cand.shape == (1, 4, 2)
  before = q.codebooks.numpy().copy()
  assert int(q.update_dead_codes(counts, cand, window=2)) == 0  # idle 1 step < window
  np.testing.assert_array_equal(q.codebooks.numpy(), before)
  assert int(q.update_dead_codes(counts, cand, window=2)) == 2  # codes 2 and 3 idle 2 steps
  after = q.codebooks.numpy()[0]
  np.testing.assert_array_equal(after[:2], before[0, :2])  # used codes untouched
  batch_rows = {tuple(r) for r in inputs.numpy()[0]}
  assert {tuple(after[2]), tuple(after[3])} <= batch_rows
  np.testing.assert_array_equal(q.idle_steps.numpy(), [[0, 0, 0, 0]])
  np.testing.assert_array_equal(q.resets.numpy(), [2])
