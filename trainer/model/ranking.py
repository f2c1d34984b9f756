"""SidRankingModel: a TFRS DCN-v2 ranker with a pluggable item representation.

    x0 = concat[user tower, candidate item vector, masked mean of history item vectors]
    x  = Cross(x0, x) x cross_layers   (tfrs.layers.dcn.Cross, optionally low-rank)
    logit = Dense(1)(MLP(x))

The candidate [B, ...] and the flattened history items [B*N, ...] go through the same
representation layer (same weights), or with `history_table="separate"` the history items
through a second instance of it (own tables), so that the candidate's table learns the
candidate role alone.
Loss: tfrs.tasks.Ranking with BinaryCrossentropy(from_logits=True), metric AUC (from logits);
in training the per-example losses are averaged over the global batch (tf.distribute).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs

from contracts.config import RankingConfig, from_json, to_json
from trainer.model import features as F
from trainer.model import representations as R


def _as_vector(t: tf.Tensor) -> tf.Tensor:
  """[B] or [B, 1] -> [B]."""
  t = tf.convert_to_tensor(t)
  if t.shape.rank == 2 and t.shape[-1] == 1:
    return tf.reshape(t, [-1])
  return t


def masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """Mean over axis 1 of values [B, N, E] where mask [B, N] > 0; 0 where nothing is real.

  Padded positions are replaced by exact zeros (not multiplied), so whatever they hold (even
  NaN) cannot change the result.
  """
  real = tf.cast(mask, tf.float32) > 0
  summed = tf.reduce_sum(tf.where(real[..., None], values, tf.zeros_like(values)), axis=1)
  count = tf.reduce_sum(tf.cast(real, values.dtype), axis=1, keepdims=True)
  return summed / tf.maximum(count, 1.0)


class SidRankingModel(tfrs.models.Model):
  """TFRS ranking model: `SidRankingModel(config, sizes, representation=None)`.

  `representation` defaults to `make_item_representation(config.representation, ...)`.
  `model(features)` -> logits [B]; `predict_proba(features)` -> probabilities [B];
  `compute_loss(features)` needs `label` as well.
  """

  def __init__(self, config: RankingConfig, sizes: F.VocabSizes,
               representation: Optional[R.ItemRepresentation] = None, name: str = "sid_ranking"):
    super().__init__(name=name)
    self.config, self.sizes = config, sizes
    seeds = R.SeedStream(config.seed)
    self.representation = representation or R.make_item_representation(
        config.representation, config, sizes, seeds)
    self.use_history = bool(config.use_history and sizes.history_length > 0
                            and self.representation.output_dim > 0)
    self.history_representation = None  # None: the history shares the candidate's layer
    if self.use_history and config.history_table == "separate":
      if representation is not None:
        raise ValueError("history_table='separate' builds the history's layer from "
                         "config.representation: pass no representation, or use 'shared'")
      # The scope names the tables built here (history/...), so the parameter-server shards
      # of the two tables stay apart; layers built lazily on first call are not renamed
      # (checkpoints match by object, not name).
      with tf.name_scope("history"):
        self.history_representation = R.make_item_representation(
            config.representation, config, sizes, seeds)
    self.user_vocab = sizes.user_vocab()
    if not self.user_vocab and self.representation.output_dim == 0:
      raise ValueError("the model needs user features (VocabSizes.user_*) or an item input")
    self.user_embeddings = {
        name: tf.keras.layers.Embedding(
            rows, config.user_embedding_dim if name == F.USER_ID else config.user_feature_dim,
            embeddings_initializer=seeds.embedding(), name=f"emb_{name}")
        for name, rows in self.user_vocab.items()}
    self.cross = [tfrs.layers.dcn.Cross(projection_dim=config.cross_projection_dim or None,
                                        kernel_initializer=seeds.dense(), name=f"cross{i}")
                  for i in range(config.cross_layers)]
    self.mlp = [tf.keras.layers.Dense(int(d), activation="relu", kernel_initializer=seeds.dense(),
                                      name=f"mlp{i}") for i, d in enumerate(config.mlp_dims)]
    self.logit = tf.keras.layers.Dense(1, kernel_initializer=seeds.dense(), name="logit")
    self.task = tfrs.tasks.Ranking(
        # Per-example losses, reduced in compute_loss: tf_keras refuses its default
        # reduction inside a tf.distribute replica outside compile()'s own loss handling.
        loss=tf.keras.losses.BinaryCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.NONE),
        metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc")])

  def get_config(self):
    """JSON-friendly: the RankingConfig and VocabSizes (a custom `representation` is lost)."""
    return {"config": to_json(self.config), "sizes": dataclasses.asdict(self.sizes)}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(from_json(RankingConfig, config["config"]), F.VocabSizes(**config["sizes"]))

  # --- features ---------------------------------------------------------------------------

  @property
  def item_feature_names(self):
    return self.representation.feature_names

  def input_signature(self) -> Dict[str, tf.TensorSpec]:
    """{name: TensorSpec} of every feature the model reads (label excluded)."""
    return F.input_signature(self.item_feature_names, self.sizes, history=self.use_history,
                             history_length=self.sizes.history_length or None)

  def table_report(self) -> Dict[str, object]:
    """Embedding rows, for the run report: item representation and user tower."""
    user = {f"user/{k}": v for k, v in self.user_vocab.items()}
    items = dict(self.representation.tables())
    if self.history_representation is not None:
      items.update({f"history/{k}": v for k, v in self.history_representation.tables().items()})
    return {"representation": self.config.representation,
            "item_table_rows": int(sum(items.values())),
            "item_tables": items,
            "user_table_rows": int(sum(user.values())),
            "user_tables": user}

  # --- forward ----------------------------------------------------------------------------

  def item_vectors(self, features: Mapping[str, tf.Tensor]):
    """-> (candidate vectors [B, E], history vectors [B, N, E] or None).

    The history items [B, N, ...] are flattened to [B*N, ...] and go through the same layer as
    the candidates (same weights), or through the history's own layer. Two calls rather than
    one over a stacked [B*(N+1), ...] batch: slicing the candidate back out of a stacked result
    costs a dense StridedSliceGrad in the backward pass (measured ~10% of a batch-1024 step),
    two gathers cost nothing extra.
    """
    rep = self.representation
    names = rep.feature_names
    cand = {n: (_as_vector(features[n]) if F.item_feature_rank(n) == 0
                else tf.convert_to_tensor(features[n])) for n in names}
    candidate = rep(cand)
    if not self.use_history:
      return candidate, None
    flat, shape = {}, None
    for n in names:
      h = tf.convert_to_tensor(features[F.history_name(n)])
      shape = tf.shape(h)[:2] if shape is None else shape
      trailing = [d if d is not None else tf.shape(h)[2 + i] for i, d in enumerate(h.shape[2:])]
      flat[n] = tf.reshape(h, [-1] + trailing)
    past = self.history_representation if self.history_representation is not None else rep
    history = tf.reshape(past(flat), tf.concat([shape, [rep.output_dim]], axis=0))
    return candidate, history

  def user_vector(self, features):
    """User-token embeddings; tokens outside [0, rows) are read as the OOV token 0."""
    parts = []
    for n, rows in self.user_vocab.items():
      ids = tf.cast(_as_vector(features[n]), tf.int64)
      ids = tf.where((ids >= 0) & (ids < rows), ids, tf.zeros_like(ids))
      parts.append(self.user_embeddings[n](ids))
    return parts

  def call(self, features, training=False):
    parts = self.user_vector(features)
    if self.representation.output_dim > 0:
      candidate, history = self.item_vectors(features)
      parts.append(candidate)
      if history is not None:
        parts.append(masked_mean(history, features[F.HISTORY_MASK]))
    x0 = tf.concat(parts, axis=-1)
    x = x0
    for layer in self.cross:
      x = layer(x0, x)
    for layer in self.mlp:
      x = layer(x)
    return tf.squeeze(self.logit(x), axis=-1)

  def build_weights(self, features: Mapping[str, object]) -> None:
    """Creates every variable (model, and optimizer slots once compiled) from a few examples."""
    few = {k: v[:2] for k, v in features.items()}
    self(few, training=False)
    if self.optimizer is not None and hasattr(self.optimizer, "build"):
      self.optimizer.build(self.trainable_variables)

  def predict_proba(self, features) -> tf.Tensor:
    return tf.sigmoid(self(features, training=False))

  def compute_loss(self, features, training=False):
    labels = tf.cast(_as_vector(features[F.LABEL]), tf.float32)
    logits = self(features, training=training)
    per_example = self.task(labels=labels[:, None], predictions=logits[:, None],
                            training=training)
    if training:
      # Sum / global batch: the optimizer sums the replicas' gradients (MultiWorkerMirrored
      # all-reduce), so a per-replica mean would scale the step by the replica count. With
      # one replica this is the plain batch mean.
      return tf.nn.compute_average_loss(per_example)
    return tf.reduce_mean(per_example)


# --------------------------------------------------------------------------------------------
# Construction


class LazyAdam(tf.keras.optimizers.Adam):
  """Adam whose sparse (embedding-table) updates touch only the rows in the batch.

  tf_keras Adam decays both moments of *every* row of a table and moves every row on every
  step, so a step costs O(table rows): with the 131,072-row prefix-ngram tables of the default
  budget that doubled the step time (measured 101 vs 47 ms at batch 1024). Here the moments of
  the looked-up rows are updated and scattered back, the other rows do not move (as TF Addons'
  LazyAdam). Dense variables get plain Adam. The base class deduplicates sparse indices before
  `update_step`, so the scatters are deterministic.
  """

  def update_step(self, gradient, variable):
    if not isinstance(gradient, tf.IndexedSlices):
      return super().update_step(gradient, variable)
    dtype = variable.dtype
    lr = tf.cast(self.learning_rate, dtype)
    step = tf.cast(self.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
    alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
    key = self._index_dict[self._var_key(variable)]
    m, v = self._momentums[key], self._velocities[key]
    idx, g = gradient.indices, gradient.values
    m_rows = beta_1 * tf.gather(m, idx) + (1 - beta_1) * g
    v_rows = beta_2 * tf.gather(v, idx) + (1 - beta_2) * tf.square(g)
    m.scatter_update(tf.IndexedSlices(m_rows, idx))
    v.scatter_update(tf.IndexedSlices(v_rows, idx))
    variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), idx))


def make_optimizer(config: RankingConfig) -> tf.keras.optimizers.Optimizer:
  """adam | lazy_adam (sparse rows only) | adagrad, at config.learning_rate."""
  if config.optimizer == "adagrad":
    return tf.keras.optimizers.Adagrad(config.learning_rate)
  if config.optimizer == "lazy_adam":
    return LazyAdam(config.learning_rate)
  return tf.keras.optimizers.Adam(config.learning_rate)


def build_ranking_model(config: RankingConfig, sizes: F.VocabSizes,
                        representation: Optional[R.ItemRepresentation] = None,
                        example_features: Optional[Mapping[str, object]] = None
                        ) -> SidRankingModel:
  """A compiled SidRankingModel (optimizer from config).

  With `example_features` (a batch, or any dict with the model's features) the model and the
  optimizer's slot variables are built eagerly, so `fit` traces its train function once
  instead of twice (variables created inside the first trace force a retrace: ~1-2 s saved
  per model on 2 cores).
  """
  model = SidRankingModel(config, sizes, representation)
  model.compile(optimizer=make_optimizer(config))
  if example_features is not None:
    model.build_weights(example_features)
  return model
