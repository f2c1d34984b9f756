"""train_codebook: the metrics dict and argument checks."""

import json

import numpy as np
import pytest

from components.codebook import CodebookInputError
from components.codebook.conftest import fast_config
from components.codebook.train import make_codebook, train_codebook


def test_metrics_dict_is_complete_and_json_serialisable(trained):
  codebook, m = trained("rqvae")
  json.dumps(m, allow_nan=False)
  for key in ("unique_sid_ratio", "code_usage", "perplexity", "prefix_cosine",
              "relative_reconstruction_error", "nmi", "one_hot_spectrum",
              "assign_items_per_second", "training"):
    assert key in m, key
  assert len(m["code_usage"]) == len(m["perplexity"]) == codebook.num_code_columns
  assert m["training"]["train_steps"] > 0 and m["training"]["train_examples_per_second"] > 0
  assert len(m["training"]["dead_code_resets"]) == codebook.num_code_columns
  assert 0.0 < m["relative_reconstruction_error"] < 0.5


def test_moc_has_levels_times_scaling_factor_codebooks(clustered_data):
  x = clustered_data[0]
  cb = make_codebook(fast_config("moc", levels=2, moc_scaling_factor=2, epochs=1,
                                 warmup_epochs=0, moc_per_codebook_projection=True)).fit(x)
  assert cb.assign(x[:7]).shape == (7, 4)


def test_labels_must_match_items(clustered_data):
  x = clustered_data[0]
  with pytest.raises(CodebookInputError, match="labels has 3 rows"):
    train_codebook(x, fast_config("rqkmeans"), labels=np.zeros(3))
