"""SidRankingTrainer: the stock Trainer's fn_args plus the item-table URIs for run_fn."""
import json

import pytest

from tfx.proto import trainer_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import artifacts
from components.ranking_trainer import component
from components.ranking_trainer import executor


def _artifact(cls, uri, splits=None):
  a = cls()
  a.uri = uri
  if splits:
    a.split_names = artifact_utils.encode_split_names(splits)
  return a


def test_fn_args_carry_the_item_table_uris(tmp_path):
  examples = _artifact(standard_artifacts.Examples, str(tmp_path / "ex"), ["train", "eval"])
  inputs = {"examples": [examples],
            "transform_graph": [_artifact(standard_artifacts.TransformGraph, str(tmp_path / "tg"))],
            "semantic_ids": [_artifact(artifacts.SemanticIds, str(tmp_path / "sids"))],
            "item_embeddings": [_artifact(artifacts.ItemEmbeddings, str(tmp_path / "emb"))]}
  outputs = {"model": [_artifact(standard_artifacts.Model, str(tmp_path / "model"))],
             "model_run": [_artifact(standard_artifacts.ModelRun, str(tmp_path / "run"))]}
  props = {"train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs()),
           "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs()),
           "run_fn": "trainer.run.run_fn", "custom_config": json.dumps({"ranking": "{}"})}
  fn_args = executor.Executor()._GetFnArgs(inputs, outputs, props)
  assert fn_args.custom_config["ranking"] == "{}"  # the user's config is kept
  assert fn_args.custom_config[executor.ITEM_TABLES] == {
      "semantic_ids_uri": str(tmp_path / "sids"), "item_embeddings_uri": str(tmp_path / "emb")}
  assert fn_args.transform_output == str(tmp_path / "tg")
  assert fn_args.train_files and fn_args.serving_model_dir.startswith(str(tmp_path / "model"))


def test_component_has_the_trainer_spec_plus_item_inputs():
  spec = component.SidRankingTrainerSpec
  assert {"examples", "transform_graph", "semantic_ids", "moc_codes",
          "item_embeddings"} <= set(spec.INPUTS)
  assert set(spec.OUTPUTS) == {"model", "model_run"}  # Evaluator / Pusher take them as usual
  assert not spec.INPUTS["semantic_ids"].optional and spec.INPUTS["moc_codes"].optional


def _inputs_and_props(tmp_path, packed_splits=None):
  examples = _artifact(standard_artifacts.Examples, str(tmp_path / "ex"), ["train", "eval"])
  inputs = {"examples": [examples],
            "transform_graph": [_artifact(standard_artifacts.TransformGraph, str(tmp_path / "tg"))],
            "semantic_ids": [_artifact(artifacts.SemanticIds, str(tmp_path / "sids"))]}
  if packed_splits:
    packed = _artifact(artifacts.PackedExamples, str(tmp_path / "packed"))
    packed.set_string_custom_property("split_names",
                                      artifact_utils.encode_split_names(packed_splits))
    inputs["packed_examples"] = [packed]
  outputs = {"model": [_artifact(standard_artifacts.Model, str(tmp_path / "model"))],
             "model_run": [_artifact(standard_artifacts.ModelRun, str(tmp_path / "run"))]}
  props = {"train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
           "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"])),
           "run_fn": "trainer.run.run_fn", "custom_config": json.dumps({"ranking": "{}"})}
  return inputs, outputs, props


def test_packed_examples_become_the_run_fns_train_and_eval_files(tmp_path):
  fn_args = executor.Executor()._GetFnArgs(*_inputs_and_props(tmp_path, ["train", "eval"]))
  assert fn_args.train_files == [str(tmp_path / "packed" / "Split-train" / "*")]
  assert fn_args.eval_files == [str(tmp_path / "packed" / "Split-eval" / "*")]
  assert fn_args.custom_config[executor.PACKED_INPUT] is True
  # Without them run_fn reads Transform's examples, and is told nothing else.
  plain = executor.Executor()._GetFnArgs(*_inputs_and_props(tmp_path))
  assert plain.train_files == [str(tmp_path / "ex" / "Split-train" / "*")]
  assert executor.PACKED_INPUT not in plain.custom_config


def test_packed_examples_without_a_split_name_it(tmp_path):
  with pytest.raises(ValueError, match=r"splits \['train'\], not \['eval'\]"):
    executor.Executor()._GetFnArgs(*_inputs_and_props(tmp_path, ["train"]))
