"""The summary `sidrec run` prints (report.format_summary): numbers in their rows and columns."""
import re

from contracts.registry import metrics as metric_registry
from tfx_pipeline import report as report_lib

REPORT = {
    "embeddings": {"encoder": "minilm", "count": 3883, "dimension": 384,
                   "items_per_second": 321.5, "norm_mean": 1.0, "norm_min": 0.99961},
    "codebooks": {
        "rqvae": {"levels": 3, "codebook_size": 256, "unique_sid_ratio": 0.9871,
                  "min_code_usage": 0.953, "relative_reconstruction_error": 0.1234,
                  "prefix_cosine": [0.412, 0.618, None], "train_seconds": 12.34},
        "rqkmeans": {"levels": 2, "codebook_size": 16, "unique_sid_ratio": 0.5,
                     "min_code_usage": 1.0, "relative_reconstruction_error": None,
                     "prefix_cosine": [0.3], "train_seconds": 0.5},
    },
    "representations": {
        "no_item": {"auc": 0.62171, "auc_new_items": 0.62368, "auc_seen_items": 0.61882,
                    "gauc": 0.50031, "gauc_new_items": None, "gauc_seen_items": 0.50012,
                    "table_rows": 0,
                    "train_examples_per_sec": 41234.4, "blessed": True},
        "sid_spm+item_id_vocab": {"auc": 0.72974, "auc_new_items": 0.63291,
                                  "auc_seen_items": 0.76182, "gauc": 0.57031,
                                  "gauc_new_items": 0.51403, "gauc_seen_items": 0.71517,
                                  "table_rows": 10655,
                                  "train_examples_per_sec": None, "blessed": False},
    },
    "components": {"cached": ["StatisticsGen", "SchemaGen"]},
}

# (header label, report key, how a value is printed); all right-aligned under the label. The
# metric columns are the registry's table figures (a newly registered one gets a column).
COLUMNS = [(m.label.lower(), m.key, "{:.4f}") for m in metric_registry.TABLE] + [
    ("rows", "table_rows", "{:,}"), ("ex/s", "train_examples_per_sec", "{:,.0f}")]


def _section(text, title):
  """The lines after the line starting with `title`, up to the next blank line."""
  lines = text.splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith(title))
  out = []
  for line in lines[start + 1:]:
    if not line.strip():
      break
    out.append(line)
  return out


def test_ranking_table_puts_each_number_under_its_column():
  assert [c[1] for c in COLUMNS[:6]] == ["auc", "auc_new_items", "auc_seen_items", "gauc",
                                         "gauc_new_items", "gauc_seen_items"]
  header, *rows = _section(report_lib.format_summary(REPORT), "Ranking")
  # Where each header label ends (labels found left to right: "auc" before "auc new").
  ends, pos = {}, header.index("representation") + len("representation")
  for label, _, _ in COLUMNS:
    pos = header.index(label, pos) + len(label)
    ends[label] = pos
  blessed_at = header.index("blessed", pos)
  assert len(rows) == len(REPORT["representations"])
  for row, (name, r) in zip(rows, REPORT["representations"].items()):
    tokens = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", row)]
    assert tokens[0][0] == name
    assert len(tokens) == 1 + len(COLUMNS) + 1, row
    for (label, key, fmt), (text, _, end) in zip(COLUMNS, tokens[1:]):
      value = r.get(key)
      assert text == ("-" if value is None else fmt.format(value)), (name, label, row)
      assert end == ends[label], (name, label, row)
    text, start, _ = tokens[-1]
    assert (text, start) == ("yes" if r["blessed"] else "NO", blessed_at), row


def test_codebook_embedding_and_cache_lines():
  text = report_lib.format_summary(REPORT)
  assert _section(text, "Codebooks") == [
      "  rqvae     3 x 256: unique 0.987, usage 0.95, rre 0.123, prefix cos [0.41, 0.62, -], "
      "12.3s",
      "  rqkmeans  2 x 16: unique 0.500, usage 1.00, rre -, prefix cos [0.30], 0.5s"]
  embeddings = dict(line.split(None, 1) for line in _section(text, "Item embeddings"))
  assert embeddings == {"encoder": "minilm", "count": "3,883", "dimension": "384",
                        "items_per_second": "321.500", "norm_mean": "1.000",
                        "norm_min": "1.000"}
  assert text.splitlines()[-1] == "Served from cache: StatisticsGen, SchemaGen"


def test_sections_without_data_are_left_out():
  text = report_lib.format_summary({"components": {"cached": []}})
  assert text == ""
