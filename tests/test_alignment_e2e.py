"""End-to-end: collaborative alignment in the DAG (LocalDagRunner, small synthetic data).

1. Leakage guard: the same data twice, the second time with every eval-split interaction
   changed (labels flipped, ratings, users, items and times rewritten). Everything the
   alignment produces (the item_id_vocab ranker's learned table, the aligned embeddings, the
   aligned codes, the aligned SentencePiece vocabulary the aligned_sid_spm Trainer trains)
   and Transform's vocabularies must be byte-identical: nothing from the eval period reaches
   them. A partial run up to the aligned assigner and that Trainer keeps it short.
2. Serving: the first data set then runs whole; each pushed aligned ranker (prefix n-grams,
   SentencePiece pieces whose vocabulary its Trainer trained, the aligned vector through a
   linear layer), given a user with a real history, ranks an item it has never
   seen from its raw content embedding alone, exactly as it ranks that item's catalog twin (an
   item outside the training vocabulary, whose aligned vector is the full map's, as a new
   one's).
3. Export: TFMA's AUC of each pushed aligned ranker (its serving signature, raw ids in) equals
   the AUC Keras measured for the trained model on the same eval split.
"""
import dataclasses
import glob
import json
import os
import shutil

import numpy as np
import pytest

from contracts import config as config_lib
from contracts import schema

pytestmark = pytest.mark.e2e

ALIGNED = ("aligned_sid_prefix_ngram", "aligned_sid_spm", "aligned_dense")
PARTIAL_END = ("AlignedRqKMeansSemanticIdAssigner", "AlignedSidSpmTrainer")


def alignment_config(output_dir: str) -> config_lib.PipelineConfig:
  from tests.test_pipeline_e2e import small_synthetic_config  # pylint: disable=g-import-not-at-top
  config = small_synthetic_config(output_dir)
  config = dataclasses.replace(config, codebook_methods=("rqvae",),
                               representations=ALIGNED)
  config = config_lib.replace_section(config, "alignment", min_train_interactions=5)
  return config_lib.with_dataset_defaults(config)


def _rewrite_eval_split(data_dir: str) -> int:
  """Every eval interaction changed: label flipped, rating, user, item and time rewritten."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  files = sorted(glob.glob(os.path.join(data_dir, schema.INTERACTIONS_DIR, schema.EVAL_SPLIT,
                                        "*")))
  examples = [tf.train.Example.FromString(r.numpy()) for f in files
              for r in tf.data.TFRecordDataset(f, compression_type="GZIP")]
  users = [e.features.feature[schema.USER_ID].bytes_list.value[0] for e in examples]
  items = [e.features.feature[schema.ITEM_ID].bytes_list.value[0] for e in examples]
  for i, e in enumerate(examples):
    f = e.features.feature
    f[schema.LABEL].int64_list.value[0] = 1 - f[schema.LABEL].int64_list.value[0]
    f[schema.RATING].float_list.value[0] = 6.0 - f[schema.RATING].float_list.value[0]
    f[schema.USER_ID].bytes_list.value[0] = users[(i + 1) % len(users)]
    f[schema.ITEM_ID].bytes_list.value[0] = items[(i + 7) % len(items)]
    f[schema.TIMESTAMP].int64_list.value[0] += 86_400
  options = tf.io.TFRecordOptions(compression_type="GZIP")
  for name in files:
    os.remove(name)
  with tf.io.TFRecordWriter(files[0], options) as writer:
    for e in examples:
      writer.write(e.SerializeToString())
  return len(examples)


def _run(config, to_nodes=None):
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  from tfx.orchestration import pipeline as tfx_pipeline  # pylint: disable=g-import-not-at-top
  from tfx_pipeline import local_runner  # pylint: disable=g-import-not-at-top
  from tfx_pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  run_config = dataclasses.replace(config, beam_pipeline_args=local_runner.local_beam_args(config))
  dag = pipeline_lib.create_pipeline(run_config, local_runner.metadata_config(config))
  options = tfx_pipeline.RunOptions(to_nodes=to_nodes) if to_nodes else None
  tfx.orchestration.LocalDagRunner().run(dag, run_options=options)


def _newest(pipeline_root: str, component: str, output: str) -> str:
  """The uri of a component's newest output artifact."""
  uris = sorted(glob.glob(os.path.join(pipeline_root, component, output, "*")),
                key=lambda p: int(os.path.basename(p)))
  assert uris, f"{component} wrote no {output}"
  return uris[-1]


def _files(pipeline_root: str, component: str, output: str, skip=("alignment.json",)):
  """{relative path: bytes} of a component's newest output artifact."""
  newest = _newest(pipeline_root, component, output)
  out = {}
  for path in glob.glob(os.path.join(newest, "**", "*"), recursive=True):
    if os.path.isfile(path) and os.path.basename(path) not in skip \
        and "/alignment/" not in path:
      with open(path, "rb") as f:
        out[os.path.relpath(path, newest)] = f.read()
  return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  from tfx_pipeline import local_runner  # pylint: disable=g-import-not-at-top
  base = tmp_path_factory.mktemp("alignment")
  a, b = alignment_config(str(base / "a")), alignment_config(str(base / "b"))
  local_runner.ensure_data(a)
  shutil.copytree(a.data_dir, b.data_dir)
  changed = _rewrite_eval_split(b.data_dir)
  # The two runs are independent (own roots and metadata stores): b in a fresh process while
  # a runs here, each mostly one busy core. Across processes the records are compared byte
  # for byte, which holds because sidrec serializes them deterministically (records_test.py).
  import multiprocessing  # pylint: disable=g-import-not-at-top
  from concurrent import futures  # pylint: disable=g-import-not-at-top
  with futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
    other = pool.submit(_run, b, list(PARTIAL_END))
    _run(a, to_nodes=list(PARTIAL_END))  # if it fails, its error is raised once b is done
    other.result()
  return a, b, changed


def test_nothing_from_the_eval_period_reaches_the_alignment(runs):
  a, b, changed = runs
  assert changed > 0
  for component, output in (("ItemIdVocabTrainer", "item_vectors"),
                            ("ContentAligner", "aligned_embeddings"),
                            (PARTIAL_END[0], "semantic_ids")):
    files_a = _files(a.pipeline_root, component, output)
    files_b = _files(b.pipeline_root, component, output)
    assert files_a and sorted(files_a) == sorted(files_b), component
    different = [name for name in files_a if files_a[name] != files_b[name]]
    assert not different, f"{component}: {different} differ when only the eval split did"
  spm_a = _files(a.pipeline_root, PARTIAL_END[1], "model_run")
  spm_b = _files(b.pipeline_root, PARTIAL_END[1], "model_run")
  assets = [n for n in spm_a if n.endswith(".spm_subid_vocab.tsv")]
  assert assets and all(spm_a[n] == spm_b[n] for n in assets)
  vocab_a = _files(a.pipeline_root, "Transform", "transform_graph")
  vocab_b = _files(b.pipeline_root, "Transform", "transform_graph")
  vocabularies = [n for n in vocab_a if n.startswith("transform_fn/assets/")]
  assert vocabularies and all(vocab_a[n] == vocab_b[n] for n in vocabularies)
  # The eval split did change what an eval-reading stage writes: the check can fail.
  joined_a = _files(a.pipeline_root, "SemanticIdJoiner", "joined_examples")
  joined_b = _files(b.pipeline_root, "SemanticIdJoiner", "joined_examples")
  assert any(joined_a[n] != joined_b[n] for n in joined_a if "eval" in n)
  report = json.loads(open(glob.glob(os.path.join(
      a.pipeline_root, "ContentAligner", "aligned_embeddings", "*", "alignment.json"))[0]).read())
  assert report["fit_items"] > 20 and -1.0 < report["r2_held_out"] < 1.0
  # The item table's export (a pass over the training split) is timed as an alignment cost.
  stats = json.loads(open(_newest(a.pipeline_root, "ItemIdVocabTrainer", "model_run")
                          + "/train_stats.json").read())
  assert stats["item_vectors_seconds"] > 0


@pytest.fixture(scope="module")
def full_run(runs):
  a, _, _ = runs
  _run(a)  # the rest of the DAG: the aligned Trainers, their Evaluators, ServingGates, Pushers
  return a


@pytest.mark.parametrize("representation", ALIGNED)
def test_a_never_seen_item_is_ranked_from_its_content_embedding_alone(full_run, representation):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from contracts import embeddings_io  # pylint: disable=g-import-not-at-top
  from contracts import serving_api as api  # pylint: disable=g-import-not-at-top
  from tfx_pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  a = full_run
  versions = sorted(glob.glob(os.path.join(a.serving_dir, pipeline_lib.model_name(representation),
                                           "*", "saved_model.pb")))
  assert versions, f"{representation} was not pushed"
  model = tf.saved_model.load(os.path.dirname(versions[-1]))
  content_uri = sorted(glob.glob(os.path.join(a.pipeline_root, "ContentEmbedder",
                                              "item_embeddings", "*")))[-1]
  ids, vectors = embeddings_io.load_item_embeddings(content_uri)
  with open(glob.glob(os.path.join(a.pipeline_root, "Transform", "transform_graph", "*",
                                   "transform_fn", "assets", "item_id_vocab"))[0]) as f:
    vocab = set(f.read().split())
  # Items outside the training vocabulary (new ones): their catalog vector is the full map's.
  rows = [r for r, i in enumerate(ids) if i not in vocab][:5]
  assert rows, "the split left no new items"
  new, k = [ids[r] for r in rows], len(rows)
  spec = model.signatures[api.SERVING_DEFAULT].structured_input_signature[1]
  inputs = {}
  for name, s in spec.items():
    if name == schema.ITEM_ID:
      continue
    shape = [k] + list(s.shape[1:])
    inputs[name] = (tf.fill(shape, "u1" if name == schema.USER_ID else "")
                    if s.dtype == tf.string else tf.zeros(shape, s.dtype))
  # A real history of training items: their looked-up codes / tokens / vectors count too.
  seen = sorted(vocab)[:a.split.history_length]
  inputs[schema.HISTORY_ITEM_IDS] = tf.constant([seen] * k)
  known = model.signatures[api.SERVING_DEFAULT](item_id=tf.constant(new), **inputs)
  fresh = model.signatures[api.SERVE_NEW_ITEMS](
      item_id=tf.constant([f"brand-new-{i}" for i in new]),
      item_embedding=tf.constant(vectors[rows]), **inputs)
  assert not fresh[api.ITEM_IN_TABLE].numpy().any()
  assert known[api.ITEM_IN_TABLE].numpy().all()
  np.testing.assert_allclose(fresh[api.LOGITS].numpy(), known[api.LOGITS].numpy(), atol=1e-5)
  # The content matters: another item's embedding gives another score.
  other = model.signatures[api.SERVE_NEW_ITEMS](
      item_id=tf.constant([f"brand-new-{i}" for i in new]),
      item_embedding=tf.constant(vectors[rows][::-1] * -1.0), **inputs)
  assert not np.allclose(other[api.LOGITS].numpy(), known[api.LOGITS].numpy())


@pytest.mark.parametrize("representation", ALIGNED)
def test_the_pushed_model_scores_the_eval_split_as_the_trained_keras_model_did(
    full_run, representation):
  """TFMA scores the exported serving signature (raw ids; the map, the aligned codebooks and
  the item tables inside the graph); Keras scored the trained model over the same eval split
  in run_fn. The two AUCs agree up to Keras' 10,000-threshold grid (TFMA's is exact), so the
  export computes what was trained."""
  from contracts import trainer_io  # pylint: disable=g-import-not-at-top
  from tfx_pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  from tfx_pipeline import report  # pylint: disable=g-import-not-at-top
  a = full_run
  prefix = pipeline_lib.component_prefix(representation)
  evaluation = _newest(a.pipeline_root, f"{prefix}Evaluator", "evaluation")
  model_run = _newest(a.pipeline_root, f"{prefix}Trainer", "model_run")
  overall = report.load_slice_metrics(evaluation)[()]
  with open(os.path.join(model_run, trainer_io.TRAIN_STATS_FILE)) as f:
    keras_auc = json.load(f)["keras_eval"]["auc"]
  assert overall["example_count"] > 100
  assert overall["auc"] == pytest.approx(keras_auc, abs=1e-3), representation
