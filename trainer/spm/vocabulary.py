"""SentencePiece sub-ID vocabulary over semantic IDs (pure Python/numpy, no TensorFlow).

A semantic ID (SID) is L codes, one per level, each in [0, K). SentencePiece works on text, so
every (level, code) becomes ONE private-use character of Unicode plane 15:

    char(level, code) = chr(0xF0000 + level * K + code)

and a SID [L] becomes an L-character string. Plane 15 holds U+F0000..U+FFFFD (65,534 usable code
points, U+FFFFE/U+FFFFF are non-characters), hence the limit L * K <= 65,534 (`check_code_space`).
Because a code's character depends on its level, equal codes at different levels never merge.

Training (`train_spm`) follows DESIGN.md section 3 (measured with sentencepiece 0.2.3): BPE,
`split_by_whitespace=False`, `max_sentencepiece_length=L`, identity normalisation, no dummy prefix,
character_coverage 1.0, no byte fallback, a `sentence<TAB>count` .tsv as input, one `<unk>` and no
BOS/EOS/PAD pieces. Only BPE is accepted: the unigram trainer learns (almost) no multi-code pieces
over private-use characters (DESIGN.md section 3; reproduced here: 4 multi-code pieces out of 729
after ~100 s on 4.3k synthetic SIDs), so it would be a slow unigram table.

Token id space ("table rows"):
  * 0                         padding / reserved (the model's `<unk>` slot; `<unk>` is never output)
  * 1 .. S-1                  the SentencePiece model's pieces, same ids as in the model (S = the
                              model's vocab size, which counts its `<unk>`)
  * S .. S+F-1                one fallback token per single code (level, code) that the model does
                              not have as a piece (codes never seen in training), in flat-code
                              order level * K + code. So no SID ever maps to `<unk>`.
  num_tokens = S + F rows.

Budget: `vocab_size` is the total number of embedding-table rows, padding row included:
num_tokens <= vocab_size always. With C = distinct (level, code) pairs seen in training (each
becomes a single-character piece, character_coverage=1.0), F = L*K - C fallback rows are set
aside and the SentencePiece trainer is asked for S = vocab_size - F pieces (its `<unk>` included,
which becomes our padding row). It needs S >= C + 1, i.e. vocab_size >= L*K + 1 (one row per
single code + padding); smaller budgets raise. `hard_vocab_limit=False`: when the data cannot
yield S pieces the model is smaller and num_tokens < vocab_size. (sentencepiece computes the
coverage in float32, so beyond ~3e7 code occurrences a code seen only once or twice may still be
left out of the model: it then gets a fallback token too, and the trainer is re-run with S
reduced by that many rows so that the budget holds.)

Segmentation (`SpmSubIdVocabulary.segment`) reproduces sentencepiece's BPE encoder
(src/bpe_model.cc, Model::SampleEncode with alpha=0): start from one symbol per character and
repeatedly merge the adjacent pair whose concatenation is a piece with the highest score, the
leftmost pair on equal scores, until no adjacent pair forms a piece. Characters the model does not
know (codes unseen in training) never merge (no piece contains them) and map to their fallback
tokens; that is the same as segmenting each maximal run of known characters with the library and
giving every unknown code its fallback token (the library itself would emit `<unk>`, merging
consecutive unknowns into one). For SIDs made of known codes only, segment() equals
`SentencePieceProcessor.encode(sid_string)` (our ids are the model's ids); tests check it.

Asset file (`to_asset`/`from_asset`, read by the TF segmenter with tf.lookup.TextFileInitializer):
UTF-8 text, no header, one line per token in token-id order, then meta lines; 5 tab-separated
columns on every line:

    key <TAB> value <TAB> merge_rank <TAB> score <TAB> kind

  token lines: key = the piece (its private-use characters; `<pad>` for row 0), value = token id,
               merge_rank = BPE merge priority of a multi-code piece (0 = merged first: dense rank
               of the score, descending; equal scores share a rank) or -1, score = the model's
               score (repr of the float32), kind = pad | piece | fallback.
  meta lines:  key = `<meta:NAME>`, value = integer value (0 if not an integer), merge_rank = -1,
               score = 0.0, kind = `meta:` + the value as text. Names: format (1), levels,
               codebook_size, num_tokens, model_type (text `bpe`).
Pieces are private-use characters only, so they never collide with `<pad>`/`<meta:...>` keys and
never contain a tab or newline.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

PLANE15_BASE = 0xF0000
# U+F0000 .. U+FFFFD: U+FFFFE and U+FFFFF are non-characters.
MAX_CODE_SPACE = 0xFFFFD - PLANE15_BASE + 1  # 65,534
ASSET_FORMAT_VERSION = 1
PAD_PIECE = "<pad>"
SUPPORTED_MODEL_TYPES = ("bpe",)

KIND_PAD = "pad"
KIND_PIECE = "piece"
KIND_FALLBACK = "fallback"

SidCounts = Union[Mapping[Tuple[int, ...], Union[int, float]],
                  Tuple[np.ndarray, Optional[np.ndarray]],
                  np.ndarray]


class SpmVocabularyError(ValueError):
  """Bad SIDs or settings for the SentencePiece sub-ID vocabulary; the message says what to fix."""


# ------------------------------------------------------------------------------------------------
# SID <-> string


def check_code_space(levels: int, codebook_size: int) -> None:
  """Raises SpmVocabularyError unless L >= 1, K >= 1 and L * K <= 65,534 (plane-15 private use)."""
  if int(levels) != levels or levels < 1:
    raise SpmVocabularyError(f"levels must be a positive integer, got {levels!r}")
  if int(codebook_size) != codebook_size or codebook_size < 1:
    raise SpmVocabularyError(f"codebook_size must be a positive integer, got {codebook_size!r}")
  if levels * codebook_size > MAX_CODE_SPACE:
    raise SpmVocabularyError(
        f"levels * codebook_size = {levels} * {codebook_size} = {levels * codebook_size} exceeds "
        f"{MAX_CODE_SPACE}: every (level, code) needs its own private-use character of Unicode "
        "plane 15 (U+F0000..U+FFFFD). Use fewer levels or a smaller codebook for SentencePiece "
        "sub-IDs (n-gram / prefix features have no such limit).")


def code_char(level: int, code: int, codebook_size: int) -> str:
  """The one character standing for `code` at `level`."""
  return chr(PLANE15_BASE + level * codebook_size + code)


def char_code(ch: str, codebook_size: int) -> Tuple[int, int]:
  """Inverse of code_char: (level, code)."""
  flat = ord(ch) - PLANE15_BASE
  if flat < 0 or flat >= MAX_CODE_SPACE:
    raise SpmVocabularyError(f"{ch!r} (U+{ord(ch):04X}) is not a SID character")
  return divmod(flat, codebook_size)


def sid_to_string(sid: Sequence[int], codebook_size: int) -> str:
  """SID [L] (code per level) -> its L-character string. Codes must be in [0, K)."""
  out = []
  for level, code in enumerate(sid):
    code = int(code)
    if code < 0 or code >= codebook_size:
      raise SpmVocabularyError(
          f"code {code} at level {level} of SID {tuple(int(c) for c in sid)} is outside "
          f"[0, codebook_size={codebook_size})")
    out.append(code_char(level, code, codebook_size))
  return "".join(out)


def string_to_sid(text: str, codebook_size: int) -> Tuple[int, ...]:
  """Inverse of sid_to_string (levels must be 0, 1, 2, ... in order)."""
  sid = []
  for i, ch in enumerate(text):
    level, code = char_code(ch, codebook_size)
    if level != i:
      raise SpmVocabularyError(f"character {i} of {text!r} is a level-{level} code")
    sid.append(code)
  return tuple(sid)


def _validate_sids(sids: np.ndarray, levels: int, codebook_size: int) -> np.ndarray:
  sids = np.asarray(sids)
  if sids.ndim != 2 or sids.shape[1] != levels:
    raise SpmVocabularyError(f"SIDs must be an integer array [n, levels={levels}], got shape "
                             f"{sids.shape}")
  if sids.size and not np.issubdtype(sids.dtype, np.integer):
    raise SpmVocabularyError(f"SIDs must be integers, got dtype {sids.dtype}")
  sids = sids.astype(np.int64, copy=False)
  if sids.size:
    lo, hi = int(sids.min()), int(sids.max())
    if lo < 0 or hi >= codebook_size:
      bad = sids[((sids < 0) | (sids >= codebook_size)).any(axis=1)][0]
      raise SpmVocabularyError(
          f"SID codes must be in [0, codebook_size={codebook_size}); found min {lo}, max {hi} "
          f"(e.g. SID {tuple(int(c) for c in bad)})")
  return sids


def count_sids(sid_counts: SidCounts, levels: int,
               codebook_size: int) -> Dict[Tuple[int, ...], int]:
  """Normalises the accepted inputs to {SID tuple: positive integer count}.

  Accepts a mapping {SID tuple: count}, a pair (sids [n, L], weights [n] or None) or a bare
  sids [n, L] array (weight 1 per row; repeated rows add up). Weights are summed per SID and
  rounded to integers (the SentencePiece .tsv takes integer counts); SIDs whose total rounds to
  < 1 are dropped (their codes are then "unseen" and get fallback tokens).
  """
  check_code_space(levels, codebook_size)
  if isinstance(sid_counts, Mapping):
    keys = list(sid_counts.keys())
    sids = np.asarray(keys, dtype=np.int64).reshape(len(keys), -1) if keys else np.zeros(
        (0, levels), np.int64)
    weights = np.asarray([sid_counts[k] for k in keys], dtype=np.float64)
  else:
    if isinstance(sid_counts, tuple):
      if len(sid_counts) != 2:
        raise SpmVocabularyError("pass SIDs as a mapping, an array [n, L] or (sids, weights)")
      sids, weights = sid_counts
    else:
      sids, weights = sid_counts, None
    sids = np.asarray(sids)
    if sids.ndim == 2 and sids.shape[0] == 0:
      sids = sids.reshape(0, levels)
    weights = (np.ones(len(sids), np.float64) if weights is None else
               np.asarray(weights, np.float64).reshape(-1))
    if len(weights) != len(sids):
      raise SpmVocabularyError(f"{len(sids)} SIDs but {len(weights)} weights")
  sids = _validate_sids(sids, levels, codebook_size)
  if not np.all(np.isfinite(weights)) or (weights.size and weights.min() < 0):
    raise SpmVocabularyError("SID weights must be finite and >= 0")
  if len(sids) == 0:
    raise SpmVocabularyError(
        "no SIDs to train the SentencePiece vocabulary on (empty training split?)")
  uniq, inverse = np.unique(sids, axis=0, return_inverse=True)
  totals = np.zeros(len(uniq), np.float64)
  np.add.at(totals, inverse.reshape(-1), weights)
  counts = np.rint(totals).astype(np.int64)
  out = {tuple(int(c) for c in row): int(n) for row, n in zip(uniq, counts) if n >= 1}
  if not out:
    raise SpmVocabularyError("every SID has a total weight that rounds to 0: nothing to train on")
  return out


# ------------------------------------------------------------------------------------------------
# The vocabulary


@dataclasses.dataclass(frozen=True, eq=False)
class SpmSubIdVocabulary:
  """Learned SentencePiece pieces + one fallback token per unseen single code (see module doc).

  pieces[i], scores[i], kinds[i] describe token id i; pieces[0] is `<pad>`.
  """
  levels: int
  codebook_size: int
  pieces: Tuple[str, ...]
  scores: Tuple[float, ...]
  kinds: Tuple[str, ...]
  model_type: str = "bpe"
  # The serialized SentencePiece ModelProto (set by train_spm; not part of the asset).
  model_proto: Optional[bytes] = dataclasses.field(default=None, repr=False)

  def __post_init__(self):
    check_code_space(self.levels, self.codebook_size)
    if self.model_type not in SUPPORTED_MODEL_TYPES:
      raise SpmVocabularyError(f"model_type {self.model_type!r} not supported "
                               f"({SUPPORTED_MODEL_TYPES})")
    n = len(self.pieces)
    if not (len(self.scores) == len(self.kinds) == n) or n == 0 or self.kinds[0] != KIND_PAD:
      raise SpmVocabularyError("malformed vocabulary: pieces/scores/kinds lengths or row 0")
    seen = set()
    for i, (p, k) in enumerate(zip(self.pieces[1:], self.kinds[1:]), start=1):
      if k not in (KIND_PIECE, KIND_FALLBACK):
        raise SpmVocabularyError(f"malformed vocabulary: token {i} has kind {k!r}")
      if not p or p in seen:
        raise SpmVocabularyError(f"malformed vocabulary: empty or duplicate piece at token {i}")
      seen.add(p)
      for j, ch in enumerate(p):  # every character must be a SID character of a valid level
        level, _ = char_code(ch, self.codebook_size)
        if level >= self.levels:
          raise SpmVocabularyError(f"token {i} holds a level-{level} code; levels={self.levels}")
    singles = {p for p in self.pieces[1:] if len(p) == 1}
    if len(singles) != self.levels * self.codebook_size:
      raise SpmVocabularyError(
          f"vocabulary must hold every single code once: {len(singles)} of "
          f"{self.levels * self.codebook_size}")

  # -- sizes -------------------------------------------------------------------------------------

  @property
  def num_tokens(self) -> int:
    """Embedding-table rows (padding row 0 included)."""
    return len(self.pieces)

  @property
  def num_fallback(self) -> int:
    return sum(1 for k in self.kinds if k == KIND_FALLBACK)

  @property
  def num_model_pieces(self) -> int:
    """The SentencePiece model's vocab size S (its `<unk>` = our padding row 0)."""
    return self.num_tokens - self.num_fallback

  @property
  def num_multi_code_pieces(self) -> int:
    return sum(1 for p, k in zip(self.pieces, self.kinds) if k == KIND_PIECE and len(p) > 1)

  # -- lookups ----------------------------------------------------------------------------------

  @functools.cached_property
  def piece_to_id(self) -> Dict[str, int]:
    return {p: i for i, p in enumerate(self.pieces) if i > 0}

  @functools.cached_property
  def merge_rank(self) -> Dict[str, int]:
    """Multi-code piece -> merge priority (0 first): dense rank of the score, descending."""
    multi = [(p, s) for p, s, k in zip(self.pieces, self.scores, self.kinds)
             if k == KIND_PIECE and len(p) > 1]
    order = {s: r for r, s in enumerate(sorted({s for _, s in multi}, reverse=True))}
    return {p: order[s] for p, s in multi}

  @functools.cached_property
  def known_chars(self) -> frozenset:
    """Single-code characters that are pieces of the SentencePiece model (seen in training)."""
    return frozenset(p for p, k in zip(self.pieces, self.kinds) if k == KIND_PIECE and len(p) == 1)

  def token_codes(self, token_id: int) -> Tuple[Tuple[int, int], ...]:
    """The (level, code) pairs a token stands for (empty for padding)."""
    if token_id == 0:
      return ()
    return tuple(char_code(ch, self.codebook_size) for ch in self.pieces[token_id])

  def sid_string(self, sid: Sequence[int]) -> str:
    if len(sid) != self.levels:
      raise SpmVocabularyError(f"SID {tuple(sid)} has {len(sid)} codes, expected {self.levels}")
    return sid_to_string(sid, self.codebook_size)

  # -- segmentation -----------------------------------------------------------------------------

  def segment_string(self, text: str) -> List[int]:
    """BPE segmentation of a SID string -> token ids (see module doc for the exact rule)."""
    syms = list(text)
    rank = self.merge_rank
    while len(syms) > 1:
      best_j, best_r = -1, None
      for j in range(len(syms) - 1):
        r = rank.get(syms[j] + syms[j + 1])
        if r is not None and (best_r is None or r < best_r):  # strict: leftmost on ties
          best_j, best_r = j, r
      if best_j < 0:
        break
      syms[best_j:best_j + 2] = [syms[best_j] + syms[best_j + 1]]
    ids = self.piece_to_id
    return [ids[s] for s in syms]

  def segment(self, sid: Sequence[int]) -> List[int]:
    """SID [L] -> token ids (1..num_tokens-1), at most L of them."""
    return self.segment_string(self.sid_string(sid))

  def segment_batch(self, sids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """sids [n, L] -> (token ids [n, L] int64 padded with 0, lengths [n] int64)."""
    sids = _validate_sids(sids, self.levels, self.codebook_size)
    out = np.zeros(sids.shape, np.int64)
    lengths = np.zeros(len(sids), np.int64)
    cache: Dict[bytes, List[int]] = {}
    for i, row in enumerate(sids):
      key = row.tobytes()
      toks = cache.get(key)
      if toks is None:
        toks = cache[key] = self.segment(row)
      out[i, :len(toks)] = toks
      lengths[i] = len(toks)
    return out, lengths

  # -- the SentencePiece model ------------------------------------------------------------------

  def sentencepiece_processor(self):
    """A sentencepiece.SentencePieceProcessor of the trained model (train_spm results only)."""
    if self.model_proto is None:
      raise SpmVocabularyError("no SentencePiece model proto (vocabulary was read from an asset)")
    import sentencepiece  # pylint: disable=g-import-not-at-top
    return sentencepiece.SentencePieceProcessor(model_proto=self.model_proto)

  # -- asset ------------------------------------------------------------------------------------

  def meta(self) -> Dict[str, Tuple[int, str]]:
    return {
        "format": (ASSET_FORMAT_VERSION, str(ASSET_FORMAT_VERSION)),
        "levels": (self.levels, str(self.levels)),
        "codebook_size": (self.codebook_size, str(self.codebook_size)),
        "num_tokens": (self.num_tokens, str(self.num_tokens)),
        "model_type": (0, self.model_type),
    }

  def asset_text(self) -> str:
    rank = self.merge_rank
    lines = []
    for i, (p, s, k) in enumerate(zip(self.pieces, self.scores, self.kinds)):
      lines.append(f"{p}\t{i}\t{rank.get(p, -1) if k == KIND_PIECE else -1}\t{float(s)!r}\t{k}")
    for name, (value, text) in self.meta().items():
      lines.append(f"<meta:{name}>\t{value}\t-1\t0.0\tmeta:{text}")
    return "\n".join(lines) + "\n"

  def asset_bytes(self) -> bytes:
    return self.asset_text().encode("utf-8")

  def to_asset(self, path: str) -> str:
    """Writes the asset file (atomically: temp file + rename); returns path."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".spm_asset_")
    with os.fdopen(fd, "wb") as f:
      f.write(self.asset_bytes())
    os.replace(tmp, path)
    return path

  @classmethod
  def from_asset_text(cls, text: str) -> "SpmSubIdVocabulary":
    pieces, scores, kinds, meta = [], [], [], {}
    for n, line in enumerate(text.split("\n")):
      if not line:
        continue
      cols = line.split("\t")
      if len(cols) != 5:
        raise SpmVocabularyError(f"asset line {n + 1}: expected 5 tab-separated columns")
      key, value, _, score, kind = cols
      if kind.startswith("meta:"):
        meta[key[len("<meta:"):-1]] = kind[len("meta:"):]
        continue
      if int(value) != len(pieces):
        raise SpmVocabularyError(f"asset line {n + 1}: token id {value}, expected {len(pieces)}")
      pieces.append(key)
      scores.append(float(score))
      kinds.append(kind)
    for name in ("format", "levels", "codebook_size", "num_tokens", "model_type"):
      if name not in meta:
        raise SpmVocabularyError(f"asset lacks the <meta:{name}> line")
    if int(meta["format"]) != ASSET_FORMAT_VERSION:
      raise SpmVocabularyError(f"asset format {meta['format']} (expected {ASSET_FORMAT_VERSION})")
    vocab = cls(levels=int(meta["levels"]), codebook_size=int(meta["codebook_size"]),
                pieces=tuple(pieces), scores=tuple(scores), kinds=tuple(kinds),
                model_type=meta["model_type"])
    if vocab.num_tokens != int(meta["num_tokens"]):
      raise SpmVocabularyError("asset num_tokens does not match its token lines")
    return vocab

  @classmethod
  def from_asset(cls, path: str) -> "SpmSubIdVocabulary":
    with open(path, "rb") as f:
      return cls.from_asset_text(f.read().decode("utf-8"))

  @classmethod
  def fallback_only(cls, levels: int, codebook_size: int) -> "SpmSubIdVocabulary":
    """No learned pieces: one token per single code (unigram SIDs). Used as the analyzer's
    placeholder asset while tf.Transform traces the preprocessing_fn."""
    check_code_space(levels, codebook_size)
    n = levels * codebook_size
    pieces = (PAD_PIECE,) + tuple(chr(PLANE15_BASE + f) for f in range(n))
    return cls(levels=levels, codebook_size=codebook_size, pieces=pieces,
               scores=(0.0,) * (n + 1), kinds=(KIND_PAD,) + (KIND_FALLBACK,) * n)

  def same_tokens(self, other: "SpmSubIdVocabulary") -> bool:
    return (self.levels, self.codebook_size, self.pieces, self.scores, self.kinds,
            self.model_type) == (other.levels, other.codebook_size, other.pieces, other.scores,
                                 other.kinds, other.model_type)


# ------------------------------------------------------------------------------------------------
# Training


def min_vocab_size(levels: int, codebook_size: int) -> int:
  """The smallest budget: one row per single code + the padding row."""
  return levels * codebook_size + 1


def train_spm(sid_counts: SidCounts,
              levels: int,
              codebook_size: int,
              vocab_size: int,
              model_type: str = "bpe",
              seed: int = 0,
              work_dir: Optional[str] = None) -> SpmSubIdVocabulary:
  """Trains SentencePiece on SIDs and returns the sub-ID vocabulary (<= vocab_size rows).

  Args:
    sid_counts: {SID tuple: count}, (sids [n, L], weights [n] or None) or sids [n, L]; see
      count_sids. Counts are the training weights (e.g. interactions of impressed items).
    levels, codebook_size: L and K of the SIDs (L * K <= 65,534).
    vocab_size: embedding-table budget = total rows incl. padding and fallback tokens;
      >= L * K + 1.
    model_type: 'bpe' (the only type whose trainer learns multi-code pieces here).
    seed: SentencePiece's random-generator seed (BPE training on the sorted .tsv is
      deterministic anyway).
    work_dir: where the .tsv and model are written (a temp dir, removed afterwards, if None).
  """
  if model_type not in SUPPORTED_MODEL_TYPES:
    raise SpmVocabularyError(
        f"model_type {model_type!r} is not supported: only 'bpe'. SentencePiece's unigram trainer "
        "learns (almost) no multi-code pieces over private-use characters (DESIGN.md section 3), "
        "so it would only reproduce the per-code table, slowly.")
  counts = count_sids(sid_counts, levels, codebook_size)
  if int(vocab_size) != vocab_size or vocab_size < min_vocab_size(levels, codebook_size):
    raise SpmVocabularyError(
        f"vocab_size={vocab_size} is below the minimum {min_vocab_size(levels, codebook_size)} "
        f"for levels={levels}, codebook_size={codebook_size}: the table needs one row per single "
        "code (so unseen codes never become <unk>) plus the padding row")
  seen_chars = {code_char(l, c, codebook_size) for sid in counts for l, c in enumerate(sid)}
  num_fallback = levels * codebook_size - len(seen_chars)
  spm_vocab = int(vocab_size) - num_fallback  # >= len(seen_chars) + 1 by the check above

  import sentencepiece  # pylint: disable=g-import-not-at-top

  own_dir = work_dir is None
  work_dir = tempfile.mkdtemp(prefix="spm_subid_") if own_dir else work_dir
  os.makedirs(work_dir, exist_ok=True)
  try:
    tsv = os.path.join(work_dir, "sids.tsv")
    with open(tsv, "w", encoding="utf-8", newline="\n") as f:
      for sid in sorted(counts):
        f.write(f"{sid_to_string(sid, codebook_size)}\t{counts[sid]}\n")
    prefix = os.path.join(work_dir, "spm")
    # sentencepiece decides character coverage in float32 (trainer_interface.cc: `const float
    # coverage = 1.0 * accumulated / all`): beyond ~3e7 code occurrences in total, a code seen
    # only once or twice can be left out even at character_coverage=1.0 (measured: 1 of 16,381
    # codes with 56.6M occurrences; --required_chars does not keep it, --use_all_vocab is
    # rejected for BPE). Such a code gets a fallback token like an unseen one; train again with a
    # request smaller by that many rows so that the budget holds (the character set does not
    # depend on the request).
    vocab = None
    for _ in range(3):
      sentencepiece.set_random_generator_seed(int(seed))
      sentencepiece.SentencePieceTrainer.train(
          input=tsv, input_format="tsv", model_prefix=prefix, model_type=model_type,
          vocab_size=spm_vocab, character_coverage=1.0, normalization_rule_name="identity",
          add_dummy_prefix=False, remove_extra_whitespaces=False, split_by_whitespace=False,
          split_by_unicode_script=False, split_by_number=False, split_digits=False,
          max_sentencepiece_length=levels, byte_fallback=False, hard_vocab_limit=False,
          unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, num_threads=1, minloglevel=2)
      with open(prefix + ".model", "rb") as f:
        vocab = vocabulary_from_model(f.read(), levels, codebook_size)
      excess = vocab.num_tokens - int(vocab_size)
      if excess <= 0:
        break
      spm_vocab -= excess
    else:
      raise SpmVocabularyError(  # not expected: the retry removes exactly the excess
          f"vocabulary has {vocab.num_tokens} rows, over the budget {vocab_size}")
  finally:
    if own_dir:
      import shutil  # pylint: disable=g-import-not-at-top
      shutil.rmtree(work_dir, ignore_errors=True)
  return vocab


# The pip package's sentencepiece_model_pb2 needs a newer protobuf runtime than the pinned one,
# so the two fields we need are read straight from the protobuf wire format.
_BPE = 2  # TrainerSpec.ModelType.BPE


def proto_fields(buf: bytes) -> Iterable[Tuple[int, int, Union[int, bytes]]]:
  """(field number, wire type, value) of one protobuf message; length-delimited values as bytes,
  fixed32/fixed64 as raw bytes, varints as int."""
  i, n = 0, len(buf)

  def varint():
    nonlocal i
    shift = result = 0
    while True:
      b = buf[i]
      i += 1
      result |= (b & 0x7F) << shift
      if b < 0x80:
        return result
      shift += 7

  while i < n:
    key = varint()
    field, wire = key >> 3, key & 7
    if wire == 0:
      yield field, wire, varint()
    elif wire == 1:
      yield field, wire, buf[i:i + 8]
      i += 8
    elif wire == 2:
      size = varint()
      yield field, wire, buf[i:i + size]
      i += size
    elif wire == 5:
      yield field, wire, buf[i:i + 4]
      i += 4
    else:
      raise SpmVocabularyError(f"unsupported protobuf wire type {wire}")


def _model_type_of(model_proto: bytes) -> int:
  """ModelProto.trainer_spec (field 2) .model_type (field 3); UNIGRAM (1) when unset."""
  for field, wire, value in proto_fields(model_proto):
    if field == 2 and wire == 2:
      for f2, w2, v2 in proto_fields(value):
        if f2 == 3 and w2 == 0:
          return int(v2)
  return 1


def vocabulary_from_model(model_proto: bytes, levels: int,
                          codebook_size: int) -> SpmSubIdVocabulary:
  """Builds the vocabulary (model pieces + fallback tokens) from a serialized BPE model."""
  import sentencepiece  # pylint: disable=g-import-not-at-top
  model_type = _model_type_of(model_proto)
  if model_type != _BPE:
    raise SpmVocabularyError(f"SentencePiece model type {model_type} is not BPE ({_BPE}): the "
                             "segmentation reproduces sentencepiece's BPE encoder only")
  sp = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
  size = sp.get_piece_size()
  if size < 1 or not sp.is_unknown(0):
    raise SpmVocabularyError("expected <unk> at id 0 of the SentencePiece model")
  pieces, scores, kinds = [PAD_PIECE], [0.0], [KIND_PAD]
  for i in range(1, size):
    if sp.is_unknown(i) or sp.is_control(i) or sp.is_unused(i) or sp.is_byte(i):
      raise SpmVocabularyError(f"unexpected special piece {sp.id_to_piece(i)!r} at id {i}")
    pieces.append(sp.id_to_piece(i))
    scores.append(float(sp.get_score(i)))
    kinds.append(KIND_PIECE)
  have = set(pieces)
  for flat in range(levels * codebook_size):
    ch = chr(PLANE15_BASE + flat)
    if ch not in have:
      pieces.append(ch)
      scores.append(0.0)
      kinds.append(KIND_FALLBACK)
  return SpmSubIdVocabulary(levels=levels, codebook_size=codebook_size, pieces=tuple(pieces),
                             scores=tuple(scores), kinds=tuple(kinds), model_type="bpe",
                             model_proto=model_proto)
