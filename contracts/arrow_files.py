"""Files pyarrow reads on any file system TensorFlow reads (gs://, s3://, hdfs://, ram://, ...).

`arrow_input(path)` is a local path as it is; else a random-access file of pyarrow's own file
system for the scheme (GCS, S3, HDFS), else a seekable stream through tf.io.gfile, read as
pyarrow asks (no whole-file copy), so Parquet's footer and CSV's blocks both work.
"""
from __future__ import annotations

import io


def arrow_input(path: str):
  """Something pyarrow.csv / pyarrow.parquet read `path` from."""
  if "://" not in path:
    return path
  try:
    from pyarrow import fs as pa_fs  # pylint: disable=g-import-not-at-top
    filesystem, inner = pa_fs.FileSystem.from_uri(path)
    return filesystem.open_input_file(inner)
  except Exception:  # pylint: disable=broad-except  # a scheme pyarrow lacks: TensorFlow's
    return io.BufferedReader(GFileStream(path), buffer_size=1 << 20)


class GFileStream(io.RawIOBase):
  """A tf.io.gfile file as a seekable binary stream (a bare GFile lacks the `closed` /
  `readinto` protocol pyarrow's Python-file wrapper needs)."""

  def __init__(self, path: str):
    super().__init__()
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self._file = tf.io.gfile.GFile(path, "rb")

  def readable(self) -> bool:
    return True

  def seekable(self) -> bool:
    return True

  def readinto(self, buffer) -> int:
    data = self._file.read(len(buffer))
    buffer[:len(data)] = data
    return len(data)

  def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
    self._file.seek(offset, whence)
    return self._file.tell()

  def tell(self) -> int:
    return self._file.tell()

  def close(self) -> None:
    if not self.closed:
      self._file.close()
    super().close()
