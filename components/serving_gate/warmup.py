"""Warmup requests for a pushed model, built from real eval examples.

TF Serving replays `assets.extra/tf_serving_warmup_requests` when it loads a version, so the
first client requests do not pay for graph tracing and lazy initialisation, and a version whose
requests fail is never served. The requests here are what clients send: one user (the user
fields and history of one eval example) with `k` candidates (the item fields of `k` other eval
examples), for `k` cycling through ServingConfig.warmup_candidates, for each client signature
(serving_default; serve_new_items with candidates from the new-item cohort first, and their
codes and content embeddings).

Which input is whose is read from the names (contracts/schema.py): `user_*` and `history_*`
inputs describe the user, every other input the candidate. Shapes and dtypes come from the
model's own signature defs (saved_model.pb), so a model with other inputs gets requests of its
own shape without code here knowing its representation.
"""
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from contracts import schema
from contracts import serving_api as api

InputSpecs = Dict[str, Tuple[np.dtype, Tuple[int, ...]]]  # name -> (dtype, shape without batch)


def signature_inputs(saved_model_dir: str, signatures: Sequence[str]) -> Dict[str, InputSpecs]:
  """{signature: {input: (numpy dtype, per-row shape)}} from the SavedModel's signature defs."""
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  path = os.path.join(saved_model_dir, "saved_model.pb")
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{saved_model_dir} holds no saved_model.pb: not a SavedModel")
  saved = saved_model_pb2.SavedModel.FromString(tf.io.gfile.GFile(path, "rb").read())
  defs = saved.meta_graphs[0].signature_def
  missing = [s for s in signatures if s not in defs]
  if missing:
    raise ValueError(f"{saved_model_dir} has no signature(s) {missing} (it has "
                     f"{sorted(defs)}); export it with trainer/signatures.py")
  out = {}
  for name in signatures:
    specs = {}
    for key, info in defs[name].inputs.items():
      dims = tuple(d.size for d in info.tensor_shape.dim)
      if not dims or dims[0] != -1 or any(d < 0 for d in dims[1:]):
        raise ValueError(f"signature {name!r} input {key!r} has shape {list(dims)}; warmup "
                         f"requests need a batch dimension first and fixed other dimensions")
      specs[key] = (tf.dtypes.as_dtype(info.dtype).as_numpy_dtype, dims[1:])
    out[name] = specs
  return out


def _is_user_input(name: str) -> bool:
  return name.startswith("user_") or name.startswith("history_")


def _feature_values(example: tf.train.Example, name: str, dtype, shape, where: str):
  feature = example.features.feature.get(name)
  if feature is None:
    raise ValueError(f"warmup: {where} has no feature {name!r}, which the signature takes; "
                     f"draw the warmup requests from examples in the joined layout "
                     f"(SemanticIdJoiner's joined_examples)")
  kind = feature.WhichOneof("kind")
  values = list(getattr(feature, kind).value) if kind else []
  width = int(np.prod(shape)) if shape else 1
  if len(values) != width:
    raise ValueError(f"warmup: {where} feature {name!r} has {len(values)} values; the "
                     f"signature takes shape {list(shape)}")
  array = np.array(values, dtype=object if dtype == np.object_ else dtype)
  return array.reshape(shape)


def _request(specs: InputSpecs, user: tf.train.Example, candidates: List[tf.train.Example],
             embeddings: Optional[Mapping[str, np.ndarray]]) -> Dict[str, np.ndarray]:
  inputs = {}
  for name, (dtype, shape) in sorted(specs.items()):
    if name == api.ITEM_EMBEDDING_INPUT:
      rows = []
      for example in candidates:
        item = example.features.feature[schema.ITEM_ID].bytes_list.value[0].decode()
        if embeddings is None or item not in embeddings:
          raise ValueError(f"warmup: no content embedding for item {item!r}; give the "
                           f"ServingGate the ContentEmbedder's item_embeddings")
        rows.append(np.asarray(embeddings[item], dtype=np.float32).reshape(shape))
      inputs[name] = np.stack(rows)
    elif _is_user_input(name):
      row = _feature_values(user, name, dtype, shape, "the user's example")
      inputs[name] = np.stack([row] * len(candidates))
    else:
      inputs[name] = np.stack([_feature_values(e, name, dtype, shape, "a candidate example")
                               for e in candidates])
  return inputs


def build_requests(specs_by_signature: Mapping[str, InputSpecs],
                   examples: Sequence[tf.train.Example], requests_per_signature: int,
                   candidate_counts: Sequence[int],
                   embeddings: Optional[Mapping[str, np.ndarray]] = None,
                   ) -> List[Tuple[str, Dict[str, np.ndarray]]]:
  """[(signature, inputs)] for the warmup file: `requests_per_signature` per signature."""
  if not examples:
    raise ValueError("warmup: the examples split is empty; warmup requests are built from it")
  is_new = [e.features.feature[schema.ITEM_COHORT].bytes_list.value[:1] == [
      schema.COHORT_NEW.encode()] for e in examples]
  new_first = ([e for e, n in zip(examples, is_new) if n]
               + [e for e, n in zip(examples, is_new) if not n])
  out = []
  for signature, specs in specs_by_signature.items():
    pool = new_first if signature == api.SERVE_NEW_ITEMS else list(examples)
    for i in range(requests_per_signature):
      k = min(int(candidate_counts[i % len(candidate_counts)]), len(pool))
      user = examples[(i * 7919) % len(examples)]
      start = (i * 104729) % len(pool)
      candidates = [pool[(start + j) % len(pool)] for j in range(k)]
      out.append((signature, _request(specs, user, candidates, embeddings)))
  return out
