"""The warmup requests of a pushed version: `<version>/assets.extra/tf_serving_warmup_requests`.

The format TF Serving replays when it loads a version (saved_model_warmup_util.cc): a TFRecord
of `tensorflow.serving.PredictionLog` records, at most 1,000; a record that fails fails the
version's load. Written by the ServingGate (components/serving_gate), replayed by the stock
server, by the gate's fresh-process check and by sidrec's local server (serving/).

Each record here is a `predict_log` whose request names the model's signature and holds one
batch of plain dense tensors (the signatures are tensorflow/serving/predict signatures).
"""
import os
from typing import Dict, Iterator, List, Mapping, Tuple

import numpy as np

from contracts import serving_api as api


def warmup_path(version_dir: str) -> str:
  return os.path.join(version_dir, api.WARMUP_FILE)


def predict_request(signature: str, inputs: Mapping[str, np.ndarray], model_name: str = ""):
  """A PredictRequest for `signature` holding `inputs` (numpy arrays, batch first)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
  return request


def write_warmup(path: str, requests: List[Tuple[str, Mapping[str, np.ndarray]]]) -> int:
  """Writes [(signature, inputs)] as PredictionLog records (temporary file, then renamed).

  Returns the number of records written.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  if len(requests) > api.MAX_WARMUP_RECORDS:
    raise ValueError(f"{len(requests)} warmup requests; TF Serving replays at most "
                     f"{api.MAX_WARMUP_RECORDS} (write fewer)")
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path + ".tmp") as writer:
    for signature, inputs in requests:
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(request=predict_request(signature, inputs)))
      writer.write(log.SerializeToString(deterministic=True))
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
  return len(requests)


def read_warmup(path: str) -> Iterator[Tuple[str, Dict[str, np.ndarray]]]:
  """(signature, inputs as numpy arrays) of each record; the signature defaults to
  serving_default as in TF Serving. Raises ValueError naming the record that is not a
  predict_log (sidrec writes only those)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  for i, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
    log = prediction_log_pb2.PredictionLog.FromString(record)
    if log.WhichOneof("log_type") != "predict_log":
      raise ValueError(f"{path}: warmup record {i} is a {log.WhichOneof('log_type')}; "
                       f"only predict_log records are supported")
    request = log.predict_log.request
    yield (request.model_spec.signature_name or api.SERVING_DEFAULT,
           {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
