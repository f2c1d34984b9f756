"""`sidrec` flags turn into the one PipelineConfig; bad values fail with a message."""
import pytest

from tfx_pipeline import cli


def test_representations_and_ranking_flags():
  args = cli.make_parser().parse_args(
      ["run", "--dataset", "ml-100k", "--representations", "random_id, sid_spm,moc",
       "--seed", "3", "--epochs", "1", "--table-budget", "4096"])
  config = cli.build_config(args)
  assert config.representations == ("random_id", "sid_spm", "moc")
  assert (config.ranking.seed, config.ranking.epochs, config.ranking.table_budget) == (3, 1, 4096)
  assert config.data.dataset == "ml-100k"


def test_config_file_values_stand_unless_a_flag_is_given(tmp_path):
  from contracts import config as config_lib
  path = tmp_path / "experiment.json"
  path.write_text(config_lib.PipelineConfig(output_dir=str(tmp_path / "runs")).to_json()
                  .replace('"ml-1m"', '"ml-100k"'))
  config = cli.build_config(cli.make_parser().parse_args(["experiment", "--config", str(path)]))
  assert (config.output_dir, config.data.dataset) == (str(tmp_path / "runs"), "ml-100k")
  config = cli.build_config(cli.make_parser().parse_args(
      ["experiment", "--config", str(path), "--output", "elsewhere", "--dataset", "synthetic"]))
  assert (config.output_dir, config.data.dataset) == ("elsewhere", "synthetic")
  config = cli.build_config(cli.make_parser().parse_args(["run"]))
  assert (config.output_dir, config.data.dataset) == ("sidrec_output", "ml-1m")


def test_unknown_representation_names_the_choices(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.make_parser().parse_args(["run", "--representations", "sid_spm,sid_bpe"])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert "sid_bpe" in err and "sid_prefix_ngram" in err
