"""The machine's dense float32 matmul rate right now, printed beside every throughput figure.

These 2-core machines differ (55-170 GFLOP/s have been seen) and are shared, and every benchmark
here is matmul-bound, so a figure is only comparable together with this rate.
"""
import time

import tensorflow as tf


def matmul_gflops() -> float:
  a = tf.random.normal([2048, 2048])
  f = tf.function(tf.matmul)
  f(a, a).numpy()
  t = time.perf_counter()
  for _ in range(5):
    f(a, a).numpy()
  return 5 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9
