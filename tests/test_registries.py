"""The extension-point registries (contracts/registry): every entry resolves to what it names,
the configuration and the factories read them, and a new entry is picked up without editing
the files that consume it."""
import dataclasses

import pytest
import tensorflow as tf

from contracts import config as config_lib
from contracts.registry import codebook_methods
from contracts.registry import metrics
from contracts.registry import representations
from contracts.registry import resolve


@pytest.mark.parametrize("name", representations.NAMES)
def test_every_representation_entry_resolves_to_a_builder(name):
  entry = representations.get(name)
  assert callable(resolve(entry.builder))
  assert all(p in representations.REPRESENTATIONS for p in entry.parts)
  assert config_lib.RankingConfig(representation=name).representation == name


@pytest.mark.parametrize("name", codebook_methods.NAMES)
def test_every_codebook_method_entry_resolves_to_a_codebook_class(name):
  from components.codebook import base  # pylint: disable=g-import-not-at-top
  from components.codebook import train  # pylint: disable=g-import-not-at-top
  method = codebook_methods.get(name)
  assert issubclass(resolve(method.codebook_class), base.Codebook)
  codebook = train.make_codebook(config_lib.CodebookConfig(method=name, levels=2,
                                                           codebook_size=4))
  assert type(codebook).__name__ == method.codebook_class.rpartition(":")[2]
  assert method.component_prefix[0].isupper()


def test_every_reported_metric_has_a_tfma_producer_and_a_real_gate():
  from tensorflow_model_analysis.metrics import metric_types  # pylint: disable=g-import-not-at-top
  for metric in metrics.TFMA_METRICS:
    cls = resolve(f"{metric.module}:{metric.class_name}")
    assert issubclass(cls, metric_types.Metric), metric
  gates = {f.name for f in dataclasses.fields(config_lib.EvaluationConfig)}
  for reported in metrics.REPORTED:
    metrics.producer(reported.tfma_name)  # raises when nothing outputs it
    assert reported.gate is None or reported.gate in gates, reported
  assert len({m.key for m in metrics.REPORTED}) == len(metrics.REPORTED)


def test_the_default_pipeline_joins_the_codebooks_a_representation_can_read():
  from tfx_pipeline import pipeline  # pylint: disable=g-import-not-at-top
  config = config_lib.PipelineConfig()
  assert pipeline.joined_codebooks(config) == ["rqvae", "moc"]  # not rqkmeans
  with_moc_sid = dataclasses.replace(config, ranking=config_lib.RankingConfig(
      sid_codebook="rqkmeans"))
  assert pipeline.joined_codebooks(with_moc_sid) == ["moc", "rqkmeans"]


def test_codebook_defaults_sit_under_the_overrides(monkeypatch):
  method = dataclasses.replace(codebook_methods.get("rqkmeans"), defaults={"levels": 4,
                                                                          "seed": 7})
  monkeypatch.setitem(codebook_methods.METHODS, "rqkmeans", method)
  config = config_lib.PipelineConfig(codebook_overrides={"rqkmeans": {"levels": 2}})
  assert (config.codebook_for("rqkmeans").levels, config.codebook_for("rqkmeans").seed) == (2, 7)
  assert config.codebook_for("rqvae").levels == config.codebook.levels == 3


def test_unknown_names_are_refused_by_name():
  with pytest.raises(ValueError, match="representation must be one of"):
    config_lib.RankingConfig(representation="sid_trigram")
  with pytest.raises(ValueError, match="codebook method must be one of"):
    config_lib.CodebookConfig(method="no_such_method")
  with pytest.raises(ValueError, match="reads the codes of codebook\\(s\\) \\['moc'\\]"):
    config_lib.PipelineConfig(codebook_methods=("rqvae",), representations=("moc",))
  with pytest.raises(ValueError, match="sid_codebook 'moc' must be one of"):
    config_lib.PipelineConfig(codebook_methods=("rqvae",),
                              ranking=config_lib.RankingConfig(sid_codebook="moc"))


def test_a_new_representation_is_one_entry_plus_its_builder(monkeypatch):
  """What the README's "how to add a representation" promises: register an entry (here a
  throwaway prefix-ngram over the MoC codes) and the config, the factory and the model take
  it, with nothing else edited."""
  from trainer.model import features as F  # pylint: disable=g-import-not-at-top
  from trainer.model import ranking  # pylint: disable=g-import-not-at-top
  entry = representations.Representation(
      "moc_prefix_ngram", "trainer.model.representations.sid_ngram:sid_prefix_ngram",
      codebook="moc")
  monkeypatch.setitem(representations.REPRESENTATIONS, entry.name, entry)
  monkeypatch.setattr(representations, "NAMES", tuple(representations.REPRESENTATIONS))
  monkeypatch.setattr(config_lib.RankingConfig, "REPRESENTATIONS", representations.NAMES)
  config = config_lib.PipelineConfig(representations=("moc_prefix_ngram",))
  sizes = F.VocabSizes(user_id=5, codebooks={"moc": F.CodebookSizes(3, 4)}, history_length=2)
  model = ranking.SidRankingModel(config.ranking_for("moc_prefix_ngram"), sizes)
  assert model.item_feature_names == (F.item_codes("moc"),)
  assert model.representation.table_rows == 4 + 16 + 64
  features = {F.USER_ID: tf.constant([1, 2], tf.int64),
              F.item_codes("moc"): tf.constant([[0, 1, 2], [3, 3, 3]], tf.int64),
              F.history_name(F.item_codes("moc")): tf.zeros([2, 2, 3], tf.int64),
              F.HISTORY_MASK: tf.constant([[1.0, 0.0], [0.0, 0.0]])}
  assert model(features).shape == (2,)


def test_a_new_codebook_method_is_one_entry_plus_its_class(monkeypatch):
  """"How to add a codebook method": a registered entry (here a throwaway second name for the
  RQ-KMeans class) is trained by name, and the DAG gives it its own components and codes."""
  from components.codebook import train  # pylint: disable=g-import-not-at-top
  from tfx_pipeline import pipeline  # pylint: disable=g-import-not-at-top
  method = codebook_methods.CodebookMethod(
      "rqkmeans_copy", "components.codebook.rqkmeans:RqKMeansCodebook", "RqKMeansCopy",
      takes_strategy=False)
  monkeypatch.setitem(codebook_methods.METHODS, method.name, method)
  monkeypatch.setattr(codebook_methods, "NAMES", tuple(codebook_methods.METHODS))
  monkeypatch.setattr(config_lib, "CODEBOOK_METHODS", codebook_methods.NAMES)
  codebook = train.make_codebook(config_lib.CodebookConfig(method="rqkmeans_copy"))
  assert type(codebook).__name__ == "RqKMeansCodebook"
  config = config_lib.PipelineConfig(
      codebook_methods=("rqvae", "rqkmeans_copy"), representations=("sid_spm",),
      ranking=config_lib.RankingConfig(sid_codebook="rqkmeans_copy"))
  dag = pipeline.create_pipeline(config)
  ids = {c.id for c in dag.components}
  assert {"RqKMeansCopyCodebookTrainer", "RqKMeansCopySemanticIdAssigner"} <= ids
  # As the SID codebook its codes reach the Joiner, Transform (SentencePiece sub-IDs) and
  # the Trainer; the RQ-VAE codes, which no representation reads now, do not.
  joiner = next(c for c in dag.components if c.id == "SemanticIdJoiner")
  trainer = next(c for c in dag.components if c.id == "SidSpmTrainer")
  assert {k for k in joiner.inputs if k.startswith("codes_")} == {"codes_rqkmeans_copy"}
  assert {k for k in trainer.inputs if k.startswith("codes_")} == {"codes_rqkmeans_copy"}
  settings = pipeline.transform_settings(config)
  assert settings.spm_codebooks == ("rqkmeans_copy",)
  assert settings.codebook_sizes == {"rqkmeans_copy": 256}
