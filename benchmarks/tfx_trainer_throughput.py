"""TFX Trainer input path vs a bare tf_keras model fed from memory, `sid_spm`, batch 1024.

    TF_USE_LEGACY_KERAS=1 python benchmarks/tfx_trainer_throughput.py [--output DIR]
        [--interactions 400000] [--items 4000] [--epochs 2] [--rounds 3]

1. Runs (or reuses, when DIR already holds it) the sidrec pipeline on synthetic data up to the
   `sid_spm` Trainer: the transform graph (SPM sub-ID tokens, history features) and
   ExamplePacker's chunks; writes the transformed training split as a materializing Transform
   would (the DAG's does not), prints both sizes on disk and the packer's one-time cost.
2. The input path alone (iterating the dataset, no training), in examples/s and CPU-us per
   example: ExamplePacker's chunks (`read_packed`, what run_fn reads in the DAG), Transform's
   TFRecords (`read_transformed`) and TFXIO (the DataAccessor) over the same TFRecords.
3. `tfx`: what run_fn does: SidRankingModel.fit for 2 epochs over each input with the
   transformed feature spec (only the features the model reads), shuffled, batch 1024, with
   the configured `input_cache`; examples/s of epoch 1 and epoch 2 (both after tracing).
   `bare`: a tf_keras functional model with the same layers (benchmarks/trainer_throughput.py
   bare_model, same vocabulary sizes and optimizer) fed the *same transformed examples* from
   in-memory tensors (pre-batched, cached).
4. The ratios tfx / bare per round, each against the bare model timed just before and after
   (the machine's speed drifts), and their median over --rounds; the target (>= 0.8x) is the
   Trainer's default 2-epoch fit over the packed chunks.
5. GZIP's share of reading Transform's TFRecords, and the Trainer component's own figure from
   train_stats.json (whole fit, tracing and start-up included).
Load average and matmul rate first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from machine_rate import matmul_gflops
from contracts import config as config_lib
from contracts import semantic_ids_io
from contracts import trainer_io
from tfx_pipeline import pipeline
from tfx_pipeline.report import RunArtifacts
from trainer import item_tables as item_tables_lib
from trainer import run as trainer_run
from trainer.model import features as F
from trainer.model import ranking
from trainer_throughput import bare_model

REPRESENTATION = "sid_spm"


def tfxio_input(files, tft_output, names, batch: int) -> tf.data.Dataset:
  """What the Trainer's DataAccessor (TFXIO) yields over the same files, for comparison: the
  path trainer/run.py used before read_transformed."""
  schema = tft_output.transformed_metadata.schema
  kept = type(schema)()
  kept.CopyFrom(schema)
  del kept.feature[:]
  kept.feature.extend(f for f in schema.feature if f.name in names)
  return tfxio.TFExampleRecord(file_pattern=files, telemetry_descriptors=["sidrec-bench"],
                               schema=kept).TensorFlowDataset(tfxio.TensorFlowDatasetOptions(
                                   batch_size=batch, shuffle=True, shuffle_seed=0,
                                   num_epochs=1))


def materialize_train_split(joined: str, tft_output, output: str) -> str:
  """The transformed training examples as GZIP'd tf.Example TFRecords, what a materializing
  Transform writes (the DAG's Transform only analyses; the packer transforms): the joined
  split through the transform graph, 2,048 examples per call. -> the Split-train directory."""
  from components import examples_io
  target = os.path.join(output, "transformed_train")
  path = os.path.join(target, "Split-train", "data-00000-of-00001.gz")
  if os.path.exists(path):
    return os.path.dirname(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  raw_spec, layer = tft_output.raw_feature_spec(), tft_output.transform_features_layer()
  shards = sorted(tf.io.gfile.glob(os.path.join(joined, "Split-train", "*")))
  records = (r for shard in shards for r in examples_io.shard_records(shard))
  with tf.io.TFRecordWriter(path + ".tmp", options="GZIP") as writer:
    while batch := [r for _, r in zip(range(2048), records)]:
      out = {k: v.numpy().reshape(len(batch), -1)
             for k, v in layer(tf.io.parse_example(tf.constant(batch), raw_spec)).items()}
      for i in range(len(batch)):
        feature = {}
        for k, v in out.items():
          row = v[i].tolist()
          feature[k] = (tf.train.Feature(float_list=tf.train.FloatList(value=row))
                        if v.dtype.kind == "f" else
                        tf.train.Feature(int64_list=tf.train.Int64List(value=row))
                        if v.dtype.kind in "iub" else
                        tf.train.Feature(bytes_list=tf.train.BytesList(value=row)))
        writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                     .SerializeToString())
  os.replace(path + ".tmp", path)
  return os.path.dirname(path)


def pipeline_config(output: str, items: int, interactions: int,
                    epochs: int) -> config_lib.PipelineConfig:
  config = config_lib.PipelineConfig(output_dir=output, representations=(REPRESENTATION,),
                                     codebook_methods=("rqvae",))
  config = config_lib.replace_section(
      config, "data", dataset="synthetic",
      synthetic=config_lib.SyntheticConfig(num_items=items, num_users=max(100, items // 2),
                                           num_interactions=interactions, embedding_dim=64))
  config = config_lib.replace_section(config, "codebook", epochs=20, latent_dim=32)
  config = config_lib.replace_section(config, "ranking", epochs=epochs)
  return config_lib.with_dataset_defaults(config)


class EpochRates(tf.keras.callbacks.Callback):
  """Examples/s of each epoch of one fit, from epoch begin to end.

  Timed inside fit on purpose: timing `fit(epochs=1)` calls from outside adds tf_keras' own
  clean-up after the last batch, which here sometimes takes 4 s (measured: an epoch of 5.2 s
  read as 10.2 s), once per fit call; the Trainer calls fit once for all its epochs.
  """

  def __init__(self, examples: int):
    super().__init__()
    self.examples, self.rates = examples, []

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    self.rates.append(self.examples / (time.perf_counter() - self._start))


def fit_rates(model, dataset, examples: int, epochs: int = 2):
  timer = EpochRates(examples)
  model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
  return timer.rates


def gzip_share(output: str, files, tft_output, names, batch: int, rounds: int) -> dict:
  """Examples/s of reading the GZIP'd transformed records without parsing, of the same records
  uncompressed, and of the Trainer's read + parse over that uncompressed copy: how much of epoch 1 is
  inflating what Transform compressed (the component writes `.gz`, not configurable)."""
  plain = os.path.join(output, "uncompressed_train.tfrecord")
  if not os.path.exists(plain):
    with tf.io.TFRecordWriter(plain + ".tmp") as writer:
      for record in tf.data.TFRecordDataset(tf.io.gfile.glob(files[0]), compression_type="GZIP"):
        writer.write(record.numpy())
    os.replace(plain + ".tmp", plain)

  def rate(dataset, key=None):
    start, count = time.perf_counter(), 0
    for b in dataset:
      count += int((b[key] if key else b).shape[0])
    return count / (time.perf_counter() - start)

  def records(paths, compression):
    return tf.data.TFRecordDataset(paths, compression_type=compression).batch(batch).prefetch(2)

  gz_files = tf.io.gfile.glob(files[0])
  return {
      "gzip": max(rate(records(gz_files, "GZIP")) for _ in range(rounds)),
      "plain": max(rate(records([plain], "")) for _ in range(rounds)),
      "plain_parse": max(rate(trainer_run.make_input(
          [plain], tft_output, names, batch, shuffle=True, seed=0), F.LABEL)
          for _ in range(rounds)),
  }


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output", default="/tmp/sidrec_bench_tfx_trainer")
  parser.add_argument("--items", type=int, default=4000)
  parser.add_argument("--interactions", type=int, default=400_000)
  parser.add_argument("--epochs", type=int, default=2, help="epochs of the pipeline's Trainer")
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args(argv)

  print(f"load average {os.getloadavg()[0]:.2f}, matmul {matmul_gflops():.0f} GFLOP/s "
        f"({os.cpu_count()} cores)", flush=True)
  config = pipeline_config(args.output, args.items, args.interactions, args.epochs)
  from tfx_pipeline import local_runner
  report = local_runner.run(config)
  run = RunArtifacts(os.path.abspath(config.metadata_path), config.name)
  transform_graph = run.uri("Transform", "TransformGraph")
  joined = run.uri("SemanticIdJoiner", "Examples")
  packed = run.uri("ExamplePacker", "sidrec.PackedExamples")
  model_run = run.uri("SidSpmTrainer", "ModelRun")
  component = json.load(open(os.path.join(model_run, trainer_io.TRAIN_STATS_FILE)))
  packer_seconds = report["components"]["seconds"].get("ExamplePacker")

  ranking_config = config.ranking_for(REPRESENTATION)
  tft_output = tft.TFTransformOutput(transform_graph)
  # What SidRankingTrainer's executor hands run_fn: every codebook's codes.
  codes = {}
  for c in config.codebook_methods:
    uri = run.uri(f"{pipeline.codebook_prefix(c)}SemanticIdAssigner", "sidrec.SemanticIds")
    codes[c] = trainer_io.CodesInput(uri, semantic_ids_io.read_stats(uri)["code_columns"],
                                     config.codebook_for(c).codebook_size)
  inputs = trainer_io.TrainerInputs(codes=codes)
  tables = item_tables_lib.load_item_tables(inputs)
  sizes = trainer_run.vocab_sizes(tft_output, inputs, tables)
  train_files = [os.path.join(materialize_train_split(joined, tft_output, args.output), "*")]
  packed_files = [os.path.join(packed, "Split-train", "*")]
  batch = ranking_config.batch_size
  probe = ranking.build_ranking_model(ranking_config, sizes)
  names = set(probe.input_signature()) | {F.LABEL}

  def tfx_input(cache, source="packed"):
    """What run_fn reads: ExamplePacker's chunks (the DAG's default), or Transform's
    TFRecords directly (read_transformed)."""
    return trainer_run.make_input(packed_files if source == "packed" else train_files,
                                  tft_output, names, batch, shuffle=True, seed=0, cache=cache,
                                  packed=source == "packed")

  # The same transformed examples, in memory, for the bare model.
  arrays = {}
  for features in tfx_input(cache=False, source="records"):
    for k, v in features.items():
      arrays.setdefault(k, []).append(v.numpy())
  arrays = {k: np.concatenate(v) for k, v in arrays.items()}
  n = len(arrays[F.LABEL])
  inputs = [k for k in arrays if k != F.LABEL]
  memory = tf.data.Dataset.from_tensor_slices(
      ({k: arrays[k] for k in inputs}, arrays[F.LABEL])).batch(batch).cache().prefetch(4)
  parsed_bytes = sum(a.nbytes for a in arrays.values())
  print(f"\n{n:,} transformed training examples, {len(inputs)} model inputs, "
        f"SPM table {sizes.codebooks[ranking_config.sid_codebook].spm_vocab_size:,} rows, "
        f"batch {batch}; parsed: "
        f"{parsed_bytes / n:,.0f} bytes/example ({parsed_bytes / 2**20:,.0f} MiB, what "
        f"input_cache='memory' holds)", flush=True)
  disk = {name: sum(os.path.getsize(f) for f in tf.io.gfile.glob(pattern[0])) / n
          for name, pattern in (("records", train_files), ("packed", packed_files))}
  print(f"on disk: Transform's GZIP'd TFRecords {disk['records']:,.0f} bytes/example (every "
        f"feature of every representation), ExamplePacker's chunks {disk['packed']:,.0f} "
        f"(uncompressed, chunks of {config.ranking.packed_chunk_size}); ExamplePacker "
        + (f"took {packer_seconds:.1f} s for all splits, once for all Trainers"
           if packer_seconds is not None else "was cached in this invocation"), flush=True)

  # The input path alone (nothing trains): examples/s and process CPU per example.
  def input_cost(make_dataset):
    start, cpu, count = time.perf_counter(), time.process_time(), 0
    for features in make_dataset():
      count += int(features[F.LABEL].shape[0])
    return count / (time.perf_counter() - start), 1e6 * (time.process_time() - cpu) / count

  costs = {"packed": [], "records": [], "tfxio": []}
  for _ in range(args.rounds):
    costs["packed"].append(input_cost(lambda: tfx_input(cache=False)))
    costs["records"].append(input_cost(lambda: tfx_input(cache=False, source="records")))
    costs["tfxio"].append(input_cost(lambda: tfxio_input(train_files, tft_output, names, batch)))
  for path, label in (("packed", "ExamplePacker's chunks (read_packed, the Trainer's default)"),
                      ("records", "Transform's TFRecords (read_transformed)"),
                      ("tfxio", "Transform's TFRecords via TFXIO (the DataAccessor)")):
    print(f"input alone, {label}: {max(r for r, _ in costs[path]):,.0f} examples/s, "
          f"{min(c for _, c in costs[path]):.1f} CPU-us per example", flush=True)

  # Per round, each model traced on two batches first (untimed); the bare model's epoch is
  # timed right before and right after the Trainer's fits, and the round's ratios are taken
  # against the mean of the two: on these shared 2-core VMs the machine's speed drifts by
  # +-30% within minutes (matmul rate 180-260 GFLOP/s between runs), so only ratios measured
  # side by side mean something, and the median over rounds is reported.
  # A Trainer fit is one 2-epoch fit as run_fn runs it (input_cache as configured: with
  # "memory", epoch 2 reads the batches epoch 1 kept), over the packed chunks and, for
  # comparison, over Transform's TFRecords.
  cached = ranking_config.input_cache == "memory"

  def bare_rate():
    bare = bare_model(REPRESENTATION, ranking_config, sizes)
    bare.fit(memory.take(2), epochs=1, verbose=0)
    return max(fit_rates(bare, memory, n))

  def tfx_rates(source):
    model = ranking.build_ranking_model(ranking_config, sizes)
    model.fit(tfx_input(cache=False, source=source).take(2), epochs=1, verbose=0)
    first, later = fit_rates(model, tfx_input(cache=cached, source=source), n)
    return first, later, 2 / (1 / first + 1 / later)

  keys = [(source, part) for source in ("packed", "records")
          for part in ("epoch 1", "epoch 2", "2-epoch fit")]
  ratios = {key: [] for key in keys}
  for r in range(args.rounds):
    before = bare_rate()
    rates = {source: tfx_rates(source) for source in ("packed", "records")}
    bare = (before + bare_rate()) / 2
    line = []
    for source, values in rates.items():
      for part, rate in zip(("epoch 1", "epoch 2", "2-epoch fit"), values):
        ratios[(source, part)].append(rate / bare)
      line.append(f"{source}: epoch 1 {values[0]:,.0f} ({values[0] / bare:.2f}x), epoch 2 "
                  f"{values[1]:,.0f} ({values[1] / bare:.2f}x), fit {values[2]:,.0f} "
                  f"({values[2] / bare:.2f}x)")
    print(f"round {r + 1}: bare {bare:,.0f} ex/s (mean of before/after); " + "; ".join(line),
          flush=True)

  print(f"\nTFX Trainer input -> SidRankingModel.fit (input_cache={ranking_config.input_cache!r})"
        f" / bare tf_keras model with the same layers on in-memory tensors, median over "
        f"{args.rounds} rounds [min, max]:")
  for (source, part), values in ratios.items():
    label = {"packed": "ExamplePacker's chunks", "records": "Transform's TFRecords"}[source]
    target = "  <- the Trainer's default fit (target >= 0.80)" if (
        source, part) == ("packed", "2-epoch fit") else ""
    print(f"  {label + ', ' + part + ':':42s} {float(np.median(values)):.2f}x  "
          f"[{min(values):.2f}, {max(values):.2f}]{target}")
  gzip_rates = gzip_share(args.output, train_files, tft_output, names, batch, args.rounds)
  print(f"Transform's TFRecords, GZIP's share: records alone {gzip_rates['gzip']:,.0f} vs "
        f"{gzip_rates['plain']:,.0f} examples/s uncompressed; read + parse of an uncompressed "
        f"copy {gzip_rates['plain_parse']:,.0f} examples/s (stock Transform always writes GZIP)")
  print(f"Trainer component's own figure (whole fit incl. start-up, {component['epochs']} "
        f"epochs, input {component.get('input', 'transformed_examples')}): "
        f"{component['train_examples_per_sec']:,.0f} examples/s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
