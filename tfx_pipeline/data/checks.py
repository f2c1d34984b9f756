"""Checks of a loaded, split dataset against the pipeline that will consume it.

Run by `prepare_data` before anything is written, so a setting that cannot work fails in one
line naming the setting to change, not an hour later inside a component:
- the training split has positives and negatives (a ranker needs both);
- the eval split has new items under the chosen rule (the cold-start metrics need them);
- the catalog has at least as many items as every codebook has codes per level;
- brought embeddings (EmbeddingConfig precomputed) cover the catalog with finite, non-zero
  vectors of one size (the ContentEmbedder checks them again, inside the pipeline).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from contracts.config import PipelineConfig
from tfx_pipeline.data.dataset import Dataset
from tfx_pipeline.data.errors import DataError


def check_split(dataset: Dataset, stats: Dict, config: PipelineConfig) -> None:
  """Raises DataError when the split cannot train or evaluate the pipeline."""
  rate = stats.get("train_positive_rate")
  if rate is not None and not 0.0 < rate < 1.0:
    what = "no positives" if rate == 0.0 else "no negatives"
    raise DataError(
        f"{dataset.name}: the training split has {what} (positive rate {rate}); a ranker "
        f"needs both: check the label column (1 = positive, 0 = negative) or "
        f"--positive-threshold (now {dataset.positive_threshold:g})")
  if not stats.get("new_items") or not stats.get("rule_new_items"):
    if stats.get("split_rule") == "release_year":
      fix = (f"lower split.new_item_year (now {config.split.new_item_year}) or use "
             f"--split-rule first_seen_quantile")
    else:
      fix = (f"raise split.new_item_fraction (now {config.split.new_item_fraction}) in "
             f"--config")
    raise DataError(f"{dataset.name}: the rule '{stats.get('split_rule_detail')}' holds out "
                    f"{stats.get('rule_new_items', 0)} items and the eval split has "
                    f"{stats.get('new_items', 0)} new items; the cold-start evaluation needs "
                    f"them held out: {fix}")


def check_catalog_size(dataset: Dataset, config: PipelineConfig) -> None:
  n = dataset.num_items
  for method in config.codebook_methods:
    size = config.codebook_for(method).codebook_size
    if n < size:
      fits = 2 ** int(np.floor(np.log2(max(n // 4, 2))))
      raise DataError(
          f"{dataset.name}: the catalog has {n} items, fewer than the {size} codes per level "
          f"of the {method} codebook; set codebook.codebook_size to at most {n} in --config "
          f"(e.g. {fits}, about 4 items per code)")


def check_brought_embeddings(dataset: Dataset, config: PipelineConfig) -> None:
  """Precomputed embeddings: every catalog item has one, finite, non-zero, one size."""
  from contracts import embeddings_io  # pylint: disable=g-import-not-at-top
  cfg = config.embedding
  ids, vectors = embeddings_io.read_precomputed(cfg.precomputed_path, cfg.precomputed_format,
                                                cfg.precomputed_ids_path)
  where = f"{cfg.precomputed_path} (embedding.precomputed_path)"
  if vectors.ndim != 2 or not len(ids):
    raise DataError(f"{where}: holds no embeddings; write one vector per catalog item")
  if cfg.dimension and vectors.shape[1] != cfg.dimension:
    raise DataError(f"{where}: vectors have {vectors.shape[1]} dimensions, but "
                    f"embedding.dimension is {cfg.dimension}; fix the file or the setting")
  row = {i: k for k, i in enumerate(ids)}
  missing = [i for i in dataset.items["item_id"] if i not in row]
  if missing:
    raise DataError(f"{where}: {len(missing)} catalog item(s) have no embedding, e.g. "
                    f"{missing[0]!r}; add a vector for every catalog item")
  finite = np.isfinite(vectors).all(axis=1)
  zero = finite & ~np.any(vectors != 0, axis=1)
  for bad, what in ((~finite, "a NaN or infinite value"), (zero, "an all-zero vector")):
    if bad.any():
      first = int(np.flatnonzero(bad)[0])
      raise DataError(f"{where}: item {ids[first]!r} (row {first + 1}) has {what} "
                      f"({int(bad.sum())} such item(s)); recompute or remove those embeddings")
