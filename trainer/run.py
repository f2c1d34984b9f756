"""The Trainer's `run_fn` (passed as the dotted path `trainer.run.run_fn`).

    ExamplePacker's chunks of the transformed examples (read_packed), or a materializing
    Transform's TFRecords (read_transformed); only the features this representation reads
      -> SidRankingModel (TFRS, DCN-v2) fit for RankingConfig.epochs, TensorBoard logs,
         under RankingConfig.distribution's tf.distribute strategy (trainer/distribution.py)
      -> SavedModel with the transform graph, the model and the item tables
         (trainer/signatures.py) in fn_args.serving_model_dir
      -> train_stats.json in fn_args.model_run_dir (throughput, table sizes, Keras eval)

Table sizes come from the data: the user-id vocabulary, one vocabulary per user feature the
data declares (the raw schema's `user_*` features, contracts/schema.py) and the item-id
vocabulary from the transform output, SID / MoC widths from the item tables, the SentencePiece sub-ID table from
the transformed schema (tft records the segmenter's domain).

On a cluster every replica runs run_fn with its own TF_CONFIG; only the chief writes the
serving model, train_stats.json and the TensorBoard logs (trainer/distribution.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tempfile
import time
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.tf_metadata import schema_utils

from contracts import files
from contracts import item_vectors_io
from contracts import schema as S
from contracts import semantic_ids_io
from contracts import trainer_io
from trainer import aligned_items as aligned_items_lib
from trainer import distribution as distribution_lib
from trainer import item_tables as item_tables_lib
from trainer import preprocessing as P
from trainer import signatures
from trainer.model import features as F
from trainer.model import ranking


def training_item_counts(train_files, tft_output, packed: bool) -> Dict[str, int]:
  """{item id: training interactions}: one pass over the training split's raw item ids."""
  counts: Dict[str, int] = {}
  for batch in make_input(train_files, tft_output, {F.ITEM_KEY}, 8192, shuffle=False, seed=0,
                          packed=packed).as_numpy_iterator():
    ids, n = np.unique(batch[F.ITEM_KEY].reshape(-1), return_counts=True)
    for item, count in zip(ids, n):
      key = item.decode("utf-8")
      counts[key] = counts.get(key, 0) + int(count)
  return counts


def add_aligned_segmenters(config, fn_args, inputs: trainer_io.TrainerInputs, tft_output,
                           tables: item_tables_lib.ItemTables, is_chief: bool) -> Dict[str, int]:
  """SentencePiece vocabularies of the aligned codebooks whose tokens the representation
  reads (Transform trains the raw codebooks'), their segmenters set on `tables`. The chief
  keeps the asset in the ModelRun; another replica writes nothing there (a local temp dir).
  -> {codebook: token rows}."""
  from contracts.registry import representations as registry  # pylint: disable=g-import-not-at-top
  from trainer.spm import tf_segment  # pylint: disable=g-import-not-at-top
  entry = registry.get(config.representation)
  transformed = tft_output.transformed_feature_spec()
  wanted = [c for c in entry.codebooks(config.sid_codebook, config.aligned_sid_codebook)
            if entry.reads_spm() and c in inputs.codes and F.item_spm_tokens(c) not in transformed]
  if not wanted:
    return {}
  # The item_id_vocab Trainer counted them; the ContentAligner passes them on. A ContentAligner
  # output cached from an older sidrec has no counts: recount the training split.
  try:
    counts = item_vectors_io.read_train_interactions(inputs.alignment_uri)
  except FileNotFoundError:
    counts = training_item_counts(fn_args.train_files, tft_output, inputs.packed)
  asset_dir = (os.path.join(fn_args.model_run_dir, "spm") if is_chief
               else tempfile.mkdtemp(prefix="sidrec-spm-"))
  sizes = {}
  for codebook in wanted:
    vocab, asset = aligned_items_lib.train_aligned_spm(
        semantic_ids_io.read_sids(inputs.codes[codebook].uri), counts, codebook,
        inputs.codes[codebook].codebook_size, config.table_budget, asset_dir)
    tables.set_segmenter(codebook, tf_segment.SpmSubIdSegmenter(asset))
    sizes[codebook] = int(vocab.num_tokens)
  return sizes


def vocab_sizes(tft_output: tft.TFTransformOutput, inputs: trainer_io.TrainerInputs,
                tables: item_tables_lib.ItemTables,
                spm_sizes: Optional[Dict[str, int]] = None) -> F.VocabSizes:
  """Table sizes from the transform output, the codes' artifacts and the item tables
  (`spm_sizes`: token rows of the SentencePiece vocabularies the Trainer trained itself)."""
  def user_rows(raw_name: str) -> int:
    return tft_output.vocabulary_size_by_name(P.user_vocab_name(raw_name)) + 1  # + OOV 0

  # The user features are the data's: whatever `user_*` features the raw schema declares.
  user_features = {F.user_token(name): user_rows(name)
                   for name in S.user_features_in(tft_output.raw_feature_spec())}
  transformed = tft_output.transformed_feature_spec()
  codebooks = {}
  for name, codes in inputs.codes.items():
    spm = F.item_spm_tokens(name)
    codebooks[name] = F.CodebookSizes(
        code_columns=codes.code_columns, codebook_size=codes.codebook_size,
        spm_vocab_size=(tft_output.num_buckets_for_transformed_feature(spm)
                        if spm in transformed else (spm_sizes or {}).get(name, 0)))
  mask = transformed.get(F.HISTORY_MASK)
  history_length = int(mask.shape[0]) if mask is not None else 0
  return F.VocabSizes(
      user_id=user_rows(S.USER_ID), user_features=user_features,
      num_items=tft_output.vocabulary_size_by_name(P.ITEM_VOCAB), codebooks=codebooks,
      content_dim=tables.content_dim, history_length=history_length)


def _feature_spec(tft_output, names) -> Dict[str, Any]:
  """tf.io.parse_example spec of the transformed features in `names` (nothing else parsed)."""
  schema = tft_output.transformed_metadata.schema
  spec = schema_utils.schema_as_feature_spec(schema).feature_spec
  missing = set(names) - set(spec)
  if missing:
    raise ValueError(f"the transformed examples lack {sorted(missing)}: was Transform run with "
                     f"trainer.preprocessing.preprocessing_fn over every codebook this "
                     f"representation reads?")
  return {name: spec[name] for name in sorted(names)}


def _record_files(patterns) -> list:
  """The files behind the Trainer's file patterns (e.g. `.../Split-train/*`), sorted."""
  files = sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no transformed examples match {list(patterns)}")
  return files


class _CountExamples:
  """Counts the examples a dataset yields (a variable bumped inside tf.data)."""

  def __init__(self):
    self.count = tf.Variable(0, dtype=tf.int64, trainable=False)

  def __call__(self, features):
    with tf.control_dependencies([self.count.assign_add(
        tf.shape(features[F.LABEL], out_type=tf.int64)[0])]):
      return {k: tf.identity(v) for k, v in features.items()}


# Records in the shuffle buffer of a read (what TFXIO's TensorFlowDatasetOptions defaults to).
SHUFFLE_RECORDS = 10_000
# Packed chunks in the shuffle buffer of a read (~32k examples at 128 per chunk).
SHUFFLE_CHUNKS = 256
# Batches the reshuffle of cached batches draws from (epoch 1 waits for this many to parse).
CACHE_SHUFFLE_BATCHES = 64


def _records(patterns, *, shuffle: bool, seed: Optional[int]) -> tf.data.Dataset:
  """The serialized records of every file behind `patterns` (GZIP when named *.gz).

  seed None: the shard order is drawn afresh by every iterator (parameter-server workers)."""
  files = _record_files(patterns)
  names = files
  if shuffle and seed is None:
    names = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files))
  elif shuffle:  # the shard order, a function of the seed
    names = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
  # Shards (a distributed Beam runner writes many) are read a few at a time, interleaved in a
  # fixed order; one shard (the DirectRunner's) is read with no interleave overhead.
  return tf.data.TFRecordDataset(
      names, "GZIP" if files[0].endswith(".gz") else "", buffer_size=4 << 20,
      num_parallel_reads=min(len(files), 4) if len(files) > 1 else None)


def read_transformed(files, feature_spec: Dict[str, Any], batch_size: int, *, shuffle: bool,
                     seed: Optional[int]) -> tf.data.Dataset:
  """One pass over Transform's tf.Example TFRecords as dict batches of the specs' features.

  records (GZIP when the name ends in .gz, as Transform writes them) -> shuffled in a
  SHUFFLE_RECORDS buffer -> batched -> one tf.io.parse_example per batch. This is what the
  Trainer's DataAccessor (TFXIO) does, minus its per-record costs: measured on 341k transformed
  examples (benchmarks/tfx_trainer_throughput.py), TFXIO's dataset cost 17.7 CPU-us per example
  against 11.0 for this one, and on 2 cores each one is taken from the training step. The
  pipeline's Trainers read ExamplePacker's chunks instead (read_packed: 1.9 CPU-us); this
  reader serves a Trainer given a materializing Transform's examples and no packer (the DAG's
  Transform does not materialize). Its shuffle is a window: Transform's output keeps the
  input order, so on ML-1M a 10,000-record window holds ~170 of the 6,040 users, where a
  packed chunk is a random sample of the whole split.
  """
  records = _records(files, shuffle=shuffle, seed=seed)
  if shuffle:
    records = records.shuffle(SHUFFLE_RECORDS, seed=seed)
  return records.batch(batch_size).map(lambda r: tf.io.parse_example(r, feature_spec))


def read_packed(files, feature_spec: Dict[str, Any], batch_size: int, *, shuffle: bool,
                seed: Optional[int]) -> tf.data.Dataset:
  """One pass over ExamplePacker's chunks as dict batches of the specs' features.

  chunk records (each a random sample of the split, every feature stored column-wise) ->
  shuffled in a SHUFFLE_CHUNKS buffer -> one parse per chunk -> re-batched to `batch_size`
  (a batch joins a few chunks; a chunk's examples stay together). The tf.Example overhead is
  paid per chunk, not per example (components/example_packer).
  """
  packed_spec = {name: tf.io.FixedLenSequenceFeature(spec.shape, spec.dtype, allow_missing=True)
                 for name, spec in feature_spec.items()}
  chunks = _records(files, shuffle=shuffle, seed=seed)
  if shuffle:
    chunks = chunks.shuffle(SHUFFLE_CHUNKS, seed=seed)
  return chunks.map(lambda r: tf.io.parse_single_example(r, packed_spec)).rebatch(batch_size)


def make_input(files, tft_output, names, batch_size: int, *, shuffle: bool,
               seed: Optional[int], tables: Optional[item_tables_lib.ItemTables] = None,
               counter: Optional[_CountExamples] = None,
               cache: bool = False, packed: bool = False) -> tf.data.Dataset:
  """One pass over transformed examples as dict batches, looked-up features from `tables`.

  `files` are Transform's TFRecords, or ExamplePacker's chunks when `packed`. Only the features
  in `names` are parsed. `cache`: the parsed batches of the first pass are kept in memory and
  later passes read them from there (RankingConfig.input_cache); with `shuffle` their order is
  reshuffled every pass. The features of `looked_up_features` (content, aligned codes) are
  looked up by raw item id after the cache. `seed` None: unseeded shuffles (random per
  iterator, unless a graph seed is set).
  """
  read = set(names)
  looked_up = {} if tables is None else item_tables_lib.looked_up_features(
      names, set(tft_output.transformed_feature_spec()))
  if looked_up:
    read |= {F.ITEM_KEY, F.history_name(F.ITEM_KEY)}
    read -= set(looked_up) | {F.history_name(n) for n in looked_up}
  reader = read_packed if packed else read_transformed
  dataset = reader(files, _feature_spec(tft_output, read), batch_size, shuffle=shuffle, seed=seed)
  if cache:
    dataset = dataset.cache()
    if shuffle:
      dataset = dataset.shuffle(CACHE_SHUFFLE_BATCHES, seed=seed, reshuffle_each_iteration=True)
  if looked_up:
    def add(features):
      keys = tf.reshape(features.pop(F.ITEM_KEY), [-1])
      history_keys = features.pop(F.history_name(F.ITEM_KEY))
      return item_tables_lib.add_looked_up(features, tables, looked_up, names, keys,
                                           history_keys)

    dataset = dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE)
  if counter is not None:
    dataset = dataset.map(counter)
  return dataset.prefetch(tf.data.AUTOTUNE)


def _count_examples(files, tft_output, packed: bool) -> int:
  """Examples behind `files` (one pass parsing the label only)."""
  labels = make_input(files, tft_output, {F.LABEL}, 4096, shuffle=False, seed=0, packed=packed)
  return int(labels.reduce(np.int64(0), lambda n, b: n + tf.shape(
      b[F.LABEL], out_type=tf.int64)[0]).numpy())


def _fit_on_parameter_servers(model, config, fn_args, tft_output, names, packed,
                              callbacks) -> int:
  """tf_keras fit through its ClusterCoordinator: a DatasetCreator whose function every
  worker runs, repeated, for a step count per epoch. -> training examples."""
  # No worker sees an end of the data (each repeats its own copy), so an epoch is a step
  # count: one pass over the training split's examples at the global batch size.
  steps = max(1, math.ceil(_count_examples(fn_args.train_files, tft_output, packed)
                           / config.batch_size))

  def dataset_fn(input_context):
    # Every worker runs this one function, traced once. With the graph seed cleared, its
    # unseeded shuffles draw a new seed on each worker (as TF's ClusterCoordinator expects);
    # one fixed at tracing would have all workers train on the same batches at the same time.
    # Asynchronous training is not reproducible anyway.
    tf.compat.v1.get_default_graph().seed = None
    batch = input_context.get_per_replica_batch_size(config.batch_size)
    return make_input(fn_args.train_files, tft_output, names, batch, shuffle=True, seed=None,
                      cache=config.input_cache == "memory", packed=packed).repeat()

  model.fit(tf.keras.utils.experimental.DatasetCreator(dataset_fn), epochs=config.epochs,
            steps_per_epoch=steps, callbacks=callbacks, verbose=2)
  return steps * config.epochs * config.batch_size


def evaluate(model, dataset) -> Dict[str, float]:
  """AUC and mean log loss of `model` over all of `dataset`, in this process alone.

  Not Keras' evaluate: under a multi-worker strategy it sums the TFRS task's per-replica
  values over the replicas (an AUC of 1.07 from two workers), its loss is the last batch's,
  and through a ClusterCoordinator it needs a repeated dataset and a step count (its exact
  mode refuses the task's metrics). Reading a strategy's variables here needs no other worker.
  """
  # 10,000 evenly spaced thresholds (bucketed by Keras: no slower than 200) put it within
  # ~1e-4 of TFMA's exact AUC, so the two can be compared.
  auc = tf.keras.metrics.AUC(from_logits=True, num_thresholds=10_000, name="auc")
  loss = tf.keras.metrics.Mean(name="loss")
  bce = tf.keras.losses.BinaryCrossentropy(from_logits=True,
                                           reduction=tf.keras.losses.Reduction.NONE)

  @tf.function
  def update(features):
    labels = tf.reshape(tf.cast(features[F.LABEL], tf.float32), [-1, 1])
    logits = model(features, training=False)[:, None]
    auc.update_state(labels, logits)
    loss.update_state(bce(labels, logits))

  for features in dataset:
    update(features)
  return {"auc": float(auc.result()), "loss": float(loss.result())}


def unpartitioned_copy(model, config, sizes: F.VocabSizes, features):
  """The trained `model` in a copy with whole variables, built outside any strategy.

  A SavedModel traced over a ShardedVariable loads each shard as the whole variable (with TF
  2.21 a kernel in two shards came back twice as tall and the serving signature failed), so
  the parameter-server chief exports this copy. A checkpoint carries the values: it stores a
  partitioned variable as one, and restores it into any partitioning. `features`: a batch that
  builds the copy's variables.
  """
  copy = ranking.build_ranking_model(config, sizes, example_features=features)
  with tempfile.TemporaryDirectory(prefix="sidrec-unpartitioned-") as tmp:
    path = tf.train.Checkpoint(model=model).write(os.path.join(tmp, "model"))
    tf.train.Checkpoint(model=copy).read(path).assert_existing_objects_matched()
  return copy


def sharded_variables(model) -> Dict[str, list]:
  """{variable: [device of each shard]} of the model's partitioned variables (a shard is named
  `<variable>/part_<i>`)."""
  shards: Dict[str, list] = {}
  for v in model.variables:
    match = re.fullmatch(r"(.*)/part_(\d+):\d+", v.name)
    if match:
      shards.setdefault(match.group(1), []).append((int(match.group(2)), v.device))
  return {name: [device for _, device in sorted(parts)] for name, parts in sorted(shards.items())}


def export_item_vectors(model, tft_output, train_files, packed: bool, uri: str,
                        seed: int) -> None:
  """The item_id_vocab ranker's learned table, one row per training item (row i = vocabulary
  id i), with each item's training interactions, as ItemVectors."""
  table = getattr(model.representation, "table", None)
  if model.config.representation != "item_id_vocab" or table is None:
    raise ValueError(f"only the item_id_vocab ranker exports its item table, not "
                     f"{model.config.representation!r}: the ContentAligner fits to it")
  ids = [i.decode("utf-8") if isinstance(i, bytes) else str(i)
         for i in tft_output.vocabulary_by_name(P.ITEM_VOCAB)]
  counts = training_item_counts(train_files, tft_output, packed)
  item_vectors_io.write_item_vectors(uri, ids, table.numpy()[:len(ids)],
                                     [counts.get(i, 0) for i in ids],
                                     representation=model.config.representation, seed=seed)


def run_fn(fn_args) -> None:
  """TFX Trainer entry point; every replica of a multi-worker Trainer runs it."""
  config = trainer_io.TrainerSettings.from_custom_config(fn_args.custom_config).ranking
  inputs = trainer_io.TrainerInputs.from_custom_config(fn_args.custom_config)
  distribution_lib.serve_if_server_task(config.distribution)  # PS workers / servers stop here
  # First of all: MultiWorkerMirroredStrategy can set up its collectives only before TF runs.
  distribution = distribution_lib.make_distribution(config.distribution)
  parameter_server = distribution.name == distribution_lib.PARAMETER_SERVER
  tf.keras.utils.set_random_seed(config.seed)
  tft_output = tft.TFTransformOutput(fn_args.transform_output)
  tables = item_tables_lib.load_item_tables(inputs)
  spm_sizes = add_aligned_segmenters(config, fn_args, inputs, tft_output, tables,
                                     distribution.is_chief)
  sizes = vocab_sizes(tft_output, inputs, tables, spm_sizes)

  # Variables created in the scope are the strategy's: mirrored on every replica, or placed
  # (and the large ones partitioned) on the parameter servers.
  with distribution.strategy.scope():
    model = ranking.build_ranking_model(config, sizes)
  names = set(model.input_signature()) | {F.LABEL}
  # Content and aligned representations look their inputs up by item id (never under
  # parameter_server: RankingConfig refuses it).
  lookups = tables if item_tables_lib.looked_up_features(
      names, set(tft_output.transformed_feature_spec())) else None
  # ExamplePacker's chunks when the DAG has them (SidRankingTrainer's executor then points
  # train_files / eval_files at them), else a materializing Transform's examples.
  packed = inputs.packed

  # On a non-chief worker tf_keras writes the logs to a temporary directory it then removes.
  tensorboard = tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq=200)
  start = time.perf_counter()
  if parameter_server:
    examples = _fit_on_parameter_servers(model, config, fn_args, tft_output, names, packed,
                                         [tensorboard])
    train_seconds = time.perf_counter() - start
  else:
    # Under multi_worker_mirrored the counter counts what this worker's pipeline reads: every
    # example when the workers split each batch, its own files' when they split the files.
    counter = _CountExamples()
    train = distribution_lib.shard_by_file_or_batch(
        make_input(fn_args.train_files, tft_output, names, config.batch_size, shuffle=True,
                   seed=config.seed, tables=lookups, counter=counter,
                   cache=config.input_cache == "memory", packed=packed),
        len(_record_files(fn_args.train_files)), distribution)
    model.fit(train, epochs=config.epochs, callbacks=[tensorboard], verbose=2)
    train_seconds = time.perf_counter() - start
    examples = int(counter.count.numpy())

  evaluation = make_input(fn_args.eval_files, tft_output, names, config.batch_size,
                          shuffle=False, seed=config.seed, tables=lookups, packed=packed)
  exported = unpartitioned_copy(model, config, sizes, next(iter(evaluation))) \
      if parameter_server else model
  with distribution_lib.export_dir(fn_args.serving_model_dir, distribution) as export_dir:
    aligned_items = None
    if inputs.alignment_uri:
      aligned_items = aligned_items_lib.AlignedItemEncoder(inputs.alignment_uri,
                                                           inputs.aligned_codebooks)
    signatures.export_serving_model(exported, tft_output, tables, export_dir, aligned_items)
  if not distribution.is_chief:
    return
  item_vectors_seconds = None
  if inputs.item_vectors_uri:  # counting the training interactions is a pass over the split
    start = time.perf_counter()
    export_item_vectors(exported, tft_output, fn_args.train_files, packed,
                        inputs.item_vectors_uri, config.seed)
    item_vectors_seconds = round(time.perf_counter() - start, 3)
  metrics = evaluate(model, evaluation)
  report = model.table_report()
  stats = {
      "representation": config.representation, "seed": config.seed, "epochs": config.epochs,
      "batch_size": config.batch_size, "train_examples": examples,
      "distribution": config.distribution, "workers": distribution.num_workers,
      "replicas_in_sync": distribution.strategy.num_replicas_in_sync,
      "sharded_variables": sharded_variables(model),
      "train_seconds": round(train_seconds, 3),
      # Includes the first epoch's tracing and tf.data start-up, as a user would time it.
      "train_examples_per_sec": round(examples / train_seconds, 1) if train_seconds else 0.0,
      "input": "packed" if packed else "transformed_examples",
      "table_rows": int(report["item_table_rows"]), "user_table_rows": report["user_table_rows"],
      "item_tables": report["item_tables"],
      "keras_eval": metrics,
      "vocab_sizes": dataclasses.asdict(sizes),
  }
  if item_vectors_seconds is not None:
    stats["item_vectors_seconds"] = item_vectors_seconds  # an alignment stage's cost
  os.makedirs(fn_args.model_run_dir, exist_ok=True)
  path = os.path.join(fn_args.model_run_dir, trainer_io.TRAIN_STATS_FILE)
  files.write_json(path, stats)
