"""Serving signatures of the exported ranker (what TF Serving and TFMA call).

The exported SavedModel holds the tf.Transform graph, the trained SidRankingModel and the
catalog's codes of every codebook (trainer/item_tables.py), and exposes (names:
contracts/serving_api.py):

  serving_default   named raw features, ids only: user_id [B] (string) and every user
                    feature the data declares (the raw schema's `user_<name>` features,
                    contracts/schema.py), each [B] with its raw dtype, string or int64
                    (MovieLens: user_age int64, user_gender, user_occupation string);
                    item_id [B]; history_item_ids [B, N] ("" = padding).
                    Candidate and history codes come from the in-graph tables.
                    -> probability [B], logits [B], item_in_table [B] (False: the item is not
                    in the tables and was scored with zero codes: use serve_new_items)
  serve_new_items   the same plus the candidate's codes of every codebook the model reads,
                    `item_codes_<codebook>` [B, C], and `item_embedding` [B, D] for content
                    representations; used for items missing from the tables: a brand-new item
                    is ranked from its SID (SemanticIdAssigner / the Codebook's `assign`)
                    without retraining. Items found in the tables keep their table codes.
                    Aligned representations take only `item_embedding`, the raw content
                    embedding (what the ContentEmbedder gives): the model aligns it and
                    assigns its aligned SID itself (trainer/aligned_items.py).
  serve_examples    examples [B]: serialized tf.Examples in the joined layout (what the
                    pipeline's SemanticIdJoiner writes), for Predict with tf.Examples.
  score_joined_features  the joined layout's raw features by name (what TFMA feeds; TFMA 0.52
                    calls a serialized-examples signature positionally, which TF 2.21 rejects).

History ids missing from the tables are treated as padding (their codes are unknown). Codes of
codebooks Transform never saw (the aligned ones) and content embeddings are looked up in the
tables by item id after the transform graph, as the Trainer's input does (item_tables.py).
All signatures are tensorflow/serving/predict signatures with plain (dense) tensors.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import tensorflow as tf

from contracts import schema as S
from contracts import serving_api as api
from trainer.aligned_items import AlignedItemEncoder
from trainer.item_tables import (CONTENT, SPM_TOKENS, ItemTables, add_looked_up,
                                 lookup_feature, looked_up_features)
from trainer.model import features as F

USER_FEATURE_DTYPES = (tf.string, tf.int64)


def user_inputs(raw_feature_spec: Mapping[str, object]) -> Dict[str, tf.DType]:
  """{name: dtype} of the signatures' user inputs: user_id (string), then every user feature
  the raw schema declares, sorted, with its own dtype (string or int64)."""
  out = {S.USER_ID: tf.string} if S.USER_ID in raw_feature_spec else {}
  for name in S.user_features_in(raw_feature_spec):
    dtype = raw_feature_spec[name].dtype
    if dtype not in USER_FEATURE_DTYPES:
      raise ValueError(f"user feature {name} is {dtype.name} in the raw schema; user features "
                       f"are categorical (contracts/schema.py): write it as bytes or int64, or "
                       f"name it without the `user_` prefix")
    out[name] = dtype
  return out


def raw_model_inputs(raw_feature_spec: Mapping[str, object]):
  """The raw (joined-layout) features the transform graph needs to produce model inputs: the
  user id and declared user features, the item and history ids and every codebook's codes.
  The label, cohort, popularity, rating and timestamp are not model inputs."""
  names = [*user_inputs(raw_feature_spec), S.ITEM_ID, S.HISTORY_ITEM_IDS]
  for codebook in S.codebooks_in(raw_feature_spec):
    names += [S.item_codes(codebook), S.history_codes(codebook)]
  return tuple(n for n in names if n in raw_feature_spec)


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
               raw_feature_spec: Mapping[str, object], transformed_names,
               aligned_items: Optional[AlignedItemEncoder] = None):
    super().__init__(name="sidrec_ranker")
    self.model, self.tft_layer, self.tables = model, tft_layer, tables
    self.aligned_items = aligned_items
    self.history_length = int(model.sizes.history_length)
    self.raw_spec = {k: raw_feature_spec[k] for k in raw_model_inputs(raw_feature_spec)}
    self.user_inputs = user_inputs(self.raw_spec)
    self.model_inputs = set(model.input_signature())
    self.needs_content = F.ITEM_EMBEDDING in self.model_inputs
    # Looked up by item id after the transform graph: content, and codes Transform never saw.
    self.looked_up = looked_up_features(self.model_inputs, set(transformed_names))
    aligned = {c for _, c in self.looked_up.values() if c is not None}
    if aligned and aligned_items is None:
      raise ValueError(f"the model reads the aligned codebooks {sorted(aligned)}: export it "
                       f"with their AlignedItemEncoder, so new items can be served")
    # The transform graph wants every codebook's codes; serve_new_items asks a client only
    # for those this model reads (an aligned model computes its own from the content).
    self.codebooks = S.codebooks_in(self.raw_spec)
    self.read_codebooks = sorted({F.codebook_of(n) for n in self.model_inputs} - {None}
                                 - aligned)
    self.takes_content = self.needs_content or aligned_items is not None

  # --- the common path: raw features (spec form) -> scores -------------------------------

  def _score(self, raw: Dict[str, object], item_ids: tf.Tensor, history_ids: tf.Tensor,
             candidates: Optional[Dict[str, tf.Tensor]] = None) -> Dict[str, tf.Tensor]:
    """`candidates`: looked-up candidate features given for this request (new items)."""
    transformed = self.tft_layer(raw)
    features = {k: v for k, v in transformed.items() if k in self.model_inputs}
    features = add_looked_up(features, self.tables, self.looked_up, self.model_inputs,
                             item_ids, history_ids)
    features.update(candidates or {})
    logits = self.model(features, training=False)
    return {api.LOGITS: logits, api.PROBABILITY: tf.sigmoid(logits)}

  def _from_ids(self, inputs: Dict[str, tf.Tensor], given_codes=None):
    """Raw features for the transform graph from ids; `given_codes` {codebook: [B, C]} are
    used for candidates missing from the tables."""
    given_codes = given_codes or {}
    item_ids = tf.reshape(inputs[S.ITEM_ID], [-1])
    history = tf.reshape(inputs[S.HISTORY_ITEM_IDS], [-1, self.history_length])
    _, found = self.tables.lookup(item_ids)
    _, history_found = self.tables.lookup(history)
    history = tf.where(history_found, history, tf.fill(tf.shape(history), S.HISTORY_PAD))
    raw = {name: _to_spec_form(tf.reshape(inputs[name], [-1]), self.raw_spec[name])
           for name in self.user_inputs}
    raw[S.ITEM_ID] = _to_spec_form(item_ids, self.raw_spec[S.ITEM_ID])
    raw[S.HISTORY_ITEM_IDS] = _to_spec_form(history, self.raw_spec[S.HISTORY_ITEM_IDS],
                                            keep=history_found)
    for codebook in self.codebooks:
      candidate = self.tables.codes(codebook, item_ids)
      if codebook in given_codes:
        candidate = tf.where(found[:, None], candidate, tf.cast(given_codes[codebook], tf.int64))
      raw[S.item_codes(codebook)] = _to_spec_form(candidate, self.raw_spec[S.item_codes(codebook)])
      past = self.tables.codes(codebook, history)  # [B, N, C]
      width = tf.shape(past)[-1]
      keep = tf.reshape(tf.repeat(history_found, width, axis=1), [-1, self.history_length * width])
      raw[S.history_codes(codebook)] = _to_spec_form(
          tf.reshape(past, [-1, self.history_length * width]),
          self.raw_spec[S.history_codes(codebook)], keep=keep)
    return raw, item_ids, history, found

  # --- signatures -------------------------------------------------------------------------

  def id_input_signature(self) -> Dict[str, tf.TensorSpec]:
    specs = {name: tf.TensorSpec([None], dtype, name=name)
             for name, dtype in self.user_inputs.items()}
    specs[S.ITEM_ID] = tf.TensorSpec([None], tf.string, name=S.ITEM_ID)
    specs[S.HISTORY_ITEM_IDS] = tf.TensorSpec([None, self.history_length], tf.string,
                                              name=S.HISTORY_ITEM_IDS)
    return specs

  def new_item_input_signature(self) -> Dict[str, tf.TensorSpec]:
    specs = self.id_input_signature()
    for codebook in self.read_codebooks:
      name = S.item_codes(codebook)
      specs[name] = tf.TensorSpec([None, self.tables.code_columns(codebook)], tf.int64,
                                  name=name)
    if self.takes_content:
      dim = (self.aligned_items.content_dim if self.aligned_items is not None
             else self.tables.content_dim)
      specs[api.ITEM_EMBEDDING_INPUT] = tf.TensorSpec([None, dim], tf.float32,
                                                      name=api.ITEM_EMBEDDING_INPUT)
    return specs

  def _new_item_features(self, content: tf.Tensor, item_ids: tf.Tensor,
                         found: tf.Tensor) -> Dict[str, tf.Tensor]:
    """The looked-up candidate features of a request's items: the tables' where an item is
    in them, else computed from the given raw content embedding."""
    out = {}
    for name, (kind, codebook) in self.looked_up.items():
      table = lookup_feature(self.tables, kind, codebook, item_ids)
      if kind == CONTENT:
        given = content if self.aligned_items is None else self.aligned_items.aligned(content)
      else:
        given = self.aligned_items.codes(codebook, content)
        if kind == SPM_TOKENS:
          given = self.tables.segment(codebook, given)
      out[name] = tf.where(found[:, None], table, tf.cast(given, table.dtype))
    return out

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
      out[api.ITEM_IN_TABLE] = found
      return out

    @tf.function(input_signature=[self.new_item_input_signature()])
    def serve_new_items(inputs):
      raw, item_ids, history, found = self._from_ids(inputs, {
          codebook: inputs[S.item_codes(codebook)] for codebook in self.read_codebooks})
      candidates = None
      if self.takes_content:
        candidates = self._new_item_features(inputs[api.ITEM_EMBEDDING_INPUT], item_ids, found)
      out = self._score(raw, item_ids, history, candidates)
      out[api.ITEM_IN_TABLE] = found
      return out

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=api.EXAMPLES_INPUT)])
    def serve_examples(examples):
      raw = tf.io.parse_example(examples, self.raw_spec)
      return self._score_joined(raw)

    @tf.function(input_signature=[self.joined_input_signature()])
    def score_joined_features(inputs):
      return self._score_joined(dict(inputs))

    return {api.SERVING_DEFAULT: serving_default.get_concrete_function(),
            api.SERVE_NEW_ITEMS: serve_new_items.get_concrete_function(),
            api.SERVE_EXAMPLES: serve_examples.get_concrete_function(),
            api.SCORE_JOINED_FEATURES: score_joined_features.get_concrete_function()}

  def _score_joined(self, raw):
    item_ids = tf.reshape(_densify(raw[S.ITEM_ID], b""), [-1])
    history = _densify(raw[S.HISTORY_ITEM_IDS], b"", self.history_length)
    return self._score(raw, item_ids, history)


def _densify(x, default, width: Optional[int] = None) -> tf.Tensor:
  if isinstance(x, tf.sparse.SparseTensor):
    shape = [None, width] if width else None
    return tf.RaggedTensor.from_sparse(x).to_tensor(default_value=default, shape=shape)
  return x if width is None else tf.reshape(x, [-1, width])


def export_serving_model(model, tft_output, tables: ItemTables, export_dir: str,
                         aligned_items: Optional[AlignedItemEncoder] = None) -> str:
  """Writes the SavedModel with every signature to `export_dir` (the Trainer's
  serving_model_dir)."""
  module = RankingServingModule(model, tft_output.transform_features_layer(), tables,
                                tft_output.raw_feature_spec(),
                                tft_output.transformed_feature_spec(), aligned_items)
  tf.saved_model.save(module, export_dir, signatures=module.signatures())
  return export_dir
