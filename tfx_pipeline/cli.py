"""The `sidrec` command line.

  sidrec data --dataset ml-1m --output DIR      prepare the data and the cold-start split
  sidrec run  --dataset ml-1m --output DIR      prepare (if needed) and run the TFX pipeline
              [--representations random_id,sid_spm,...]   the ranking models to train
  sidrec experiment --representations ... --seeds 0,1,2,3,4 [--table-budgets ...]
                    [--moc-scaling 1,2,3,7]     the comparison over seeds, mean ± std
  sidrec compile-kubeflow --output DIR ...      compile the same DAG for Kubeflow Pipelines V2
  sidrec submit PIPELINE_JSON --kfp-host URL | --vertex-project P --vertex-region R
                                                start a run of it (Kubeflow or Vertex AI)
  sidrec run-compiled PIPELINE_JSON --pipeline-root DIR
                                                run it on this machine as the KFP backend would
  sidrec serve --model-dir DIR/serving          tensorflow_model_server when installed, else
                                                sidrec's local model server (same contract)
  sidrec predict --server HOST:PORT --model M --user-id U --item-ids I1,I2 [--new-item ...]
                                                rank candidates through a model server
  sidrec serve-demo --output DIR                serve DIR/serving and rank one real user
"""
import os

# Before TensorFlow loads (TF_USE_LEGACY_KERAS: tfx_pipeline/__init__.py).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
from typing import List, Optional  # noqa: E402

from contracts import config as config_lib  # noqa: E402


def _add_common(parser: argparse.ArgumentParser) -> None:
  # No defaults here for what a --config file also sets: a flag left out must not override
  # the file's value (an experiment config's output_dir silently became ./sidrec_output).
  parser.add_argument("--dataset", choices=config_lib.DATASETS,
                      help="MovieLens 100K / 1M (read from the installed pip packages) or "
                           "synthetic (default: the --config file's, else ml-1m)")
  parser.add_argument("--output", help="output directory (default: the --config file's "
                                       "output_dir, else sidrec_output)")
  parser.add_argument("--config", help="JSON file with a PipelineConfig (flags given override it)")
  parser.add_argument("--lenient", action="store_true",
                      help="drop (and count) bad input rows instead of failing on the first one")
  parser.add_argument("--split-rule", choices=config_lib.SPLIT_RULES,
                      help="which items are held out as new (default: per dataset)")
  parser.add_argument("--synthetic-items", type=int, help="catalog size for --dataset synthetic")
  parser.add_argument("--synthetic-interactions", type=int,
                      help="number of interactions for --dataset synthetic")
  parser.add_argument("--representations", type=_representations,
                      help="comma-separated item representations to train, each its own "
                           "Trainer/Evaluator/Pusher on the same Transform output; one of "
                           + ", ".join(config_lib.RankingConfig.REPRESENTATIONS))
  parser.add_argument("--seed", type=int, help="ranking model seed (initializers, shuffle)")
  parser.add_argument("--epochs", type=int, help="ranking model training epochs")
  parser.add_argument("--table-budget", type=int,
                      help="rows per hashed SID table and the SentencePiece vocabulary size")
  parser.add_argument("--beam-arg", action="append", metavar="=--FLAG=VALUE", default=[],
                      help="a Beam pipeline option for every Beam component, e.g. "
                           "--beam-arg=--direct_running_mode=multi_processing (repeatable; "
                           "after the config's beam_pipeline_args, so a flag given here wins; "
                           "README 'Beam runners' lists what Dataflow, Flink and Spark need)")


def _representations(text: str) -> tuple:
  names = tuple(n.strip() for n in text.split(",") if n.strip())
  unknown = [n for n in names if n not in config_lib.RankingConfig.REPRESENTATIONS]
  if unknown or not names:
    raise argparse.ArgumentTypeError(
        f"unknown representation(s) {unknown}; choose from "
        f"{', '.join(config_lib.RankingConfig.REPRESENTATIONS)}")
  return names


class UsageError(ValueError):
  """Settings that cannot work: one line for the user, no traceback (main)."""


def build_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
  """Turns CLI flags into the one PipelineConfig (a --config file first, flags on top)."""
  try:
    return _build_config(args)
  except (ValueError, OSError) as e:
    where = f" (--config {args.config})" if args.config else ""
    raise UsageError(f"{e}{where}") from None


def _build_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
  if args.config:
    with open(args.config) as f:
      try:
        config = config_lib.PipelineConfig.from_json(f.read())
      except TypeError as e:  # a value of the wrong kind, e.g. a number where a section goes
        raise ValueError(e) from None
  else:
    config = config_lib.PipelineConfig()
  if args.output:
    config = dataclasses.replace(config, output_dir=args.output)
  data_changes = {"dataset": args.dataset} if args.dataset else {}
  if args.lenient:
    data_changes["lenient"] = True
  synthetic_changes = {}
  if args.synthetic_items:
    synthetic_changes["num_items"] = args.synthetic_items
  if args.synthetic_interactions:
    synthetic_changes["num_interactions"] = args.synthetic_interactions
  if synthetic_changes:
    data_changes["synthetic"] = dataclasses.replace(config.data.synthetic, **synthetic_changes)
  config = config_lib.replace_section(config, "data", **data_changes)
  if args.split_rule:
    config = config_lib.replace_section(config, "split", rule=args.split_rule)
  ranking_changes = {k: v for k, v in (("seed", args.seed), ("epochs", args.epochs),
                                       ("table_budget", args.table_budget)) if v is not None}
  if ranking_changes:
    config = config_lib.replace_section(config, "ranking", **ranking_changes)
  if args.representations:
    config = dataclasses.replace(config, representations=args.representations)
  if getattr(args, "beam_arg", None):
    config = dataclasses.replace(
        config, beam_pipeline_args=tuple(config.beam_pipeline_args) + tuple(args.beam_arg))
  return config_lib.with_dataset_defaults(config)


def _cmd_data(args: argparse.Namespace) -> int:
  from tfx_pipeline.data import prepare
  config = build_config(args)
  stats = prepare.prepare_data(config)
  print(prepare.format_split_stats(stats))
  print(f"\nPrepared data written to {config.data_dir}")
  return 0


def _cmd_run(args: argparse.Namespace) -> int:
  from tfx_pipeline import local_runner
  config = build_config(args)
  local_runner.run(config, force_prepare=args.force_prepare)
  return 0


def _int_list(text: str) -> tuple:
  try:
    return tuple(int(v) for v in text.split(",") if v.strip())
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _cmd_experiment(args: argparse.Namespace) -> int:
  from tfx_pipeline import experiment
  config = build_config(args)
  try:
    plan = experiment.ExperimentPlan(seeds=args.seeds, table_budgets=args.table_budgets or (),
                                     moc_scaling_factors=args.moc_scaling or (),
                                     run_main_grid=not args.moc_scaling_only)
  except ValueError as e:
    raise UsageError(str(e)) from None
  experiment.run_experiment(config, plan, summarize_only=args.summarize_only)
  return 0


def _cmd_compile_kubeflow(args: argparse.Namespace) -> int:
  from tfx_pipeline import kubeflow_v2_runner
  config = build_config(args)
  try:
    path = kubeflow_v2_runner.compile_pipeline(
        config, output_file=args.pipeline_file, image=args.image,
        pipeline_root=args.pipeline_root, data_dir=args.data_dir,
        baselines=not args.no_baselines)
  except ValueError as e:
    raise UsageError(str(e)) from None
  print(f"Kubeflow V2 pipeline spec written to {path}")
  return 0


def _cmd_submit(args: argparse.Namespace) -> int:
  from tfx_pipeline import submit
  try:
    return submit.submit_main(args)
  except submit.SubmitError as e:
    raise UsageError(str(e)) from None


def _cmd_run_compiled(args: argparse.Namespace) -> int:
  from tfx_pipeline import kubeflow_local_launcher
  try:
    result = kubeflow_local_launcher.run_compiled(args.pipeline_json, args.pipeline_root)
  except (ValueError, kubeflow_local_launcher.LaunchError) as e:
    raise UsageError(str(e)) from None
  print(f"Job {result['job']} finished; its artifacts are under {result['job_dir']}")
  return 0


def _cmd_serve(args: argparse.Namespace) -> int:
  from serving import server
  try:
    return server.serve_main(args)
  except ValueError as e:
    raise UsageError(str(e)) from None


def _cmd_serve_demo(args: argparse.Namespace) -> int:
  from tfx_pipeline import serving_demo
  config = build_config(args)
  try:
    serving_demo.run(config)
  except ValueError as e:
    raise UsageError(str(e)) from None
  return 0


def _cmd_predict(args: argparse.Namespace) -> int:
  from serving import client
  try:
    return client.predict_main(args)
  except (ValueError, client.ServingError) as e:
    raise UsageError(str(e)) from None


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="sidrec", description="Semantic-ID ranking pipelines on TFX.")
  sub = parser.add_subparsers(dest="command", required=True)

  p = sub.add_parser("data", help="prepare a dataset and its cold-start split")
  _add_common(p)
  p.set_defaults(func=_cmd_data)

  p = sub.add_parser("run", help="run the TFX pipeline locally (LocalDagRunner)")
  _add_common(p)
  p.add_argument("--force-prepare", action="store_true",
                 help="re-prepare the data even if DIR/data exists for the same settings")
  p.set_defaults(func=_cmd_run)

  p = sub.add_parser("experiment", help="representations over seeds, table budgets and MoC "
                     "scaling factors; mean and std per cell in DIR/experiment.{json,md}")
  _add_common(p)
  p.add_argument("--force-prepare", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--seeds", type=_int_list, default=(0, 1, 2, 3, 4),
                 help="comma-separated ranking seeds (default 0,1,2,3,4)")
  p.add_argument("--table-budgets", type=_int_list,
                 help="comma-separated table budgets (default: the config's)")
  p.add_argument("--moc-scaling", type=_int_list,
                 help="comma-separated MoC scaling factors, e.g. 1,2,3,7 (default: no sweep)")
  p.add_argument("--moc-scaling-only", action="store_true",
                 help="run only the MoC sweep (the representations' grid is summarized from "
                 "what is recorded, not run)")
  p.add_argument("--summarize-only", action="store_true",
                 help="run nothing: rebuild experiment.json/.md from the runs recorded in "
                 "DIR/experiment_runs under these settings (e.g. while one is running)")
  p.set_defaults(func=_cmd_experiment)

  p = sub.add_parser("compile-kubeflow", help="compile the pipeline for Kubeflow Pipelines V2")
  _add_common(p)
  p.add_argument("--pipeline-file", default="sidrec_pipeline.json")
  p.add_argument("--pipeline-root", help="remote pipeline root, e.g. gs://bucket/sidrec")
  p.add_argument("--data-dir", help="remote location of the prepared data (`sidrec data`'s "
                 "DIR/data copied there, e.g. gs://bucket/sidrec-data); default: the local "
                 "DIR/data, readable only where the cluster mounts it at that path")
  p.add_argument("--image", required=True,
                 help="required: the pipeline image every task runs, built from "
                 "tfx_pipeline/image/Dockerfile and pushed, e.g. REGISTRY/sidrec:0.1.0 (no "
                 "default: TFX's own image has no sidrec in it)")
  p.add_argument("--no-baselines", action="store_true",
                 help="compile no BaselineResolvers (each Evaluator gates on the absolute "
                 "thresholds only): for Kubeflow Pipelines' open-source backend, which does "
                 "not run resolver tasks; Vertex AI Pipelines runs them")
  p.set_defaults(func=_cmd_compile_kubeflow)

  from tfx_pipeline import submit as submit_lib  # argparse only: no TensorFlow import
  p = sub.add_parser("submit", help="start a run of a compiled pipeline on Kubeflow Pipelines "
                     "(kfp SDK) or Vertex AI Pipelines (REST)")
  submit_lib.add_submit_arguments(p)
  p.set_defaults(func=_cmd_submit)

  p = sub.add_parser("run-compiled", help="run a compiled pipeline JSON on this machine as the "
                     "Kubeflow backend would (tasks in subprocesses of this Python, no "
                     "containers; tfx_pipeline/kubeflow_local_launcher.py)")
  p.add_argument("pipeline_json", help="the PipelineJob JSON `sidrec compile-kubeflow` wrote")
  p.add_argument("--pipeline-root", help="local directory for the run's artifacts and the "
                 "ledger resolvers query (default: the job's gcsOutputDirectory, if local)")
  p.set_defaults(func=_cmd_run_compiled)

  from serving import client as serving_client  # argparse only: no TensorFlow import
  from serving import server as serving_server
  p = sub.add_parser("serve", help="serve the pushed models: tensorflow_model_server when it "
                     "is on PATH, else sidrec's local model server (a stand-in for it that "
                     "keeps its gRPC and REST contract)")
  serving_server.add_serve_arguments(p)
  p.set_defaults(func=_cmd_serve)

  p = sub.add_parser("predict", help="rank candidates for a user through a model server "
                     "(gRPC or REST); new items by their SID or content embedding")
  serving_client.add_predict_arguments(p)
  p.set_defaults(func=_cmd_predict)

  p = sub.add_parser("serve-demo", help="serve DIR/serving with sidrec's local model server "
                     "and rank a real user's eval items, one of them never seen, over REST; "
                     "prints the serve and predict commands that do the same")
  _add_common(p)
  p.set_defaults(func=_cmd_serve_demo)
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  args = make_parser().parse_args(argv)
  try:
    return args.func(args)
  except UsageError as e:
    print(f"sidrec {args.command}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
