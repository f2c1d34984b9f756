"""Custom TFX artifact types of sidrec.

Names follow the KubeflowV2 schema-title rule `^[a-z][a-z0-9-_]{2,20}\\.[A-Z][a-zA-Z0-9-_]{2,49}$`
(`tfx/orchestration/kubeflow/v2/compiler_utils.py`), and no type declares PROPERTIES: the
KubeflowV2 compiler validates them against the generic Artifact schema (which has none) and
raises `KeyError`. Per-artifact facts go into custom properties instead, e.g.
`artifact.set_int_custom_property('dimension', 384)`; the keys each producer sets are listed
on the type.
"""

from tfx import types
from tfx.types import system_artifacts


class ItemEmbeddings(types.Artifact):
  """One dense content embedding per catalog item (written by ContentEmbedder).

  Layout under `uri`:
    embeddings/part-SSSSS-of-NNNNN.tfrecord.gz  GZIP TFRecords of tf.Examples
                                                {item_id: bytes, embedding: float list [d]}
    metadata.json                               dimension, encoder, count, seconds,
                                                items_per_second, norm_mean, norm_min, ...
  Custom properties: `dimension` (int), `count` (int), `encoder` (str).
  Read with `contracts.embeddings_io.load_item_embeddings(uri)`.
  """
  TYPE_NAME = "sidrec.ItemEmbeddings"
  TYPE_ANNOTATION = system_artifacts.Dataset


class Codebook(types.Artifact):
  """A trained semantic-ID codebook (encoder + quantizer SavedModel plus quality metrics)."""
  TYPE_NAME = "sidrec.Codebook"
  TYPE_ANNOTATION = system_artifacts.Model


class SemanticIds(types.Artifact):
  """The semantic ID (code sequence) of every catalog item."""
  TYPE_NAME = "sidrec.SemanticIds"
  TYPE_ANNOTATION = system_artifacts.Dataset


class PackedExamples(types.Artifact):
  """Transform's examples regrouped into chunks of parsed columns (written by ExamplePacker).

  Layout under `uri`: `Split-<name>/chunks-SSSSS-of-NNNNN.tfrecord`, uncompressed TFRecords of
  tf.Examples, one per chunk of ~chunk_size examples drawn at random (by a hash of each
  record) from the split: every transformed feature holds the chunk's values concatenated in
  example order, plus `num_examples`. Read with `trainer.run.read_packed`.
  Custom properties: `chunk_size` (int), `split_names` (str, encoded as on Examples).
  """
  TYPE_NAME = "sidrec.PackedExamples"
  TYPE_ANNOTATION = system_artifacts.Dataset
