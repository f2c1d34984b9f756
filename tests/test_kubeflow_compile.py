"""The same DAG compiles for Kubeflow Pipelines V2 (no cluster needed)."""
import dataclasses
import json

import pytest

from tests.test_pipeline_e2e import small_synthetic_config

# What a distributed run would pass (PipelineConfig.beam_pipeline_args); none of them is a
# default, so finding them in the spec means they came from the config.
BEAM_ARGS = ("--runner=DataflowRunner", "--project=sidrec-test", "--region=europe-west4",
             "--temp_location=gs://bucket/sidrec-tmp",
             "--sdk_container_image=example.com/sidrec-beam:test")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
  from tfx_pipeline import kubeflow_v2_runner
  tmp = tmp_path_factory.mktemp("kfp")
  config = dataclasses.replace(small_synthetic_config(str(tmp / "out")),
                               beam_pipeline_args=BEAM_ARGS)
  path = kubeflow_v2_runner.compile_pipeline(
      config, output_file=str(tmp / "pipeline.json"), image="example.com/sidrec:test",
      pipeline_root="gs://bucket/sidrec", data_dir="gs://bucket/sidrec-data")
  with open(path) as f:
    return config, json.load(f)


def test_pipeline_compiles_to_kubeflow_v2_spec(compiled):
  from tfx_pipeline import pipeline
  config, job = compiled
  spec = job["pipelineSpec"]
  tasks = spec["root"]["dag"]["tasks"]
  text = json.dumps(spec)
  assert {"InteractionExampleGen", "CatalogExampleGen", "ContentEmbedder", "SemanticIdJoiner",
          "Transform"} <= set(tasks)
  for representation in config.representations:
    prefix = pipeline.component_prefix(representation)
    assert {f"{prefix}Trainer", f"{prefix}Evaluator", f"{prefix}Pusher"} <= set(tasks)
  # Transform and the Trainer get their functions as dotted paths (nothing is packaged).
  assert pipeline.PREPROCESSING_FN in text and pipeline.RUN_FN in text
  assert "gs://bucket/sidrec/serving/sid_spm" in text
  # Custom artifact types keep their Kubeflow-valid schema title.
  assert "sidrec.ItemEmbeddings" in text
  assert "example.com/sidrec:test" in text
  assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/sidrec"


def _expected_inputs(config) -> dict:
  """{task: {input: (producer task, output key)}}: the DAG of tfx_pipeline/pipeline.py."""
  from tfx_pipeline import pipeline
  books = {m: pipeline.codebook_prefix(m) for m in config.codebook_methods}
  # One `codes_<codebook>` input per codebook a representation can read, from its assigner;
  # RQ-KMeans is trained and assigned for the report only.
  codes = {f"codes_{m}": (f"{books[m]}SemanticIdAssigner", "semantic_ids")
           for m in pipeline.joined_codebooks(config)}
  assert set(codes) == {"codes_rqvae", "codes_moc"}
  joined = {"examples": ("SemanticIdJoiner", "joined_examples"),
            "schema": ("SemanticIdJoiner", "joined_schema")}
  packed_input = {"examples": ("SemanticIdJoiner", "joined_examples"),
                  "transform_graph": ("Transform", "transform_graph")}
  embeddings = ("ContentEmbedder", "item_embeddings")
  expected = {
      "InteractionExampleGen": {},
      "CatalogExampleGen": {},
      "StatisticsGen": {"examples": ("InteractionExampleGen", "examples")},
      "SchemaGen": {"statistics": ("StatisticsGen", "statistics")},
      "ExampleValidator": {"statistics": ("StatisticsGen", "statistics"),
                           "schema": ("SchemaGen", "schema")},
      "ContentEmbedder": {"catalog": ("CatalogExampleGen", "examples")},
      "SemanticIdJoiner": {"examples": ("InteractionExampleGen", "examples"),
                           "schema": ("SchemaGen", "schema"), **codes},
      "Transform": joined,
      "ExamplePacker": packed_input,
  }
  for prefix in books.values():
    expected[f"{prefix}CodebookTrainer"] = {"item_embeddings": embeddings,
                                            "catalog": ("CatalogExampleGen", "examples")}
    expected[f"{prefix}SemanticIdAssigner"] = {"item_embeddings": embeddings,
                                               "codebook": (f"{prefix}CodebookTrainer",
                                                            "codebook")}
  for representation in config.representations:
    r = pipeline.component_prefix(representation)
    expected[f"{r}Trainer"] = dict(packed_input, **codes,
                                   packed_examples=("ExamplePacker", "packed_examples"))
    if representation == "dense_content":
      expected[f"{r}Trainer"]["item_embeddings"] = embeddings
    # The V2 compiler turns LatestBlessedModelStrategy into two resolver tasks.
    resolver = f"{r}BaselineResolver"
    expected[f"{resolver}-model-blessing-resolver"] = {}
    expected[f"{resolver}-model-resolver"] = {
        "input": (f"{resolver}-model-blessing-resolver", "model_blessing")}
    expected[f"{r}Evaluator"] = dict(joined, model=(f"{r}Trainer", "model"),
                                     baseline_model=(f"{resolver}-model-resolver", "model"))
    expected[f"{r}ServingGate"] = {"model": (f"{r}Trainer", "model"),
                                   "examples": joined["examples"]}
    if representation == "dense_content":
      expected[f"{r}ServingGate"]["item_embeddings"] = embeddings
    # The Pusher pushes the ServingGate's copy of the model (it carries the warmup requests).
    expected[f"{r}Pusher"] = {"model_blessing": (f"{r}Evaluator", "blessing"),
                              "infra_blessing": (f"{r}ServingGate", "blessing")}
  return expected


def test_every_task_reads_the_artifacts_of_its_upstream_tasks(compiled):
  config, job = compiled
  assert "dense_content" in config.representations  # the one Trainer with embeddings
  tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
  got = {}
  for name, task in tasks.items():
    artifacts = task.get("inputs", {}).get("artifacts", {})
    got[name] = {key: (a["taskOutputArtifact"]["producerTask"],
                       a["taskOutputArtifact"]["outputArtifactKey"])
                 for key, a in artifacts.items()}
    # Kubeflow schedules by dependentTasks: exactly the producers of the task's inputs. TFX's
    # V2 compiler gives resolver tasks none (as in its own testdata,
    # expected_full_taxi_pipeline_job.json): they query MLMD, not upstream tasks.
    if not name.endswith("-resolver"):
      assert sorted(task.get("dependentTasks", [])) == sorted(
          {producer for producer, _ in got[name].values()}), name
  expected = _expected_inputs(config)
  assert set(got) == set(expected)
  for name in sorted(expected):
    assert got[name] == expected[name], name


def test_beam_pipeline_args_reach_the_beam_components(compiled):
  config, job = compiled
  spec = job["pipelineSpec"]
  from tfx_pipeline import pipeline
  beam_tasks = ["InteractionExampleGen", "CatalogExampleGen", "StatisticsGen",
                "ContentEmbedder", "SemanticIdJoiner", "Transform", "ExamplePacker"]
  beam_tasks += [f"{pipeline.codebook_prefix(m)}SemanticIdAssigner"
                 for m in config.codebook_methods]
  beam_tasks += [f"{pipeline.component_prefix(r)}Evaluator" for r in config.representations]
  n = len(BEAM_ARGS)
  for name in beam_tasks:
    label = spec["components"][spec["root"]["dag"]["tasks"][name]["componentRef"]["name"]][
        "executorLabel"]
    args = spec["deploymentSpec"]["executors"][label]["container"]["args"]
    # In the config's order, as one run of arguments.
    assert any(tuple(args[i:i + n]) == BEAM_ARGS for i in range(len(args) - n + 1)), (name, args)
    # Every Beam component's workers import the TFDV fix before they unpickle a DoFn.
    assert "--beam_plugins=components.beam_worker" in args, (name, args)


def test_each_baseline_query_is_scoped_to_its_own_representation(compiled):
  """TFX's V2 compiler drops the resolver's producer: without the representation condition
  every Evaluator's baseline would be the latest blessed model of any representation."""
  from tfx_pipeline import pipeline
  config, job = compiled
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  for representation in config.representations:
    prefix = pipeline.component_prefix(representation)
    query = executors[f"{prefix}BaselineResolver-model-blessing-resolver_executor"]["resolver"]
    assert query["outputArtifactQueries"]["model_blessing"]["filter"] == (
        'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
        f' AND metadata.representation.string_value="{representation}"')


def test_without_baselines_no_resolver_task_is_compiled(tmp_path):
  """For KFP's open-source backend: no resolver tasks, and no Evaluator waits for one."""
  from tfx_pipeline import kubeflow_v2_runner
  config = dataclasses.replace(small_synthetic_config(str(tmp_path / "out")),
                               representations=("sid_spm",))
  path = kubeflow_v2_runner.compile_pipeline(
      config, output_file=str(tmp_path / "p.json"), image="example.com/sidrec:test",
      pipeline_root="gs://bucket/sidrec", baselines=False)
  with open(path) as f:
    spec = json.load(f)["pipelineSpec"]
  assert not [k for k, e in spec["deploymentSpec"]["executors"].items() if "resolver" in e]
  evaluator = spec["root"]["dag"]["tasks"]["SidSpmEvaluator"]
  assert "baseline_model" not in evaluator.get("inputs", {}).get("artifacts", {})
  assert "SidSpmPusher" in spec["root"]["dag"]["tasks"]


def test_a_distributed_runner_without_a_worker_image_is_one_line_naming_the_flag(
    tmp_path, capsys):
  from tfx_pipeline import cli
  assert cli.main(["compile-kubeflow", "--dataset", "synthetic", "--output", str(tmp_path),
                   "--image", "example.com/sidrec:test", "--pipeline-file",
                   str(tmp_path / "p.json"), "--beam-arg=--runner=FlinkRunner"]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "--runner=FlinkRunner" in err
  assert "--sdk_container_image=" in err
  assert not (tmp_path / "p.json").exists()


def test_the_alignment_stages_compile_with_their_inputs(tmp_path):
  """The aligned DAG for Kubeflow: the item_id_vocab Trainer's ItemVectors feed the
  ContentAligner, whose output the aligned codebooks train on; an aligned Trainer reads the
  aligned codes, the aligned codebook and the alignment (the map its model embeds)."""
  from tfx_pipeline import kubeflow_v2_runner
  config = dataclasses.replace(
      small_synthetic_config(str(tmp_path / "out")), beam_pipeline_args=BEAM_ARGS,
      representations=("no_item", "aligned_sid_spm", "aligned_dense"))
  path = kubeflow_v2_runner.compile_pipeline(
      config, output_file=str(tmp_path / "pipeline.json"), image="example.com/sidrec:test",
      pipeline_root="gs://bucket/sidrec", data_dir="gs://bucket/sidrec-data")
  with open(path) as f:
    spec = json.load(f)["pipelineSpec"]
  tasks = spec["root"]["dag"]["tasks"]

  def inputs(task):
    return {k: (a["taskOutputArtifact"]["producerTask"],
                a["taskOutputArtifact"]["outputArtifactKey"])
            for k, a in tasks[task]["inputs"]["artifacts"].items()}

  assert "sidrec.ItemVectors" in json.dumps(spec)
  # item_id_vocab is not listed: trained as the alignment's source only.
  assert "ItemIdVocabTrainer" in tasks and "ItemIdVocabEvaluator" not in tasks
  assert inputs("ContentAligner") == {
      "item_embeddings": ("ContentEmbedder", "item_embeddings"),
      "item_vectors": ("ItemIdVocabTrainer", "item_vectors")}
  assert inputs("AlignedRqKMeansCodebookTrainer")["item_embeddings"] == (
      "ContentAligner", "aligned_embeddings")
  spm = inputs("AlignedSidSpmTrainer")
  assert spm["codes_aligned_rqkmeans"] == ("AlignedRqKMeansSemanticIdAssigner", "semantic_ids")
  assert spm["codebook_aligned_rqkmeans"] == ("AlignedRqKMeansCodebookTrainer", "codebook")
  assert spm["alignment"] == ("ContentAligner", "aligned_embeddings")
  assert "item_embeddings" not in spm
  dense = inputs("AlignedDenseTrainer")
  assert dense["item_embeddings"] == ("ContentAligner", "aligned_embeddings")
  # Its ServingGate builds serve_new_items requests from the raw content embeddings.
  assert inputs("AlignedDenseServingGate")["item_embeddings"] == (
      "ContentEmbedder", "item_embeddings")
