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

  Layout, metadata and readers: contracts/embeddings_io.py.
  Custom properties: `dimension` (int), `count` (int), `encoder` (str).
  """
  TYPE_NAME = "sidrec.ItemEmbeddings"
  TYPE_ANNOTATION = system_artifacts.Dataset


class ItemVectors(types.Artifact):
  """The item table a ranking Trainer learned: item id -> vector, with each item's training
  interactions (written by the item_id_vocab Trainer, read by ContentAligner).
  Layout and readers: contracts/item_vectors_io.py. Custom properties: `dimension`, `count`."""
  TYPE_NAME = "sidrec.ItemVectors"
  TYPE_ANNOTATION = system_artifacts.Dataset


class Codebook(types.Artifact):
  """A trained semantic-ID codebook (encoder + quantizer SavedModel plus quality metrics).
  Layout and custom properties: contracts/codebook_io.py."""
  TYPE_NAME = "sidrec.Codebook"
  TYPE_ANNOTATION = system_artifacts.Model


class SemanticIds(types.Artifact):
  """The codes of every catalog item under one codebook (written by SemanticIdAssigner).
  Layout, custom properties and readers: contracts/semantic_ids_io.py."""
  TYPE_NAME = "sidrec.SemanticIds"
  TYPE_ANNOTATION = system_artifacts.Dataset


class PackedExamples(types.Artifact):
  """The transformed examples in chunks of parsed columns (ExamplePacker runs the transform
  graph over Transform's input examples and writes them).
  Layout and custom properties: contracts/packed_examples_io.py."""
  TYPE_NAME = "sidrec.PackedExamples"
  TYPE_ANNOTATION = system_artifacts.Dataset


# Custom property of the stock Model (set by SidRankingTrainer) and ModelBlessing (set by
# RepresentationEvaluator) artifacts: the representation the model ranks with. The baseline
# query compiled for Kubeflow filters on it (tfx_pipeline/kubeflow_v2_runner.py).
REPRESENTATION_PROPERTY = "representation"
