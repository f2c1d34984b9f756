"""ServingGate executor: stamp the model with warmup requests, check it in a fresh process.

1. Copy the Trainer's serving model to `<blessing>/stamped_model` (InfraValidator's layout,
   which the stock Pusher pushes from: tfx/components/pusher/executor.py GetModelPath).
2. Write `assets.extra/tf_serving_warmup_requests` into the copy (warmup.py: requests from
   eval examples for serving_default and serve_new_items).
3. Run stock_server_check.py on the copy in a fresh `python -I` process and read its verdict.
4. Bless (INFRA_BLESSED, `blessed`=1, `has_model`=1) or not (INFRA_NOT_BLESSED, `blessed`=0);
   `serving_check.json` records the records replayed and the error. A model that fails is
   not pushed; the run goes on, and the report names the error.

Why a subprocess and not the executor's own TensorFlow: this process has imported sidrec,
TFX, Keras and TFRS, so a model that needs any of them would load here and fail in
tensorflow_model_server. Loading the ML-1M sid_spm ranker and replaying 24 requests takes
~10 s, mostly TensorFlow's import.
"""
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx.utils import path_utils

from components import examples_io
from components.serving_gate import spec
from components.serving_gate import warmup
from contracts import config as config_lib
from contracts import embeddings_io
from contracts import serving_api as api
from contracts import warmup_io

CHECK_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "stock_server_check.py")
# Eval examples read to draw users and candidates from (the first ones of the split's files).
MAX_EXAMPLES = 4096


def run_stock_server_check(model_dir: str, timeout_seconds: int) -> Dict[str, Any]:
  """The verdict of stock_server_check.py on `model_dir`, run in a fresh isolated process."""
  env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
  try:
    done = subprocess.run([sys.executable, "-I", CHECK_SCRIPT, model_dir], env=env,
                          cwd=model_dir, capture_output=True, text=True,
                          timeout=timeout_seconds, check=False)
  except subprocess.TimeoutExpired:
    return {"error": f"loading and warming up took longer than {timeout_seconds} s "
                     f"(serving.gate_timeout_seconds)", "records": 0}
  lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
  if not lines:
    tail = done.stderr.strip().splitlines()[-3:]
    return {"error": f"the check process exited with {done.returncode}: {' | '.join(tail)}",
            "records": 0}
  try:
    result = json.loads(lines[-1])
  except ValueError:
    return {"error": f"the check process printed no verdict: {lines[-1][:200]}", "records": 0}
  if result.get("sidrec_modules"):
    result["error"] = (f"the model's load imported sidrec modules {result['sidrec_modules']}; "
                       f"tensorflow_model_server cannot")
  return result


def read_examples(examples: types.Artifact, split: str, limit: int) -> List[tf.train.Example]:
  files = examples_io.split_files(examples, split)
  dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit)
  return [tf.train.Example.FromString(r) for r in dataset.as_numpy_iterator()]


def _mark(blessing: types.Artifact, blessed: bool) -> None:
  name = spec.BLESSED_FILE if blessed else spec.NOT_BLESSED_FILE
  io_utils.write_string_file(os.path.join(blessing.uri, name), "")
  blessing.set_int_custom_property(spec.BLESSED_PROPERTY, int(blessed))


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    config = config_lib.from_json(config_lib.ServingConfig,
                                  exec_properties[spec.SERVING_CONFIG_KEY])
    model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
    examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
    blessing = artifact_utils.get_single_instance(output_dict[spec.BLESSING_KEY])
    embeddings = None
    if input_dict.get(spec.ITEM_EMBEDDINGS_KEY):
      ids, vectors = embeddings_io.load_item_embeddings(
          artifact_utils.get_single_instance(input_dict[spec.ITEM_EMBEDDINGS_KEY]).uri)
      embeddings = dict(zip(ids, np.asarray(vectors)))

    model_path = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
    stamped = path_utils.stamped_model_path(blessing.uri)
    io_utils.copy_dir(src=model_path, dst=stamped)
    specs = warmup.signature_inputs(stamped, api.CLIENT_SIGNATURES)
    requests = warmup.build_requests(
        specs, read_examples(examples, exec_properties[spec.EXAMPLES_SPLIT_KEY], MAX_EXAMPLES),
        config.warmup_requests, config.warmup_candidates, embeddings)
    warmup_io.write_warmup(warmup_io.warmup_path(stamped), requests)

    result = run_stock_server_check(stamped, config.gate_timeout_seconds)
    result["warmup_records"] = len(requests)
    io_utils.write_string_file(os.path.join(blessing.uri, spec.CHECK_RESULT_FILE),
                               json.dumps(result, indent=2, sort_keys=True))
    blessed = result.get("error") is None and result.get("records") == len(requests)
    _mark(blessing, blessed)
    if blessed:
      blessing.set_int_custom_property(spec.HAS_MODEL_PROPERTY, 1)
      logging.info("ServingGate: %d warmup requests answered in the stock server's op set (%s)",
                   result["records"], result.get("by_signature"))
    else:
      logging.warning("ServingGate: model %s not blessed: %s", model.uri, result.get("error"))
