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
import os
import pathlib
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
    for mapping_name in ("affinity", "quality", "gain"):
      for t, v in getattr(self, mapping_name).items():
        if not isinstance(t, Transfer):
          raise AffinityDataError(f"{mapping_name} keys must be Transfer, got {t!r}")
        if not isinstance(v, (int, float)) or not math.isfinite(v):
          raise AffinityDataError(f"{mapping_name}[{t}] must be a finite number, got {v!r}")

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
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
      raise AffinityDataError(
          f"{source}: not an affinity table (expected a JSON object with \"format\": "
          f"\"{FORMAT}\")")
    affinity, quality, gain = {}, {}, {}
    for i, row in enumerate(data.get("transfers", [])):
      try:
        sources = [s if s == SELF else resolve_node(s) for s in row["sources"]]
        t = make_transfer(sources, resolve_node(row["target"]))
        affinity[t] = float(row["affinity"])
        if "quality" in row:
          quality[t] = float(row["quality"])
        if "gain" in row:
          gain[t] = float(row["gain"])
      except (KeyError, TypeError) as e:
        raise AffinityDataError(
            f"{source}: transfer #{i} is malformed ({e}); each needs \"sources\" (list of task "
            "names), \"target\" and \"affinity\"") from e
    baseline = {resolve_node(k): float(v) for k, v in data.get("baseline_quality", {}).items()}
    return cls(affinity, quality, gain, baseline, source=source)

  @classmethod
  def load(cls, path: str | os.PathLike) -> AffinityTable:
    path = pathlib.Path(path)
    try:
      data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
      raise AffinityDataError(f"{path}: not valid JSON ({e})") from e
    return cls.from_json(data, source=str(path))
