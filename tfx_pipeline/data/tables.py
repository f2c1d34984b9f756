"""Streams named columns out of CSV / TSV, Parquet or TFRecord files, batch by batch.

`read_columns(path, columns, ...)` yields `Batch`es: the file, the 1-based number of each row
in it (CSV: its line in the file; Parquet: its row; TFRecord: its record) and the
requested columns as pyarrow Arrays (TFRecord features reduced to their first value; an empty
or absent feature is null). Nothing but the batch in hand is held in memory, so a file of 10^7
rows costs what the caller keeps of it. A path is a file, a glob or a directory of shards
(hidden and `_`-prefixed files skipped), on any file system tf.io.gfile reads (gs:// too).

Structural problems (a missing file or column, a CSV line with the wrong number of fields, a
file that is not of its format) raise `DataValidationError` naming the file, line and column;
a bad CSV line is dropped and counted instead under the lenient policy.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contracts.arrow_files import arrow_input
from tfx_pipeline.data.errors import BadRowPolicy, DataValidationError

BATCH_ROWS = 262_144
# CSV block size: about BATCH_ROWS short rows; pyarrow cuts blocks at line ends.
CSV_BLOCK_BYTES = 16 << 20
FORMAT_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet",
                   ".pq": "parquet", ".tfrecord": "tfrecord", ".tfrecords": "tfrecord",
                   ".tfrecord.gz": "tfrecord", ".tfrecords.gz": "tfrecord"}


@dataclasses.dataclass
class Batch:
  path: str
  rows: np.ndarray  # 1-based line / row / record number of each row in `path`
  unit: str  # "line" | "row" | "record"
  columns: Dict[str, pa.Array]

  def __len__(self) -> int:
    return len(self.rows)


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def list_files(path: str, what: str, flag: str) -> List[str]:
  """The files `path` names (a file, a glob or a directory), sorted."""
  gfile = _gfile()
  if not path:
    raise DataValidationError(what, None, None, "no path given", f"give it with {flag} PATH")
  if any(c in path for c in "*?["):
    files = gfile.glob(path)
  elif gfile.isdir(path):
    files = [os.path.join(path, n.rstrip("/")) for n in gfile.listdir(path)]
    files = [f for f in files if not gfile.isdir(f)]
  elif gfile.exists(path):
    files = [path]
  else:
    raise DataValidationError(path, None, None, f"the {what} file does not exist",
                              f"check {flag} (a file, a glob such as 'logs/*.parquet', or a "
                              "directory of shards)")
  files = sorted(f for f in files if not os.path.basename(f).startswith((".", "_")))
  if not files:
    raise DataValidationError(path, None, None, f"no {what} files match",
                              f"check {flag} (hidden and '_' files are skipped)")
  return files


def file_format(path: str, fmt: str) -> str:
  """`fmt` unless "auto"; else the format the file name says."""
  if fmt != "auto":
    return fmt
  name = os.path.basename(path).lower()
  for suffix in sorted(FORMAT_SUFFIXES, key=len, reverse=True):
    if name.endswith(suffix):
      return FORMAT_SUFFIXES[suffix]
  raise DataValidationError(path, None, None, "cannot tell the file format from the name",
                            "name it .csv, .tsv, .parquet or .tfrecord[.gz], or pass --format "
                            "csv|tsv|parquet|tfrecord")


def read_columns(path: str, columns: Sequence[str], *, what: str, flag: str, fmt: str = "auto",
                 delimiter: str = "", header: bool = True, optional: Sequence[str] = (),
                 policy: Optional[BadRowPolicy] = None,
                 batch_rows: int = BATCH_ROWS) -> Iterator[Batch]:
  """Batches of `columns` (+ those of `optional` the files have) of every file of `path`.

  Args:
    path: a file, glob or directory.
    columns: columns every file must have (a missing one raises, naming the file).
    what: "interactions" | "catalog", for messages; `flag` the CLI flag that sets the path.
    fmt: auto | csv | tsv | parquet | tfrecord.
    delimiter, header: CSV/TSV only ("" = "," for csv, tab for tsv).
    optional: columns read when present; absent ones are missing from `Batch.columns`.
    policy: what to do with CSV lines of the wrong width (strict: raise; lenient: drop).
  """
  policy = policy or BadRowPolicy()
  for file in list_files(path, what, flag):
    kind = file_format(file, fmt)
    if kind in ("csv", "tsv"):
      sep = delimiter or ("," if kind == "csv" else "\t")
      yield from _read_csv(file, columns, optional, sep, header, policy, what, batch_rows)
    elif kind == "parquet":
      yield from _read_parquet(file, columns, optional, what, batch_rows)
    else:
      yield from _read_tfrecord(file, columns, optional, what, batch_rows)


def _missing(file: str, what: str, missing: Sequence[str], present: Sequence[str]):
  shown = ", ".join(list(present)[:20]) + (" ..." if len(present) > 20 else "")
  return DataValidationError(
      file, None, missing[0], f"the {what} file has no column '{missing[0]}' (it has: {shown})",
      f"name the right column with --columns (e.g. --columns user=COLUMN), or fix the file")


# ------------------------------------------------------------------------------------------ CSV
def _header(file: str, sep: str) -> List[str]:
  with _gfile().GFile(file, "rb") as f:
    first = f.readline()
  text = first.decode("utf-8-sig", errors="replace").rstrip("\r\n")
  return next(csv.reader(io.StringIO(text), delimiter=sep), [])


def _read_csv(file, columns, optional, sep, header, policy, what, batch_rows):
  import pyarrow.csv as pacsv  # pylint: disable=g-import-not-at-top
  names = _header(file, sep)
  if not names:
    raise DataValidationError(file, 1, None, "the file is empty (no header line)",
                              "write a header line naming the columns, or pass --no-header")
  if not header:
    names = [str(i) for i in range(len(names))]
  missing = [c for c in columns if c not in names]
  if missing:
    raise _missing(file, what, missing, names)
  wanted = _unique(list(columns) + [c for c in optional if c in names])
  bad_lines: List[int] = []  # absolute line numbers of the lines dropped (lenient)
  first_bad: Dict[str, object] = {}

  def on_invalid(row):
    number = row.number if row.number is not None and row.number >= 0 else None
    if not first_bad:
      first_bad.update(number=number, expected=row.expected_columns, actual=row.actual_columns)
    if not policy.lenient:
      return "error"
    bad_lines.append(number if number is not None else -1)
    return "skip"

  # One thread and empty lines kept as rows: pyarrow then numbers invalid rows by their line
  # in the file, and every row's line is its position plus the dropped lines before it.
  read = pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0,
                           block_size=CSV_BLOCK_BYTES, use_threads=False)
  parse = pacsv.ParseOptions(delimiter=sep, invalid_row_handler=on_invalid,
                             ignore_empty_lines=False)
  convert = pacsv.ConvertOptions(include_columns=wanted,
                                 column_types={c: pa.string() for c in wanted},
                                 strings_can_be_null=False, quoted_strings_can_be_null=False)
  first_line = 2 if header else 1
  done = 0
  try:
    reader = pacsv.open_csv(arrow_input(file), read_options=read, parse_options=parse,
                            convert_options=convert)
    for record_batch in reader:
      dropped = np.sort([n for n in bad_lines if n >= 0])
      # The k-th dropped line (0-based) shifts every later row down by k + 1 lines.
      shifted = dropped - np.arange(len(dropped))
      for lo in range(0, record_batch.num_rows, batch_rows):
        part = record_batch.slice(lo, batch_rows)
        rows = first_line + done + np.arange(part.num_rows, dtype=np.int64)
        rows = rows + np.searchsorted(shifted, rows, side="right")
        done += part.num_rows
        blank = np.ones(part.num_rows, dtype=bool)
        for c in wanted:
          blank &= (pc.utf8_length(part.column(c)).to_numpy(zero_copy_only=False) == 0)
        if blank.any():  # empty lines: counted, never parsed as a row
          policy.add(f"{what}:empty_line", int(blank.sum()))
          part, rows = part.filter(pa.array(~blank)), rows[~blank]
        yield Batch(file, rows, "line", {c: part.column(c) for c in wanted})
  except pa.ArrowInvalid as e:
    if first_bad:
      raise DataValidationError(
          file, first_bad["number"] or _first_bad_line(file, sep, len(names)), None,
          f"the line has {first_bad['actual']} field(s) but the header has "
          f"{first_bad['expected']} (delimiter {sep!r})",
          "quote fields that contain the delimiter, or pass the right --delimiter",
          reason=f"{what}:bad_line") from None
    raise DataValidationError(file, None, None, f"not a readable CSV file ({e})",
                              "check --format and --delimiter") from None
  if bad_lines:
    policy.add(f"{what}:bad_line", len(bad_lines))


def _unique(names: List[str]) -> List[str]:
  """Column names in order, each once (one column may serve two roles)."""
  return list(dict.fromkeys(names))


def _first_bad_line(file: str, sep: str, width: int) -> Optional[int]:
  """The first line with a field count other than `width` (pyarrow does not always know the
  line of a bad row; this reads the file again, on the error path only)."""
  with _gfile().GFile(file, "r") as f:
    reader = csv.reader(f, delimiter=sep)
    for fields in reader:
      if fields and len(fields) != width:
        return reader.line_num
  return None


# -------------------------------------------------------------------------------------- Parquet
def _read_parquet(file, columns, optional, what, batch_rows):
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  try:
    reader = pq.ParquetFile(arrow_input(file))
  except Exception as e:  # pylint: disable=broad-except
    raise DataValidationError(file, None, None, f"not a readable Parquet file ({e})",
                              "write it with pyarrow.parquet.write_table, or check --format") \
        from None
  names = reader.schema_arrow.names
  missing = [c for c in columns if c not in names]
  if missing:
    raise _missing(file, what, missing, names)
  wanted = _unique(list(columns) + [c for c in optional if c in names])
  done = 0
  for record_batch in reader.iter_batches(batch_size=batch_rows, columns=wanted):
    rows = 1 + done + np.arange(record_batch.num_rows, dtype=np.int64)
    done += record_batch.num_rows
    yield Batch(file, rows, "row", {c: _scalar(record_batch.column(c), file, c)
                                    for c in wanted})


# ------------------------------------------------------------------------------------- TFRecord
def _read_tfrecord(file, columns, optional, what, batch_rows):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfx_bsl.coders import example_coder  # pylint: disable=g-import-not-at-top
  compression = "GZIP" if file.endswith(".gz") else ""
  decoder = example_coder.ExamplesToRecordBatchDecoder()
  wanted = _unique(list(columns) + list(optional))
  done, seen = 0, set()  # features some record of the file has
  dataset = tf.data.TFRecordDataset(file, compression_type=compression).batch(batch_rows)
  try:
    for records in dataset.as_numpy_iterator():
      try:
        record_batch = decoder.DecodeBatch(list(records))
      except Exception as e:  # pylint: disable=broad-except
        raise DataValidationError(
            file, None, None, f"records {done + 1}..{done + len(records)} are not all "
            f"tf.train.Examples with one type per feature ({e})",
            "write tf.train.Example records (one value per feature)") from None
      n = len(records)
      present = record_batch.schema.names
      missing = [c for c in columns if c not in present]
      if done == 0 and missing:  # the first records name the features every record needs
        raise _missing(file, what, missing, present)
      out = {}
      for name in wanted:
        index = record_batch.schema.get_field_index(name)
        if index >= 0:
          seen.add(name)
          out[name] = _first_values(record_batch.column(index))
        else:
          out[name] = pa.nulls(n)
      rows = 1 + done + np.arange(n, dtype=np.int64)
      done += n
      yield Batch(file, rows, "record", {c: v for c, v in out.items()
                                         if c in columns or c in seen})
  except tf.errors.DataLossError as e:
    reason = re.sub(r"\s*\{\{.*?\}\}", "", e.message.splitlines()[0]).strip()
    raise DataValidationError(file, done + 1 if done else None, None,
                              f"not a readable TFRecord file ({reason})",
                              "check --format (GZIP files must end in .gz)") from None


def _scalar(column: pa.Array, file: str, name: str) -> pa.Array:
  """The column if it holds one value per row; else a one-line error naming it."""
  kind = column.type
  if pa.types.is_nested(kind):
    raise DataValidationError(file, None, name, f"column '{name}' holds {kind} values, not one "
                              "value per row", "write one value per row (genres joined by "
                              "'|', one user feature per column)")
  return column


def _first_values(column: pa.Array) -> pa.Array:
  """A list column (tfx_bsl's decoding) -> its first value per row, null where empty."""
  import pyarrow.compute as pc  # pylint: disable=g-import-not-at-top
  if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
    return column
  lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
  offsets = column.offsets.to_numpy()[:-1] - column.offsets[0].as_py()
  flat = column.flatten()
  index = pa.array(np.where(lengths > 0, offsets, 0), mask=lengths == 0)
  return flat.take(index) if len(flat) else pa.nulls(len(column), type=flat.type)
