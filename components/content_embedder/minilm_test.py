"""The TensorFlow port of all-MiniLM-L6-v2 against sentence-transformers' own output.

testdata/minilm_reference.json was made once, outside the repo, with sentence-transformers +
torch on the same packaged model files (see its "provenance"); the sentences are hand-written.
"""

import copy
import json
import os
import struct

import numpy as np
import pytest

from components.content_embedder import minilm

REFERENCE = os.path.join(os.path.dirname(__file__), "testdata", "minilm_reference.json")


@pytest.fixture(scope="module")
def reference():
  with open(REFERENCE, encoding="utf-8") as f:
    return json.load(f)


@pytest.fixture(scope="module")
def encoder(reference):
  return minilm.MiniLmEncoder(max_seq_length=reference["max_seq_length"], batch_size=8)


def _cosines(a, b):
  return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_reference_fixture_is_what_the_test_expects(reference):
  assert reference["dimension"] == 384
  assert len(reference["sentences"]) >= 20
  assert "Apache-2.0" in reference["provenance"]["model"]
  # At least one sentence exceeds the model's max_seq_length and one only the short one.
  lengths = [len(t) for t in reference["token_ids"]]
  assert max(lengths) == reference["max_seq_length"]
  assert reference["short_indices"]


def test_metadata(encoder):
  assert encoder.name == "all-MiniLM-L6-v2"
  assert encoder.dimension == 384
  assert encoder.normalize  # modules.json lists a Normalize module
  assert encoder.max_seq_length == 256


def test_token_ids_match_reference_tokenizer(encoder, reference):
  texts = reference["sentences"] + reference["tokenizer_only"]
  expected = reference["token_ids"] + reference["tokenizer_only_token_ids"]
  got = encoder.tokenize(texts)
  mismatches = [(t, g, e) for t, g, e in zip(texts, got, expected) if g != e]
  assert not mismatches, mismatches[:3]


def test_vectors_match_reference(encoder, reference):
  got = encoder.encode(reference["sentences"])
  want = np.asarray(reference["vectors"], dtype=np.float32)
  assert got.shape == want.shape == (len(reference["sentences"]), 384)
  assert got.dtype == np.float32
  assert _cosines(got, want).min() >= 0.9999
  assert np.abs(got - want).max() <= 1e-4


def test_truncation_matches_reference_at_64_tokens(encoder, reference):
  short = copy.copy(encoder)  # shares the loaded model
  short.max_seq_length = reference["short_max_seq_length"]
  texts = [reference["sentences"][i] for i in reference["short_indices"]]
  assert short.tokenize(texts) == reference["token_ids_short"]
  got = short.encode(texts)
  want = np.asarray(reference["vectors_short"], dtype=np.float32)
  assert np.abs(got - want).max() <= 1e-4


def test_order_batching_and_padding_do_not_change_vectors(encoder, reference):
  texts = [t for t in reference["sentences"] if len(t) < 200]  # short ones: one 256-token row
  base = encoder.encode(texts)                                  # would pad a whole batch to 256
  perm = np.random.default_rng(0).permutation(len(texts))
  one_batch = copy.copy(encoder)
  one_batch.batch_size = 64
  shuffled = one_batch.encode([texts[i] for i in perm])
  np.testing.assert_allclose(shuffled, base[perm], atol=2e-5)
  single = np.concatenate([encoder.encode([t]) for t in texts[:4]])
  np.testing.assert_allclose(single, base[:4], atol=2e-5)


def test_semantics_and_unit_norm(encoder):
  v = encoder.encode(["A kitten is sleeping on the sofa.", "A small cat naps on the couch.",
                      "The central bank raised interest rates again."])
  np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
  assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_empty_input_and_bytes(encoder):
  assert encoder.encode([]).shape == (0, 384)
  np.testing.assert_allclose(encoder.encode([b"caf\xc3\xa9"]), encoder.encode(["café"]))
  with pytest.raises(TypeError):
    encoder.encode([3])


def test_normalize_text_matches_hf_bert_normalizer():
  assert minilm.normalize_text("Crème BRÛLÉE") == "creme brulee"
  assert minilm.normalize_text("Straße") == "straße"  # lowercase, not case folding
  assert minilm.normalize_text("ΟΔΥΣΣΕΥΣ") == "οδυσσευσ"  # per-character: no final sigma
  assert minilm.normalize_text("a\x00b\u200bc\td") == "abc d"
  assert minilm.normalize_text("东京") == " 东  京 "
  assert minilm.normalize_text("x" * 101 + " y") == minilm._LONG_WORD_SENTINEL + " y"


def test_bad_settings(encoder):
  with pytest.raises(ValueError):
    minilm.MiniLmEncoder(max_seq_length=1000)
  with pytest.raises(ValueError):
    minilm.MiniLmEncoder(batch_size=0)
  with pytest.raises(minilm.ModelFilesError):
    minilm.MiniLmEncoder(model_dir="/nonexistent/model")


def _write_safetensors(path, tensors):
  header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
  for name, (dtype, shape, raw) in tensors.items():
    header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
  text = json.dumps(header).encode()
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_read_safetensors_dtypes(tmp_path):
  a = np.arange(6, dtype="<f4").reshape(2, 3)
  h = np.array([1.5, -2.0], dtype="<f2")
  ids = np.array([[0, 1, 2]], dtype="<i8")
  bf16 = (np.array([1.0, -3.5], dtype="<f4").view("<u4") >> 16).astype("<u2")
  path = str(tmp_path / "t.safetensors")
  _write_safetensors(path, {"a": ("F32", a.shape, a.tobytes()), "h": ("F16", h.shape, h.tobytes()),
                            "ids": ("I64", ids.shape, ids.tobytes()),
                            "b": ("BF16", (2,), bf16.tobytes())})
  out = minilm.read_safetensors(path)
  np.testing.assert_array_equal(out["a"], a)
  np.testing.assert_array_equal(out["h"], h)
  np.testing.assert_array_equal(out["ids"], ids)
  np.testing.assert_array_equal(out["b"], [1.0, -3.5])
  assert set(out) == {"a", "h", "ids", "b"}


def test_packaged_model_is_found_without_importing_it():
  model_dir = minilm.default_model_dir()
  assert os.path.isfile(os.path.join(model_dir, "model.safetensors"))
  weights = minilm.read_safetensors(os.path.join(model_dir, "model.safetensors"))
  assert weights["embeddings.word_embeddings.weight"].shape == (30522, 384)
