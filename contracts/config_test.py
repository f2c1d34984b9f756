"""PipelineConfig: JSON round trip and the cross-section checks users hit first."""
import dataclasses
import json

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
    ({"representations": ("moc",), "codebook_methods": ("rqvae",)},
     "'moc' reads the codes of codebook\\(s\\) \\['moc'\\]"),
    ({"ranking": config_lib.RankingConfig(sid_codebook="rqkmeans"),
      "codebook_methods": ("rqvae",)}, "sid_codebook 'rqkmeans' must be one of"),
    ({"codebook_methods": ("rqvae", "no_such_method")}, "codebook_methods must name methods of"),
    ({"codebook_overrides": {"moc": {"levels": 2}}, "codebook_methods": ("rqvae",)},
     "codebook_overrides names 'moc'"),
    ({"codebook_overrides": {"rqvae": {"levls": 2}}}, "levls"),
])
def test_inconsistent_settings_fail_by_name(changes, message):
  with pytest.raises((ValueError, TypeError), match=message):
    dataclasses.replace(config_lib.PipelineConfig(), **changes)


def test_a_config_file_from_before_the_codebook_keyed_settings_still_loads():
  """`sid_method` (now ranking.sid_codebook) and ranking.history_length (now split's only)."""
  old = json.loads(config_lib.PipelineConfig().to_json())
  old["sid_method"] = old["ranking"].pop("sid_codebook").replace("rqvae", "rqkmeans")
  old["ranking"]["history_length"] = 10
  config = config_lib.PipelineConfig.from_json(json.dumps(old))
  assert config.ranking.sid_codebook == "rqkmeans" and config.split.history_length == 10
  old["ranking"]["history_length"] = 5
  with pytest.raises(ValueError, match="ranking.history_length 5 differs from split"):
    config_lib.PipelineConfig.from_json(json.dumps(old))


def test_the_pipeline_needs_a_history_shape():
  with pytest.raises(ValueError, match="history_length must be >= 1.*use_history=False"):
    config_lib.PipelineConfig(split=config_lib.SplitConfig(history_length=0))


def test_evaluation_thresholds_are_probabilities():
  with pytest.raises(ValueError, match="min_auc_new_items"):
    config_lib.EvaluationConfig(min_auc_new_items=1.5)


def test_input_cache_is_memory_or_none():
  assert config_lib.RankingConfig().input_cache == "memory"
  default = config_lib.PipelineConfig()
  config = config_lib.replace_section(default, "ranking", input_cache="none")
  # "none" survives a --config file and reaches the Trainer: its custom_config carries the
  # representation's RankingConfig as JSON (contracts.trainer_io.TrainerSettings).
  from contracts.trainer_io import TrainerSettings  # pylint: disable=g-import-not-at-top
  again = config_lib.PipelineConfig.from_json(config.to_json())
  assert again == config
  trainer_config = TrainerSettings(again.ranking_for("sid_spm")).custom_config()
  assert TrainerSettings.from_custom_config(trainer_config).ranking.input_cache == "none"
  # A different setting is a different Trainer input (TFX cache key), and both parse back.
  default_config = TrainerSettings(default.ranking_for("sid_spm")).custom_config()
  assert default_config != trainer_config
  assert TrainerSettings.from_custom_config(default_config).ranking.input_cache == "memory"
  with pytest.raises(ValueError, match=r"input_cache must be memory\|none, got 'disk'"):
    config_lib.RankingConfig(input_cache="disk")
  # A misspelt field in a --config file is named, not ignored.
  settings = json.loads(config.to_json())
  settings["ranking"]["input_cach"] = settings["ranking"].pop("input_cache")
  with pytest.raises(ValueError, match=r"unknown RankingConfig field\(s\) \['input_cach'\]"):
    config_lib.PipelineConfig.from_json(json.dumps(settings))


def test_distribution_is_validated_and_reaches_the_trainer():
  from contracts.trainer_io import TrainerSettings  # pylint: disable=g-import-not-at-top
  assert config_lib.RankingConfig().distribution == "none"
  config = config_lib.replace_section(config_lib.PipelineConfig(), "ranking",
                                      distribution="parameter_server")
  again = config_lib.PipelineConfig.from_json(config.to_json())
  custom_config = TrainerSettings(again.ranking_for("sid_spm")).custom_config()
  assert TrainerSettings.from_custom_config(custom_config).ranking.distribution == \
      "parameter_server"
  with pytest.raises(ValueError, match=r"^distribution must be one of \('none', 'mirrored', "
                                       r"'multi_worker_mirrored', 'parameter_server'\), "
                                       r"got 'ps'$"):
    config_lib.RankingConfig(distribution="ps")
  with pytest.raises(ValueError, match=r"^distribution parameter_server cannot train "
                                       r"'dense_content' \(it reads content embeddings\); "
                                       r"use multi_worker_mirrored$"):
    config_lib.RankingConfig(representation="dense_content", distribution="parameter_server")
