"""One table for every benchmark: rows, the machine they ran on, Markdown/text/JSON output.

A row is one measured quantity beside its baseline from the same run: `ratio` is always
"how many times better ours is" (baseline/ours for seconds, ours/baseline for rates), so a
goal like ">= 2x" reads the same for every row. Goals are checked by `Goal.met`, never by hand.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import platform
from collections.abc import Sequence
from typing import Any

from taskonomy_jax import files

# Goal kinds: what `Goal.value` bounds.
GOAL_KINDS = ("ratio_at_least", "ours_at_most", "ours_at_least")


@dataclasses.dataclass(frozen=True)
class Goal:
  """A target for one row, e.g. Goal("ratio_at_least", 2.0) or Goal("ours_at_most", 1.0)."""

  kind: str
  value: float

  def __post_init__(self) -> None:
    if self.kind not in GOAL_KINDS:
      raise ValueError(f"unknown goal kind {self.kind!r}; accepted: {', '.join(GOAL_KINDS)}")

  def met(self, ours: float | None, ratio: float | None) -> bool | None:
    """True/False, or None when the number it needs was not measured."""
    x = ratio if self.kind == "ratio_at_least" else ours
    if x is None:
      return None
    return x <= self.value if self.kind == "ours_at_most" else x >= self.value

  def text(self, unit: str) -> str:
    if self.kind == "ratio_at_least":
      return f">= {self.value:g}x"
    return f"{'<=' if self.kind == 'ours_at_most' else '>='} {self.value:g} {unit}"


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of the table.

  Attributes:
    benchmark: what is measured, with its size ("train step 64x64, batch 2").
    unit: unit of `ours` and `baseline` ("img/s", "s", ...).
    ours / baseline: the two measurements (baseline None where there is none).
    higher_is_better: True for rates, False for times (sets the ratio's direction).
    baseline_name: what the baseline is ("visualpriors PyTorch").
    goal: the issue's goal for this row, if any.
    note: one short remark (load, skipped parts).
  """

  benchmark: str
  unit: str
  ours: float | None
  baseline: float | None = None
  higher_is_better: bool = True
  baseline_name: str = ""
  goal: Goal | None = None
  note: str = ""

  @property
  def ratio(self) -> float | None:
    if self.ours is None or self.baseline is None or 0 in (self.ours, self.baseline):
      return None
    return self.ours / self.baseline if self.higher_is_better else self.baseline / self.ours

  @property
  def met(self) -> bool | None:
    return self.goal.met(self.ours, self.ratio) if self.goal else None

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out["goal"] = dataclasses.asdict(self.goal) if self.goal else None
    out.update(ratio=self.ratio, met=self.met,
               goal_text=self.goal.text(self.unit) if self.goal else "")
    return out


COLUMNS = ("benchmark", "ours", "baseline", "ratio", "goal", "met?")


def _num(x: float | None) -> str:
  if x is None:
    return "-"
  if abs(x) >= 100:
    return f"{x:,.0f}"
  return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def cells(row: Row) -> list[str]:
  """The row as the table's strings, in `COLUMNS` order."""
  base = "-" if row.baseline is None else f"{_num(row.baseline)} {row.unit}"
  if row.baseline is not None and row.baseline_name:
    base += f" ({row.baseline_name})"
  met = {True: "yes", False: "NO", None: "-"}[row.met]
  name = row.benchmark + (f" [{row.note}]" if row.note else "")
  return [name, f"{_num(row.ours)} {row.unit}", base,
          "-" if row.ratio is None else f"{row.ratio:.2f}x",
          row.goal.text(row.unit) if row.goal else "-", met]


def markdown_table(rows: Sequence[Row]) -> str:
  lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
  lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(r)) + " |" for r in rows]
  return "\n".join(lines)


def text_table(rows: Sequence[Row]) -> str:
  table = [list(COLUMNS)] + [cells(r) for r in rows]
  widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                   for line in table)


def _cpu_model() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
  from importlib import metadata
  try:
    return metadata.version(module)
  except metadata.PackageNotFoundError:
    return None


def machine() -> dict[str, Any]:
  """Where the numbers come from: CPU, cores, load, versions, the JAX device."""
  import jax
  dev = jax.devices()[0]
  return {
      "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
      "cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
      "python": platform.python_version(),
      "load_average": [round(x, 2) for x in os.getloadavg()],
      "versions": {m: _version(m) for m in ("jax", "jaxlib", "flax", "torch", "grain",
                                             "cvxpy", "highspy")},
      "device_kind": dev.device_kind, "platform_jax": dev.platform,
      "devices": jax.device_count(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def machine_short() -> str:
  """'<CPU model>, N cores' or the accelerator's kind: where a rate was measured."""
  import jax
  dev = jax.devices()[0]
  if dev.platform == "cpu":
    return f"{_cpu_model()}, {os.cpu_count()} cores"
  return f"{jax.device_count()}x {dev.device_kind}"


def machine_text(m: dict[str, Any]) -> str:
  versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
  loads = m.get("load_average_end")
  load = "/".join(f"{x:g}" for x in m["load_average"])
  if loads:
    load += " at start, " + "/".join(f"{x:g}" for x in loads) + " at end"
  return (f"{m['date']}: {m['cpu']}, {m['cores']} cores, load average (1/5/15 min) {load}; "
          f"JAX device {m['device_kind']} ({m['platform_jax']}) x{m['devices']}; {versions}"
          + (f"; XLA_FLAGS={m['xla_flags']}" if m["xla_flags"] else ""))


def write(out_dir: str | pathlib.Path, name: str, rows: Sequence[Row], mach: dict[str, Any],
          details: dict[str, Any], sections: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
  """Writes `<name>.json` (rows, machine, raw measurements) and `<name>.md`, atomically.

  `sections` are extra (title, Markdown body) blocks appended to the Markdown file.
  Returns {"json": path, "md": path}.
  """
  out = pathlib.Path(out_dir)
  doc = {"machine": mach, "rows": [r.to_json() for r in rows], "details": details}
  paths = {"json": out / f"{name}.json", "md": out / f"{name}.md"}
  files.write_atomic(paths["json"], json.dumps(doc, indent=1, default=str))
  md = [f"# {name}", "", machine_text(mach), "", markdown_table(rows)]
  for title, body in sections:
    md += ["", f"## {title}", "", body]
  files.write_atomic(paths["md"], "\n".join(md) + "\n")
  return {k: str(v) for k, v in paths.items()}


def rows_from_json(doc: dict[str, Any]) -> list[Row]:
  """The rows back from a written JSON document (round trip of `write`)."""
  rows = []
  for r in doc["rows"]:
    goal = Goal(**r["goal"]) if r["goal"] else None
    rows.append(Row(**{f.name: r[f.name] for f in dataclasses.fields(Row) if f.name != "goal"},
                    goal=goal))
  return rows
