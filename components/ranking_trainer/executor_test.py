"""SidRankingTrainer: the stock Trainer's fn_args plus the TrainerInputs run_fn reads."""
import json

import pytest

from tfx.proto import trainer_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.ranking_trainer import component
from components.ranking_trainer import executor
from components.ranking_trainer import spec
from contracts import artifacts
from contracts import trainer_io


def _artifact(cls, uri, splits=None):
  a = cls()
  a.uri = uri
  if splits:
    a.split_names = artifact_utils.encode_split_names(splits)
  return a


def _codes(uri, columns, size):
  a = _artifact(artifacts.SemanticIds, uri)
  a.set_int_custom_property("code_columns", columns)
  a.set_int_custom_property("codebook_size", size)
  return a


def _inputs_and_props(tmp_path, packed_splits=None, embeddings=False):
  examples = _artifact(standard_artifacts.Examples, str(tmp_path / "ex"), ["train", "eval"])
  inputs = {"examples": [examples],
            "transform_graph": [_artifact(standard_artifacts.TransformGraph, str(tmp_path / "tg"))],
            "codes_rqvae": [_codes(str(tmp_path / "sids"), 3, 256)],
            "codes_moc": [_codes(str(tmp_path / "moc"), 6, 128)]}
  if embeddings:
    inputs["item_embeddings"] = [_artifact(artifacts.ItemEmbeddings, str(tmp_path / "emb"))]
  if packed_splits:
    packed = _artifact(artifacts.PackedExamples, str(tmp_path / "packed"))
    packed.set_string_custom_property("split_names",
                                      artifact_utils.encode_split_names(packed_splits))
    inputs["packed_examples"] = [packed]
  outputs = {"model": [_artifact(standard_artifacts.Model, str(tmp_path / "model"))],
             "model_run": [_artifact(standard_artifacts.ModelRun, str(tmp_path / "run"))]}
  props = {"train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
           "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"])),
           "run_fn": "trainer.run.run_fn", "custom_config": json.dumps({"settings": "{}"})}
  return inputs, outputs, props


def test_fn_args_carry_every_codebook_and_the_embeddings(tmp_path):
  fn_args = executor.Executor()._GetFnArgs(*_inputs_and_props(tmp_path, embeddings=True))
  assert fn_args.custom_config["settings"] == "{}"  # the DAG's settings are kept
  inputs = trainer_io.TrainerInputs.from_custom_config(fn_args.custom_config)
  assert inputs.codes == {
      "moc": trainer_io.CodesInput(str(tmp_path / "moc"), 6, 128),
      "rqvae": trainer_io.CodesInput(str(tmp_path / "sids"), 3, 256)}
  assert inputs.item_embeddings_uri == str(tmp_path / "emb") and not inputs.packed
  assert fn_args.transform_output == str(tmp_path / "tg")
  assert fn_args.train_files and fn_args.serving_model_dir.startswith(str(tmp_path / "model"))


def test_component_has_the_trainer_spec_plus_one_codes_input_per_codebook():
  made = spec.trainer_spec(["rqvae", "aligned"])
  assert {"examples", "transform_graph", "codes_rqvae", "codes_aligned",
          "item_embeddings", "packed_examples"} <= set(made.INPUTS)
  assert set(made.OUTPUTS) == {"model", "model_run"}  # Evaluator / Pusher take them as usual
  assert not made.INPUTS["codes_rqvae"].optional and made.INPUTS["item_embeddings"].optional
  with pytest.raises(ValueError, match="at least one codebook"):
    component.SidRankingTrainer(examples=None, transform_graph=None, codes={},
                                run_fn="trainer.run.run_fn", custom_config={})


def test_packed_examples_become_the_run_fns_train_and_eval_files(tmp_path):
  fn_args = executor.Executor()._GetFnArgs(*_inputs_and_props(tmp_path, ["train", "eval"]))
  assert fn_args.train_files == [str(tmp_path / "packed" / "Split-train" / "*")]
  assert fn_args.eval_files == [str(tmp_path / "packed" / "Split-eval" / "*")]
  assert trainer_io.TrainerInputs.from_custom_config(fn_args.custom_config).packed
  # Without them run_fn reads Transform's examples.
  plain = executor.Executor()._GetFnArgs(*_inputs_and_props(tmp_path))
  assert plain.train_files == [str(tmp_path / "ex" / "Split-train" / "*")]
  assert not trainer_io.TrainerInputs.from_custom_config(plain.custom_config).packed


def test_packed_examples_without_a_split_name_it(tmp_path):
  with pytest.raises(ValueError, match=r"splits \['train'\], not \['eval'\]"):
    executor.Executor()._GetFnArgs(*_inputs_and_props(tmp_path, ["train"]))
