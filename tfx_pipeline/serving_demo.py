"""`sidrec serve-demo`: the pushed models answering a real user, as a client would ask.

Starts the model server on DIR/serving (tensorflow_model_server is not started here: the demo
runs sidrec's local model server, the stand-in that keeps its contract, in process, on free
ports on 127.0.0.1), picks a real user of the eval split who rated an item held out of
training, and ranks that user's eval items over REST with serving/client.py, plus one item the
model has never seen, ranked from its SID. Prints the commands that do the same by hand:
`sidrec serve`, the stock server's command line, and `sidrec predict`.

The item "never seen" is a held-out item under an id the model's tables do not hold, sent with
the SID its codebook assigns it (DIR's SemanticIds artifact): the same path a brand-new item
takes (serve_new_items), with an item whose true rating is known.
"""
import collections
import glob
import json
import os
import posixpath
import shlex
from typing import Dict, List, Optional

from contracts import config as config_lib
from contracts import schema
from contracts import semantic_ids_io
from contracts import serving_api
from tfx_pipeline import pipeline as pipeline_lib

NEVER_SEEN_SUFFIX = " [never seen: ranked from its SID]"
MAX_CANDIDATES = 9


def _eval_examples(data_dir: str, limit: int = 50_000):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  files = sorted(glob.glob(os.path.join(data_dir, schema.EVAL_DIR, "*")))
  if not files:
    raise ValueError(f"no eval split under {data_dir}: run `sidrec run --output DIR` first")
  for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(
      limit).as_numpy_iterator():
    yield tf.train.Example.FromString(record)


def _value(example, name):
  feature = example.features.feature[name]
  values = list(feature.bytes_list.value or feature.int64_list.value or feature.float_list.value)
  values = [v.decode() if isinstance(v, bytes) else v for v in values]
  return values if name == schema.HISTORY_ITEM_IDS else values[0]


def _user(example) -> Dict[str, object]:
  """user_id and every user feature the data declares (its `user_*` features), by name."""
  names = [schema.USER_ID] + schema.user_features_in(example.features.feature)
  return {k: _value(example, k) for k in names}


def pick_user(data_dir: str) -> Dict[str, object]:
  """The first user (by id) with a liked held-out item, at least 5 eval interactions and a
  full history before the first of them (training items only); the candidates are the user's
  eval items, which come after that history."""
  by_user = collections.defaultdict(list)
  for example in _eval_examples(data_dir):
    by_user[_value(example, schema.USER_ID)].append(example)
  for user_id in sorted(by_user):
    rows = by_user[user_id]
    liked_new = [e for e in rows if _value(e, schema.ITEM_COHORT) == schema.COHORT_NEW
                 and _value(e, schema.LABEL) == 1]
    first = min(rows, key=lambda e: _value(e, schema.TIMESTAMP))
    if liked_new and len(rows) >= 5 and all(_value(first, schema.HISTORY_ITEM_IDS)):
      candidates = list(dict.fromkeys(_value(e, schema.ITEM_ID) for e in rows))
      return {
          "user": _user(first),
          "history": [h for h in _value(first, schema.HISTORY_ITEM_IDS) if h],
          "candidates": candidates[:MAX_CANDIDATES],
          "labels": {_value(e, schema.ITEM_ID): _value(e, schema.LABEL) for e in rows},
          "cohort": {_value(e, schema.ITEM_ID): _value(e, schema.ITEM_COHORT) for e in rows},
          "held_out": _value(liked_new[0], schema.ITEM_ID)}
  raise ValueError(f"no eval user in {data_dir} rated a held-out item with at least 5 eval "
                   f"interactions")


def _representation(config: config_lib.PipelineConfig) -> Optional[str]:
  """A representation pushed to DIR/serving that reads the SID codebook (sid_spm first)."""
  from contracts.registry import representations  # pylint: disable=g-import-not-at-top
  from serving import model_config  # pylint: disable=g-import-not-at-top
  pushed = (model_config.discover_models(config.serving_dir)
            if os.path.isdir(config.serving_dir) else {})
  names = sorted(representations.NAMES, key=lambda n: (n != "sid_spm", n))
  for name in names:
    if pipeline_lib.model_name(name) in pushed and config.ranking.sid_codebook in (
        representations.get(name).codebooks(config.ranking.sid_codebook,
                                            config.ranking.aligned_sid_codebook)):
      return name
  return None


def run(config: config_lib.PipelineConfig) -> str:
  """Serves DIR/serving, ranks one user's candidates over REST; returns what it printed."""
  from serving import client as client_lib  # pylint: disable=g-import-not-at-top
  from serving import server as server_lib  # pylint: disable=g-import-not-at-top
  report_path = os.path.join(config.output_dir, "report.json")
  if not os.path.exists(report_path):
    raise ValueError(f"{report_path} not found: run `sidrec run --output {config.output_dir}` "
                     f"first")
  with open(report_path) as f:
    report = json.load(f)
  representation = _representation(config)
  if representation is None:
    raise ValueError(f"no pushed model in {config.serving_dir} reads semantic IDs "
                     f"(codebook {config.ranking.sid_codebook}); run with --representations "
                     f"sid_spm")
  model = pipeline_lib.model_name(representation)
  sids = semantic_ids_io.read_sids(
      report["codebooks"][config.ranking.sid_codebook]["assignment"]["uri"])
  pick = pick_user(config.data_dir)
  never_seen = pick["held_out"] + NEVER_SEEN_SUFFIX
  sid = [int(c) for c in sids[pick["held_out"]]]

  lines = []
  serving_dir = os.path.abspath(config.serving_dir)
  # In the container the serving directory is /models/serving; deploy/models.config (written
  # by the local runner) names the base paths as the container sees them.
  from serving import deploy  # pylint: disable=g-import-not-at-top
  stock = server_lib.stock_server_commands(serving_dir, docker_model_config_file=posixpath.join(
      deploy.CONTAINER_MODELS_ROOT, deploy.DEFAULT_OUT_DIR, serving_api.MODELS_CONFIG_FILE))
  lines += ["", "Serve the pushed models:",
            f"  sidrec serve --model-dir {shlex.quote(serving_dir)}",
            "    (tensorflow_model_server when it is on PATH; otherwise sidrec's local model "
            "server, a stand-in that keeps its gRPC and REST contract)",
            "  stock server:   " + shlex.join(stock[server_lib.STOCK_BINARY]),
            "  in its image:   " + shlex.join(stock["docker"])]
  with server_lib.LocalModelServer(serving_dir, grpc_port=0, rest_port=0) as server:
    server.wait_until_ready(timeout=300)
    address = f"127.0.0.1:{server.rest_port}"
    with client_lib.ServingClient(address, model, protocol="rest") as client:
      ranked = client.rank(pick["user"], pick["candidates"], history=pick["history"],
                           new_items={never_seen: sid})
  user = pick["user"]
  # The declared user features without their prefix, as `--user-feature` takes them.
  features = {name[len(schema.USER_FEATURE_PREFIX):]: value
              for name, value in user.items() if name != schema.USER_ID}
  described = ", ".join(f"{k} {v}" for k, v in features.items())
  lines += ["", f"{model} over REST ({server_lib.NAME}, {address}) for user "
            f"{user[schema.USER_ID]}{f' ({described})' if described else ''}, "
            f"{len(pick['history'])} items of history; rated = the user's eval label:"]
  for i, item in enumerate(ranked, 1):
    source = pick["held_out"] if item.item_id == never_seen else item.item_id
    rated = pick["labels"].get(source)
    cohort = "held out of training" if pick["cohort"].get(source) == schema.COHORT_NEW else (
        "in training")
    lines.append(f"  {i:>2}. {item.score:.4f}  {item.item_id}  ({cohort}; "
                 f"{client_lib.SOURCE_TEXT[item.source]}; rated {rated})")
  predict = ["sidrec", "predict", "--server", "127.0.0.1:8501", "--protocol", "rest",
             "--model", model, "--user-id", str(user[schema.USER_ID])]
  for name, value in features.items():
    predict += ["--user-feature", f"{name}={value}"]
  predict += ["--new-item", f"{never_seen}=" + ",".join(map(str, sid))]
  # One flag per id: MovieLens ids are titles, and titles hold commas.
  for item in pick["candidates"]:
    predict += ["--item-id", item]
  for item in pick["history"]:
    predict += ["--history-item", item]
  lines += [f"  (\"{never_seen}\" is {pick['held_out']} under an id the model's tables do "
            f"not hold, sent with its SID {sid}: the path of a brand-new item, "
            f"serve_new_items)"]
  lines += ["", "The same ranking by hand, with `sidrec serve` running:",
            "  " + shlex.join(predict)]
  text = "\n".join(lines)
  print(text)
  return text
