"""trainer/run.py: make_input (the Trainer's reader of Transform's TFRecords and its in-memory
cache), and run_fn end to end on data whose user features are not MovieLens's: the exported
signatures take exactly the user features the data declares."""
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from contracts import schema as S
from contracts import serving_api as api
from contracts.config import RankingConfig
from contracts.trainer_io import TRAIN_STATS_FILE
from tests.fixtures import trainer_inputs
from trainer import run as trainer_run

EXAMPLES = 300
BATCH = 10


def _example(i):
  """A transformed-like example: row id i, two SPM-like ids, a label, a feature nobody reads."""
  return tf.train.Example(features=tf.train.Features(feature={
      "row": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
      "item_spm": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 7, i % 5])),
      "label": tf.train.Feature(float_list=tf.train.FloatList(value=[i % 2])),
      "unread": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"])),
  })).SerializeToString()


def _schema():
  schema = schema_pb2.Schema()
  for name, kind, width in (("row", schema_pb2.INT, 1), ("item_spm", schema_pb2.INT, 2),
                            ("label", schema_pb2.FLOAT, 1), ("unread", schema_pb2.BYTES, 1)):
    feature = schema.feature.add(name=name, type=kind)
    feature.shape.dim.add(size=width)
    feature.presence.min_fraction = 1.0
  return types.SimpleNamespace(transformed_metadata=types.SimpleNamespace(schema=schema))


def _write(path, rows, compression="GZIP"):
  with tf.io.TFRecordWriter(path, options=compression) as writer:
    for i in rows:
      writer.write(_example(i))


def _transformed(tmp_path):
  """A GZIP TFRecord of transformed-like examples (as Transform writes them) and the
  TFTransformOutput part make_input reads."""
  path = str(tmp_path / "transformed.gz")
  _write(path, range(EXAMPLES))
  return path, _schema()


def _rows(batches):
  return [b["row"].numpy().reshape(-1).tolist() for b in batches]


def _input(path, tft_output, cache, shuffle=True):
  return trainer_run.make_input([path], tft_output, {"row", "item_spm", "label"},
                                BATCH, shuffle=shuffle, seed=3, cache=cache)


def test_cached_input_serves_later_epochs_without_the_files(tmp_path):
  path, tft_output = _transformed(tmp_path)
  dataset = _input(path, tft_output, cache=True)
  first = _rows(dataset)
  os.remove(path)  # epoch 2 must come from the parsed batches kept by epoch 1
  second = _rows(dataset)
  # Every example exactly once per epoch, only the features the model reads.
  for epoch in (first, second):
    assert sorted(r for batch in epoch for r in batch) == list(range(EXAMPLES))
  assert set(next(iter(dataset)).keys()) == {"row", "item_spm", "label"}
  # Batches are reshuffled between epochs; a batch keeps its (already shuffled) examples.
  assert first != second
  assert sorted(map(tuple, first)) == sorted(map(tuple, second))
  assert first[0] != list(range(BATCH))  # the first read itself is shuffled


def test_uncached_input_reads_the_files_every_epoch(tmp_path):
  path, tft_output = _transformed(tmp_path)
  dataset = _input(path, tft_output, cache=False)
  assert sorted(r for batch in _rows(dataset) for r in batch) == list(range(EXAMPLES))
  os.remove(path)
  with pytest.raises((tf.errors.NotFoundError, tf.errors.InvalidArgumentError)):
    _rows(dataset)


def test_cached_epochs_are_reproducible_for_a_seed(tmp_path):
  path, tft_output = _transformed(tmp_path)
  a, b = _input(path, tft_output, cache=True), _input(path, tft_output, cache=True)
  assert [_rows(a), _rows(a)] == [_rows(b), _rows(b)]


def test_reads_every_shard_once_and_parses_the_values(tmp_path):
  # A distributed runner writes many shards; uncompressed ones (no .gz) are read as such.
  for shard, rows in enumerate((range(0, 120), range(120, 130), range(130, EXAMPLES))):
    _write(str(tmp_path / f"part-{shard:05d}-of-00003.gz"), rows)
  _write(str(tmp_path / "plain-00000"), range(EXAMPLES, EXAMPLES + 7), compression="")
  for pattern, expected in ((str(tmp_path / "part-*"), range(EXAMPLES)),
                            (str(tmp_path / "plain-*"), range(EXAMPLES, EXAMPLES + 7))):
    batches = list(_input(pattern, _schema(), cache=False))
    assert sorted(r for b in _rows(batches) for r in b) == list(expected)
    for b in batches:  # each row's own values, parsed with the transformed schema's shapes
      rows = b["row"].numpy().reshape(-1)
      assert b["item_spm"].numpy().tolist() == [[r % 7, r % 5] for r in rows]
      assert b["label"].numpy().reshape(-1).tolist() == [float(r % 2) for r in rows]


def test_unshuffled_input_keeps_the_file_order(tmp_path):
  path, tft_output = _transformed(tmp_path)
  assert [r for b in _rows(_input(path, tft_output, cache=False, shuffle=False))
          for r in b] == list(range(EXAMPLES))


def test_missing_files_and_features_are_named(tmp_path):
  path, tft_output = _transformed(tmp_path)
  with pytest.raises(FileNotFoundError, match="no transformed examples match"):
    _input(str(tmp_path / "nothing-*"), tft_output, cache=False)
  with pytest.raises(ValueError, match=r"lack \['item_key'\]"):
    trainer_run.make_input([path], tft_output, {"row", "item_key"}, BATCH, shuffle=False, seed=0)


# --- run_fn on data that declares its own user features ------------------------------------

# Another dataset's user columns: a string and an int64 one (values by user index).
COUNTRIES = (b"fr", b"de", b"jp")
COUNTRY_TIER = {"user_country": ("string", lambda u: COUNTRIES[u % 3]),
                "user_tier": ("int64", lambda u: 1 + u % 4)}
USER_FEATURE_SETS = {"country_tier": COUNTRY_TIER, "no_user_features": {}}
# Small and quick: 512 training examples, 4 steps of 128, one epoch.
RUN_SETTINGS = dict(representation="sid_spm", embedding_dim=8, user_embedding_dim=4,
                    user_feature_dim=4, cross_layers=1, mlp_dims=(16,), batch_size=128,
                    learning_rate=1e-2, epochs=1, seed=0)
MODEL = "ranker"
ITEM_INPUTS = {S.ITEM_ID, S.HISTORY_ITEM_IDS}
TF_DTYPES = {"string": tf.string, "int64": tf.int64}


@pytest.fixture(scope="module", params=sorted(USER_FEATURE_SETS))
def exported(request, tmp_path_factory):
  """(fixture, serving dir holding MODEL/1, model_run dir): Transform and run_fn once each."""
  root = tmp_path_factory.mktemp(request.param)
  fixture = trainer_inputs.write_trainer_inputs(
      str(root / "inputs"), num_train=512, num_eval=128,
      user_features=USER_FEATURE_SETS[request.param])
  serving, model_run = root / "serving", root / "model_run"
  trainer_run.run_fn(trainer_inputs.fn_args(fixture, RankingConfig(**RUN_SETTINGS),
                                            str(serving / MODEL / "1"), str(model_run)))
  return fixture, str(serving), str(model_run)


def _call(signature, request):
  return signature(**{k: tf.constant(v) for k, v in request.items()})[api.PROBABILITY].numpy()


def test_the_signatures_take_exactly_the_declared_user_features(exported):
  fixture, serving, model_run = exported
  declared = fixture.user_features  # raw name -> dtype
  loaded = tf.saved_model.load(os.path.join(serving, MODEL, "1"))
  default = loaded.signatures[api.SERVING_DEFAULT].structured_input_signature[1]
  assert set(default) == {S.USER_ID, *declared} | ITEM_INPUTS
  assert (default[S.USER_ID].dtype, default[S.USER_ID].shape.as_list()) == (tf.string, [None])
  for name, dtype in declared.items():
    assert (default[name].dtype, default[name].shape.as_list()) == (TF_DTYPES[dtype], [None])
  new_items = loaded.signatures[api.SERVE_NEW_ITEMS].structured_input_signature[1]
  assert set(new_items) == set(default) | {S.item_codes(trainer_inputs.CODEBOOK)}
  joined = loaded.signatures[api.SCORE_JOINED_FEATURES].structured_input_signature[1]
  assert {n for n in joined if n.startswith(S.USER_FEATURE_PREFIX)} == {S.USER_ID, *declared}
  # The model's user tables: one per declared feature (rows = the train values + OOV 0).
  with open(os.path.join(model_run, TRAIN_STATS_FILE)) as f:
    sizes = json.load(f)["vocab_sizes"]
  expected_rows = {"user_country_token": len(COUNTRIES) + 1, "user_tier_token": 4 + 1}
  assert sizes["user_features"] == {f"{n}_token": expected_rows[f"{n}_token"]
                                    for n in declared}
  assert sizes["user_id"] == trainer_inputs.NUM_USERS + 1

  request = trainer_inputs.serving_request(fixture.eval_rows[:32])
  assert set(request) == set(default)
  scores = _call(loaded.signatures[api.SERVING_DEFAULT], request)
  assert scores.shape == (32,) and np.isfinite(scores).all()
  # The declared features reach the model: their out-of-vocabulary values score differently.
  for name, dtype in declared.items():
    oov = dict(request, **{name: np.full([32], 0 if dtype == "int64" else b"", request[name].dtype)})
    assert not np.allclose(_call(loaded.signatures[api.SERVING_DEFAULT], oov), scores), name


def test_the_client_ranks_through_the_declared_user_features(exported):
  from serving import client as client_lib  # pylint: disable=g-import-not-at-top
  from serving import server as server_lib  # pylint: disable=g-import-not-at-top
  fixture, serving, _ = exported
  declared = fixture.user_features
  row = fixture.eval_rows[0]
  user = {S.USER_ID: row[S.USER_ID][0].decode()}
  for name in declared:  # by the name without its prefix, as `--user-feature` allows
    value = row[name]
    user[name[len(S.USER_FEATURE_PREFIX):]] = value.decode() if isinstance(value, bytes) else value
  candidates = [f"i{j}" for j in range(5)]
  history = [h.decode() for h in row[S.HISTORY_ITEM_IDS] if h]
  with server_lib.LocalModelServer(serving, grpc_port=0, rest_port=0) as server:
    server.wait_until_ready(timeout=120)
    with client_lib.ServingClient(f"127.0.0.1:{server.grpc_port}", MODEL) as client:
      assert list(client_lib.user_fields(client.signature(api.SERVING_DEFAULT))) == [
          S.USER_ID, *sorted(declared)]
      ranked = client.rank(user, candidates, history=history)
      with pytest.raises(client_lib.ServingError) as undeclared:
        client.rank({S.USER_ID: "u1", "age": 30}, candidates)
      wrong_type = None
      if "user_tier" in declared:
        with pytest.raises(client_lib.ServingError) as wrong_type:
          client.rank({S.USER_ID: "u1", "tier": "gold"}, candidates)
  # The served scores are the SavedModel's own for the same inputs.
  loaded = tf.saved_model.load(os.path.join(serving, MODEL, "1"))
  rows = [dict(row, **{S.ITEM_ID: c.encode()}) for c in candidates]
  direct = dict(zip(candidates, _call(loaded.signatures[api.SERVING_DEFAULT],
                                      trainer_inputs.serving_request(rows)).tolist()))
  assert {r.item_id: r.score for r in ranked} == pytest.approx(direct, abs=1e-6)
  assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
  known = [S.USER_ID, *sorted(declared)]
  assert undeclared.value.message == (
      f"user field 'age' is not an input of signature {api.SERVING_DEFAULT}; its user fields "
      f"are {known} (the `user_` prefix may be left out)")
  if wrong_type is not None:
    assert wrong_type.value.message == (
        "user field user_tier = 'gold': signature serving_default takes user_tier as int64; "
        "give an integer")
