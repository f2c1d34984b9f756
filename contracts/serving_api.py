"""The exported ranker's serving API: signature, input and output names.

Written by trainer/signatures.py into every pushed SavedModel; read by the Evaluator's TFMA
config, the serving runtime (serving/) and its clients. Inputs are the raw ids of
contracts/schema.py; `serve_new_items` adds the codes of an item the model has never seen, one
input per codebook the model reads (`item_codes_<codebook>`, contracts/schema.py), and its
content embedding for content representations.
"""

SERVING_DEFAULT = "serving_default"
SERVE_NEW_ITEMS = "serve_new_items"
SERVE_EXAMPLES = "serve_examples"
SCORE_JOINED_FEATURES = "score_joined_features"
SIGNATURES = (SERVING_DEFAULT, SERVE_NEW_ITEMS, SERVE_EXAMPLES, SCORE_JOINED_FEATURES)

# Inputs beyond the raw ids.
EXAMPLES_INPUT = "examples"  # serve_examples: serialized tf.Examples in the joined layout
ITEM_EMBEDDING_INPUT = "item_embedding"  # serve_new_items, content representations

# Outputs.
PROBABILITY, LOGITS, ITEM_IN_TABLE = "probability", "logits", "item_in_table"

# TFMA's ModelSpec: the signature it calls (TFMA 0.52 calls a serialized-examples signature
# positionally, which TF 2.21 rejects) and the output it reads.
TFMA_SIGNATURE, TFMA_PREDICTION_KEY = SCORE_JOINED_FEATURES, PROBABILITY

# --- What the stock model server (tensorflow_model_server) reads ---------------------------
# Inside each pushed version: the warmup requests the server replays at load (a TFRecord of
# tensorflow_serving PredictionLog records; a failing record fails the version's load) and the
# signatures they exercise (what clients call).
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000
CLIENT_SIGNATURES = (SERVING_DEFAULT, SERVE_NEW_ITEMS)
# Beside the model directories of the serving directory (DIR/serving/).
MODELS_CONFIG_FILE = "models.config"  # text ModelServerConfig
BATCHING_PARAMETERS_FILE = "batching_parameters.txt"  # text BatchingParameters
# Version labels: `canary` is the newest pushed version, `stable` the one before it (the
# newest while there is only one).
STABLE_LABEL, CANARY_LABEL = "stable", "canary"
GRPC_PORT, REST_PORT = 8500, 8501
