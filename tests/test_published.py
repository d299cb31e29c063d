"""Loading the paper's published results: both layouts, the restricted unpickler, name mapping."""

import json
import os
import pickle
import time

import numpy as np
import pytest

from taskonomy_jax import cli
from taskonomy_jax.taxonomy import published
from taskonomy_jax.taxonomy.affinities import (
    SELF,
    AffinityTable,
    Transfer,
    make_transfer,
    resolve_node,
)


def test_default_set_maps_every_key(paper_results_dir):
  table = published.load_published("default", root=paper_results_dir)
  raw = json.loads((paper_results_dir / "all_affinities.json").read_text())
  assert len(table.affinity) == len(raw) and not table.skipped
  assert len(table.targets) == 22 and table.max_order == 2
  # class_selected (100 classes) and class_1000 stay two nodes with their own numbers.
  assert {"class_selected", "class_object"} <= set(table.targets)
  sel = table.affinity[Transfer((SELF,), "class_selected")]
  obj = table.affinity[Transfer((SELF,), "class_object")]
  assert sel == raw["self__class_selected"] and obj == raw["self__class_1000"]
  assert table.affinity[Transfer(("normal",), "reshading")] == raw["rgb2sfnorm__reshade"]
  assert table.affinity[make_transfer(["normal", "depth_euclidean"], "reshading")] == (
      raw["rgb2sfnorm__rgb2mist__reshade"])
  # AHP affinities of one target sum to one: nothing was dropped on the way in.
  for t in table.targets:
    total = sum(a for tr, a in table.affinity.items() if tr.target == t)
    assert total == pytest.approx(1.0, abs=1e-6), t
  # `pixels` is the from-scratch baseline: kept per target, not as a transfer.
  assert len(table.baseline_quality) == 22
  assert table.baseline_quality["normal"] == json.loads(
      (paper_results_dir / "wins_vs_task.json").read_text())["pixels__rgb2sfnorm"]
  assert table.quality[Transfer((SELF,), "normal")] == 0.5


@pytest.mark.parametrize("name,orders", [("1k", {1, 2, 3, 4}), ("16k", set(range(1, 25)))])
def test_other_sets(paper_results_dir, name, orders):
  table = published.load_published(name, root=paper_results_dir)
  assert {t.order for t in table.affinity} - {1} <= orders and table.max_order == max(orders)
  assert "class_scene" in table.nodes and not table.skipped


def _write_original_layout(root, mappings, protocol=3, numpy_values=True):
  for kind, mapping in mappings.items():
    folder = root / ("affinities" if kind == "all_affinities" else "winrates")
    folder.mkdir(parents=True, exist_ok=True)
    data = {k: (np.float64(v) if numpy_values else v) for k, v in mapping.items()}
    (folder / f"{kind}.pkl").write_bytes(pickle.dumps(data, protocol=protocol))


_SMALL = {
    "all_affinities": {"rgb2sfnorm__reshade": 0.25, "self__reshade": 0.5,
                       "rgb2sfnorm__rgb2mist__reshade": 0.25, "class_selected__rgb2depth": 0.9},
    "wins_vs_task": {"rgb2sfnorm__reshade": 0.4, "self__reshade": 0.5,
                     "pixels__reshade": 0.1},
    "wins_vs_pixels": {"rgb2sfnorm__reshade": 0.9},
}


@pytest.mark.parametrize("protocol,numpy_values", [(2, True), (3, True), (4, True), (3, False),
                                                   (0, False)])
def test_original_pickle_layout_round_trip(tmp_path, protocol, numpy_values):
  _write_original_layout(tmp_path, _SMALL, protocol, numpy_values)
  table = published.load_published(tmp_path)
  assert table.affinity == {
      Transfer(("normal",), "reshading"): 0.25, Transfer((SELF,), "reshading"): 0.5,
      make_transfer(["depth_euclidean", "normal"], "reshading"): 0.25,
      Transfer(("class_selected",), "depth_zbuffer"): 0.9}
  assert all(type(v) is float for v in table.affinity.values())
  assert table.quality[Transfer(("normal",), "reshading")] == 0.4
  assert table.gain == {Transfer(("normal",), "reshading"): 0.9}
  assert table.baseline_quality == {"reshading": 0.1}


class _Boom:
  def __reduce__(self):
    return (os.system, ("touch boom-was-executed",))


class _Custom:
  pass


@pytest.mark.parametrize("obj,named", [
    ({"a__reshade": _Boom()}, "refused to load posix.system"),
    ({"a__reshade": _Custom()}, r"refused to load (tests\.)?test_published\._Custom"),
    ({"a__reshade": np.zeros(3)}, "refused to load numpy"),
    ({"a__reshade": {1, 2}}, r"refused to load (__builtin__|builtins)\.set"),
    ({"a__reshade": np.array(["x"], dtype=object)[0:1][0]}, None),  # plain str: accepted
])
def test_restricted_unpickler_refuses_objects(tmp_path, monkeypatch, obj, named):
  monkeypatch.chdir(tmp_path)
  data = pickle.dumps(obj, protocol=2)
  if named is None:
    assert published.restricted_loads(data) == {"a__reshade": "x"}
    return
  with pytest.raises(published.UnsafePickleError, match=named):
    published.restricted_loads(data, "x.pkl")
  assert not (tmp_path / "boom-was-executed").exists()
  # The same refusal through the loader, with the file named.
  (tmp_path / "affinities").mkdir()
  (tmp_path / "affinities" / "all_affinities.pkl").write_bytes(data)
  with pytest.raises(published.UnsafePickleError, match=r"all_affinities.pkl.*refused"):
    published.load_published(tmp_path)
  assert not (tmp_path / "boom-was-executed").exists()


def test_numpy_object_and_string_scalars_are_refused():
  for value in (np.str_("x"), np.complex128(1j), np.datetime64("2020-01-01")):
    with pytest.raises(published.UnsafePickleError, match="refused"):
      published.restricted_loads(pickle.dumps({"k": value}, protocol=3))
  assert published.restricted_loads(pickle.dumps([np.float32(0.5), np.int64(-3)])) == [0.5, -3]


def test_unknown_and_malformed_keys_are_reported_not_dropped():
  table = published.table_from_mappings(
      {"rgb2sfnorm__reshade": 0.3, "telepathy__reshade": 0.1, "reshade": 0.2,
       "rgb2sfnorm__reshade__": 0.2, "rgb2sfnorm__depht": 0.5})
  assert list(table.affinity) == [Transfer(("normal",), "reshading")]
  text = "\n".join(table.skipped)
  assert "'telepathy__reshade': unknown task 'telepathy'" in text
  assert "'reshade': expected SOURCE__...__TARGET" in text
  assert "'rgb2sfnorm__depht': unknown task 'depht'" in text
  assert len(table.skipped) == 4


def test_duplicate_transfer_keys_raise():
  with pytest.raises(published.PublishedDataError, match="two keys for the transfer"):
    published.table_from_mappings({"rgb2sfnorm__rgb2mist__reshade": 0.3,
                                   "rgb2mist__rgb2sfnorm__reshade": 0.2})


@pytest.mark.parametrize("file,value,words", [
    ("all_affinities.json", -0.1, "affinity must be a finite number >= 0, got -0.1"),
    ("all_affinities.json", "abc", "got 'abc' (a string, not a number)"),
    ("all_affinities.json", True, "got true (a boolean, not a number)"),
    ("wins_vs_task.json", 1.5, "quality must be a win rate from 0 to 1, got 1.5"),
])
def test_bad_values_in_a_published_folder_are_refused_naming_file_and_key(
    tmp_path, file, value, words):
  """Wrong numbers are refused, not used (nor skipped: they are not an unknown name)."""
  good = {"all_affinities.json": {"rgb2sfnorm__reshade": 0.3},
          "wins_vs_task.json": {"rgb2sfnorm__reshade": 0.4}}
  good[file] = {"rgb2sfnorm__reshade": value}
  for name, doc in good.items():
    (tmp_path / name).write_text(json.dumps(doc))
  with pytest.raises(published.PublishedDataError) as e:
    published.load_published(tmp_path)
  assert str(e.value).startswith(f"{tmp_path / file}: 'rgb2sfnorm__reshade': ")
  assert words in str(e.value)


def test_deeply_nested_published_json_is_refused(tmp_path):
  (tmp_path / "all_affinities.json").write_text("[" * 100_000 + "]" * 100_000)
  with pytest.raises(published.PublishedDataError, match="nested too deeply"):
    published.load_published(tmp_path)


def test_bad_paths_are_named(tmp_path):
  with pytest.raises(published.PublishedDataError, match="neither a published set"):
    published.load_published(tmp_path / "missing")
  with pytest.raises(published.PublishedDataError, match=r"has no all_affinities.json"):
    published.load_published(tmp_path)
  with pytest.raises(published.PublishedDataError, match="does not exist"):
    published.load_published("1k", root=tmp_path / "nowhere")
  (tmp_path / "all_affinities.json").write_text("{not json")
  with pytest.raises(published.PublishedDataError, match="not valid JSON"):
    published.load_published(tmp_path)


def test_set_names_resolve_through_the_environment(tmp_path, monkeypatch):
  (tmp_path / "all_affinities_1k.json").write_text(json.dumps({"rgb2sfnorm__reshade": 0.7}))
  monkeypatch.setenv(published.ENV_VAR, str(tmp_path))
  table = published.load_published("1k")
  assert table.affinity == {Transfer(("normal",), "reshading"): 0.7}
  assert "wins_vs_task_1k: not found" in table.skipped[0]


def test_own_table_file_round_trip(tmp_path, paper_results_dir):
  table = published.load_published("default", root=paper_results_dir)
  path = table.save(tmp_path / "sub" / "table.json")
  again = published.load_published(path)
  assert again.affinity == table.affinity and again.quality == table.quality
  assert again.gain == table.gain and again.baseline_quality == table.baseline_quality
  assert [p.name for p in (tmp_path / "sub").iterdir()] == ["table.json"]  # no temp file left


def test_node_names():
  assert resolve_node("class_selected") == "class_selected"
  assert resolve_node("class_1000") == resolve_node("class_object") == "class_object"
  assert resolve_node("rgb2sfnorm") == "normal"
  assert isinstance(AffinityTable({}).nodes, list)


def _shared_lists_pickle(levels=60):
  """~470 bytes standing for 2**levels paths: each level's list holds the one below twice."""
  a = []
  for _ in range(levels):
    a = [a, a]
  return pickle.dumps({"rgb2sfnorm__reshade": a}, protocol=2)


def _write_pickle(root, data):
  (root / "affinities").mkdir()
  path = root / "affinities" / "all_affinities.pkl"
  path.write_bytes(data)
  return path


def _timed(fn, *args):
  """A hang guard, not a speed test: walking these structures would take years (2^100 shared
  references) or overflow the C stack; refusing them takes milliseconds. The bound is loose
  enough that no loaded machine trips it."""
  start = time.monotonic()
  try:
    return fn(*args)
  finally:
    assert time.monotonic() - start < 60.0, "should fail fast, not walk the structure"


def test_shared_reference_pickle_fails_fast(tmp_path):
  data = _shared_lists_pickle()
  assert len(data) < 600
  _write_pickle(tmp_path, data)
  with pytest.raises(published.PickleLimitError, match=r"all_affinities\.pkl: data nested more "
                     r"than 32 levels deep"):
    _timed(published.load_published, tmp_path)


def test_shared_references_within_the_limit_are_reported_briefly():
  """Within the depth limit, sharing is walked once per container (memoised by id), and the
  non-number value is refused with a bounded repr, not printed in full (2**30 leaves)."""
  obj = _timed(published.restricted_loads, _shared_lists_pickle(30))
  with pytest.raises(published.PublishedDataError, match="must be a finite number") as e:
    _timed(published.table_from_mappings, obj)
  assert len(str(e.value)) < 300


def test_deeply_nested_list_pickle_fails_fast(tmp_path):
  # Built by hand: pickle.dumps itself recurses. 100,000 EMPTY_LISTs, then APPENDs nesting each
  # into the one below.
  n = 100_000
  data = b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b"."
  _write_pickle(tmp_path, data)
  with pytest.raises(published.PickleLimitError, match=r"all_affinities\.pkl: data nested more "
                     r"than 32 levels"):
    _timed(published.load_published, tmp_path)


def test_deeply_nested_tuple_key_is_refused_before_loading():
  """Hashing a key tuple a million deep would overflow the C stack (SIGSEGV) inside the loader."""
  n = 1_000_000
  data = b"\x80\x02}" + b")" + b"\x85" * n + b"K\x01s."
  with pytest.raises(published.PickleLimitError, match=r"x\.pkl: tuples nested more than 32"):
    _timed(published.restricted_loads, data, "x.pkl")
  # Depth is tracked through the memo too: a tuple 21 deep is stored (BINPUT), popped, fetched
  # back (BINGET) and nested 20 more levels.
  deep = b"\x80\x02)" + b"\x85" * 20 + b"q\x000" + b"h\x00" + b"\x85" * 20 + b"."
  with pytest.raises(published.PickleLimitError, match="tuples nested"):
    published.restricted_loads(deep)


def test_oversized_pickle_and_sets_are_refused(tmp_path, monkeypatch):
  monkeypatch.setattr(published, "MAX_PICKLE_BYTES", 1000)
  with pytest.raises(published.PickleLimitError, match=r"big\.pkl: 2,0\d\d bytes, over the "
                     r"1,000-byte limit"):
    published.restricted_loads(pickle.dumps("x" * 2000), "big.pkl")
  _write_pickle(tmp_path, pickle.dumps({"rgb2sfnorm__reshade": "x" * 2000}))
  with pytest.raises(published.PickleLimitError, match=r"all_affinities\.pkl: 2,0\d\d bytes"):
    published.load_published(tmp_path)
  monkeypatch.undo()
  with pytest.raises(published.UnsafePickleError, match=r"s\.pkl: refused a set"):
    published.restricted_loads(pickle.dumps({"k": {1, 2}}, protocol=4), "s.pkl")
  with pytest.raises(published.PublishedDataError, match=r"t\.pkl: not a readable pickle"):
    published.restricted_loads(b"\x80\x02]a.", "t.pkl")  # APPEND with one item on the stack


def test_deeply_nested_json_is_a_clear_error(tmp_path):
  (tmp_path / "all_affinities.json").write_text("[" * 100_000 + "]" * 100_000)
  with pytest.raises(published.PublishedDataError, match=r"all_affinities\.json: nested too "
                     "deeply"):
    published.load_published(tmp_path)


def test_cli_reports_a_nested_pickle_with_exit_code_2(tmp_path, capsys):
  _write_pickle(tmp_path, _shared_lists_pickle())
  assert cli.main(["solve", "--targets", "reshading", "--budget", "1", "--data",
                   str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert "all_affinities.pkl" in err and "nested more than 32 levels" in err
  assert "Traceback" not in err


def test_the_package_ships_the_published_results_with_their_notice():
  """The packaged copy equals `../shared/paper_results/` where that exists, keeps the original
  repository's MIT notice and the citation, and is what set names resolve to by default."""
  import pathlib

  shipped = published.PACKAGED
  assert (shipped / "LICENSE").read_text().startswith("MIT License")
  assert "Stanford Vision and Learning Group" in (shipped / "LICENSE").read_text()
  assert "Taskonomy: Disentangling Task Transfer Learning" in (shipped / "README.md").read_text()
  shared = pathlib.Path(__file__).resolve().parents[2] / "shared" / "paper_results"
  if shared.is_dir():
    names = sorted(p.name for p in shared.glob("*.json"))
    assert names == sorted(p.name for p in shipped.glob("*.json"))
    for name in names:
      assert (shipped / name).read_bytes() == (shared / name).read_bytes(), name
  if published.ENV_VAR not in os.environ:
    assert published.default_root() == shipped


def test_solve_answers_from_any_directory_without_the_environment(tmp_path):
  """`taskonomy solve` in a folder far from the checkout, with no $TASKONOMY_PAPER_RESULTS."""
  import pathlib
  import subprocess
  import sys

  env = {k: v for k, v in os.environ.items() if k != published.ENV_VAR}
  env["PYTHONPATH"] = str(pathlib.Path(__file__).resolve().parents[1])
  out = subprocess.run([sys.executable, "-m", "taskonomy_jax.cli", "solve", "--targets",
                        "normal,reshading", "--budget", "1"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  assert "supervised" in out.stdout.lower(), out.stdout
