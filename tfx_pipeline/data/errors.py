"""Errors raised by data preparation, and the strict/lenient bad-row policy.

Every problem with an input row is reported through one `BadRowPolicy`: in strict mode (the
default) the first bad row raises `DataValidationError` naming the file, the 1-based line number,
the field and the fix; in lenient mode the rows are dropped, counted per reason, logged, and the
counts end up in `split_stats.json` under `dropped_rows`. Nothing is skipped silently.
"""

from __future__ import annotations

import logging
from typing import Dict, Optional

import numpy as np

logger = logging.getLogger(__name__)


class DataError(Exception):
  """Base class of every error raised by `tfx_pipeline.data`."""


class DataValidationError(DataError, ValueError):
  """An input file has a bad row (or header). Names file, line, field and the fix."""

  def __init__(self, path: str, line: Optional[int], field: Optional[str], problem: str,
               fix: str, reason: str = "", unit: str = "line"):
    self.path = path
    self.line = line
    self.field = field
    self.problem = problem
    self.fix = fix
    self.reason = reason
    self.unit = unit  # "line" (text files), "row" (Parquet), "record" (TFRecord)
    where = path
    if line is not None:
      where += f", {unit} {line}"
    if field is not None:
      where += f", field '{field}'"
    super().__init__(f"{where}: {problem}. Fix: {fix}")


class DatasetNotFoundError(DataError, FileNotFoundError):
  """A dataset file (or the package that ships it) is missing."""

  def __init__(self, message: str):
    super().__init__(message)


class BadRowPolicy:
  """Strict: raise on the first bad row. Lenient: drop, count per reason, log.

  Callers pass vectorised masks; `check` returns the mask of rows to keep (all True in strict
  mode, because it raises otherwise).
  """

  def __init__(self, lenient: bool = False):
    self.lenient = lenient
    self.dropped: Dict[str, int] = {}

  def check(self, bad: np.ndarray, *, path: str, lines: np.ndarray, field: Optional[str],
            reason: str, problem, fix: str, unit: str = "line",
            lenient_hint: str = "DataConfig.lenient=True",
            scope: str = "in this file") -> np.ndarray:
    """Handles the rows flagged in `bad` (bool array aligned with `lines`).

    Args:
      bad: True for bad rows.
      path: the file the rows come from.
      lines: 1-based line numbers of the rows in that file.
      field: the offending column.
      reason: short key for the drop counter, e.g. "interactions:unknown_item".
      problem: text, or a callable(index of first bad row) -> text describing that row.
      fix: what the user should do.
    Returns:
      keep mask (~bad).
    """
    bad = np.asarray(bad, dtype=bool)
    n_bad = int(bad.sum())
    if n_bad == 0:
      return ~bad
    first = int(np.flatnonzero(bad)[0])
    text = problem(first) if callable(problem) else problem
    if not self.lenient:
      more = f" ({n_bad - 1} more such row(s) {scope})" if n_bad > 1 else ""
      raise DataValidationError(path, int(lines[first]), field, text + more,
                                fix + f" (or set {lenient_hint} to drop such rows)",
                                reason=reason, unit=unit)
    self.add(reason, n_bad)
    logger.warning("lenient: dropped %d row(s) of %s (%s), first at %s %d field %r: %s",
                   n_bad, path, reason, unit, int(lines[first]), field, text)
    return ~bad

  def add(self, reason: str, count: int) -> None:
    if count:
      self.dropped[reason] = self.dropped.get(reason, 0) + int(count)
