"""Python side of the SentencePiece sub-ID vocabulary: exact equality with the sentencepiece
library, fallback tokens, budget, determinism, asset round trip and input errors."""

import struct

import numpy as np
import pytest
import sentencepiece

from trainer.spm import vocabulary as V
from tests.fixtures.sids import synthetic_sids


def _library_ids(sp, vocab, sid):
  return sp.encode(vocab.sid_string(sid))


def _runs_reference(sp, vocab, sid):
  """Documented rule for unseen codes: maximal runs of known characters segmented by the
  library, every unknown code -> its fallback token."""
  text = vocab.sid_string(sid)
  out, run = [], ""
  for ch in text:
    if ch in vocab.known_chars:
      run += ch
      continue
    if run:
      out += sp.encode(run)
      run = ""
    out.append(vocab.piece_to_id[ch])
  if run:
    out += sp.encode(run)
  return out


def test_code_characters_round_trip():
  assert V.sid_to_string([0, 1, 2], 256) == "\U000F0000\U000F0101\U000F0202"
  assert V.string_to_sid(V.sid_to_string([5, 0, 255, 7], 256), 256) == (5, 0, 255, 7)
  assert V.code_char(1, 3, 64) == chr(0xF0000 + 67)


def test_library_equality_on_thousands_of_sids(case):
  vocab = case.vocab
  sp = vocab.sentencepiece_processor()
  assert sp.get_piece_size() == vocab.num_model_pieces
  assert len(case.known_sids) > 9000
  mismatches = [tuple(s) for s in case.known_sids if vocab.segment(s) != _library_ids(sp, vocab, s)]
  assert not mismatches, f"{len(mismatches)} SIDs differ, e.g. {mismatches[:3]}"
  # Our ids are the model's ids and every piece is the library's piece.
  for i in range(1, vocab.num_model_pieces):
    assert sp.id_to_piece(i) == vocab.pieces[i]


def test_unseen_codes_map_to_fallback_tokens_never_unk(case):
  vocab = case.vocab
  sp = vocab.sentencepiece_processor()
  assert vocab.num_fallback > 0 and len(case.unseen_sids) > 500
  fallback_ids = {i for i, k in enumerate(vocab.kinds) if k == V.KIND_FALLBACK}
  for sid in case.unseen_sids:
    ids = vocab.segment(sid)
    assert sp.unk_id() == 0 and all(0 < t < vocab.num_tokens for t in ids)  # never <unk>/pad
    assert ids == _runs_reference(sp, vocab, sid)
    text = vocab.sid_string(sid)
    for ch in text:
      if ch not in vocab.known_chars:
        assert vocab.piece_to_id[ch] in ids and vocab.piece_to_id[ch] in fallback_ids
    # The library's own output on the whole string is ours with fallback tokens -> <unk>
    # (consecutive unknowns merged into one <unk>).
    lib = sp.encode(text)
    ours_as_unk = []
    for t in ids:
      if t in fallback_ids:
        if not ours_as_unk or ours_as_unk[-1] != sp.unk_id():
          ours_as_unk.append(sp.unk_id())
      else:
        ours_as_unk.append(t)
    assert lib == ours_as_unk


def test_every_single_code_has_exactly_one_token(case):
  vocab = case.vocab
  singles = [p for p in vocab.pieces[1:] if len(p) == 1]
  assert len(singles) == len(set(singles)) == case.levels * case.codebook_size
  assert vocab.num_fallback == case.levels * case.codebook_size - len(vocab.known_chars)
  # fallback tokens come after the model's pieces, in flat-code order
  fb = [vocab.pieces[i] for i, k in enumerate(vocab.kinds) if k == V.KIND_FALLBACK]
  assert fb == sorted(fb) and vocab.kinds.index(V.KIND_FALLBACK) == vocab.num_model_pieces


def test_multi_code_pieces_are_learned(case):
  vocab = case.vocab
  assert vocab.num_multi_code_pieces > 0.5 * (vocab.num_tokens - case.levels * case.codebook_size)
  lengths = np.array([len(vocab.segment(s)) for s in case.train_sids])
  weighted = float(np.average(lengths, weights=case.train_counts))
  assert weighted < 0.75 * case.levels, weighted
  assert lengths.min() == 1  # some whole SIDs became single pieces


def _rescore(model_proto, fn):
  """Rewrites piece scores of a serialized ModelProto (field 1 = pieces, piece field 2 = score)."""
  def varint(x):
    out = bytearray()
    while True:
      b, x = x & 0x7F, x >> 7
      out.append(b | 0x80 if x else b)
      if not x:
        return bytes(out)

  def field(f, w, v):
    key = varint((f << 3) | w)
    return key + (varint(v) if w == 0 else varint(len(v)) + v if w == 2 else v)

  out = b""
  for f, w, v in V.proto_fields(model_proto):
    if f == 1 and w == 2:
      sub = list(V.proto_fields(v))
      piece = next(x for ff, _, x in sub if ff == 1).decode("utf-8")
      v = b"".join(
          field(ff, ww, struct.pack("<f", fn(piece, struct.unpack("<f", vv)[0]))
                if ff == 2 and ww == 5 else vv) for ff, ww, vv in sub)
    out += field(f, w, v)
  return out


@pytest.mark.parametrize("bucket", [500.0, None])
def test_equal_scores_merge_leftmost_like_the_library(case_3x256, bucket):
  """BPE models have distinct scores; tie-breaking is checked on models whose scores were made
  coarse (bucket) or all equal (None), against the library on the rewritten model."""
  case = case_3x256
  assert _rescore(case.vocab.model_proto, lambda p, s: s) == case.vocab.model_proto
  proto = _rescore(case.vocab.model_proto,
                   lambda p, s: s if len(p) == 1 else (0.0 if bucket is None else
                                                       float(np.floor(s / bucket))))
  vocab = V.vocabulary_from_model(proto, case.levels, case.codebook_size)
  sp = sentencepiece.SentencePieceProcessor(model_proto=proto)
  assert len(set(vocab.merge_rank.values())) < len(vocab.merge_rank)
  # Ties actually occur: both adjacent pairs of some SID are pieces of equal rank.
  ties = 0
  for sid in case.known_sids:
    t = vocab.sid_string(sid)
    r = [vocab.merge_rank.get(t[j:j + 2]) for j in range(len(t) - 1)]
    ties += r[0] is not None and r[0] == r[1]
  assert ties > 10
  bad = [s for s in case.known_sids if vocab.segment(s) != sp.encode(vocab.sid_string(s))]
  assert not bad


@pytest.mark.parametrize("budget", [3 * 256 + 1, 3 * 256 + 2, 1000, 2500, 4000, 1_000_000])
def test_vocab_size_budget(case_3x256, budget):
  case = case_3x256
  vocab = V.train_spm((case.train_sids, case.train_counts), 3, 256, budget)
  assert vocab.num_tokens <= budget
  if budget <= 4000:  # the data supports more pieces than that: the budget is used exactly
    assert vocab.num_tokens == budget
  else:
    assert vocab.num_tokens < budget  # hard_vocab_limit=False: fewer pieces, no failure
  if budget == 3 * 256 + 1:
    assert vocab.num_multi_code_pieces == 0
  assert vocab.num_tokens == vocab.num_model_pieces + vocab.num_fallback


def test_deterministic_by_seed_and_input_order(case_4x64):
  case = case_4x64
  args = (case.levels, case.codebook_size, 1200)
  a = V.train_spm((case.train_sids, case.train_counts), *args, seed=7)
  perm = np.random.default_rng(0).permutation(len(case.train_sids))
  b = V.train_spm((case.train_sids[perm], case.train_counts[perm]), *args, seed=7)
  c = V.train_spm({tuple(s): int(n) for s, n in zip(case.train_sids, case.train_counts)}, *args,
                  seed=7)
  assert a.asset_text() == b.asset_text() == c.asset_text()


def test_counts_from_repeated_rows_and_weights():
  sids = np.array([[1, 2], [1, 2], [3, 4]])
  assert V.count_sids(sids, 2, 8) == {(1, 2): 2, (3, 4): 1}
  assert V.count_sids((sids, [0.4, 0.4, 2.6]), 2, 8) == {(1, 2): 1, (3, 4): 3}
  assert V.count_sids((sids, [0.2, 0.2, 1.0]), 2, 8) == {(3, 4): 1}  # 0.4 rounds to 0: dropped


def test_asset_round_trip(tmp_path, case_4x64):
  vocab = case_4x64.vocab
  path = vocab.to_asset(str(tmp_path / "v.tsv"))
  back = V.SpmSubIdVocabulary.from_asset(path)
  assert back.same_tokens(vocab) and back.merge_rank == vocab.merge_rank
  lines = open(path, encoding="utf-8").read().splitlines()
  assert all(len(line.split("\t")) == 5 for line in lines)
  assert lines[0] == "<pad>\t0\t-1\t0.0\tpad"
  assert "<meta:codebook_size>\t64\t-1\t0.0\tmeta:64" in lines
  assert f"<meta:num_tokens>\t{vocab.num_tokens}\t-1\t0.0\tmeta:{vocab.num_tokens}" in lines
  sids = case_4x64.known_sids[:500]
  assert [back.segment(s) for s in sids] == [vocab.segment(s) for s in sids]


def test_fallback_only_vocabulary_is_unigram():
  vocab = V.SpmSubIdVocabulary.fallback_only(2, 5)
  assert vocab.num_tokens == 11 and vocab.segment([4, 0]) == [5, 6]
  ids, lengths = vocab.segment_batch(np.array([[0, 0], [4, 4]]))
  assert ids.tolist() == [[1, 6], [5, 10]] and lengths.tolist() == [2, 2]


@pytest.mark.parametrize("sids, message", [
    (np.array([[1, 2, 256]]), "outside|codebook_size"),
    (np.array([[1, -1, 3]]), "codebook_size"),
    (np.zeros((0, 3), np.int64), "no SIDs"),
    ({}, "no SIDs"),
    (np.array([[1, 2]]), "levels=3"),
    (np.array([[0.5, 1, 2]]), "integers"),
    ((np.array([[1, 2, 3]]), [-1.0]), ">= 0"),
])
def test_bad_sids_raise(sids, message):
  with pytest.raises(V.SpmVocabularyError, match=message):
    V.train_spm(sids, 3, 256, 1000)


def test_bad_settings_raise():
  sids = np.array([[1, 2, 3]])
  with pytest.raises(V.SpmVocabularyError, match="65534"):
    V.train_spm(np.zeros((1, 8), np.int64), 8, 8192, 100_000)
  V.check_code_space(2, 32767)  # exactly 65,534 is fine
  with pytest.raises(V.SpmVocabularyError, match="exceeds"):
    V.check_code_space(1, 65535)
  with pytest.raises(V.SpmVocabularyError, match="minimum 769"):
    V.train_spm(sids, 3, 256, 768)
  with pytest.raises(V.SpmVocabularyError, match="only 'bpe'"):
    V.train_spm(sids, 3, 256, 1000, model_type="unigram")
  vocab = V.SpmSubIdVocabulary.fallback_only(3, 4)
  with pytest.raises(V.SpmVocabularyError, match="expected 3"):
    vocab.segment([1, 2])
  with pytest.raises(V.SpmVocabularyError, match="outside"):
    vocab.segment([1, 2, 4])


def test_tiny_corpus_trains():
  sids, counts = synthetic_sids(50, 2, 16, seed=3, children=2)
  vocab = V.train_spm((sids, counts), 2, 16, 200)
  assert vocab.num_tokens <= 200 and vocab.num_multi_code_pieces > 0
  sp = vocab.sentencepiece_processor()
  assert all(vocab.segment(s) == sp.encode(vocab.sid_string(s)) for s in sids)


def test_rare_code_dropped_by_float32_coverage_keeps_budget(monkeypatch):
  """90M code occurrences: sentencepiece's float32 coverage drops a code seen once even at
  character_coverage=1.0; it gets a fallback token and the budget still holds (retrain)."""
  counts = {(1, 2, 3): 10_000_000, (1, 2, 4): 10_000_000, (5, 2, 3): 10_000_000, (7, 8, 9): 1}
  budget = 3 * 16 + 1 + 3
  requests, train = [], sentencepiece.SentencePieceTrainer.train
  monkeypatch.setattr(sentencepiece.SentencePieceTrainer, "train",
                      lambda **kw: requests.append(kw["vocab_size"]) or train(**kw))
  vocab = V.train_spm(counts, 3, 16, budget)
  assert vocab.num_tokens == budget
  assert len(requests) == 2 and requests[1] < requests[0]  # retrained with a smaller request
  rare = [V.code_char(l, c, 16) for l, c in enumerate((7, 8, 9))]
  dropped = [ch for ch in rare if ch not in vocab.known_chars]
  assert dropped  # the library left at least one seen code out of the model
  ids = vocab.segment([7, 8, 9])
  assert all(vocab.kinds[i] == V.KIND_FALLBACK for i in ids if vocab.pieces[i] in dropped)
  assert vocab.num_fallback == 3 * 16 - len(vocab.known_chars)
  sp = vocab.sentencepiece_processor()
  assert vocab.segment([1, 2, 3]) == sp.encode(vocab.sid_string([1, 2, 3]))
