"""The project's atomic write: whole file or the old one, never a half, no temp file left."""

import json

import pytest

from taskonomy_jax import files


def test_text_bytes_and_json_round_trip(tmp_path):
  files.write_atomic(tmp_path / "sub" / "a.txt", "héllo")
  files.write_atomic(tmp_path / "b.bin", b"\x00\xff")
  files.write_json_atomic(tmp_path / "c.json", {"b": 1, "a": [2]})
  assert (tmp_path / "sub" / "a.txt").read_text() == "héllo"
  assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
  assert json.loads((tmp_path / "c.json").read_text()) == {"a": [2], "b": 1}
  assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "c.json", "sub"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
  path = tmp_path / "d.json"
  files.write_atomic(path, "old")
  with pytest.raises(TypeError):
    files.write_json_atomic(path, {"x": object()})  # not serialisable: fails before writing
  with pytest.raises(TypeError):
    files.write_atomic(path, 3)  # not text/bytes: fails while writing the temp file
  assert path.read_text() == "old"
  assert [p.name for p in tmp_path.iterdir()] == ["d.json"]


def test_read_json_round_trip_and_missing_file(tmp_path):
  files.write_json_atomic(tmp_path / "d" / "r.json", {"steps": 3, "loss": [0.5]})
  assert files.read_json(tmp_path / "d" / "r.json") == {"steps": 3, "loss": [0.5]}
  assert files.read_json(str(tmp_path / "d" / "none.json")) is None
  assert files.read_json(tmp_path / "d") is None  # a folder is not a record


def test_atomic_path_moves_a_file_or_folder_in_whole_or_leaves_the_old(tmp_path):
  with files.atomic_path(tmp_path / "v.gif") as tmp:
    assert tmp.parent == tmp_path and tmp.suffix == ".gif"  # writers that go by the suffix
    tmp.write_bytes(b"GIF")
  assert (tmp_path / "v.gif").read_bytes() == b"GIF"
  unit = tmp_path / "stage" / "unit"
  for content in ("old", "new"):  # a folder replaces the one there
    with files.atomic_path(unit, directory=True) as tmp:
      (tmp / "a.txt").write_text(content)
  assert [p.name for p in unit.iterdir()] == ["a.txt"] and (unit / "a.txt").read_text() == "new"
  with pytest.raises(RuntimeError), files.atomic_path(unit, directory=True) as tmp:
    (tmp / "b.txt").write_text("half")
    raise RuntimeError("killed")
  assert [p.name for p in unit.iterdir()] == ["a.txt"]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["stage", "v.gif"]
  assert [p.name for p in (tmp_path / "stage").iterdir()] == ["unit"]
