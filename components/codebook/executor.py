"""Executor of CodebookTrainer: train, export the SavedModel, write metrics.json.

Output layout (`Codebook` artifact URI):
  saved_model/    the encoder + quantizer: `assign` maps float32 [n, d] embeddings to int64
                  codes [n, C]; `serving_default` also returns the reconstruction
  metrics.json    quality metrics (reconstruction error, unique-SID ratio, per-level usage and
                  perplexity, prefix cosine, NMI with genres, spectrum) + timings
"""
import json
import os
import time
from typing import Any, Dict, List

from absl import logging
import numpy as np
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components import examples_io
from components.content_embedder import embeddings_io
from tfx_pipeline import config as config_lib

SAVED_MODEL_DIR = "saved_model"
METRICS_FILE = "metrics.json"


def genre_labels(catalog_artifact, item_ids: np.ndarray) -> np.ndarray:
  """First genre of each item (aligned to `item_ids`), '' where unknown, for the NMI metric."""
  columns = examples_io.read_string_columns(
      examples_io.split_files(catalog_artifact, "items"), ["item_id", "genres"])
  first_genre = {i: g.split("|")[0] for i, g in zip(columns["item_id"], columns["genres"])}
  return np.array([first_genre.get(i, "") for i in item_ids])


def write_metrics(uri: str, metrics: Dict[str, Any]) -> None:
  path = os.path.join(uri, METRICS_FILE)
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(json.dumps(metrics, indent=2, sort_keys=True))
  tf.io.gfile.rename(tmp, path, overwrite=True)


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    from components.codebook import export
    from components.codebook import train
    config = config_lib.from_json(config_lib.CodebookConfig, exec_properties["codebook_config"])
    embeddings_artifact = artifact_utils.get_single_instance(input_dict["item_embeddings"])
    item_ids, vectors = embeddings_io.load_item_embeddings(embeddings_artifact.uri)
    labels = None
    if input_dict.get("catalog"):
      labels = genre_labels(artifact_utils.get_single_instance(input_dict["catalog"]), item_ids)
    logging.info("Training %s codebook (%d levels x %d codes) on %d x %d embeddings",
                 config.method, config.levels, config.codebook_size, *vectors.shape)
    start = time.time()
    codebook, metrics = train.train_codebook(vectors, config, labels=labels)
    # Wall time of fit + assignment + metrics: what a pipeline run pays for this codebook.
    metrics["train_seconds"] = round(time.time() - start, 3)
    metrics["levels"] = int(codebook.num_code_columns)

    output = artifact_utils.get_single_instance(output_dict["codebook"])
    # export_codebook writes to a temporary sibling and renames: never half-written.
    export.export_codebook(codebook, os.path.join(output.uri, SAVED_MODEL_DIR), metrics=metrics)
    write_metrics(output.uri, metrics)
    output.set_string_custom_property("method", config.method)
    output.set_int_custom_property("code_columns", int(codebook.num_code_columns))
    output.set_int_custom_property("codebook_size", int(config.codebook_size))
    output.set_int_custom_property("input_dim", int(vectors.shape[1]))
