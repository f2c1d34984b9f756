"""Reader for RecBole's "atomic" files (`.inter`, `.item`, `.user`).

Format: UTF-8 text, tab-separated, LF or CRLF line ends, first line a header of `name:type`
fields (e.g. `user_id:token	item_id:token	rating:float	timestamp:float`). Empty lines are
ignored. Every other line must have exactly as many fields as the header.

The structure check is vectorised over the raw bytes (tabs per line), so a clean 1M-line file
goes straight to pandas' C parser; only files with bad lines pay for a Python pass.
"""

from __future__ import annotations

import csv
import io
from typing import Sequence, Tuple

import numpy as np
import pandas as pd

from tfx_pipeline.data.errors import BadRowPolicy, DataValidationError


def read_atomic_file(path: str, required: Sequence[str], policy: BadRowPolicy,
                     kind: str) -> Tuple[pd.DataFrame, np.ndarray]:
  """Reads one atomic file as strings.

  Args:
    path: the file.
    required: column names (without `:type`) that must be in the header.
    policy: strict/lenient handling of bad rows.
    kind: "interactions" | "items" | "users" (prefix of drop reasons).
  Returns:
    (frame of str columns named by the header's names, 1-based line number of every row).
  """
  with open(path, "rb") as f:
    raw = f.read()
  raw = raw.replace(b"\r\n", b"\n")
  data = np.frombuffer(raw, dtype=np.uint8)
  ends = np.flatnonzero(data == 10)
  if len(raw) and raw[-1:] != b"\n":
    ends = np.append(ends, len(raw))
  starts = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else np.zeros(0, np.int64)
  if len(ends) == 0 or ends[0] == 0:
    raise DataValidationError(path, 1, None, "the file has no header line",
                              "the first line must name the columns as `name:type`, tab-separated")

  header = _decode_line(raw[:ends[0]], path, 1).split("\t")
  names = [h.split(":", 1)[0].strip() for h in header]
  for name in required:
    if name not in names:
      raise DataValidationError(
          path, 1, name, f"the header has no column '{name}' (it has {names})",
          f"add a '{name}:<type>' column; RecBole atomic files name every column in line 1")

  tabs = np.flatnonzero(data == 9)
  fields = np.bincount(np.searchsorted(ends, tabs), minlength=len(ends)) + 1
  lengths = ends - starts
  line_index = np.arange(1, len(ends))  # data lines (0-based index into ends)
  line_index = line_index[lengths[1:] > 0]  # empty lines carry nothing: ignored
  n_fields = fields[line_index]
  lines = line_index + 1  # 1-based line numbers

  def column_problem(i):
    got = int(n_fields[i])
    return (f"the row has {got} tab-separated field(s), the header has {len(names)}")

  bad_width = n_fields != len(names)
  first_bad = int(np.flatnonzero(bad_width)[0]) if bad_width.any() else 0
  width_field = (names[min(int(n_fields[first_bad]), len(names) - 1)]
                 if bad_width.any() else None)
  keep = policy.check(bad_width, path=path, lines=lines, field=width_field,
                      reason=f"{kind}:wrong_column_count", problem=column_problem,
                      fix="each row needs exactly one value per header column, separated by tabs "
                          "(no tabs inside values)")

  clean = bool(keep.all()) and len(line_index) == len(ends) - 1
  if clean:
    body = raw[ends[0] + 1:]
  else:
    line_index, lines = line_index[keep], lines[keep]
    body = b"\n".join(raw[starts[i]:ends[i]] for i in line_index)

  try:
    body.decode("utf-8")
  except UnicodeDecodeError as e:
    # Locate the line: count newlines before the bad byte in the body we parse.
    row = body.count(b"\n", 0, e.start)
    bad = np.zeros(len(lines), dtype=bool)
    bad[row] = True
    if policy.lenient:  # find every undecodable line
      for j, i in enumerate(line_index):
        try:
          raw[starts[i]:ends[i]].decode("utf-8")
        except UnicodeDecodeError:
          bad[j] = True
    keep = policy.check(bad, path=path, lines=lines, field=None, reason=f"{kind}:not_utf8",
                        problem="the row is not valid UTF-8", fix="save the file as UTF-8")
    line_index, lines = line_index[keep], lines[keep]
    body = b"\n".join(raw[starts[i]:ends[i]] for i in line_index)

  if len(lines) == 0:
    frame = pd.DataFrame({name: pd.Series([], dtype=object) for name in names})
  else:
    frame = pd.read_csv(io.BytesIO(body), sep="\t", header=None, names=names, dtype=str,
                        na_filter=False, keep_default_na=False, quoting=csv.QUOTE_NONE,
                        skip_blank_lines=False, engine="c", encoding="utf-8")
  if len(frame) != len(lines):  # defensive: the parser must agree with the structure check
    raise DataValidationError(path, None, None,
                              f"parsed {len(frame)} rows but the file has {len(lines)} data lines",
                              "check the file for stray quote or NUL characters")
  return frame, lines.astype(np.int64)


def _decode_line(raw: bytes, path: str, line: int) -> str:
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError:
    raise DataValidationError(path, line, None, "the line is not valid UTF-8",
                              "save the file as UTF-8") from None

