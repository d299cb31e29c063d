"""Task affinities in memory: one table that the solver, the API and the figures read.

The table is the same whether it was filled from the paper's published results
(`published.py`) or by this project's own transfer pipeline: a mapping from a transfer
`(sources, target)` to its affinity, and, where measured, its Quality (win rate against the
target's fully supervised network) and Gain (win rate against a network trained from scratch on
the transfer budget).

Node names are registry names (`tasks.get(name).name`), with one exception: `class_selected`,
object classification restricted to 100 selected ImageNet classes. The registry treats it as an
alias of `class_object`, but the paper measured it as a separate node beside `class_1000`, with its
own affinities, so a table keeps it as its own node named `class_selected` (see `VARIANTS`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import pathlib
import reprlib
from collections.abc import Iterable, Mapping

from taskonomy_jax import files, tasks

# The source name of a target's own fully supervised network (the paper's tournament includes
# it beside the transfers). `self -> T` needs T itself supervised.
SELF = "self"

# Measured variants of a registry task that must stay distinct nodes: name -> registry task.
VARIANTS: dict[str, str] = {"class_selected": "class_object"}

FORMAT = "taskonomy-jax/affinities-v1"


class AffinityDataError(ValueError):
  """Malformed affinity data; the message names the offending entry and what is accepted."""


# What each kind of value may be. Affinities are AHP scores (the paper's are in (0, 1), a
# table's need not sum to one) and must not be negative: the BIP maximises their sum, and a
# negative one would make the solver avoid a transfer rather than merely rank it low. Quality,
# Gain and the baseline Quality are win rates.
_ACCEPTED = {"affinity": "a finite number >= 0", "quality": "a win rate from 0 to 1",
             "gain": "a win rate from 0 to 1", "baseline_quality": "a win rate from 0 to 1"}


def _describe(value: object) -> str:
  """`value` as a message shows it: JSON spelling for booleans and null, short otherwise."""
  if isinstance(value, bool) or value is None:
    return json.dumps(value)
  # reprlib, not repr: a value holding shared or deeply nested containers (a pickle's lists
  # standing for 2**60 paths) would take for ever to print in full.
  text = _REPR.repr(value)
  return text if len(text) <= 40 else text[:37] + "..."


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxdict = 4


# JSON's names for what a parsed document holds, for messages.
_JSON_TYPES = {bool: "a boolean", str: "a string", list: "a list", dict: "an object",
               type(None): "null"}


def check_value(kind: str, value: object, label: str | None = None) -> float:
  """`value` as a float if it is acceptable as a `kind` value (see `_ACCEPTED`).

  Raises:
    AffinityDataError: the value is not a number (a string, a boolean, null, a list...), not
      finite, or out of range; the message names `label` (default `kind`), the value and what
      is accepted.
  """
  label = label or kind
  # bool is an int in Python, but `true` in a table is a mistake, not the number 1.
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    kind_of = _JSON_TYPES.get(type(value), f"a {type(value).__name__}")
    raise AffinityDataError(f"{label} must be {_ACCEPTED[kind]}, got {_describe(value)} "
                            f"({kind_of}, not a number)")
  x = float(value)
  in_range = x >= 0 and (kind == "affinity" or x <= 1)
  if not (math.isfinite(x) and in_range):
    raise AffinityDataError(f"{label} must be {_ACCEPTED[kind]}, got {_describe(value)}")
  return x


@dataclasses.dataclass(frozen=True, order=True)
class Transfer:
  """A transfer from `sources` (sorted, distinct node names, or `(SELF,)`) to `target`."""

  sources: tuple[str, ...]
  target: str

  @property
  def order(self) -> int:
    return len(self.sources)

  @property
  def is_self(self) -> bool:
    return self.sources == (SELF,)

  def required_sources(self) -> tuple[str, ...]:
    """The nodes that must be supervised for this transfer to exist."""
    return (self.target,) if self.is_self else self.sources

  def __str__(self) -> str:
    return f"{'+'.join(self.sources)} -> {self.target}"


def make_transfer(sources: Iterable[str], target: str) -> Transfer:
  """A `Transfer` with canonical (sorted, de-duplicated) sources; raises on an empty set."""
  srcs = tuple(sorted(set(sources)))
  if not srcs:
    raise AffinityDataError(f"a transfer to {target!r} needs at least one source")
  if SELF in srcs and len(srcs) > 1:
    raise AffinityDataError(f"{SELF!r} cannot be combined with other sources ({srcs})")
  return Transfer(srcs, target)


def resolve_node(name: str) -> str:
  """The node name for a user- or file-given task name (registry name, code name or alias).

  `class_selected` stays `class_selected` (a measured variant, see `VARIANTS`); everything else
  resolves through the task registry, which raises `tasks.UnknownTaskError` with suggestions.
  """
  key = name.strip().lower() if isinstance(name, str) else name
  if key in VARIANTS:
    return key
  return tasks.get(name).name


def node_spec(node: str) -> tasks.TaskSpec:
  """The registry task behind a node name."""
  return tasks.get(VARIANTS.get(node, node))


def node_title(node: str) -> str:
  if node in VARIANTS:
    return f"{node_spec(node).title} (100 cl.)"
  return node_spec(node).title


@dataclasses.dataclass
class AffinityTable:
  """Affinities (higher is better) with optional Quality and Gain per transfer.

  Attributes:
    affinity: transfer -> affinity (the paper's AHP-normalised performance; per target they
      need not sum to one).
    quality: transfer -> win rate against the target's fully supervised network.
    gain: transfer -> win rate against a network trained from scratch on the transfer budget.
    baseline_quality: target -> Quality of the from-scratch network (`pixels` in the paper's
      files), for reference.
    source: where the table came from (a path or a description).
    skipped: entries that were read but not used, with the reason (unknown names and the like).
  """

  affinity: dict[Transfer, float]
  quality: dict[Transfer, float] = dataclasses.field(default_factory=dict)
  gain: dict[Transfer, float] = dataclasses.field(default_factory=dict)
  baseline_quality: dict[str, float] = dataclasses.field(default_factory=dict)
  source: str = "memory"
  skipped: list[str] = dataclasses.field(default_factory=list)

  def __post_init__(self) -> None:
    # The one check every table passes, however it was made (a file, the published results,
    # the transfer pipeline, a caller's own dicts), so the solver never sees a bad value.
    for mapping_name in ("affinity", "quality", "gain"):
      for t, v in getattr(self, mapping_name).items():
        if not isinstance(t, Transfer):
          raise AffinityDataError(f"{mapping_name} keys must be Transfer, got {t!r}")
        try:
          check_value(mapping_name, v)
        except AffinityDataError as e:
          raise AffinityDataError(f"{self.source}: transfer {t}: {e}") from None
    for node, v in self.baseline_quality.items():
      try:
        check_value("baseline_quality", v, f"baseline_quality of {node!r}")
      except AffinityDataError as e:
        raise AffinityDataError(f"{self.source}: {e}") from None

  @property
  def targets(self) -> list[str]:
    """Every node that some transfer serves, sorted."""
    return sorted({t.target for t in self.affinity})

  @property
  def nodes(self) -> list[str]:
    """Every node that appears as a source or a target, sorted."""
    names = {t.target for t in self.affinity}
    names.update(s for t in self.affinity for s in t.sources if s != SELF)
    return sorted(names)

  @property
  def max_order(self) -> int:
    return max((t.order for t in self.affinity), default=0)

  def first_order_matrix(self, sources: list[str], targets: list[str]) -> list[list[float]]:
    """Affinity of each first-order transfer: rows = `sources`, cols = `targets` (NaN = none).

    Shape: (len(sources), len(targets)). A target's own network (`self`) is its diagonal entry
    when the target is also listed as a source.
    """
    out = []
    for s in sources:
      row = []
      for t in targets:
        key = Transfer((SELF,), t) if s == t else Transfer((s,), t)
        row.append(self.affinity.get(key, math.nan))
      out.append(row)
    return out

  def to_json(self) -> dict:
    rows = []
    for t in sorted(self.affinity):
      row = {"sources": list(t.sources), "target": t.target, "affinity": self.affinity[t]}
      if t in self.quality:
        row["quality"] = self.quality[t]
      if t in self.gain:
        row["gain"] = self.gain[t]
      rows.append(row)
    return {"format": FORMAT, "source": self.source, "transfers": rows,
            "baseline_quality": dict(sorted(self.baseline_quality.items()))}

  def save(self, path: str | os.PathLike) -> pathlib.Path:
    """Writes the table as JSON, atomically (temp file, then `os.replace`)."""
    path = pathlib.Path(path)
    files.write_atomic(path, json.dumps(self.to_json(), indent=1))
    return path

  @classmethod
  def from_json(cls, data: Mapping, source: str = "memory") -> AffinityTable:
    """The table a `to_json` document describes, every entry checked.

    Raises:
      AffinityDataError: the document is not an affinity table, or an entry is malformed; the
        message names `source`, the entry (`transfer #i (sources -> target)`) and what is
        accepted.
    """
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
      raise AffinityDataError(
          f"{source}: not an affinity table (expected a JSON object with \"format\": "
          f"\"{FORMAT}\")")
    unknown = sorted(set(data) - set(_TABLE_KEYS))
    if unknown:
      raise AffinityDataError(f"{source}: unknown field {unknown[0]!r}; an affinity table has "
                              f"{', '.join(_TABLE_KEYS)}")
    rows = data.get("transfers")
    if not isinstance(rows, list) or not rows:
      raise AffinityDataError(
          f"{source}: \"transfers\" must be a non-empty list of transfers, each "
          f"{_ROW_HELP}; got {_describe(rows) if rows is not None else 'nothing (no such field)'}")
    affinity, quality, gain = {}, {}, {}
    row_of: dict[Transfer, int] = {}
    for i, row in enumerate(rows):
      t = _row_transfer(row, i, source)
      where = f"{source}: transfer #{i} ({t})"
      if t in row_of:
        raise AffinityDataError(f"{where} repeats transfer #{row_of[t]}; give each transfer once")
      row_of[t] = i
      for kind, out in (("affinity", affinity), ("quality", quality), ("gain", gain)):
        if kind in row:
          try:
            out[t] = check_value(kind, row[kind])
          except AffinityDataError as e:
            raise AffinityDataError(f"{where}: {e}") from None
    baseline = _baseline(data.get("baseline_quality", {}), source)
    return cls(affinity, quality, gain, baseline, source=source)

  @classmethod
  def from_text(cls, text: str | bytes, source: str) -> AffinityTable:
    """The table in a JSON document (a file's text, an upload); see `from_json`.

    Raises:
      AffinityDataError: not JSON, nested too deeply, or not a valid table.
    """
    try:
      data = files.loads_json(text, source)
    except files.JsonInputError as e:
      raise AffinityDataError(f"{e}; expected an affinity table as written by "
                              "AffinityTable.save") from None
    return cls.from_json(data, source=source)

  @classmethod
  def load(cls, path: str | os.PathLike) -> AffinityTable:
    """The table in the file at `path` (written by `save`); raises `AffinityDataError`."""
    path = pathlib.Path(path)
    return cls.from_text(path.read_bytes(), source=str(path))


# The fields of a table document and of one of its transfers (what `to_json` writes).
_TABLE_KEYS = ("format", "source", "transfers", "baseline_quality")
_ROW_KEYS = ("sources", "target", "affinity", "quality", "gain")
_ROW_HELP = ('an object with "sources" (a list of task names, or ["self"]), "target" (a task '
             'name), "affinity" (a number >= 0) and optionally "quality" and "gain" (win rates '
             'from 0 to 1)')


def _row_transfer(row: object, i: int, source: str) -> Transfer:
  """The transfer that row `i` of a table document names; raises naming the row."""
  where = f"{source}: transfer #{i}"
  if not isinstance(row, Mapping):
    raise AffinityDataError(f"{where} is {_describe(row)}; each transfer must be {_ROW_HELP}")
  unknown = sorted(set(row) - set(_ROW_KEYS))
  missing = [k for k in ("sources", "target", "affinity") if k not in row]
  if unknown or missing:
    what = f"unknown field {unknown[0]!r}" if unknown else f"no {missing[0]!r}"
    raise AffinityDataError(f"{where} has {what}; each transfer must be {_ROW_HELP}")
  sources, target = row["sources"], row["target"]
  if not isinstance(target, str):
    raise AffinityDataError(f"{where}: \"target\" must be a task name, got {_describe(target)}")
  if (not isinstance(sources, list) or not sources
      or not all(isinstance(s, str) for s in sources)):
    raise AffinityDataError(f"{where} (to {target!r}): \"sources\" must be a non-empty list of "
                            f"task names, or [\"self\"], got {_describe(sources)}")
  try:
    names = [s if s == SELF else resolve_node(s) for s in sources]
    return make_transfer(names, resolve_node(target))
  except tasks.UnknownTaskError as e:
    raise AffinityDataError(f"{where} ({'+'.join(sources)} -> {target}): {e}") from None
  except AffinityDataError as e:
    raise AffinityDataError(f"{where}: {e}") from None


def _baseline(value: object, source: str) -> dict[str, float]:
  """The `baseline_quality` object of a table document, checked: task name -> win rate."""
  if not isinstance(value, Mapping):
    raise AffinityDataError(f"{source}: \"baseline_quality\" must be an object of task name -> "
                            f"{_ACCEPTED['baseline_quality']}, got {_describe(value)}")
  out = {}
  for name, v in value.items():
    try:
      out[resolve_node(name)] = check_value("baseline_quality", v, f"baseline_quality of {name!r}")
    except tasks.UnknownTaskError as e:
      raise AffinityDataError(f"{source}: baseline_quality of {name!r}: {e}") from None
    except AffinityDataError as e:
      raise AffinityDataError(f"{source}: {e}") from None
  return out
