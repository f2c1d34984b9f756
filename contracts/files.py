"""Writing a file so that readers see the old content or the new one, never a torn one."""
import json
import os
import tempfile


def atomic_write_text(path: str, text: str) -> str:
  """Writes `text` to `path` through a temporary file beside it, then renames it into place;
  no temporary file is left behind on failure. Returns `path`."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def gfile_write_atomic(path: str, data) -> str:
  """`data` (str or bytes) at `path` on any tf.io.gfile file system (gs://, hdfs://, local),
  through `path.tmp` and a rename: a reader never sees it half-written. Returns `path`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tf.io.gfile.GFile(path + ".tmp", "wb" if isinstance(data, bytes) else "w") as f:
    f.write(data)
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
  return path


def write_json(path: str, value) -> str:
  """`value` as sorted, indented JSON at `path`, written by `gfile_write_atomic`."""
  return gfile_write_atomic(path, json.dumps(value, indent=2, sort_keys=True))


def exists(path: str) -> bool:
  """Whether `path` exists, on any tf.io.gfile file system (a gs:// pipeline root included)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return bool(tf.io.gfile.exists(path))


def read_json(path: str):
  """The JSON at `path` (any tf.io.gfile file system), or None when there is no such file."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)
