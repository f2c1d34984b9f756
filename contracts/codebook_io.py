"""On-disk layout of a `sidrec.Codebook` artifact (written by CodebookTrainer).

Under the artifact URI:
  saved_model/    the encoder + quantizer SavedModel (components/codebook/export.py). Its
                  `assign` signature maps `embeddings` float32 [n, d] to `codes` int64 [n, C];
                  `serving_default` also returns `reconstruction` float32 [n, d]
  metrics.json    quality metrics (reconstruction error, unique-SID ratio, per-level usage and
                  perplexity, prefix cosine, NMI with genres, spectrum) and timings
Custom properties: `method` (str), `code_columns` (int, C), `codebook_size` (int, K),
`input_dim` (int).
"""
import os
from typing import Any, Dict, Optional

from contracts import files

SAVED_MODEL_DIR = "saved_model"
METRICS_FILE = "metrics.json"
ASSIGN_SIGNATURE = "assign"
SERVING_SIGNATURE = "serving_default"
EMBEDDINGS_INPUT = "embeddings"
CODES_OUTPUT = "codes"
RECONSTRUCTION_OUTPUT = "reconstruction"
# Custom properties.
METHOD_PROPERTY = "method"
CODE_COLUMNS_PROPERTY = "code_columns"
CODEBOOK_SIZE_PROPERTY = "codebook_size"
INPUT_DIM_PROPERTY = "input_dim"


def saved_model_dir(uri: str) -> str:
  return os.path.join(uri, SAVED_MODEL_DIR)


def write_metrics(uri: str, metrics: Dict[str, Any]) -> None:
  """metrics.json, written to a temporary file and renamed: never half-written."""
  files.write_json(os.path.join(uri, METRICS_FILE), metrics)


def read_metrics(uri: str) -> Optional[Dict[str, Any]]:
  """The artifact's metrics.json, or None when it has none."""
  return files.read_json(os.path.join(uri, METRICS_FILE))
