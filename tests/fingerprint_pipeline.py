"""Fingerprint of one pipeline run on the end-to-end synthetic config, to compare two commits.

    python tests/fingerprint_pipeline.py OUTPUT_DIR FINGERPRINT.json
    python tests/fingerprint_pipeline.py --compare A.json B.json

Runs the e2e test's small synthetic config (tests/test_pipeline_e2e.py) with LocalDagRunner
and prints, as JSON: per codebook the digest of every item's codes (read from the SemanticIds
TFRecords directly, so no sidrec reader is trusted) and the report's codebook figures; the
digest of each Transform asset (vocabularies, the SentencePiece pieces); and the ranking
figures. A refactor that must not change behaviour gives the same codes, assets and codebook
figures. `--compare` says which of those differ between two fingerprints (Transform assets
by content: an asset's file name may change with its analyzer's name). Not a test (the file
name is not collected): it runs a whole pipeline.
"""
import glob
import hashlib
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Timings and locations differ between any two runs.
_VOLATILE = ("uri", "train_seconds", "assign_items_per_second", "seconds", "items_per_second")


def _strip(value):
  if isinstance(value, dict):
    return {k: _strip(v) for k, v in sorted(value.items()) if k not in _VOLATILE}
  if isinstance(value, list):
    return [_strip(v) for v in value]
  return value


def _codes_digest(sids_uri: str) -> dict:
  import tensorflow as tf
  files = sorted(glob.glob(os.path.join(sids_uri, "sids", "*")))
  rows = {}
  for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    rows[feature["item_id"].bytes_list.value[0].decode()] = list(feature["codes"].int64_list.value)
  text = json.dumps(sorted(rows.items()))
  return {"items": len(rows), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def compare(a_path: str, b_path: str) -> int:
  a, b = (json.load(open(p)) for p in (a_path, b_path))
  same = True
  for name in sorted(set(a["codebooks"]) | set(b["codebooks"])):
    for part in ("codes", "figures"):
      equal = a["codebooks"].get(name, {}).get(part) == b["codebooks"].get(name, {}).get(part)
      same &= equal
      print(f"codebook {name} {part}: {'identical' if equal else 'DIFFERENT'}")
  assets_a, assets_b = sorted(a["transform_assets"].values()), sorted(
      b["transform_assets"].values())
  same &= assets_a == assets_b
  print(f"Transform assets ({len(assets_a)} vs {len(assets_b)}), by content: "
        f"{'identical' if assets_a == assets_b else 'DIFFERENT'}")
  for name in sorted(set(a["ranking"]) | set(b["ranking"])):
    ra, rb = a["ranking"].get(name, {}), b["ranking"].get(name, {})
    print(f"ranking {name}: " + ", ".join(
        f"{k} {ra.get(k)} -> {rb.get(k)}" for k in ("auc", "auc_new_items", "gauc_new_items")))
  return 0 if same else 1


def main(output_dir: str, fingerprint_path: str) -> None:
  from tests.test_pipeline_e2e import small_synthetic_config
  from tfx_pipeline import local_runner
  config = small_synthetic_config(output_dir)
  report = local_runner.run(config)
  codebooks = {}
  for method, entry in report["codebooks"].items():
    codebooks[method] = {"codes": _codes_digest(entry["assignment"]["uri"]),
                         "figures": _strip(entry)}
  assets = {}
  for path in sorted(glob.glob(os.path.join(config.pipeline_root, "Transform", "transform_graph",
                                            "*", "transform_fn", "assets", "*"))):
    with open(path, "rb") as f:
      assets[os.path.basename(path)] = hashlib.sha256(f.read()).hexdigest()
  ranking = {name: {k: r.get(k) for k in ("auc", "auc_new_items", "auc_seen_items", "gauc",
                                           "gauc_new_items", "table_rows", "blessed")}
             for name, r in report["representations"].items()}
  with open(fingerprint_path, "w") as f:
    json.dump({"codebooks": codebooks, "transform_assets": assets, "ranking": ranking}, f,
              indent=1, sort_keys=True)


if __name__ == "__main__":
  if sys.argv[1] == "--compare":
    sys.exit(compare(sys.argv[2], sys.argv[3]))
  main(sys.argv[1], sys.argv[2])
