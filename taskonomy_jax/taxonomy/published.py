"""The paper's published transfer results, loaded from a path into an `AffinityTable`.

Two layouts are read:
- the JSON layout of the shipped `paper_results/` (this package's copy of `../shared/paper_results`; `all_affinities{,_1k,_16k}.json`,
  `wins_vs_task*.json`, `wins_vs_pixels*.json`, flat `{"SRC__...__TARGET": float}` objects);
- the original repository's `results/` folder (`affinities/all_affinities*.pkl`,
  `winrates/wins_vs_*.pkl`), Python pickles read by `RestrictedUnpickler`, which never imports
  or calls anything named in the file.

The published set names `default`, `1k`, `16k` (how many images the transfer functions were
trained on; `default` is the paper's main set) resolve against a folder given by the caller, else
`$TASKONOMY_PAPER_RESULTS`, else the copy shipped in `taskonomy_jax/taxonomy/paper_results/`.

Keys map to node names through `affinities.resolve_node` (registry names; `class_selected` stays
its own node). `self` is the target's own network; `pixels` (a network trained from scratch on
the transfer budget) is kept as each target's baseline Quality, not as a transfer. Keys whose names
are not tasks are listed in `AffinityTable.skipped` and reported by the caller, never dropped
silently.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import pickle
import pickletools
import reprlib
import struct
from collections.abc import Callable, Mapping

from taskonomy_jax import files, tasks
from taskonomy_jax.taxonomy.affinities import (
  SELF,
  AffinityDataError,
  AffinityTable,
  Transfer,
  check_value,
  make_transfer,
  resolve_node,
)

ENV_VAR = "TASKONOMY_PAPER_RESULTS"
# Published set name -> file-name suffix.
SETS: dict[str, str] = {"default": "", "1k": "_1k", "16k": "_16k"}
# The project's own computed tables shipped with the package, by name: the whole taxonomy on
# the synthetic world (`taskonomy taxonomy --config taxonomy:cpu_full`; a copy of
# docs/taxonomy_cpu_full/affinities.json, which tests/test_taxonomy_cpu_full.py keeps equal).
COMPUTED: dict[str, str] = {"synthetic": "computed/taxonomy_cpu_full.json"}
PIXELS = "pixels"
_KINDS = ("all_affinities", "wins_vs_task", "wins_vs_pixels")
_PICKLE_FOLDERS = {"all_affinities": "affinities", "wins_vs_task": "winrates",
                   "wins_vs_pixels": "winrates"}


class PublishedDataError(AffinityDataError):
  """Published results that cannot be found or read; the message says where and why."""


class UnsafePickleError(PublishedDataError, pickle.UnpicklingError):
  """A pickle that asks for an object other than plain data; nothing of it was executed."""


class PickleLimitError(PublishedDataError):
  """A pickle larger or more deeply nested than published results ever are; refused before (or
  instead of) walking it, so a crafted file cannot exhaust time, memory or the C stack."""


# Published pickles are flat `{key: number}` dicts (nesting 2 with the numpy scalars' argument
# tuples, under 0.5 MB for the largest set); the limits leave ample room above that and keep the
# opcode pre-scan (about 0.5 s per MB) and the walk bounded.
MAX_PICKLE_BYTES = 8 * 2**20
MAX_NESTING = 32


# --- restricted unpickling -------------------------------------------------------------------


class _DtypeStandIn:
  """Stands in for `numpy.dtype(...)` while unpickling: records the type code, never imports numpy."""

  def __init__(self, code: str, align: int = 0, copy: int = 1):
    del align, copy
    if not isinstance(code, str):
      raise UnsafePickleError(f"numpy dtype with a non-string type code {code!r}")
    self.code = code
    self.byteorder = "<"

  def __setstate__(self, state: tuple) -> None:
    # numpy's dtype state: (version, byteorder, subdescr, names, fields, elsize, alignment, flags)
    if (not isinstance(state, tuple) or len(state) < 2 or state[1] not in "<>|="
        or any(x is not None for x in state[2:5])):
      raise UnsafePickleError(f"unsupported numpy dtype state {state!r} (only plain numbers)")
    self.byteorder = "<" if state[1] in "|=" else state[1]


# numpy type code -> struct format; only plain numbers are accepted.
_NUMERIC_CODES = {"f8": "d", "f4": "f", "i8": "q", "i4": "i", "i2": "h", "i1": "b", "u8": "Q",
                  "u4": "I", "u2": "H", "u1": "B", "b1": "?"}


def _scalar_stand_in(dtype: _DtypeStandIn, data: bytes) -> float | int | bool:
  """Decodes a pickled numpy scalar into a Python number with `struct`."""
  if not isinstance(dtype, _DtypeStandIn) or dtype.code not in _NUMERIC_CODES:
    code = getattr(dtype, "code", dtype)
    raise UnsafePickleError(
        f"numpy scalar of type {code!r} refused: only numeric scalars "
        f"({', '.join(_NUMERIC_CODES)}) are decoded")
  if isinstance(data, str):  # protocol 0-2 store the bytes as a latin-1 string.
    data = data.encode("latin-1")
  fmt = dtype.byteorder + _NUMERIC_CODES[dtype.code]
  if len(data) != struct.calcsize(fmt):
    raise UnsafePickleError(f"numpy scalar of type {dtype.code} with {len(data)} bytes")
  (value,) = struct.unpack(fmt, data)
  return value


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
  """Protocol-2 pickles spell bytes as `_codecs.encode(text, 'latin1')`."""
  if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
    raise UnsafePickleError(f"_codecs.encode({text!r}, {encoding!r}) refused")
  return text.encode("latin-1")


# The only globals a pickle may name. Each maps to our own decoder above: the named module is
# never imported and the named callable never run. The originals in `results/` hold float64
# numpy scalars (`numpy.core.multiarray.scalar` of `numpy.dtype('f8')`); numpy 2 spells the
# module `numpy._core.multiarray`.
_STAND_INS: dict[tuple[str, str], Callable] = {
    ("numpy.core.multiarray", "scalar"): _scalar_stand_in,
    ("numpy._core.multiarray", "scalar"): _scalar_stand_in,
    ("numpy", "dtype"): _DtypeStandIn,
    ("_codecs", "encode"): _latin1_encode,
}
_PLAIN = (dict, list, tuple, str, int, float, bool, type(None))


class RestrictedUnpickler(pickle.Unpickler):
  """Unpickles plain data only: dict, list, tuple, str, int, float, bool, None.

  Any global a pickle names is refused with `UnsafePickleError`, except the numpy scalar and
  dtype constructors, which are answered by stand-ins that decode the number's bytes with
  `struct` (no numpy import, no call into the named code). The result is checked to hold plain
  data only.
  """

  def find_class(self, module: str, name: str) -> Callable:
    stand_in = _STAND_INS.get((module, name))
    if stand_in is None:
      raise UnsafePickleError(
          f"refused to load {module}.{name}: published results may only hold dicts, lists, "
          "strings and numbers (numpy numeric scalars included); nothing was executed")
    return stand_in

  def persistent_load(self, pid: object) -> object:
    raise UnsafePickleError(f"refused persistent id {pid!r}: plain data only")


# Opcodes that build a tuple (their nesting is what hashing recurses through) and sets (never
# plain data; refused by name before anything is built).
_TUPLE_OPS = frozenset({"EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"})
_SET_OPS = frozenset({"EMPTY_SET", "ADDITEMS", "FROZENSET"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _scan_opcodes(data: bytes, where: str) -> None:
  """Refuses sets and tuples nested deeper than `MAX_NESTING`, before the unpickler runs.

  Why a pre-scan: the C unpickler builds nested lists, dicts and tuples iteratively (a list
  100,000 deep loads in milliseconds), but it hashes every dict key in C, and hashing a tuple
  recurses once per level with no recursion guard: a 1 MB pickle whose dict key is a tuple a
  million levels deep kills the interpreter with SIGSEGV, which no `except` can catch. Tuples
  are immutable, so a tuple's depth is fixed when it is built: emulating the stack with one depth
  per item (0 for anything but a tuple; the memo keeps the depth of what it stores) bounds it
  exactly. Lists and dicts can be filled after they are nested, so `_check_plain` bounds them
  after loading.
  """
  stack: list[int] = []
  marks: list[int] = []
  memo: dict[int, int] = {}
  try:
    for op, arg, pos in pickletools.genops(data):
      name = op.name
      if name in _SET_OPS:
        raise UnsafePickleError(
            f"{where}: refused a set at byte {pos}: published results hold dicts, lists, "
            "strings and numbers only")
      if name == "MARK":
        marks.append(len(stack))
        continue
      if name == "POP" and marks and marks[-1] == len(stack):  # POP drops a bare mark
        marks.pop()
        continue
      if name in _PUT_OPS or name == "MEMOIZE":  # the stack is left as it is
        memo[arg if name != "MEMOIZE" else len(memo)] = stack[-1] if stack else 0
        continue
      if name in _GET_OPS or name == "DUP":
        stack.append(memo.get(arg, 0) if name != "DUP" else stack[-1] if stack else 0)
        continue
      before = op.stack_before
      popped: list[int] = []
      below = len(before)
      if pickletools.markobject in before:  # takes everything above the topmost mark
        if not marks:
          raise ValueError(f"{name} at byte {pos} without a MARK")
        mark = marks.pop()
        popped, stack[mark:] = stack[mark:], []
        below = before.index(pickletools.markobject)  # and items under the mark (APPENDS' list)
      if len(stack) < below:
        raise ValueError(f"{name} at byte {pos} pops from an empty stack")
      if below:
        popped += stack[-below:]
        del stack[-below:]
      if name in _TUPLE_OPS:
        depth = 1 + max(popped, default=0)
        if depth > MAX_NESTING:
          raise PickleLimitError(
              f"{where}: tuples nested more than {MAX_NESTING} levels deep (at byte {pos}); "
              "published results are flat {key: number} mappings")
        stack.append(depth)
      else:  # anything else leaves no tuple: numbers, strings, lists, dicts, stand-in results
        stack.extend(0 for _ in op.stack_after)
  except ValueError as e:  # genops' or our own complaint about a malformed opcode stream
    if isinstance(e, PublishedDataError):
      raise
    raise PublishedDataError(f"{where}: not a readable pickle of plain data ({e})") from None


def _check_plain(obj: object, where: str = "pickle") -> None:
  """Checks `obj` holds plain data only, no deeper than `MAX_NESTING`.

  Iterative, with each container visited once (by id): a 470-byte pickle of lists that share
  references 60 levels deep (`a = [a, a]`) stands for 2**60 paths, and a list nested 100,000
  deep would overflow a recursive walk.
  """
  seen: set[int] = set()
  todo: list[tuple[object, int]] = [(obj, 1)]
  while todo:
    item, depth = todo.pop()
    if isinstance(item, (dict, list, tuple)):
      if id(item) in seen:
        continue
      if depth > MAX_NESTING:
        raise PickleLimitError(
            f"{where}: data nested more than {MAX_NESTING} levels deep; published results are "
            "flat {key: number} mappings")
      seen.add(id(item))
      children = (x for kv in item.items() for x in kv) if isinstance(item, dict) else item
      todo.extend((child, depth + 1) for child in children)
    elif not isinstance(item, _PLAIN):
      raise UnsafePickleError(f"{where}: holds a {type(item).__name__}, not plain data")


def _check_size(size: int, where: str) -> None:
  if size > MAX_PICKLE_BYTES:
    raise PickleLimitError(
        f"{where}: {size:,} bytes, over the {MAX_PICKLE_BYTES:,}-byte limit for a pickle "
        "of published results (the largest published set is under 0.5 MB)")


def restricted_loads(data: bytes, where: str = "pickle") -> object:
  """Unpickles `data` with `RestrictedUnpickler` and checks the result is plain data.

  Raises:
    UnsafePickleError: the pickle names code or a set; nothing of it was executed.
    PickleLimitError: larger than `MAX_PICKLE_BYTES` or nested deeper than `MAX_NESTING`.
    PublishedDataError: not a pickle at all.
  """
  _check_size(len(data), where)
  _scan_opcodes(data, where)
  try:
    obj = RestrictedUnpickler(io.BytesIO(data)).load()
  except UnsafePickleError as e:
    raise UnsafePickleError(f"{where}: {e}") from None
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
          AttributeError, struct.error, RecursionError, MemoryError) as e:
    raise PublishedDataError(f"{where}: not a readable pickle of plain data ({e})") from e
  _check_plain(obj, where)
  return obj


# --- the two layouts -------------------------------------------------------------------------


# The paper's published results, shipped with the package (their README and the original
# repository's MIT notice beside them).
PACKAGED = pathlib.Path(__file__).resolve().parent / "paper_results"


def default_root() -> pathlib.Path:
  """`$TASKONOMY_PAPER_RESULTS`, else the copy shipped with the package."""
  env = os.environ.get(ENV_VAR)
  return pathlib.Path(env) if env else PACKAGED


def _read_flat(root: pathlib.Path, kind: str, suffix: str) -> tuple[dict, pathlib.Path] | None:
  """Reads one `{key: number}` file of either layout; None if neither file exists."""
  json_path = root / f"{kind}{suffix}.json"
  if json_path.is_file():
    try:
      data = files.loads_json(json_path.read_bytes(), str(json_path))
    except files.JsonInputError as e:
      raise PublishedDataError(str(e)) from None
    return data, json_path
  for pkl_path in (root / _PICKLE_FOLDERS[kind] / f"{kind}{suffix}.pkl",
                   root / f"{kind}{suffix}.pkl"):
    if pkl_path.is_file():
      _check_size(pkl_path.stat().st_size, str(pkl_path))  # before reading it into memory
      return restricted_loads(pkl_path.read_bytes(), str(pkl_path)), pkl_path
  return None


def _parse_key(key: str) -> tuple[list[str], str]:
  """`'SRC1__SRC2__TARGET'` -> (original source names, original target name)."""
  parts = key.split("__")
  if len(parts) < 2 or not all(parts):
    raise ValueError("expected SOURCE__...__TARGET")
  return parts[:-1], parts[-1]


def _to_transfer(key: str) -> Transfer | str:
  """The transfer a published key names, or `pixels:TARGET` for the from-scratch baseline."""
  sources, target = _parse_key(key)
  node_target = resolve_node(target)
  if sources == [PIXELS]:
    return f"{PIXELS}:{node_target}"
  if SELF in sources:
    if len(sources) > 1:
      raise ValueError(f"{SELF!r} combined with other sources")
    return Transfer((SELF,), node_target)
  return make_transfer([resolve_node(s) for s in sources], node_target)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 200  # whole keys (high-order ones run long)
_REPR.maxlevel = 3  # a value holding containers shows their outline only


def _short(value: object) -> str:
  """A bounded repr: a value holding shared or deeply nested containers would print for ever."""
  return _REPR.repr(value)


def table_from_mappings(affinity: Mapping, quality: Mapping | None = None,
                        gain: Mapping | None = None, source: str = "memory",
                        where: Mapping[str, str] | None = None) -> AffinityTable:
  """Builds a table from flat published-style mappings `{"SRC__...__TARGET": value}`.

  Unknown task names and malformed keys are collected in `skipped` (one line each, naming the
  key and the reason), never dropped silently. A value that is not acceptable (not a number, a
  boolean, negative or not finite; a win rate outside 0-1; see `affinities.check_value`) and
  two keys naming the same transfer (the same sources in another order) raise
  `PublishedDataError`: those are wrong numbers, which the solver must not use. `where` names
  the file each kind came from (`affinity`, `quality`, `gain`), for messages; default `source`.
  """
  where = dict(where or {})
  out: dict[str, dict[Transfer, float]] = {"affinity": {}, "quality": {}, "gain": {}}
  baseline: dict[str, float] = {}
  skipped: list[str] = []
  for kind, mapping in (("affinity", affinity), ("quality", quality or {}),
                        ("gain", gain or {})):
    if not isinstance(mapping, Mapping):
      raise PublishedDataError(
          f"{source}: {kind} data must be a mapping of 'SOURCE__TARGET' keys to numbers, "
          f"got {type(mapping).__name__}")
    for key, value in mapping.items():
      try:
        if not isinstance(key, str):
          raise ValueError("key is not a string")
        t = _to_transfer(key)
      except tasks.UnknownTaskError as e:
        skipped.append(f"{kind} {_short(key)}: unknown task {e.name!r}")
        continue
      except (ValueError, AffinityDataError) as e:
        skipped.append(f"{kind} {_short(key)}: {e}")
        continue
      baseline_key = isinstance(t, str)  # `pixels:TARGET`, the from-scratch baseline
      try:
        x = check_value("baseline_quality" if baseline_key and kind == "quality" else kind, value)
      except AffinityDataError as e:
        raise PublishedDataError(f"{where.get(kind, source)}: {key!r}: {e}") from None
      if baseline_key:
        if kind == "quality":
          baseline[t.split(":", 1)[1]] = x
        continue
      if t in out[kind]:
        raise PublishedDataError(f"{source}: {kind} has two keys for the transfer {t}")
      out[kind][t] = x
  return AffinityTable(out["affinity"], out["quality"], out["gain"], baseline, source=source,
                       skipped=skipped)


def load_published(data: str | os.PathLike = "default",
                   root: str | os.PathLike | None = None) -> AffinityTable:
  """Loads a published set into an `AffinityTable`.

  Args:
    data: a set name (`default`, `1k`, `16k`) resolved in `root`; a computed table's name
      (`COMPUTED`: `synthetic`); or a folder in either layout (its `default` set is read); or a
      file written by `AffinityTable.save` (the project's own computed affinities).
    root: the folder set names resolve in; default `default_root()`.

  Raises:
    PublishedDataError: the set or path does not exist or is not in a known layout.
    UnsafePickleError: a pickle names anything but plain data.
  """
  name = str(data)
  if name in COMPUTED:  # named as asked, as the published sets are
    table = AffinityTable.load(pathlib.Path(__file__).parent / COMPUTED[name])
    return dataclasses.replace(table, source=name)
  if name in SETS:
    folder, suffix = pathlib.Path(root) if root is not None else default_root(), SETS[name]
  else:
    path = pathlib.Path(name).expanduser()
    if path.is_file():
      return AffinityTable.load(path)
    if not path.is_dir():
      raise PublishedDataError(
          f"--data {name!r} is neither a published set ({', '.join(SETS)}), a computed table "
          f"({', '.join(COMPUTED)}) nor an existing folder of published results or "
          "affinity-table file")
    folder, suffix = path, ""
  if not folder.is_dir():
    raise PublishedDataError(
        f"published results folder {folder} does not exist: pass a folder or set ${ENV_VAR}")
  read = {kind: _read_flat(folder, kind, suffix) for kind in _KINDS}
  if read["all_affinities"] is None:
    raise PublishedDataError(
        f"{folder} has no all_affinities{suffix}.json (the paper_results layout) nor "
        f"affinities/all_affinities{suffix}.pkl (the original results/ layout)")
  table = table_from_mappings(
      read["all_affinities"][0],
      read["wins_vs_task"][0] if read["wins_vs_task"] else None,
      read["wins_vs_pixels"][0] if read["wins_vs_pixels"] else None,
      source=str(read["all_affinities"][1]),
      where={kind: str(read[name][1]) for kind, name in
             (("affinity", "all_affinities"), ("quality", "wins_vs_task"),
              ("gain", "wins_vs_pixels")) if read[name]})
  for kind in ("wins_vs_task", "wins_vs_pixels"):
    if read[kind] is None:
      table.skipped.append(f"{kind}{suffix}: not found in {folder}; Quality/Gain left out")
  return table
