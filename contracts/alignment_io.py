"""The ContentAligner's output: aligned embeddings for every catalog item, and the map.

It is an ItemEmbeddings artifact (contracts/embeddings_io.py: `embeddings/part-*`,
`metadata.json`), so codebook trainers and SemanticIdAssigners read it as they read the raw
content embeddings, plus:
  alignment/            SavedModel of the map, signature `align`: `embeddings` float32
                        [n, d_content] -> `aligned` float32 [n, d_item]. The exported ranker
                        embeds it, so a brand-new item is ranked from its content embedding.
  alignment.json        method, fit items, held-out R^2 (cross-fitted), chosen penalties,
                        seconds: what the run report shows
"""
import json
import os
from typing import Any, Dict, Optional

MAP_DIR = "alignment"
REPORT_FILE = "alignment.json"
ALIGN_SIGNATURE = "align"
EMBEDDINGS_INPUT = "embeddings"
ALIGNED_OUTPUT = "aligned"


def map_dir(uri: str) -> str:
  return os.path.join(uri, MAP_DIR)


def write_report(uri: str, report: Dict[str, Any]) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(uri, REPORT_FILE)
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    f.write(json.dumps(report, indent=2, sort_keys=True))
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def read_report(uri: str) -> Optional[Dict[str, Any]]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(uri, REPORT_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)
