"""Loads a SavedModel and replays its warmup requests as tensorflow_model_server does, in a
process that has the stock server's op set and nothing else.

    python -I stock_server_check.py MODEL_DIR

TF Serving links TensorFlow's ops and TensorFlow Text's; it runs no Python. So this script
imports only tensorflow, tensorflow_text and TF Serving's protos (`-I`: no PYTHONPATH, no
script directory, so nothing of sidrec is importable by accident), loads MODEL_DIR with
`tf.saved_model.load`, and calls each `assets.extra/tf_serving_warmup_requests` record's
signature with its inputs, as saved_model_warmup_util.cc does. A model that needs a sidrec
import, a Python-defined op or an op TF Serving does not link fails to load or to answer here.

It deliberately duplicates the few lines of contracts/warmup_io.py that read the file: the
point of the check is that no sidrec module is loaded. Prints one JSON object: records
replayed per signature, the first error, and the top-level modules loaded (so a test can prove
no sidrec package was imported); exits 1 when the model failed.
"""
import json
import os
import sys

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
OURS = ("contracts", "components", "trainer", "serving", "tfx_pipeline", "tests")


def _essence(error: Exception) -> str:
  """TensorFlow's graph errors start with "Graph execution error:" and a node trace; the cause
  is the last line that is not trace."""
  lines = [l.strip() for l in str(error).splitlines() if l.strip()]
  causes = [l for l in lines if not l.startswith(("File ", "Detected at node", "[[", "Graph "))
            and not l.endswith(":")]
  return (causes or lines or [""])[-1][:500]


def check(model_dir: str) -> dict:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_text  # pylint: disable=g-import-not-at-top,unused-import  # registers ops
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  result = {"model_dir": model_dir, "records": 0, "by_signature": {}, "error": None}
  try:
    model = tf.saved_model.load(model_dir)
  except Exception as e:  # pylint: disable=broad-except
    result["error"] = f"the SavedModel does not load: {type(e).__name__}: {e}"
    return result
  path = os.path.join(model_dir, WARMUP_FILE)
  if not tf.io.gfile.exists(path):
    result["error"] = f"no warmup requests at {path}"
    return result
  for i, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
    log = prediction_log_pb2.PredictionLog.FromString(record)
    request = log.predict_log.request
    signature = request.model_spec.signature_name or "serving_default"
    try:
      function = model.signatures[signature]
      inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
      outputs = function(**inputs)
      batch = next(iter(inputs.values())).shape[0]
      for name, value in outputs.items():
        if value.shape[:1] != [batch]:
          raise ValueError(f"output {name!r} has shape {value.shape.as_list()} for a batch "
                           f"of {batch}")
    except Exception as e:  # pylint: disable=broad-except
      result["error"] = (f"warmup record {i} ({signature}) failed: "
                         f"{type(e).__name__}: {_essence(e)}")
      return result
    result["records"] += 1
    result["by_signature"][signature] = result["by_signature"].get(signature, 0) + 1
  if not result["records"]:
    result["error"] = f"{path} holds no records"
  return result


def main(argv) -> int:
  if len(argv) != 2:
    print(json.dumps({"error": "usage: stock_server_check.py MODEL_DIR"}))
    return 2
  result = check(argv[1])
  result["modules"] = sorted({name.split(".")[0] for name in sys.modules})
  result["sidrec_modules"] = [m for m in result["modules"] if m in OURS]
  print(json.dumps(result))
  return 0 if result["error"] is None and not result["sidrec_modules"] else 1


if __name__ == "__main__":
  sys.exit(main(sys.argv))
