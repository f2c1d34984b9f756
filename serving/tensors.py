"""Request <-> tensors, validated against a SignatureDef, with TF Serving's error messages.

What a Predict request may hold is decided by the version's SignatureDef (as read from its
saved_model.pb), exactly as tensorflow_model_server decides it (predict_util.cc): the signature
name must exist, the inputs must be the signature's inputs (no extra, none missing), each with
the signature's dtype and a shape compatible with the signature's; sidrec's local model server
(a stand-in for tensorflow_model_server) also rejects empty and inconsistent batches up front,
so the client learns which input is wrong instead of getting a graph error. The REST API's
JSON row and column forms (`json_to_inputs`, `outputs_to_json`) follow TF Serving's
json_tensor.cc.

`ServingError` carries a grpc.StatusCode; both protocols turn it into their error form.
"""

from __future__ import annotations

import base64
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf

from contracts import serving_api as api


class ServingError(Exception):
  """An error a request answers with: a gRPC status code and TF Serving's message."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code, self.message = code, message


def invalid(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def find_signature(signature_defs: Mapping[str, Any], name: str):
  """The SignatureDef called `name` ("" = serving_default), as TF Serving resolves it."""
  name = name or api.SERVING_DEFAULT
  if name not in signature_defs or name.startswith("__"):
    raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                       f'Serving signature name: "{name}" not found in signature def')
  return name, signature_defs[name]


def _dtype_name(enum_value: int) -> str:
  return tf.dtypes.as_dtype(enum_value).name


def _shape_text(shape: Sequence[int]) -> str:
  return "[" + ",".join("?" if d < 0 else str(d) for d in shape) + "]"


def signature_shape(info) -> Optional[Tuple[int, ...]]:
  """A TensorInfo's shape (-1 = any size), or None when the rank is unknown."""
  if info.tensor_shape.unknown_rank:
    return None
  return tuple(d.size for d in info.tensor_shape.dim)


def validate_inputs(signature_name: str, signature, inputs: Mapping[str, np.ndarray],
                    model_name: str = "") -> Dict[str, np.ndarray]:
  """Checks `inputs` against `signature` (a SignatureDef); returns them in signature order.

  Raises ServingError(INVALID_ARGUMENT) naming the input and what the signature expects.
  """
  expected = sorted(signature.inputs)
  for alias in sorted(inputs):
    if alias not in signature.inputs:
      raise invalid(f"input tensor alias not found in signature: {alias}. Inputs expected to "
                    f"be in the set {{{','.join(expected)}}}.")
  missing = [alias for alias in expected if alias not in inputs]
  if missing:
    raise invalid(f"Request inputs do not match required inputs for model `{model_name}`. "
                  f"Send extra: {{}}. Missing but required: {{{','.join(missing)}}}. "
                  f"(signature {signature_name!r} needs {{{','.join(expected)}}})")
  batch, batch_input = None, None
  out = {}
  for alias in expected:
    value, info = inputs[alias], signature.inputs[alias]
    want = tf.dtypes.as_dtype(info.dtype)
    got = _array_dtype(value)
    if got != want:
      raise invalid(f"input {alias} of signature {signature_name!r} has dtype {got.name} but "
                    f"the signature expects {want.name} (DT_{want.name.upper()})")
    shape = signature_shape(info)
    if shape == ():  # a scalar input (not batched): nothing more to check
      out[alias] = value
      continue
    if value.ndim == 0:
      raise invalid(f"input {alias} is a scalar; signature {signature_name!r} expects a batch "
                    f"(shape {_shape_text(shape or ())}, first dimension = examples)")
    if value.shape[0] == 0:
      raise invalid(f"input {alias} has an empty batch (dimension 0 is 0); send at least one "
                    f"example")
    if shape is not None and (len(value.shape) != len(shape) or any(
        s >= 0 and s != v for s, v in zip(shape, value.shape))):
      raise invalid(f"input {alias} of signature {signature_name!r} has shape "
                    f"{_shape_text(value.shape)} but the signature expects "
                    f"{_shape_text(shape)} ({want.name})")
    if batch is None:
      batch, batch_input = value.shape[0], alias
    elif value.shape[0] != batch:
      raise invalid(f"inconsistent batch sizes: input {alias} has {value.shape[0]} rows but "
                    f"input {batch_input} has {batch} (every input needs one row per example)")
    out[alias] = value
  return out


def _array_dtype(value: np.ndarray) -> tf.dtypes.DType:
  if value.dtype.kind in ("O", "S", "U"):
    return tf.string
  return tf.dtypes.as_dtype(value.dtype)


def tensor_proto_to_array(name: str, proto) -> np.ndarray:
  """A request's TensorProto -> numpy (strings as an object array of bytes)."""
  try:
    return tf.make_ndarray(proto)
  except Exception as e:  # pylint: disable=broad-except
    raise invalid(f"input {name}: the TensorProto cannot be read as a tensor ({e})") from None


def array_to_tensor_proto(value: np.ndarray):
  return tf.make_tensor_proto(value)


def filter_outputs(signature_name: str, signature, outputs: Dict[str, np.ndarray],
                   output_filter: Sequence[str]) -> Dict[str, np.ndarray]:
  """The outputs a PredictRequest's output_filter asks for (all when empty)."""
  if not output_filter:
    return outputs
  for alias in output_filter:
    if alias not in signature.outputs:
      raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected to "
                    f"be in the set {{{','.join(sorted(signature.outputs))}}}.")
  return {alias: outputs[alias] for alias in output_filter}


# --- REST JSON (TF Serving's json_tensor.cc) -------------------------------------------------

ROW, COLUMN = "row", "column"


def json_to_inputs(body: Any, signature) -> Tuple[str, Dict[str, np.ndarray]]:
  """A parsed :predict body -> (ROW | COLUMN, {input alias: array}).

  Row form: `instances`, a list with one entry per example: objects keyed by input alias,
  or bare values when the signature has a single input. Column form: `inputs`, an object
  keyed by alias (or a bare value for a single input). Strings may be `{"b64": "..."}`.
  """
  if not isinstance(body, dict):
    raise invalid("JSON body must be an object with \"instances\" or \"inputs\"")
  if "instances" in body and "inputs" in body:
    raise invalid('Not a valid JSON request: it may contain only one of "instances" '
                  '(row format) or "inputs" (columnar format), not both')
  aliases = sorted(signature.inputs)
  if "instances" in body:
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
      raise invalid('"instances" must be a non-empty JSON list (one entry per example)')
    named = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not named:
      if len(aliases) != 1:
        raise invalid(f"instances are bare values but the signature has {len(aliases)} inputs "
                      f"({','.join(aliases)}): send one object per example keyed by input")
      return ROW, {aliases[0]: _to_array(instances, signature.inputs[aliases[0]], aliases[0])}
    columns: Dict[str, list] = {}
    for i, instance in enumerate(instances):
      if not isinstance(instance, dict) or _is_b64(instance):
        raise invalid(f"instance {i} is not a JSON object; when the first instance is an "
                      f"object keyed by input, every instance must be")
      if i and set(instance) != set(columns):
        raise invalid(f"instance {i} has inputs {{{','.join(sorted(instance))}}} but instance 0 "
                      f"has {{{','.join(sorted(columns))}}}: every instance needs the same inputs")
      for alias, value in instance.items():
        columns.setdefault(alias, []).append(value)
    return ROW, {alias: _to_array(values, signature.inputs.get(alias), alias)
                 for alias, values in columns.items()}
  if "inputs" in body:
    inputs = body["inputs"]
    if isinstance(inputs, dict) and not _is_b64(inputs):
      return COLUMN, {alias: _to_array(value, signature.inputs.get(alias), alias)
                      for alias, value in inputs.items()}
    if len(aliases) != 1:
      raise invalid(f'"inputs" is a bare value but the signature has {len(aliases)} inputs '
                    f"({','.join(aliases)}): send an object keyed by input")
    return COLUMN, {aliases[0]: _to_array(inputs, signature.inputs[aliases[0]], aliases[0])}
  raise invalid('Missing "inputs" or "instances" key in the JSON request')


def _is_b64(value: Any) -> bool:
  return isinstance(value, dict) and set(value) == {"b64"}


def _to_array(value: Any, info, alias: str) -> np.ndarray:
  """Nested JSON lists -> an array of the signature's dtype (unknown input: inferred, so the
  alias check in validate_inputs reports it)."""
  shape, leaves = _shape_and_leaves(value, alias)
  dtype = tf.dtypes.as_dtype(info.dtype) if info is not None else None
  if dtype is None:
    dtype = tf.string if leaves and isinstance(leaves[0], (str, dict)) else (
        tf.float32 if leaves and isinstance(leaves[0], float) else tf.int64)
  converted = [_leaf(v, dtype, alias) for v in leaves]
  if dtype == tf.string:
    array = np.empty(len(converted), dtype=object)
    array[:] = converted
    return array.reshape(shape)
  return np.array(converted, dtype=dtype.as_numpy_dtype).reshape(shape)


def _shape_and_leaves(value: Any, alias: str):
  if not isinstance(value, list):
    return (), [value]
  if not value:
    return (0,), []
  parts = [_shape_and_leaves(v, alias) for v in value]
  inner = parts[0][0]
  if any(p[0] != inner for p in parts):
    raise invalid(f"input {alias}: the JSON lists are ragged (rows of different lengths); a "
                  f"tensor needs every row to have the same shape")
  return (len(value),) + inner, [leaf for p in parts for leaf in p[1]]


def _leaf(value: Any, dtype: tf.dtypes.DType, alias: str):
  if dtype == tf.string:
    if isinstance(value, str):
      return value.encode("utf-8")
    if _is_b64(value):
      try:
        return base64.b64decode(value["b64"], validate=True)
      except Exception:  # pylint: disable=broad-except
        raise invalid(f"input {alias}: {value['b64']!r} is not valid base64") from None
  elif dtype == tf.bool:
    if isinstance(value, bool):
      return value
  elif dtype.is_integer:
    if isinstance(value, int) and not isinstance(value, bool):
      return value
  elif dtype.is_floating:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return value
  raise invalid(f"input {alias}: JSON value {value!r} is not a {dtype.name}, the dtype the "
                f"signature expects")


def outputs_to_json(form: str, outputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
  """Outputs -> `{"predictions": [...]}` (row form) or `{"outputs": ...}` (column form)."""
  if form == COLUMN:
    if len(outputs) == 1:
      return {"outputs": _json_value(next(iter(outputs.values())))}
    return {"outputs": {alias: _json_value(v) for alias, v in outputs.items()}}
  sizes = {alias: (v.shape[0] if v.ndim else None) for alias, v in outputs.items()}
  if len(set(sizes.values())) != 1 or None in sizes.values():
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"the outputs have different batch sizes {sizes}; use the column "
                       f'format ("inputs") for this signature')
  columns = {alias: _json_value(v) for alias, v in outputs.items()}
  if len(columns) == 1:
    return {"predictions": next(iter(columns.values()))}
  batch = next(iter(sizes.values()))
  return {"predictions": [{alias: columns[alias][i] for alias in columns}
                          for i in range(batch)]}


def _json_value(value: np.ndarray):
  if value.dtype == np.float32:
    # float32 -> the shortest decimal that reads back as the same float32 (as TF Serving).
    return _nest(value, lambda x: float(str(np.float32(x))))
  if value.dtype.kind in ("O", "S", "U"):
    return _nest(value, _json_bytes)
  return value.tolist()


def _nest(value: np.ndarray, leaf):
  def walk(x):
    return [walk(v) for v in x] if isinstance(x, list) else leaf(x)
  return walk(value.tolist())


def _json_bytes(value):
  if isinstance(value, str):
    return value
  try:
    return value.decode("utf-8")
  except UnicodeDecodeError:
    return {"b64": base64.b64encode(value).decode("ascii")}
