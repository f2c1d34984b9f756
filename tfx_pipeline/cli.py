"""The `sidrec` command line.

  sidrec data --dataset ml-1m --output DIR      prepare the data and the cold-start split
  sidrec data --interactions PATH --catalog PATH [--columns user=uid,item=sku,...]
              [--user-features country,device] [--format ...] --output DIR
                                                the same from your own files (`sidrec data
                                                --help` states the input contract)
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

Errors the user can cause (a bad flag, a bad --config file or value, an unusable --output,
bad input data) are one line on stderr, `sidrec: error: <command>: ...`, exit status 2;
`--debug` (before or after the command) prints the traceback instead. Anything else is a bug
and keeps its traceback.
"""
import os

# Before TensorFlow loads (TF_USE_LEGACY_KERAS: tfx_pipeline/__init__.py).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import difflib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import traceback  # noqa: E402
from typing import Dict, List, Optional  # noqa: E402

from contracts import config as config_lib  # noqa: E402

# --columns ROLE=COLUMN: the FilesConfig field of each role.
COLUMN_ROLES = {"user": "user_column", "item": "item_column", "time": "time_column",
                "label": "label_column", "rating": "rating_column",
                "catalog_item": "catalog_item_column", "text": "text_column",
                "release": "release_column", "title": "title_column",
                "genres": "genres_column"}
# Roles whose column may be "" (FilesConfig: none / the item column).
_OPTIONAL_ROLES = ("rating", "catalog_item", "release", "title", "genres")
# Flags that describe the user's own files: meaningful with dataset "files" only.
_FILES_FLAGS = (("columns", "--columns"), ("user_features", "--user-features"),
                ("positive_threshold", "--positive-threshold"), ("format", "--format"),
                ("delimiter", "--delimiter"), ("header", "--header/--no-header"),
                ("text_template", "--text-template"))
# Commands that write into the output directory (checked before anything runs).
_WRITING_COMMANDS = ("data", "run", "experiment")


def _one_line(text: str) -> str:
  return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


class _Parser(argparse.ArgumentParser):
  """argparse, with its errors as sidrec's one line: `sidrec: error: <command>: <message>`."""
  command = ""  # the sub-command a sub-parser parses ("" = the top-level parser)
  commands: Dict[str, "_Parser"] = {}  # top-level: the sub-parser of each command

  def error(self, message):
    where = f"{self.command}: " if self.command else ""
    helper = f"sidrec {self.command} --help" if self.command else "sidrec --help"
    self.exit(2, f"sidrec: error: {where}{_one_line(message)} (see `{helper}`)\n")

  def parse_args(self, args=None, namespace=None):
    namespace, extras = self.parse_known_args(args, namespace)
    if extras:
      parser = self.commands.get(getattr(namespace, "command", None), self)
      parser.error(f"unrecognized arguments: {' '.join(extras)}{parser._suggest(extras)}")
    return namespace

  def _suggest(self, extras: List[str]) -> str:
    known = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
    for extra in extras:
      if extra.startswith("--"):
        close = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1)
        if close:
          return f"; did you mean {close[0]}?"
    return ""


def _add_common(parser: argparse.ArgumentParser) -> None:
  # No defaults here for what a --config file also sets: a flag left out must not override
  # the file's value (an experiment config's output_dir silently became ./sidrec_output).
  parser.add_argument("--dataset", choices=config_lib.DATASETS,
                      help="MovieLens 100K / 1M (read from the installed pip packages), "
                           "synthetic, or files (your own: --interactions/--catalog) "
                           "(default: the --config file's, else ml-1m)")
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
  files = parser.add_argument_group(
      "your own data (dataset files; the input contract: `sidrec data --help`)")
  files.add_argument("--interactions", metavar="PATH",
                     help="the interactions: a file, a glob or a directory of shards (any "
                          "tf.io.gfile file system, e.g. gs://); with --catalog, sets "
                          "--dataset files")
  files.add_argument("--catalog", metavar="PATH",
                     help="the item catalog: a file, a glob or a directory of shards")
  files.add_argument("--columns", type=_columns, metavar="ROLE=COLUMN,...",
                     help="which column plays which role, e.g. user=uid,item=sku,time=ts,"
                          "label=clicked; roles (default column): " + _roles_text())
  files.add_argument("--user-features", type=_user_features, metavar="COLUMN,...",
                     help="categorical user feature columns of the interactions, e.g. "
                          "country,device ('' or none: no user features)")
  files.add_argument("--positive-threshold", type=float, metavar="X",
                     help="with a rating column (--columns rating=COL): label = rating >= X "
                          f"(default {config_lib.FilesConfig.positive_threshold})")
  files.add_argument("--format", choices=config_lib.FILE_FORMATS,
                     help="file format (default auto: by file name: .csv, .tsv/.tab, "
                          ".parquet/.pq, .tfrecord[.gz])")
  files.add_argument("--delimiter", type=_delimiter, metavar="C",
                     help="CSV/TSV field delimiter, one character; tab: --delimiter tab or "
                          "'\\t' (default: ',' for csv, tab for tsv)")
  files.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                     help="CSV/TSV: the first line names the columns (the default); "
                          "--no-header: it does not, and columns are named by position "
                          "0, 1, ...")
  files.add_argument("--text-template", metavar="TEMPLATE",
                     help="the item text from catalog columns, e.g. '{title}. Genres: "
                          "{genres}' (default: the text column as it is)")


def _roles_text() -> str:
  """`user (user_id), item (item_id), ...`: the --columns roles and their default columns."""
  defaults = config_lib.FilesConfig()
  unset = {"catalog_item": "the item column"}
  return ", ".join(f"{role} ({getattr(defaults, field) or unset.get(role, 'none')})"
                   for role, field in COLUMN_ROLES.items())


def _representations(text: str) -> tuple:
  names = tuple(n.strip() for n in text.split(",") if n.strip())
  unknown = [n for n in names if n not in config_lib.RankingConfig.REPRESENTATIONS]
  if unknown or not names:
    raise argparse.ArgumentTypeError(
        f"unknown representation(s) {unknown}; choose from "
        f"{', '.join(config_lib.RankingConfig.REPRESENTATIONS)}")
  return names


def _columns(text: str) -> Dict[str, str]:
  """`user=uid,item=sku` -> {"user": "uid", "item": "sku"}."""
  roles: Dict[str, str] = {}
  for part in (p.strip() for p in text.split(",")):
    if not part:
      continue
    role, eq, column = (s.strip() for s in part.partition("="))
    if not eq or not role:
      raise argparse.ArgumentTypeError(
          f"expected ROLE=COLUMN pairs separated by commas, e.g. user=uid,item=sku,time=ts,"
          f"label=clicked; got {part!r}")
    if role not in COLUMN_ROLES:
      close = difflib.get_close_matches(role, list(COLUMN_ROLES), n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      raise argparse.ArgumentTypeError(f"unknown role {role!r}{hint}; the roles are "
                                       f"{', '.join(COLUMN_ROLES)}")
    if role in roles:
      raise argparse.ArgumentTypeError(f"role {role!r} is given twice")
    if not column and role not in _OPTIONAL_ROLES:
      raise argparse.ArgumentTypeError(f"{role}= needs a column name, e.g. {role}=COLUMN")
    roles[role] = column
  if not roles:
    raise argparse.ArgumentTypeError("expected ROLE=COLUMN pairs, e.g. user=uid,item=sku,"
                                     "time=ts,label=clicked")
  return roles


def _user_features(text: str) -> tuple:
  if text.strip().lower() in ("", "none"):
    return ()
  return tuple(n.strip() for n in text.split(",") if n.strip())


def _delimiter(text: str) -> str:
  if text in ("\\t", "tab", "\t"):
    return "\t"
  if len(text) != 1:
    raise argparse.ArgumentTypeError(f"expected one character (a tab: tab or '\\t'), "
                                     f"got {text!r}")
  return text


class UsageError(ValueError):
  """Settings that cannot work: one line for the user, no traceback (main)."""


def build_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
  """Turns CLI flags into the one PipelineConfig (a --config file first, flags on top).

  Every problem with the flags, the --config file or the output directory is a UsageError,
  raised before anything runs.
  """
  try:
    config = _build_config(args)
  except UsageError:
    raise
  except (ValueError, OSError) as e:
    where = f" (--config {args.config})" if getattr(args, "config", None) else ""
    raise UsageError(f"{e}{where}") from e
  _check_output_dir(config, args)
  return config


def _read_config_file(path: str) -> dict:
  """The JSON object of a --config file; UsageError naming the file (and line, column)."""
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except FileNotFoundError as e:
    raise UsageError(f"--config {path}: no such file") from e
  except IsADirectoryError as e:
    raise UsageError(f"--config {path}: is a directory; give a JSON file") from e
  except OSError as e:
    raise UsageError(f"--config {path}: cannot read it: {e.strerror or e}") from e
  except UnicodeDecodeError as e:
    raise UsageError(f"--config {path}: not UTF-8 text (byte {e.start}); a config is a JSON "
                     f"file") from e
  try:
    values = json.loads(text)
  except json.JSONDecodeError as e:
    raise UsageError(f"--config {path}: not valid JSON: line {e.lineno}, column {e.colno}: "
                     f"{e.msg}") from e
  if not isinstance(values, dict):
    raise UsageError(f"--config {path}: expected a JSON object of PipelineConfig sections, e.g. "
                     f"{{\"ranking\": {{\"epochs\": 2}}}}, got {config_lib.describe_value(values)}")
  return values


def _section(values: dict, *path: str) -> Optional[dict]:
  """values[path[0]][path[1]]..., created when missing; None where the file holds something
  other than an object there (from_dict then names that value)."""
  for name in path:
    if name not in values:
      values[name] = {}
    values = values[name]
    if not isinstance(values, dict):
      return None
  return values


def _files_changes(args: argparse.Namespace, values: dict) -> dict:
  """FilesConfig fields set by flags (checked for combinations that cannot work)."""
  changes = {}
  for name in ("interactions", "catalog", "format", "delimiter", "header", "text_template",
               "user_features", "positive_threshold"):
    if getattr(args, name, None) is not None:
      changes[name] = getattr(args, name)
  for role, column in (getattr(args, "columns", None) or {}).items():
    changes[COLUMN_ROLES[role]] = column
  paths = [n for n in ("interactions", "catalog") if n in changes]
  if paths:
    flags = " / ".join(f"--{n}" for n in paths)
    if getattr(args, "dataset", None) not in (None, "files"):
      raise UsageError(f"{flags} read your own data (dataset files), not --dataset "
                       f"{args.dataset}: leave out --dataset (or give --dataset files)")
    if len(paths) == 1:
      other = "catalog" if paths[0] == "interactions" else "interactions"
      data = values.get("data")
      in_file = data.get("files") if isinstance(data, dict) else None
      if not (isinstance(in_file, dict) and in_file.get(other)):
        what = ("the item catalog (item id, text)" if other == "catalog" else
                "the interactions (user id, item id, time, label)")
        raise UsageError(f"--{paths[0]} needs --{other} PATH too: {what}")
  return changes


def _build_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
  config_file = getattr(args, "config", None)
  values = _read_config_file(config_file) if config_file else {}
  files_changes = _files_changes(args, values)
  # Flags on top of the file's values, then one from_dict: the sections' checks see both.
  if args.output:
    values["output_dir"] = args.output
  data = {"dataset": args.dataset} if args.dataset else {}
  if "interactions" in files_changes or "catalog" in files_changes:
    data["dataset"] = "files"
  if args.lenient:
    data["lenient"] = True
  synthetic = {k: v for k, v in (("num_items", args.synthetic_items),
                                 ("num_interactions", args.synthetic_interactions))
               if v is not None}
  ranking = {k: v for k, v in (("seed", args.seed), ("epochs", args.epochs),
                               ("table_budget", args.table_budget)) if v is not None}
  for path, changes in ((("data",), data), (("data", "synthetic"), synthetic),
                        (("data", "files"), files_changes), (("ranking",), ranking),
                        (("split",), {"rule": args.split_rule} if args.split_rule else {})):
    if changes:
      section = _section(values, *path)
      if section is not None:
        section.update(changes)
  if args.representations:
    values["representations"] = list(args.representations)
  try:
    config = config_lib.from_dict(config_lib.PipelineConfig, values)
  except config_lib.ConfigError as e:
    if config_file and e.kind in ("type", "unknown"):  # only the file can hold these
      raise UsageError(f"--config {config_file}: {e}") from e
    raise
  if config.data.dataset != "files":
    given = [flag for name, flag in _FILES_FLAGS if getattr(args, name, None) is not None]
    if given:
      raise UsageError(f"{given[0]} describes your own data files, but the dataset is "
                       f"{config.data.dataset!r}: give --interactions PATH --catalog PATH "
                       f"(dataset files), or leave out {given[0]}")
  threshold = getattr(args, "positive_threshold", None)
  if threshold is not None and not config.data.files.rating_column:
    raise UsageError("--positive-threshold applies to ratings: name the rating column with "
                     "--columns rating=COL (or data.files.rating_column in --config); a 0/1 "
                     "label column needs no threshold")
  if getattr(args, "beam_arg", None):
    config = dataclasses.replace(
        config, beam_pipeline_args=tuple(config.beam_pipeline_args) + tuple(args.beam_arg))
  return config_lib.with_dataset_defaults(config)


def _check_output_dir(config: config_lib.PipelineConfig, args: argparse.Namespace) -> None:
  """A local output directory that cannot be one, or cannot be written: UsageError now,
  before a run fails (or leaves half its outputs) after hours."""
  path = config.output_dir
  if "://" in path:  # gs://... and the like: the file system decides when it is written
    return
  if getattr(args, "output", None):
    name, fix = f"--output {path}", "give --output a directory"
  elif getattr(args, "config", None):
    name, fix = (f"output_dir {path} (--config {args.config})",
                 "set output_dir to a directory, or give --output DIR")
  else:
    name, fix = f"the output directory {path}", "give --output DIR"
  if os.path.exists(path) and not os.path.isdir(path):
    raise UsageError(f"{name} is an existing file, not a directory: {fix} (a new one, or one "
                     f"of an earlier run); the file is left as it is")
  if getattr(args, "command", None) not in _WRITING_COMMANDS:
    return
  parent = os.path.abspath(path)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise UsageError(f"{name}: {parent} is a file, so the directory cannot be created there: "
                     f"{fix} elsewhere")
  if not os.access(parent, os.W_OK | os.X_OK):
    what = "the directory" if parent == os.path.abspath(path) else "its nearest existing parent"
    raise UsageError(f"{name}: {what} {parent} is not writable: {fix} you can write to (or "
                     f"make {parent} writable)")


def _cmd_data(args: argparse.Namespace) -> int:
  config = build_config(args)  # before the imports: a bad flag fails at once
  from tfx_pipeline.data import prepare
  stats = prepare.prepare_data(config)
  print(prepare.format_split_stats(stats))
  print(f"\nPrepared data written to {config.data_dir}")
  return 0


def _cmd_run(args: argparse.Namespace) -> int:
  config = build_config(args)
  from tfx_pipeline import local_runner
  local_runner.run(config, force_prepare=args.force_prepare, parallelism=args.parallelism)
  return 0


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
  return value


def _int_list(text: str) -> tuple:
  try:
    return tuple(int(v) for v in text.split(",") if v.strip())
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _cmd_experiment(args: argparse.Namespace) -> int:
  config = build_config(args)
  from tfx_pipeline import experiment
  try:
    plan = experiment.ExperimentPlan(seeds=args.seeds,
                                     codebook_seeds=args.codebook_seeds or (),
                                     table_budgets=args.table_budgets or (),
                                     moc_scaling_factors=args.moc_scaling or (),
                                     run_main_grid=not args.moc_scaling_only)
    experiment.check_plan(config, plan)
  except ValueError as e:
    raise UsageError(str(e)) from e
  try:
    experiment.run_experiment(config, plan, summarize_only=args.summarize_only)
  except experiment.NothingRecordedError as e:
    if not args.summarize_only:
      raise
    raise UsageError(f"--summarize-only: {e}") from e
  return 0


def _cmd_compile_kubeflow(args: argparse.Namespace) -> int:
  config = build_config(args)
  from tfx_pipeline import kubeflow_v2_runner
  try:
    path = kubeflow_v2_runner.compile_pipeline(
        config, output_file=args.pipeline_file, image=args.image,
        pipeline_root=args.pipeline_root, data_dir=args.data_dir,
        baselines=not args.no_baselines)
  except ValueError as e:
    raise UsageError(str(e)) from e
  print(f"Kubeflow V2 pipeline spec written to {path}")
  return 0


def _cmd_submit(args: argparse.Namespace) -> int:
  from tfx_pipeline import submit
  try:
    return submit.submit_main(args)
  except submit.SubmitError as e:
    raise UsageError(str(e)) from e


def _cmd_run_compiled(args: argparse.Namespace) -> int:
  from tfx_pipeline import kubeflow_local_launcher
  try:
    result = kubeflow_local_launcher.run_compiled(args.pipeline_json, args.pipeline_root,
                                                  parallelism=args.parallelism)
  except (ValueError, kubeflow_local_launcher.LaunchError) as e:
    raise UsageError(str(e)) from e
  print(f"Job {result['job']} finished; its artifacts are under {result['job_dir']}")
  return 0


def _cmd_serve(args: argparse.Namespace) -> int:
  from serving import server
  try:
    return server.serve_main(args)
  except ValueError as e:
    raise UsageError(str(e)) from e


def _cmd_serve_demo(args: argparse.Namespace) -> int:
  config = build_config(args)
  from tfx_pipeline import serving_demo
  try:
    serving_demo.run(config)
  except ValueError as e:
    raise UsageError(str(e)) from e
  return 0


def _cmd_predict(args: argparse.Namespace) -> int:
  from serving import client
  try:
    return client.predict_main(args)
  except (ValueError, client.ServingError) as e:
    raise UsageError(str(e)) from e


def _data_contract() -> str:
  """`sidrec data --help`'s epilog: what your own files must hold."""
  defaults = config_lib.FilesConfig()
  roles = textwrap.fill("--columns ROLE=COLUMN,...; roles (default column): " + _roles_text(),
                        width=86, initial_indent=" " * 16,
                        subsequent_indent=" " * 16).strip()
  return f"""\
Your own data (--interactions PATH --catalog PATH: dataset files):
  interactions  one row per impression: a user id, an item id, a time (unix seconds
                or ISO-8601) and a 0/1 label, or a rating with --positive-threshold X
                (label = rating >= X, default {defaults.positive_threshold}); plus any user
                feature columns (--user-features country,device), categorical (strings
                or integers)
  catalog       one row per item: the item id and its text (one column, or
                --text-template '{{title}}. Genres: {{genres}}' over columns), optionally a
                release time (unix seconds, ISO-8601 or a year), a display title and
                "|"-joined genres; or no text, with precomputed embeddings
                (embedding.encoder "precomputed" in --config)
  columns       {roles}
  formats       CSV/TSV (--delimiter C, --no-header: columns named 0, 1, ...), Parquet,
                TFRecord of tf.Examples; --format auto picks by file name. Each path is a
                file, a glob or a directory of shards, on any tf.io.gfile file system
                (e.g. gs://)

Example:
  sidrec run --interactions 'logs/*.parquet' --catalog items.csv \\
    --columns user=uid,item=sku,time=ts,label=clicked --user-features country,device
"""


def make_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="sidrec", description="Semantic-ID ranking pipelines on TFX.")
  parser.add_argument("--debug", action="store_true",
                      help="on an error, print the traceback instead of one line")
  sub = parser.add_subparsers(dest="command", required=True)
  commands: Dict[str, _Parser] = {}

  def command(name: str, **kwargs) -> _Parser:
    p = sub.add_parser(name, **kwargs)
    p.command = name
    commands[name] = p
    return p

  p = command("data", help="prepare a dataset and its cold-start split",
              description="Prepare a dataset (MovieLens, synthetic or your own files) and its "
                          "cold-start split into DIR/data.",
              epilog=_data_contract(), formatter_class=argparse.RawDescriptionHelpFormatter)
  _add_common(p)
  p.set_defaults(func=_cmd_data)

  p = command("run", help="run the TFX pipeline locally (LocalDagRunner)")
  _add_common(p)
  p.add_argument("--force-prepare", action="store_true",
                 help="re-prepare the data even if DIR/data exists for the same settings")
  p.add_argument("--parallelism", type=_positive_int, default=None, metavar="N",
                 help="DAG nodes run at once, each in a worker process (default: one per core, "
                      "at most 2; 1: TFX's LocalDagRunner, one node after the other)")
  p.set_defaults(func=_cmd_run)

  p = command("experiment", help="representations over seeds, table budgets and MoC "
              "scaling factors; mean and std per cell in DIR/experiment.{json,md}")
  _add_common(p)
  p.add_argument("--force-prepare", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--seeds", type=_int_list, default=(0, 1, 2, 3, 4),
                 help="comma-separated ranking seeds (default 0,1,2,3,4)")
  p.add_argument("--codebook-seeds", type=_int_list,
                 help="comma-separated codebook seeds (codebook.seed), paired one-to-one with "
                 "--seeds: cell i trains its codebooks (and everything downstream) with the "
                 "i-th codebook seed and its ranker with the i-th ranking seed, so the spread "
                 "includes codebook training; a single value is shared by every cell "
                 "(default: the config's codebook.seed in every cell)")
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

  p = command("compile-kubeflow", help="compile the pipeline for Kubeflow Pipelines V2")
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
  p = command("submit", help="start a run of a compiled pipeline on Kubeflow Pipelines "
              "(kfp SDK) or Vertex AI Pipelines (REST)")
  submit_lib.add_submit_arguments(p)
  p.set_defaults(func=_cmd_submit)

  p = command("run-compiled", help="run a compiled pipeline JSON on this machine as the "
              "Kubeflow backend would (tasks in subprocesses of this Python, no "
              "containers; tfx_pipeline/kubeflow_local_launcher.py)")
  p.add_argument("pipeline_json", help="the PipelineJob JSON `sidrec compile-kubeflow` wrote")
  p.add_argument("--pipeline-root", help="local directory for the run's artifacts and the "
                 "ledger resolvers query (default: the job's gcsOutputDirectory, if local)")
  p.add_argument("--parallelism", type=int, default=None, metavar="N",
                 help="run at most N tasks at a time, each once its upstream tasks finished "
                 "(default: one per core, at most 4; 1: one at a time, in dependency order)")
  p.set_defaults(func=_cmd_run_compiled)

  from serving import client as serving_client  # argparse only: no TensorFlow import
  from serving import server as serving_server
  p = command("serve", help="serve the pushed models: tensorflow_model_server when it "
              "is on PATH, else sidrec's local model server (a stand-in for it that "
              "keeps its gRPC and REST contract)")
  serving_server.add_serve_arguments(p)
  p.set_defaults(func=_cmd_serve)

  p = command("predict", help="rank candidates for a user through a model server "
              "(gRPC or REST); new items by their SID or content embedding")
  serving_client.add_predict_arguments(p)
  p.set_defaults(func=_cmd_predict)

  p = command("serve-demo", help="serve DIR/serving with sidrec's local model server "
              "and rank a real user's eval items, one of them never seen, over REST; "
              "prints the serve and predict commands that do the same")
  _add_common(p)
  p.set_defaults(func=_cmd_serve_demo)

  for p in commands.values():
    # SUPPRESS: a sub-command that is not given --debug leaves `sidrec --debug CMD`'s value.
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an error, print the traceback instead of one line")
  parser.commands = commands
  return parser


def _is_user_error(error: BaseException) -> bool:
  """An error the user caused and can fix from its message (one line, no traceback)."""
  kinds = [UsageError]
  # Only modules already loaded can have raised their errors (and the CLI stays light).
  for module, name in (("tfx_pipeline.data.errors", "DataError"),
                       ("contracts.embeddings_io", "EmbeddingValidationError")):
    if module in sys.modules:
      kinds.append(getattr(sys.modules[module], name))
  return isinstance(error, tuple(kinds))


def main(argv: Optional[List[str]] = None) -> int:
  args = make_parser().parse_args(argv)
  try:
    return args.func(args)
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return 130
  except Exception as e:  # pylint: disable=broad-except
    if not _is_user_error(e):
      raise  # a bug: its traceback
    if getattr(args, "debug", False):
      traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    else:
      print(f"sidrec: error: {args.command}: {_one_line(e)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
