"""Serving signatures of the exported ranker (what TF Serving and TFMA call).

The exported SavedModel holds the tf.Transform graph, the trained SidRankingModel and the
catalog's codes (trainer/item_tables.py), and exposes:

  serving_default   named raw features, ids only: user_id, user_age, user_gender,
                    user_occupation [B]; item_id [B]; history_item_ids [B, N] ("" = padding).
                    Candidate and history codes come from the in-graph tables.
                    -> probability [B], logits [B], item_in_table [B] (False: the item is not
                    in the tables and was scored with zero codes: use serve_new_items)
  serve_new_items   the same plus the candidate's codes as inputs, those the model reads:
                    item_sid [B, L] (SID representations), item_moc_codes [B, M] (moc),
                    item_embedding [B, D] (dense_content); used for items missing from the tables: a brand-new item is ranked
                    from its SID (SemanticIdAssigner / the Codebook's `assign`) without
                    retraining. Items found in the tables keep their table codes.
  serve_examples    examples [B]: serialized tf.Examples in the joined layout (what the
                    pipeline's SemanticIdJoiner writes), for Predict with tf.Examples.
  score_joined_features  the joined layout's raw features by name (what TFMA feeds; TFMA 0.52
                    calls a serialized-examples signature positionally, which TF 2.21 rejects).

History ids missing from the tables are treated as padding (their codes are unknown).
All signatures are tensorflow/serving/predict signatures with plain (dense) tensors.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import tensorflow as tf

from trainer import preprocessing as P
from trainer.item_tables import PAD_ID, ItemTables
from trainer.model import features as F

PROBABILITY, LOGITS, ITEM_IN_TABLE = "probability", "logits", "item_in_table"
EXAMPLES = "examples"
SIGNATURES = ("serving_default", "serve_new_items", "serve_examples", "score_joined_features")
# TFMA's ModelSpec: the signature it calls and the output it reads.
TFMA_SIGNATURE, TFMA_PREDICTION_KEY = "score_joined_features", PROBABILITY

# Raw (joined-layout) features the transform graph needs to produce model inputs. The label,
# cohort, popularity, rating and timestamp are not model inputs.
RAW_MODEL_INPUTS = (P.RAW_USER_ID, P.RAW_AGE, P.RAW_GENDER, P.RAW_OCCUPATION, P.RAW_ITEM_ID,
                    P.RAW_HISTORY_IDS, P.RAW_SID, P.RAW_HISTORY_SID, P.RAW_MOC,
                    P.RAW_HISTORY_MOC, P.RAW_EMBEDDING)
USER_INPUTS = {P.RAW_USER_ID: tf.string, P.RAW_AGE: tf.int64, P.RAW_GENDER: tf.string,
               P.RAW_OCCUPATION: tf.string}


def _to_spec_form(dense: tf.Tensor, spec, keep: Optional[tf.Tensor] = None):
  """A dense [B] / [B, k] value -> the form the transform graph was traced with.

  FixedLenFeature(shape) -> dense [B, *shape]; VarLenFeature -> SparseTensor [B, ?] holding the
  entries where `keep` is True (all by default).
  """
  if isinstance(spec, tf.io.FixedLenFeature):
    return tf.reshape(dense, [-1] + list(spec.shape))
  if dense.shape.rank == 1:
    dense = dense[:, None]
  if keep is None:
    keep = tf.ones_like(dense, dtype=tf.bool)
  return tf.ragged.boolean_mask(dense, keep).to_sparse()


class RankingServingModule(tf.Module):
  """Transform graph + ranker + item tables, with the signatures above."""

  def __init__(self, model, tft_layer, tables: ItemTables,
               raw_feature_spec: Mapping[str, object], history_length: int):
    super().__init__(name="sidrec_ranker")
    self.model, self.tft_layer, self.tables = model, tft_layer, tables
    self.history_length = int(history_length)
    self.raw_spec = {k: raw_feature_spec[k] for k in RAW_MODEL_INPUTS if k in raw_feature_spec}
    self.model_inputs = set(model.input_signature(self.history_length))
    self.needs_content = F.ITEM_EMBEDDING in self.model_inputs
    self.uses_moc = P.RAW_MOC in self.raw_spec  # the transform graph wants MoC codes
    # ... but serve_new_items asks a client for them only when this model reads them.
    self.reads_moc = F.ITEM_MOC_CODES in self.model_inputs
    self.reads_sid = bool({F.ITEM_SID, F.ITEM_SPM_TOKENS} & self.model_inputs)

  # --- the common path: raw features (spec form) -> scores -------------------------------

  def _score(self, raw: Dict[str, object], item_ids: tf.Tensor, history_ids: tf.Tensor,
             item_embedding: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
    transformed = self.tft_layer(raw)
    features = {k: v for k, v in transformed.items() if k in self.model_inputs}
    if self.needs_content:
      features[F.ITEM_EMBEDDING] = (item_embedding if item_embedding is not None
                                    else self.tables.content(item_ids))
      if F.history_name(F.ITEM_EMBEDDING) in self.model_inputs:
        features[F.history_name(F.ITEM_EMBEDDING)] = self.tables.content(history_ids)
    logits = self.model(features, training=False)
    return {LOGITS: logits, PROBABILITY: tf.sigmoid(logits)}

  def _from_ids(self, inputs: Dict[str, tf.Tensor], item_sid=None, item_moc=None):
    """Raw features for the transform graph from ids (+ optional codes for unknown items)."""
    item_ids = tf.reshape(inputs[P.RAW_ITEM_ID], [-1])
    history = tf.reshape(inputs[P.RAW_HISTORY_IDS], [-1, self.history_length])
    _, found = self.tables.lookup(item_ids)
    _, history_found = self.tables.lookup(history)
    history = tf.where(history_found, history, tf.fill(tf.shape(history), PAD_ID))
    raw = {name: _to_spec_form(tf.reshape(inputs[name], [-1]), self.raw_spec[name])
           for name in USER_INPUTS if name in self.raw_spec}
    raw[P.RAW_ITEM_ID] = _to_spec_form(item_ids, self.raw_spec[P.RAW_ITEM_ID])
    raw[P.RAW_HISTORY_IDS] = _to_spec_form(history, self.raw_spec[P.RAW_HISTORY_IDS],
                                           keep=history_found)

    def codes(lookup, given, item_name, history_name):
      candidate = lookup(item_ids)
      if given is not None:
        candidate = tf.where(found[:, None], candidate, tf.cast(given, tf.int64))
      raw[item_name] = _to_spec_form(candidate, self.raw_spec[item_name])
      past = lookup(history)  # [B, N, W]
      width = tf.shape(past)[-1]
      keep = tf.reshape(tf.repeat(history_found, width, axis=1), [-1, self.history_length * width])
      raw[history_name] = _to_spec_form(
          tf.reshape(past, [-1, self.history_length * width]), self.raw_spec[history_name],
          keep=keep)

    codes(self.tables.sid, item_sid, P.RAW_SID, P.RAW_HISTORY_SID)
    if self.uses_moc:
      codes(self.tables.moc, item_moc, P.RAW_MOC, P.RAW_HISTORY_MOC)
    return raw, item_ids, history, found

  # --- signatures -------------------------------------------------------------------------

  def id_input_signature(self) -> Dict[str, tf.TensorSpec]:
    specs = {name: tf.TensorSpec([None], dtype, name=name) for name, dtype in USER_INPUTS.items()
             if name in self.raw_spec}
    specs[P.RAW_ITEM_ID] = tf.TensorSpec([None], tf.string, name=P.RAW_ITEM_ID)
    specs[P.RAW_HISTORY_IDS] = tf.TensorSpec([None, self.history_length], tf.string,
                                             name=P.RAW_HISTORY_IDS)
    return specs

  def new_item_input_signature(self) -> Dict[str, tf.TensorSpec]:
    specs = self.id_input_signature()
    if self.reads_sid:
      specs[P.RAW_SID] = tf.TensorSpec([None, self.tables.sid_levels], tf.int64,
                                       name=P.RAW_SID)
    if self.reads_moc:
      specs[P.RAW_MOC] = tf.TensorSpec([None, self.tables.moc_codebooks], tf.int64,
                                       name=P.RAW_MOC)
    if self.needs_content:
      specs[P.RAW_EMBEDDING] = tf.TensorSpec([None, self.tables.content_dim], tf.float32,
                                             name=P.RAW_EMBEDDING)
    return specs

  def joined_input_signature(self) -> Dict[str, tf.TensorSpec]:
    specs = {}
    for name, spec in self.raw_spec.items():
      if not isinstance(spec, tf.io.FixedLenFeature):
        raise ValueError(
            f"raw feature {name!r} is variable-length in the schema; the TFMA signature needs "
            f"fixed shapes (pad it to a fixed length, as the data step pads history_item_ids)")
      specs[name] = tf.TensorSpec([None] + list(spec.shape), spec.dtype, name=name)
    return specs

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    @tf.function(input_signature=[self.id_input_signature()])
    def serving_default(inputs):
      raw, item_ids, history, found = self._from_ids(inputs)
      out = self._score(raw, item_ids, history)
      out[ITEM_IN_TABLE] = found
      return out

    @tf.function(input_signature=[self.new_item_input_signature()])
    def serve_new_items(inputs):
      raw, item_ids, history, found = self._from_ids(
          inputs, item_sid=inputs.get(P.RAW_SID), item_moc=inputs.get(P.RAW_MOC))
      embedding = None
      if self.needs_content:
        embedding = tf.where(found[:, None], self.tables.content(item_ids),
                             inputs[P.RAW_EMBEDDING])
      out = self._score(raw, item_ids, history, embedding)
      out[ITEM_IN_TABLE] = found
      return out

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES)])
    def serve_examples(examples):
      raw = tf.io.parse_example(examples, self.raw_spec)
      return self._score_joined(raw)

    @tf.function(input_signature=[self.joined_input_signature()])
    def score_joined_features(inputs):
      return self._score_joined(dict(inputs))

    return {"serving_default": serving_default.get_concrete_function(),
            "serve_new_items": serve_new_items.get_concrete_function(),
            "serve_examples": serve_examples.get_concrete_function(),
            "score_joined_features": score_joined_features.get_concrete_function()}

  def _score_joined(self, raw):
    item_ids = tf.reshape(_densify(raw[P.RAW_ITEM_ID], b""), [-1])
    history = _densify(raw[P.RAW_HISTORY_IDS], b"", self.history_length)
    embedding = None
    if self.needs_content and P.RAW_EMBEDDING in raw:
      embedding = raw[P.RAW_EMBEDDING]
    return self._score(raw, item_ids, history, embedding)


def _densify(x, default, width: Optional[int] = None) -> tf.Tensor:
  if isinstance(x, tf.sparse.SparseTensor):
    shape = [None, width] if width else None
    return tf.RaggedTensor.from_sparse(x).to_tensor(default_value=default, shape=shape)
  return x if width is None else tf.reshape(x, [-1, width])


def export_serving_model(model, tft_output, tables: ItemTables, export_dir: str,
                         history_length: int) -> str:
  """Writes the SavedModel with SIGNATURES to `export_dir` (the Trainer's serving_model_dir)."""
  module = RankingServingModule(model, tft_output.transform_features_layer(), tables,
                                tft_output.raw_feature_spec(), history_length)
  tf.saved_model.save(module, export_dir, signatures=module.signatures())
  return export_dir
