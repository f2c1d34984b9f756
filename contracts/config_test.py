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
    ({"codebook_overrides": {"rq_vae": {"levels": 2}}},
     r"codebook_overrides names 'rq_vae', not a codebook method of \['rqvae'"),
    ({"codebook_overrides": {"aligned_rq_vae": {"levels": 2}}},
     "codebook_overrides names 'aligned_rq_vae', not a codebook method"),
    ({"codebook_overrides": {"rqvae": {"levls": 2}}},
     r"^codebook_overrides\.rqvae\.levls: unknown CodebookConfig field; did you mean 'levels'\?$"),
    ({"codebook_overrides": {"rqvae": {"levels": "6"}}},
     r"^codebook_overrides\.rqvae\.levels: expected an integer, got \"6\" \(a string\)$"),
    ({"codebook_overrides": {"rqvae": {"levels": 0}}},
     r"^codebook_overrides\.rqvae: codebook needs levels >= 1"),
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
  with pytest.raises(ValueError, match="^ranking.history_length: 5 differs from split"):
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
  with pytest.raises(config_lib.ConfigError, match=r"^ranking\.input_cach: unknown RankingConfig "
                                                  r"field; did you mean 'input_cache'\?$"):
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
                                       r"'dense_content' \(it looks content or aligned codes up by "
                                       r"item id\); "
                                       r"use multi_worker_mirrored$"):
    config_lib.RankingConfig(representation="dense_content", distribution="parameter_server")


# --- from_json: every value checked against its field's type, by dotted path ---------------
@pytest.mark.parametrize("text, message", [
    ('{"ranking": {"epochs": "x"}}',
     r'^ranking\.epochs: expected an integer, got "x" \(a string\)$'),
    ('{"ranking": {"epochs": true}}', r"^ranking\.epochs: expected an integer, got true$"),
    ('{"ranking": {"epochs": 2.0}}',
     r"^ranking\.epochs: expected an integer, got 2\.0 \(a number\); write it without a decimal"),
    ('{"ranking": {"epochs": null}}', r"^ranking\.epochs: expected an integer, got null$"),
    ('{"ranking": {"learning_rate": "fast"}}', r'^ranking\.learning_rate: expected a number'),
    ('{"ranking": {"use_history": "true"}}',
     r'^ranking\.use_history: expected true or false, got "true" \(a string\); write true or '
     r'false without quotes$'),
    ('{"ranking": {"use_history": 1}}', r"^ranking\.use_history: expected true or false, got 1"),
    ('{"ranking": {"optimizer": 3}}',
     r"^ranking\.optimizer: expected a string, got 3 \(a number\)"),
    ('{"ranking": {"mlp_dims": 64}}', r"^ranking\.mlp_dims: expected a JSON array, got 64"),
    ('{"codebook": {"hidden_dims": [256, "x"]}}',
     r'^codebook\.hidden_dims\[1\]: expected an integer, got "x"'),
    ('{"representations": "sid_spm"}', r"^representations: expected a JSON array"),
    ('{"codebook_overrides": []}', r"^codebook_overrides: expected a JSON object, got \[\]"),
    ('{"ranking": 3}', r"^ranking: expected a JSON object \(the RankingConfig section\), got 3"),
    ('{"ranking": []}',
     r"^ranking: expected a JSON object \(the RankingConfig section\), got \[\]"),
    ('{"ranking": null, "sid_method": "moc"}', r"^ranking: expected a JSON object .*got null$"),
    ('{"data": {"synthetic": "big"}}', r"^data\.synthetic: expected a JSON object \(the "
                                       r"SyntheticConfig section\)"),
    ('{"data": {"files": {"header": "no"}}}', r"^data\.files\.header: expected true or false"),
    ('{"data": {"files": {"user_features": "country"}}}',
     r"^data\.files\.user_features: expected a JSON array"),
    ('[1, 2]', r"^PipelineConfig: expected a JSON object"),
])
def test_wrong_types_name_the_field_the_type_and_the_value(text, message):
  with pytest.raises(config_lib.ConfigError, match=message) as raised:
    config_lib.PipelineConfig.from_json(text)
  assert raised.value.kind == "type" and "\n" not in str(raised.value)


@pytest.mark.parametrize("text, path, suggestion", [
    ('{"ranking": {"epoch": 2}}', "ranking.epoch", "epochs"),
    ('{"rankng": {}}', "rankng", "ranking"),
    ('{"data": {"synthetic": {"num_item": 50}}}', "data.synthetic.num_item", "num_items"),
    ('{"data": {"files": {"user_colum": "uid"}}}', "data.files.user_colum", "user_column"),
    ('{"data": {"files": {"positive_treshold": 3}}}', "data.files.positive_treshold",
     "positive_threshold"),
    ('{"serving": {"warmup_request": 3}}', "serving.warmup_request", "warmup_requests"),
])
def test_unknown_fields_suggest_the_nearest_name(text, path, suggestion):
  with pytest.raises(config_lib.ConfigError) as raised:
    config_lib.PipelineConfig.from_json(text)
  assert str(raised.value).startswith(f"{path}: unknown ")
  assert str(raised.value).endswith(f"field; did you mean {suggestion!r}?")
  assert (raised.value.kind, raised.value.path) == ("unknown", path)


def test_an_unknown_field_without_a_near_name_lists_the_section():
  with pytest.raises(config_lib.ConfigError,
                     match=r"^ranking\.zzz: unknown RankingConfig field; RankingConfig has: "
                           r"aligned_sid_codebook, batch_size, .*epochs, .*use_history"):
    config_lib.PipelineConfig.from_json('{"ranking": {"zzz": 1}}')


@pytest.mark.parametrize("text, message", [
    ('{"ranking": {"representation": "sid_bpe"}}',
     r"^ranking: representation must be one of .* got 'sid_bpe'$"),
    ('{"ranking": {"epochs": 0}}', r"^ranking needs .*epochs"),  # names its section already
    ('{"data": {"files": {"format": "xls"}}}', r"^data\.files\.format must be one of"),
    ('{"data": {"files": {"user_features": ["country", "country"]}}}',
     r"^data\.files\.user_features lists a column twice"),
    ('{"data": {"dataset": "files", "files": {"interactions": "logs.csv"}}}',
     r"^data\.dataset 'files' needs data\.files\.catalog: give --interactions PATH --catalog"),
    ('{"data": {"dataset": "imdb"}}', r"^data\.dataset must be one of"),
    ('{"split": {"new_item_fraction": 1.5}}', r"^split: new_item_fraction must be in \(0, 1\)$"),
    ('{"representations": ["sid_spm", "sid_spm"]}', r"^representations must be distinct"),
])
def test_values_a_section_refuses_are_prefixed_by_the_section(text, message):
  with pytest.raises(config_lib.ConfigError, match=message) as raised:
    config_lib.PipelineConfig.from_json(text)
  assert raised.value.kind == "value"


def test_json_types_convert_and_the_pipeline_s_own_json_round_trips():
  config = config_lib.PipelineConfig.from_json(
      '{"codebook": {"hidden_dims": [512, 256]}, "ranking": {"learning_rate": 1, '
      '"mlp_dims": [32]}, "data": {"files": {"user_features": ["country"], '
      '"positive_threshold": 3}}, "serving": {"warmup_candidates": [1, 5]}}')
  assert config.codebook.hidden_dims == (512, 256) and config.ranking.mlp_dims == (32,)
  assert isinstance(config.ranking.learning_rate, float) and config.ranking.learning_rate == 1.0
  assert config.data.files.user_features == ("country",)
  assert config.data.files.positive_threshold == 3.0
  assert config.serving.warmup_candidates == (1, 5)
  # Everything the pipeline writes (exec properties) reads back as the same value.
  files = config_lib.FilesConfig(interactions="gs://b/logs/*.parquet", catalog="items.csv",
                                 rating_column="stars", delimiter="\t", header=False,
                                 user_features=("country", "device"))
  written = config_lib.replace_section(config, "data", dataset="files", files=files)
  assert config_lib.PipelineConfig.from_json(written.to_json()) == written
  for section in (written.ranking, written.codebook, written.embedding, written.serving):
    assert config_lib.from_json(type(section), config_lib.to_json(section)) == section
  # A nested list stays a (nested) tuple where the field's default does not say more.
  assert config_lib.from_dict(config_lib.FilesConfig, {"user_features": []}).user_features == ()


def test_a_method_trained_only_as_an_aligned_twin_takes_overrides_for_the_twin():
  config = config_lib.PipelineConfig(
      codebook_methods=("rqvae",), representations=("no_item", "aligned_sid_prefix_ngram"),
      codebook_overrides={"rqkmeans": {"levels": 2},
                          "aligned_rqkmeans": {"rqkmeans_normalize": False}})
  twin = config.codebook_for("aligned_rqkmeans")
  assert (twin.method, twin.levels, twin.rqkmeans_normalize) == ("rqkmeans", 2, False)


def test_the_aligned_codebook_choice_reaches_only_the_trainers_that_read_aligned_codes():
  """So changing ranking.aligned_sid_codebook keeps every other Trainer's cache entry."""
  default = config_lib.PipelineConfig(representations=("sid_spm", "aligned_sid_spm",
                                                       "aligned_moc"))
  changed = dataclasses.replace(
      default, ranking=dataclasses.replace(default.ranking, aligned_sid_codebook="rqvae"))
  assert changed.ranking_for("sid_spm") == default.ranking_for("sid_spm")
  assert changed.ranking_for("aligned_moc") == default.ranking_for("aligned_moc")
  assert changed.ranking_for("aligned_sid_spm").aligned_sid_codebook == "rqvae"
  assert changed.codebooks_read("aligned_sid_spm") == ("aligned_rqvae",)


def test_a_separate_history_table_reaches_only_the_trainers_with_item_vectors():
  """The no-item floor has no history table: switching history_table keeps its cache entry."""
  default = config_lib.PipelineConfig(representations=("no_item", "item_id_vocab"))
  changed = dataclasses.replace(
      default, ranking=dataclasses.replace(default.ranking, history_table="separate"))
  assert changed.ranking_for("no_item") == default.ranking_for("no_item")
  assert changed.ranking_for("item_id_vocab").history_table == "separate"
  assert changed.ranking_for("aligned_sid_prefix_ngram").history_table == "separate"
