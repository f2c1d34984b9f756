"""Executor of ContentAligner: read, fit (components/content_aligner/aligner.py), write.

Output layout: contracts/alignment_io.py (an ItemEmbeddings artifact plus the map and
alignment.json). The report is written last.
"""
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.content_aligner import aligner as aligner_lib
from components.content_aligner import spec
from contracts import alignment_io
from contracts import config as config_lib
from contracts import embeddings_io
from contracts import item_vectors_io


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    from components.content_aligner import export  # pylint: disable=g-import-not-at-top
    config = config_lib.from_json(config_lib.AlignmentConfig,
                                  exec_properties[spec.ALIGNMENT_CONFIG_KEY])
    seed = int(exec_properties.get(spec.SEED_KEY) or 0)
    content = artifact_utils.get_single_instance(input_dict[spec.ITEM_EMBEDDINGS_KEY])
    learned = artifact_utils.get_single_instance(input_dict[spec.ITEM_VECTORS_KEY])
    content_ids, content_vectors = embeddings_io.load_item_embeddings(content.uri)
    vector_ids, vectors, counts = item_vectors_io.read_item_vectors(learned.uri)
    result = aligner_lib.align(content_ids, content_vectors, vector_ids, vectors, counts,
                               config, seed)
    logging.info("ContentAligner: %s", result.report)

    output = artifact_utils.get_single_instance(output_dict[spec.ALIGNED_EMBEDDINGS_KEY])
    export.export_alignment(result.map, content_vectors.shape[1],
                            alignment_io.map_dir(output.uri))
    # The aligned SentencePiece vocabulary weighs items by these: no second count.
    item_vectors_io.write_train_interactions(output.uri, vector_ids, counts)
    metadata = embeddings_io.write_item_embeddings(
        output.uri, result.item_ids, result.aligned, encoder=f"aligned:{config.method}",
        content_dim=int(content_vectors.shape[1]))
    alignment_io.write_report(output.uri, result.report)
    output.set_int_custom_property("dimension", metadata["dimension"])
    output.set_int_custom_property("count", metadata["count"])
    output.set_string_custom_property("encoder", metadata["encoder"])
