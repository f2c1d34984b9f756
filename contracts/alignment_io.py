"""The ContentAligner's output: aligned embeddings for every catalog item, and the map.

It is an ItemEmbeddings artifact (contracts/embeddings_io.py: `embeddings/part-*`,
`metadata.json`), so codebook trainers and SemanticIdAssigners read it as they read the raw
content embeddings, plus:
  alignment/            SavedModel of the map, signature `align`: `embeddings` float32
                        [n, d_content] -> `aligned` float32 [n, d_item]. The exported ranker
                        embeds it, so a brand-new item is ranked from its content embedding.
  train_interactions.tsv  `item_id<TAB>count`, copied from the ItemVectors input: the
                        weights of the aligned SentencePiece vocabulary (trainer/run.py)
  alignment.json        method, fit items, held-out R^2 (cross-fitted), chosen penalties,
                        seconds: what the run report shows
"""
import os
from typing import Any, Dict, Optional

from contracts import files

MAP_DIR = "alignment"
REPORT_FILE = "alignment.json"
ALIGN_SIGNATURE = "align"
EMBEDDINGS_INPUT = "embeddings"
ALIGNED_OUTPUT = "aligned"


def map_dir(uri: str) -> str:
  return os.path.join(uri, MAP_DIR)


def write_report(uri: str, report: Dict[str, Any]) -> None:
  files.write_json(os.path.join(uri, REPORT_FILE), report)


def read_report(uri: str) -> Optional[Dict[str, Any]]:
  return files.read_json(os.path.join(uri, REPORT_FILE))
