"""The atomic JSON writer and its reader."""
import os

from contracts import files


def test_write_json_replaces_the_old_file_whole_and_leaves_no_temporary(tmp_path):
  path = str(tmp_path / "metrics.json")
  files.write_json(path, {"b": 1, "a": [1, 2]})
  files.write_json(path, {"c": 3})
  assert files.read_json(path) == {"c": 3}
  assert os.listdir(tmp_path) == ["metrics.json"]


def test_read_json_of_a_missing_file_is_none(tmp_path):
  assert files.read_json(str(tmp_path / "absent.json")) is None


def test_gfile_write_atomic_writes_bytes_and_text(tmp_path):
  files.gfile_write_atomic(str(tmp_path / "a.tsv"), "x\t1\n")
  files.gfile_write_atomic(str(tmp_path / "b.bin"), b"\x00\xff")
  assert (tmp_path / "a.tsv").read_text() == "x\t1\n"
  assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
