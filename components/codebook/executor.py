"""Executor of CodebookTrainer: train, export the SavedModel, write metrics.json.

Output layout: contracts/codebook_io.py.
"""
import time
from typing import Any, Dict, List

from absl import logging
import numpy as np
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components import examples_io
from components.codebook import spec
from contracts import codebook_io
from contracts import config as config_lib
from contracts import embeddings_io
from contracts import schema


def genre_labels(catalog_artifact, item_ids: np.ndarray) -> np.ndarray:
  """First genre of each item (aligned to `item_ids`), '' where unknown, for the NMI metric."""
  columns = examples_io.read_string_columns(
      examples_io.split_files(catalog_artifact, schema.CATALOG_SPLIT),
      [schema.ITEM_ID, schema.GENRES])
  first_genre = {i: g.split(schema.GENRE_SEPARATOR)[0]
                 for i, g in zip(columns[schema.ITEM_ID], columns[schema.GENRES])}
  return np.array([first_genre.get(i, "") for i in item_ids])


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    from components.codebook import export
    from components.codebook import train
    config = config_lib.from_json(config_lib.CodebookConfig,
                                  exec_properties[spec.CODEBOOK_CONFIG_KEY])
    embeddings_artifact = artifact_utils.get_single_instance(input_dict[spec.ITEM_EMBEDDINGS_KEY])
    item_ids, vectors = embeddings_io.load_item_embeddings(embeddings_artifact.uri)
    labels = None
    if input_dict.get(spec.CATALOG_KEY):
      labels = genre_labels(artifact_utils.get_single_instance(input_dict[spec.CATALOG_KEY]),
                            item_ids)
    logging.info("Training %s codebook (%d levels x %d codes) on %d x %d embeddings",
                 config.method, config.levels, config.codebook_size, *vectors.shape)
    start = time.time()
    codebook, metrics = train.train_codebook(vectors, config, labels=labels)
    # Wall time of fit + assignment + metrics: what a pipeline run pays for this codebook.
    metrics["train_seconds"] = round(time.time() - start, 3)
    metrics["levels"] = int(codebook.num_code_columns)

    output = artifact_utils.get_single_instance(output_dict[spec.CODEBOOK_KEY])
    # export_codebook writes to a temporary sibling and renames: never half-written.
    export.export_codebook(codebook, codebook_io.saved_model_dir(output.uri), metrics=metrics)
    codebook_io.write_metrics(output.uri, metrics)
    output.set_string_custom_property(codebook_io.METHOD_PROPERTY, config.method)
    output.set_int_custom_property(codebook_io.CODE_COLUMNS_PROPERTY,
                                   int(codebook.num_code_columns))
    output.set_int_custom_property(codebook_io.CODEBOOK_SIZE_PROPERTY, int(config.codebook_size))
    output.set_int_custom_property(codebook_io.INPUT_DIM_PROPERTY, int(vectors.shape[1]))
