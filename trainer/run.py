"""The Trainer's `run_fn` (passed as the dotted path `trainer.run.run_fn`).

    transformed examples (TFXIO, only the features this representation reads)
      -> SidRankingModel (TFRS, DCN-v2) fit for RankingConfig.epochs, TensorBoard logs
      -> SavedModel with the transform graph, the model and the item tables
         (serving/signatures.py) in fn_args.serving_model_dir
      -> train_stats.json in fn_args.model_run_dir (throughput, table sizes, Keras eval)

Table sizes come from the data: user vocabularies and the item-id vocabulary from the
transform output, SID / MoC widths from the item tables, the SentencePiece sub-ID table from
the transformed schema (tft records the segmenter's domain).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Optional

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.public import tfxio

from tfx_pipeline.config import RankingConfig, from_json, to_json
from trainer import item_tables as item_tables_lib
from trainer import preprocessing as P
from trainer.model import features as F
from trainer.model import ranking

TRAIN_STATS = "train_stats.json"
ITEM_TABLES = "item_tables"  # components/ranking_trainer/executor.py


def trainer_custom_config(ranking_config: RankingConfig, codebook_size: int,
                          moc_codebook_size: int = 0) -> Dict[str, Any]:
  """SidRankingTrainer's `custom_config` (the executor adds the item-table URIs)."""
  return {"ranking": to_json(ranking_config), "codebook_size": int(codebook_size),
          "moc_codebook_size": int(moc_codebook_size or codebook_size)}


def vocab_sizes(tft_output: tft.TFTransformOutput, tables: item_tables_lib.ItemTables,
                codebook_size: int, moc_codebook_size: int) -> F.VocabSizes:
  """Table sizes from the transform output and the item tables (see VocabSizes)."""
  user = {name: tft_output.vocabulary_size_by_name(vocab) + 1  # + the OOV token 0
          for name, vocab in P.USER_VOCABS.items()}
  return F.VocabSizes(
      user_id=user[F.USER_ID], user_age=user[F.USER_AGE], user_gender=user[F.USER_GENDER],
      user_occupation=user[F.USER_OCCUPATION],
      num_items=tft_output.vocabulary_size_by_name(P.ITEM_VOCAB),
      sid_levels=tables.sid_levels, sid_codebook_size=int(codebook_size),
      moc_codebooks=tables.moc_codebooks,
      moc_codebook_size=int(moc_codebook_size) if tables.moc_codebooks else 0,
      spm_vocab_size=tft_output.num_buckets_for_transformed_feature(F.ITEM_SPM_TOKENS),
      spm_max_pieces=tables.sid_levels, content_dim=tables.content_dim)


def _only(schema: schema_pb2.Schema, names) -> schema_pb2.Schema:
  """The transformed schema restricted to `names`: TFXIO then parses nothing else."""
  out = schema_pb2.Schema()
  out.CopyFrom(schema)
  kept = [f for f in out.feature if f.name in names]
  missing = set(names) - {f.name for f in kept}
  if missing:
    raise ValueError(f"the transformed examples lack {sorted(missing)}; was Transform run with "
                     f"custom_config item_keys=True for a content representation?")
  del out.feature[:]
  out.feature.extend(kept)
  return out


class _CountExamples:
  """Counts the examples a dataset yields (a variable bumped inside tf.data)."""

  def __init__(self):
    self.count = tf.Variable(0, dtype=tf.int64, trainable=False)

  def __call__(self, features):
    with tf.control_dependencies([self.count.assign_add(
        tf.shape(features[F.LABEL], out_type=tf.int64)[0])]):
      return {k: tf.identity(v) for k, v in features.items()}


# Batches the reshuffle of cached batches draws from (epoch 1 waits for this many to parse).
CACHE_SHUFFLE_BATCHES = 64


def make_input(fn_args, files, tft_output, names, batch_size: int, *, shuffle: bool,
               seed: int, tables: Optional[item_tables_lib.ItemTables] = None,
               counter: Optional[_CountExamples] = None,
               cache: bool = False) -> tf.data.Dataset:
  """One pass over transformed examples as dict batches, content added from `tables`.

  `cache`: the parsed batches of the first pass are kept in memory and later passes read them
  from there (RankingConfig.input_cache); with `shuffle` their order is reshuffled every pass.
  The content lookup runs after the cache: caching 384-d embeddings per history slot would
  cost ~20x the memory of the ids.
  """
  read = set(names)
  if tables is not None:  # content representations look the embedding up by raw item id
    read |= {F.ITEM_KEY, F.history_name(F.ITEM_KEY)}
    read -= {F.ITEM_EMBEDDING, F.history_name(F.ITEM_EMBEDDING)}
  dataset = fn_args.data_accessor.tf_dataset_factory(
      files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, shuffle=shuffle,
                                            shuffle_seed=seed, num_epochs=1),
      _only(tft_output.transformed_metadata.schema, read))
  if cache:
    dataset = dataset.cache()
    if shuffle:
      dataset = dataset.shuffle(CACHE_SHUFFLE_BATCHES, seed=seed, reshuffle_each_iteration=True)
  if tables is not None:
    history = F.history_name(F.ITEM_EMBEDDING) in names

    def add_content(features):
      keys = features.pop(F.ITEM_KEY)
      history_keys = features.pop(F.history_name(F.ITEM_KEY))
      features[F.ITEM_EMBEDDING] = tables.content(tf.reshape(keys, [-1]))
      if history:
        features[F.history_name(F.ITEM_EMBEDDING)] = tables.content(history_keys)
      return features

    dataset = dataset.map(add_content, num_parallel_calls=tf.data.AUTOTUNE)
  if counter is not None:
    dataset = dataset.map(counter)
  return dataset.prefetch(tf.data.AUTOTUNE)


def run_fn(fn_args) -> None:
  """TFX Trainer entry point."""
  custom = fn_args.custom_config
  config = from_json(RankingConfig, custom["ranking"])
  tf.keras.utils.set_random_seed(config.seed)
  tft_output = tft.TFTransformOutput(fn_args.transform_output)
  tables = item_tables_lib.load_item_tables(**custom[ITEM_TABLES])
  sizes = vocab_sizes(tft_output, tables, custom["codebook_size"], custom["moc_codebook_size"])

  model = ranking.build_ranking_model(config, sizes)
  names = set(model.input_signature(config.history_length)) | {F.LABEL}
  content = tables if F.ITEM_EMBEDDING in names else None
  counter = _CountExamples()
  train = make_input(fn_args, fn_args.train_files, tft_output, names, config.batch_size,
                     shuffle=True, seed=config.seed, tables=content, counter=counter,
                     cache=config.input_cache == "memory")
  evaluation = make_input(fn_args, fn_args.eval_files, tft_output, names, config.batch_size,
                          shuffle=False, seed=config.seed, tables=content)

  tensorboard = tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq=200)
  start = time.perf_counter()
  model.fit(train, epochs=config.epochs, callbacks=[tensorboard], verbose=2)
  train_seconds = time.perf_counter() - start
  examples = int(counter.count.numpy())
  metrics = model.evaluate(evaluation, return_dict=True, verbose=0)

  from serving import signatures  # pylint: disable=g-import-not-at-top
  signatures.export_serving_model(model, tft_output, tables, fn_args.serving_model_dir,
                                  config.history_length)
  report = model.table_report()
  stats = {
      "representation": config.representation, "seed": config.seed, "epochs": config.epochs,
      "batch_size": config.batch_size, "train_examples": examples,
      "train_seconds": round(train_seconds, 3),
      # Includes the first epoch's tracing and tf.data start-up, as a user would time it.
      "train_examples_per_sec": round(examples / train_seconds, 1) if train_seconds else 0.0,
      "table_rows": int(report["item_table_rows"]), "user_table_rows": report["user_table_rows"],
      "item_tables": report["item_tables"],
      "keras_eval": {k: float(v) for k, v in metrics.items()},
      "vocab_sizes": {k: int(v) for k, v in vars(sizes).items()},
  }
  os.makedirs(fn_args.model_run_dir, exist_ok=True)
  path = os.path.join(fn_args.model_run_dir, TRAIN_STATS)
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    f.write(json.dumps(stats, indent=2, sort_keys=True))
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
