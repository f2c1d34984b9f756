"""Shared fixtures for the SentencePiece sub-ID tests: trained vocabularies + evaluation SIDs."""

import dataclasses

import numpy as np
import pytest

from tests.fixtures import sids as synthetic
from trainer.spm.vocabulary import SpmSubIdVocabulary
from trainer.spm.vocabulary import train_spm


@dataclasses.dataclass
class Case:
  levels: int
  codebook_size: int
  vocab: SpmSubIdVocabulary
  train_sids: np.ndarray
  train_counts: np.ndarray
  known_sids: np.ndarray     # every code seen in training (training SIDs + new combinations)
  unseen_sids: np.ndarray    # >= 1 code never seen in training


def make_case(levels, codebook_size, num_distinct, vocab_size, seed=0, children=24):
  rng = np.random.default_rng(seed + 100)
  sids, counts = synthetic.synthetic_sids(num_distinct, levels, codebook_size, seed=seed,
                                          children=children)
  # Hold out ~4% of the codes of every level: SIDs using them are the cold-start "unseen" set.
  held = rng.random((levels, codebook_size)) < 0.04
  has_held = held[np.arange(levels)[None, :], sids].any(axis=1)
  train_sids, train_counts = sids[~has_held], counts[~has_held]
  vocab = train_spm((train_sids, train_counts), levels, codebook_size, vocab_size, seed=seed)
  # New combinations of known codes: same generator, other seed, plus uniformly random codes.
  more, _ = synthetic.synthetic_sids(num_distinct // 2, levels, codebook_size, seed=seed + 1,
                                     children=children)
  uniform = rng.integers(0, codebook_size, size=(num_distinct // 2, levels))
  pool = np.concatenate([more, uniform])
  known_set = vocab.known_chars
  def all_known(row):
    return all(vocab.sid_string(row)[i] in known_set for i in range(levels))
  pool_known = pool[[all_known(r) for r in pool]]
  known = np.unique(np.concatenate([train_sids, pool_known]), axis=0)
  unseen = np.unique(np.concatenate([sids[has_held], pool[[not all_known(r) for r in pool]]]),
                     axis=0)
  return Case(levels, codebook_size, vocab, train_sids, train_counts, known, unseen)


@pytest.fixture(scope="session")
def case_3x256():
  """L=3, K=256, ~5k distinct clustered SIDs with Zipf counts, budget 3,000 rows."""
  return make_case(3, 256, 5200, 3000, seed=0)


@pytest.fixture(scope="session")
def case_4x64():
  """L=4, K=64, ~5k distinct SIDs, budget 1,500 rows."""
  return make_case(4, 64, 5200, 1500, seed=1, children=8)


@pytest.fixture(scope="session", params=["3x256", "4x64"])
def case(request, case_3x256, case_4x64):
  return {"3x256": case_3x256, "4x64": case_4x64}[request.param]
