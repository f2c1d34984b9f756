"""Metric functions on tiny cases computed by hand."""

import json
import math

import numpy as np
import pytest

from components.codebook import metrics


def test_relative_reconstruction_error_by_hand():
  x = np.array([[3.0, 4.0], [0.0, 1.0]])  # sum ||x||^2 = 26
  x_hat = np.array([[3.0, 3.0], [0.0, 0.0]])  # errors 1 + 1 = 2
  assert metrics.relative_reconstruction_error(x, x_hat) == pytest.approx(2.0 / 26.0)
  assert metrics.relative_reconstruction_error(x, x) == 0.0
  assert metrics.relative_reconstruction_error(x, np.zeros_like(x)) == pytest.approx(1.0)
  with pytest.raises(ValueError):
    metrics.relative_reconstruction_error(x, x[:1])


def test_unique_sid_ratio_by_hand():
  codes = np.array([[0, 1], [0, 1], [0, 2], [1, 1]])
  assert metrics.unique_sid_ratio(codes) == pytest.approx(3 / 4)
  assert metrics.unique_sid_ratio(np.arange(5)[:, None]) == 1.0


def test_code_usage_and_perplexity_by_hand():
  codes = np.array([[0, 0], [1, 0], [2, 0], [3, 0]])
  assert metrics.code_usage(codes, 8) == [0.5, 0.125]
  ppl = metrics.perplexity(codes, 8)
  assert ppl[0] == pytest.approx(4.0)  # uniform over 4 codes
  assert ppl[1] == pytest.approx(1.0)  # collapsed
  # Two codes with p = (3/4, 1/4): exp(H).
  h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
  assert metrics.perplexity(np.array([[0], [0], [0], [1]]), 4)[0] == pytest.approx(math.exp(h))
  with pytest.raises(ValueError):
    metrics.code_usage(np.array([[0], [9]]), 4)


def test_prefix_cosine_by_hand():
  e = np.eye(3)
  x = np.array([e[0], e[0], (e[0] + e[1]) / np.sqrt(2), e[2]]) * np.array([[2.0], [1.0], [1], [5]])
  codes = np.array([[0, 0], [0, 0], [0, 1], [1, 0]])
  # Prefix 1: group {0, 1, 2}: pair cosines 1, 1/sqrt2, 1/sqrt2 -> mean (1 + sqrt2) / 3.
  # Prefix 2: group {0, 1}: cosine 1.
  got = metrics.prefix_cosine(x, codes)
  assert got[0] == pytest.approx((1 + math.sqrt(2)) / 3)
  assert got[1] == pytest.approx(1.0)
  assert metrics.is_strictly_increasing(got)


def test_prefix_cosine_matches_brute_force_and_weights_by_pairs():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((60, 5))
  codes = rng.integers(3, size=(60, 3))
  u = x / np.linalg.norm(x, axis=1, keepdims=True)
  cos = u @ u.T
  got = metrics.prefix_cosine(x, codes)
  for p in range(1, 4):
    same = (codes[:, None, :p] == codes[None, :, :p]).all(-1)
    iu = np.triu_indices(60, 1)
    assert got[p - 1] == pytest.approx(cos[iu][same[iu]].mean(), rel=1e-9)


def test_prefix_cosine_none_without_pairs():
  got = metrics.prefix_cosine(np.eye(3), np.array([[0, 0], [0, 1], [1, 0]]))
  assert got[0] == pytest.approx(0.0) and got[1] is None
  assert not metrics.is_strictly_increasing(got)
  assert not metrics.is_strictly_increasing([0.5, 0.5])


def test_nmi_perfect_and_independent():
  labels = np.repeat(np.arange(4), 25)
  perfect = np.stack([(labels + 1) % 4, np.zeros(100, int)], axis=1)
  out = metrics.nmi(perfect, labels)
  assert out["per_level"][0] == pytest.approx(1.0)
  assert out["per_level"][1] == pytest.approx(0.0)
  assert out["full_sid"] == pytest.approx(1.0)


def test_singular_value_spectrum_by_hand():
  # Orthogonal columns with norms 3 and 1 (no centering): singular values (3, 1).
  a = np.array([[3.0, 0.0], [0.0, 1.0]])
  spec = metrics.singular_value_spectrum(a, center=False)
  assert spec["normalized_singular_values"] == pytest.approx([1.0, 1 / 3])
  p = np.array([0.75, 0.25])
  assert spec["effective_rank"] == pytest.approx(math.exp(-(p * np.log(p)).sum()))
  assert spec["rank"] == 2
  # Equal singular values: effective rank = number of dims.
  assert metrics.singular_value_spectrum(np.eye(4), center=False)["effective_rank"] == (
      pytest.approx(4.0))


def test_one_hot_spectrum_matches_dense_computation():
  rng = np.random.default_rng(1)
  codes = rng.integers(4, size=(50, 2))
  dense = np.concatenate([np.eye(4)[codes[:, 0]], np.eye(4)[codes[:, 1]]], axis=1)
  want = metrics.singular_value_spectrum(dense)
  got = metrics.one_hot_spectrum(codes, 4)
  assert got["normalized_singular_values"] == pytest.approx(want["normalized_singular_values"],
                                                           abs=1e-6)
  assert got["effective_rank"] == pytest.approx(want["effective_rank"])


def test_codebook_metrics_is_json_serialisable():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((40, 6)).astype(np.float32)
  codes = rng.integers(4, size=(40, 3))
  m = metrics.codebook_metrics(x, codes, 4, reconstruction=x * 0.5, labels=codes[:, 0])
  text = json.dumps(m, allow_nan=False)
  assert json.loads(text)["relative_reconstruction_error"] == pytest.approx(0.25)
  assert m["nmi"]["per_level"][0] == pytest.approx(1.0)
  assert len(m["code_usage"]) == 3 and m["min_code_usage"] == 1.0
