"""Small in-memory ranking data with every item representation's features (tests, benchmarks).

Items belong to clusters; cluster quality and a user-cluster affinity drive the label, so a
representation that knows an item's cluster can score items it never saw in training. Items
in one cluster share their first SID code (and, per sub-cluster, the second), two of the MoC
codes and a content-embedding centre; codes 3.. and the third MoC code are item-specific. SPM
pieces merge the (c1, c2) pair of "frequent" sub-clusters into one piece and keep single-code
pieces otherwise. Held-out "new" items (never in a training example, nor in any history) are
spread over the same clusters: the papers' cold-start claim in miniature.
"""

from __future__ import annotations

import dataclasses
from typing import Dict

import numpy as np

from trainer.model import features as F


@dataclasses.dataclass
class SyntheticRanking:
  train: Dict[str, np.ndarray]
  eval: Dict[str, np.ndarray]
  eval_is_new: np.ndarray  # bool [n_eval]: the candidate is a held-out item
  sizes: F.VocabSizes
  item_cluster: np.ndarray  # [num_items]
  item_is_new: np.ndarray  # bool [num_items]


def make_synthetic_ranking(*, num_users: int = 300, num_clusters: int = 8,
                           items_per_cluster: int = 40, new_per_cluster: int = 5,
                           num_train: int = 12_000, num_eval: int = 4_000,
                           history_length: int = 5, levels: int = 4, codebook_size: int = 16,
                           moc_codebooks: int = 3, content_dim: int = 16,
                           random_id_rows: int = 64, item_oov_buckets: int = 1,
                           seed: int = 0) -> SyntheticRanking:
  """Synthetic train/eval feature dicts (names/dtypes of trainer.model.features)."""
  rng = np.random.default_rng(seed)
  k, n_items = codebook_size, num_clusters * items_per_cluster
  assert num_clusters <= k and levels >= 2
  cluster = np.repeat(np.arange(num_clusters), items_per_cluster)
  is_new = np.zeros(n_items, bool)
  for c in range(num_clusters):
    is_new[rng.choice(np.flatnonzero(cluster == c), new_per_cluster, replace=False)] = True

  # SIDs: c1 = cluster code, c2 = one of 2 sub-cluster codes, c3.. item-specific.
  cluster_code = rng.permutation(k)[:num_clusters]
  sub = rng.integers(0, 2, n_items)
  sub_code = rng.integers(0, k, (num_clusters, 2))
  sid = rng.integers(0, k, (n_items, levels))
  sid[:, 0] = cluster_code[cluster]
  sid[:, 1] = sub_code[cluster, sub]
  # MoC: two codebooks see the cluster (differently permuted), the rest item-specific.
  moc = rng.integers(0, k, (n_items, moc_codebooks))
  for m in range(min(2, moc_codebooks)):
    moc[:, m] = rng.permutation(k)[cluster]
  # SPM: unigram piece of (level l, code c) = 1 + l*k + c; merged (c1, c2) pieces for the
  # frequent half of the sub-clusters, after those.
  merged = rng.random((num_clusters, 2)) < 0.5
  pair_id = 1 + levels * k + np.arange(num_clusters * 2).reshape(num_clusters, 2)
  spm = np.zeros((n_items, levels), np.int64)
  for i in range(n_items):
    uni = [1 + l * k + sid[i, l] for l in range(levels)]
    pieces = [pair_id[cluster[i], sub[i]]] + uni[2:] if merged[cluster[i], sub[i]] else uni
    spm[i, :len(pieces)] = pieces
  spm_vocab = 1 + levels * k + num_clusters * 2
  centres = rng.standard_normal((num_clusters, content_dim))
  content = (centres[cluster] + 0.5 * rng.standard_normal((n_items, content_dim)))
  random_id = (np.arange(n_items) * 2_654_435_761 + 17) % random_id_rows
  train_items = np.flatnonzero(~is_new)
  vocab_id = np.empty(n_items, np.int64)
  vocab_id[train_items] = np.arange(len(train_items))
  vocab_id[is_new] = len(train_items) + np.flatnonzero(is_new) % max(item_oov_buckets, 1)

  # Item features with one extra all-zero "padding item" at index n_items.
  def padded(a):
    return np.concatenate([a, np.zeros((1,) + a.shape[1:], a.dtype)])

  item_table = {F.ITEM_RANDOM_ID: padded(random_id.astype(np.int64)),
                F.ITEM_VOCAB_ID: padded(vocab_id),
                F.ITEM_EMBEDDING: padded(content.astype(np.float32)),
                F.ITEM_SID: padded(sid.astype(np.int64)),
                F.ITEM_MOC_CODES: padded(moc.astype(np.int64)),
                F.ITEM_SPM_TOKENS: padded(spm)}

  # Users: two liked clusters each, a bias, demographics that carry part of the bias.
  liked = np.stack([rng.choice(num_clusters, 2, replace=False) for _ in range(num_users)])
  affinity = np.full((num_users, num_clusters), -0.75)
  affinity[np.arange(num_users)[:, None], liked] = 1.5
  age = rng.integers(1, 8, num_users)
  gender = rng.integers(1, 3, num_users)
  occupation = rng.integers(1, 22, num_users)
  user_bias = 0.5 * rng.standard_normal(num_users) + 0.15 * (age - 4)
  quality = rng.standard_normal(num_clusters)
  item_quality = 0.5 * rng.standard_normal(n_items)
  by_cluster_train = [np.flatnonzero((cluster == c) & ~is_new) for c in range(num_clusters)]
  by_cluster_new = [np.flatnonzero((cluster == c) & is_new) for c in range(num_clusters)]

  def pick(pools, clusters):
    """One random item of pools[c] for every c in clusters (vectorised)."""
    sizes = np.array([len(p) for p in pools])
    flat = np.concatenate(pools)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return flat[starts[clusters] + (rng.random(clusters.shape) * sizes[clusters]).astype(int)]

  def examples(n, new_share):
    users = rng.integers(0, num_users, n)
    from_liked = rng.random(n) < 0.5
    cl = np.where(from_liked, liked[users, rng.integers(0, 2, n)],
                  rng.integers(0, num_clusters, n))
    want_new = rng.random(n) < new_share
    items = np.where(want_new, pick(by_cluster_new, cl), pick(by_cluster_train, cl))
    logit = quality[cl] + affinity[users, cl] + user_bias[users] + item_quality[items]
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    # History: 1..N training items from the user's liked clusters, padded with the padding item.
    count = rng.integers(1, history_length + 1, n)
    hist_clusters = liked[users[:, None], rng.integers(0, 2, (n, history_length))]
    real = np.arange(history_length)[None, :] < count[:, None]
    hist = np.where(real, pick(by_cluster_train, hist_clusters), n_items)
    mask = (np.arange(history_length)[None, :] < count[:, None]).astype(np.float32)
    out = {F.USER_ID: (users + 1).astype(np.int64), F.USER_AGE: age[users].astype(np.int64),
           F.USER_GENDER: gender[users].astype(np.int64),
           F.USER_OCCUPATION: occupation[users].astype(np.int64),
           F.HISTORY_MASK: mask, F.LABEL: label}
    for name, table in item_table.items():
      out[name] = table[items]
      out[F.history_name(name)] = table[hist]
    return out, want_new

  train, _ = examples(num_train, 0.0)
  eval_, eval_new = examples(num_eval, 0.5)
  sizes = F.VocabSizes(user_id=num_users + 1, user_age=8, user_gender=3, user_occupation=22,
                       num_items=len(train_items), sid_levels=levels, sid_codebook_size=k,
                       moc_codebooks=moc_codebooks, moc_codebook_size=k,
                       spm_vocab_size=spm_vocab, spm_max_pieces=levels,
                       content_dim=content_dim)
  return SyntheticRanking(train, eval_, eval_new, sizes, cluster, is_new)
