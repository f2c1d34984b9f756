"""Writing a file so that readers see the old content or the new one, never a torn one."""
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
