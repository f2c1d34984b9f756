"""PipelineConfig: JSON round trip and the cross-section checks users hit first."""
import dataclasses

import pytest

from contracts import config as config_lib


def test_round_trip_with_overrides_and_representations():
  config = dataclasses.replace(
      config_lib.PipelineConfig(), representations=("random_id", "moc"),
      codebook_overrides={"rqvae": {"levels": 6}},
      evaluation=config_lib.EvaluationConfig(min_auc_new_items=0.55))
  again = config_lib.PipelineConfig.from_json(config.to_json())
  assert again == config
  assert again.codebook_for("rqvae").levels == 6
  assert again.codebook_for("moc").levels == config.codebook.levels
  assert again.ranking_for("moc").representation == "moc"


@pytest.mark.parametrize("changes, message", [
    ({"representations": ("sid_spm", "sid_bpe")}, "representations must be distinct names"),
    ({"representations": ("sid_spm", "sid_spm")}, "representations must be distinct names"),
    ({"representations": ("moc",), "codebook_methods": ("rqvae",)}, "needs 'moc'"),
    ({"sid_method": "rqkmeans", "codebook_methods": ("rqvae",)}, "sid_method 'rqkmeans'"),
    ({"codebook_overrides": {"moc": {"levels": 2}}, "codebook_methods": ("rqvae",)},
     "codebook_overrides names 'moc'"),
    ({"codebook_overrides": {"rqvae": {"levls": 2}}}, "levls"),
])
def test_inconsistent_settings_fail_by_name(changes, message):
  with pytest.raises((ValueError, TypeError), match=message):
    dataclasses.replace(config_lib.PipelineConfig(), **changes)


def test_evaluation_thresholds_are_probabilities():
  with pytest.raises(ValueError, match="min_auc_new_items"):
    config_lib.EvaluationConfig(min_auc_new_items=1.5)


def test_input_cache_is_memory_or_none():
  assert config_lib.RankingConfig().input_cache == "memory"
  assert config_lib.RankingConfig(input_cache="none").input_cache == "none"
  with pytest.raises(ValueError, match="input_cache must be memory|none"):
    config_lib.RankingConfig(input_cache="disk")
