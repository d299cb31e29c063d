"""The Transfer Learning API: targets, sources, budget, order -> a taxonomy (JSON and a graph).

`solve_taxonomy` is the Python call; `taskonomy solve` is the same call on the command line.
The affinities come from the paper's published results (`--data default|1k|16k`, or a folder of
them) or from a table this project computed (`--data PATH.json`, see `AffinityTable.save`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from taskonomy_jax import files
from taskonomy_jax.taxonomy import bip, published
from taskonomy_jax.taxonomy.affinities import (
    AffinityTable,
    Transfer,
    node_title,
)


@dataclasses.dataclass(frozen=True)
class Served:
  """How one target is served in a taxonomy."""

  target: str
  transfer: Transfer
  affinity: float
  quality: float | None  # win rate vs the target's fully supervised network
  gain: float | None  # win rate vs a network trained from scratch on the transfer budget

  def to_json(self) -> dict:
    return {"target": self.target, "title": node_title(self.target),
            "served_by": "own network" if self.transfer.is_self else "transfer",
            "sources": [self.target] if self.transfer.is_self else list(self.transfer.sources),
            "order": self.transfer.order, "affinity": self.affinity,
            "quality": self.quality, "gain": self.gain}


INFEASIBLE = "infeasible"  # a resample's key when the budget admits no supervised set


def supervised_key(supervised: Iterable[str]) -> str:
  """A supervised set as one string, the key of `Selection.by_budget`: names sorted, joined by
  '+' (task names hold no '+'); the empty set is ''."""
  return "+".join(sorted(supervised))


def source_frequencies(frequencies: Mapping[str, float]) -> dict[str, float]:
  """How often each source is in the chosen set: {set key: fraction of resamples} (one budget's
  `Selection.by_budget` entry) -> {source: summed fraction of the sets holding it}, most
  frequent first. `INFEASIBLE` resamples count for no source."""
  out: dict[str, float] = {}
  for key, f in frequencies.items():
    if key == INFEASIBLE:
      continue
    for name in filter(None, key.split("+")):
      out[name] = out.get(name, 0.0) + f
  return dict(sorted(out.items(), key=lambda kv: -kv[1]))


@dataclasses.dataclass(frozen=True)
class Selection:
  """How often the BIP chose each supervised set across cluster-bootstrap resamples of the
  held-out views (`transfer.gates.selection_frequencies`, report.json's
  `selection_frequencies`): one picture of how stable a computed taxonomy's choice is.

  Attributes:
    by_budget: budget -> {`supervised_key` or `INFEASIBLE`: fraction of resamples}.
    resamples: how many resamples the fractions are of (None: not recorded).
  """

  by_budget: Mapping[float, Mapping[str, float]]
  resamples: int | None = None

  @classmethod
  def from_report(cls, report: Mapping) -> Selection | None:
    """From a run's report.json (`gates.report`), whose budgets are string keys; None when the
    report has no frequencies."""
    freq = report.get("selection_frequencies")
    if not freq:
      return None
    return cls({float(b): dict(f) for b, f in freq.items()}, report.get("selection_resamples"))

  def at(self, budget: float) -> Mapping[str, float] | None:
    """`budget`'s frequencies; None when that budget was not resampled."""
    return next((f for b, f in self.by_budget.items() if abs(b - budget) < 1e-9), None)

  def to_json(self, budget: float, supervised: Iterable[str]) -> dict:
    """The `selection` block of a taxonomy at `budget` that chose `supervised`: how often that
    set was chosen (None when `budget` was not resampled), every set's and every source's
    frequency at `budget`, and every resampled budget's frequencies."""
    freq = self.at(budget)
    key = supervised_key(supervised)
    return {"resamples": self.resamples, "supervised_set": key,
            "chosen": None if freq is None else freq.get(key, 0.0),
            "frequencies": None if freq is None else dict(freq),
            "source_frequencies": None if freq is None else source_frequencies(freq),
            "by_budget": {f"{b:g}": dict(fr) for b, fr in sorted(self.by_budget.items())}}


@dataclasses.dataclass(frozen=True)
class Taxonomy:
  """A solved taxonomy with its inputs, ready to be written as JSON or drawn."""

  data: str
  targets: tuple[str, ...]
  sources: tuple[str, ...]
  budget: float
  order: int
  solver: str
  supervised: tuple[str, ...]
  cost: float
  objective: float
  served: tuple[Served, ...]
  costs: dict[str, float]
  notes: tuple[str, ...] = ()
  # How stable the choice is under resampled test views: computed runs only (the pipeline).
  selection: Selection | None = None

  @property
  def mean_quality(self) -> float | None:
    vals = [s.quality for s in self.served if s.quality is not None]
    return sum(vals) / len(vals) if len(vals) == len(self.served) else None

  @property
  def mean_gain(self) -> float | None:
    vals = [s.gain for s in self.served if s.gain is not None]
    return sum(vals) / len(vals) if len(vals) == len(self.served) else None

  def to_json(self) -> dict:
    return {
        "data": self.data, "targets": list(self.targets), "sources": list(self.sources),
        "budget": self.budget, "order": self.order, "solver": self.solver,
        "supervised": [{"task": n, "title": node_title(n), "cost": self.costs[n]}
                       for n in self.supervised],
        "cost": self.cost, "objective": self.objective,
        "mean_quality": self.mean_quality, "mean_gain": self.mean_gain,
        "served": [s.to_json() for s in self.served], "notes": list(self.notes),
        **({} if self.selection is None
           else {"selection": self.selection.to_json(self.budget, self.supervised)}),
    }

  def selection_caption(self) -> str | None:
    """One sentence on how often the chosen set was chosen across resamples, e.g. 'this
    supervised set chosen in 72% of 50 resamples of the test views'; None without them."""
    freq = None if self.selection is None else self.selection.at(self.budget)
    if freq is None:
      return None
    share = freq.get(supervised_key(self.supervised), 0.0)
    n = self.selection.resamples
    return (f"this supervised set chosen in {share:.0%} of {n if n else 'the'} resamples of the "
            "test views")


def quality_of(table: AffinityTable, transfer: Transfer) -> float | None:
  """Quality of a transfer; a target's own network is 0.5 against itself by definition."""
  if transfer in table.quality:
    return table.quality[transfer]
  return 0.5 if transfer.is_self else None


def taxonomy_from_solution(table: AffinityTable, problem: bip.Problem, sol: bip.Solution,
                           solver: str, sources: Sequence[str]) -> Taxonomy:
  served = tuple(
      Served(t, sol.chosen[t], table.affinity[sol.chosen[t]], quality_of(table, sol.chosen[t]),
             table.gain.get(sol.chosen[t])) for t in problem.targets)
  return Taxonomy(
      data=table.source, targets=problem.targets, sources=tuple(sources), budget=sol.budget,
      order=problem.max_order, solver=solver, supervised=sol.supervised, cost=sol.cost,
      objective=sol.objective, served=served,
      costs=dict(zip(problem.nodes, map(float, problem.costs), strict=True)),
      notes=tuple(table.skipped))


def solve_taxonomy(targets: Sequence[str], budget: float, sources: Sequence[str] | None = None,
                   order: int = 1, data: str | os.PathLike | AffinityTable = "default",
                   costs: Mapping[str, float] | None = None,
                   importance: Mapping[str, float] | None = None,
                   solver: str = bip.DEFAULT_SOLVER,
                   root: str | os.PathLike | None = None) -> Taxonomy:
  """Solves the paper's BIP for `targets` and returns the taxonomy.

  Args:
    targets: tasks to solve (registry names, original code names or aliases), a list or one
      comma-separated string.
    budget: the supervision budget (sum of the costs of the supervised tasks), >= 0.
    sources: tasks that may be supervised, like `targets` (default: every task in the data).
    order: maximum transfer order, 1-4 (the default published set has orders 1-2; `1k` and
      `16k` go to 4).
    data: a published set name, a folder of published results, an affinity-table file, or an
      `AffinityTable`.
    costs: labelling cost per source (default 1 each): finite numbers >= 0, of any size (a
      task dearer than the budget is never supervised).
    importance: weight per target (default 1 each).
    solver: mixed-integer backend by name (`bip.SOLVERS`).
    root: where published set names resolve (default `$TASKONOMY_PAPER_RESULTS`, then
      the copy shipped with the package).

  Raises:
    tasks.UnknownTaskError, bip.BadProblemError, affinities.AffinityDataError (its subclass
    published.PublishedDataError included): bad input, each with a message naming the problem
    (for a table file: the file and the entry). All are ValueErrors.
  """
  bip.check_budget(budget)
  bip.check_order(order)
  bip.check_solver(solver)
  table = data if isinstance(data, AffinityTable) else published.load_published(data, root)
  problem = bip.build_problem(table, targets, sources, order, costs, importance)
  sol = bip.BipSolver(problem, solver).solve(budget)
  return taxonomy_from_solution(
      table, problem, sol, solver,
      bip.resolve_names(sources, "sources") if sources is not None else table.nodes)


# --- command line ----------------------------------------------------------------------------


def _names(text: str) -> list[str]:
  names = [n.strip() for n in text.split(",") if n.strip()]
  if not names:
    raise argparse.ArgumentTypeError("expected a comma-separated list of task names")
  return names


def _weights(what: str) -> Callable[[str], dict[str, float]]:
  """The argparse type of `--costs`/`--importance` (`what`: cost or importance):
  `NAME=VALUE,NAME=VALUE` or a JSON file holding an object of that shape."""

  def parse(text: str) -> dict[str, float]:
    if text.endswith(".json") and pathlib.Path(text).is_file():
      try:
        data = files.loads_json(pathlib.Path(text).read_bytes(), text)
      except files.JsonInputError as e:
        raise argparse.ArgumentTypeError(f"{e}; expected an object NAME -> number") from None
      if not isinstance(data, dict):
        raise argparse.ArgumentTypeError(f"{text} must hold a JSON object NAME -> number")
      try:  # values here, so the message names the file; names resolve in the solver
        return {name: bip.check_weight(what, name, value) for name, value in data.items()}
      except bip.BadProblemError as e:
        raise argparse.ArgumentTypeError(f"{text}: {e}") from None
    out = {}
    for item in text.split(","):
      name, sep, value = item.partition("=")
      try:
        out[name.strip()] = float(value)
      except ValueError:
        sep = ""
      if not sep:
        raise argparse.ArgumentTypeError(
            f"expected NAME=NUMBER pairs separated by commas (or a .json file), got {item!r}")
    return out

  return parse


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
  """Sends anything the native solvers print (HiGHS prints a banner) to stderr, so stdout
  carries only the JSON answer."""
  sys.stdout.flush()
  saved = os.dup(1)
  try:
    os.dup2(2, 1)
    yield
  finally:
    sys.stdout.flush()
    os.dup2(saved, 1)
    os.close(saved)


def write_outputs(tax: Taxonomy, out: pathlib.Path) -> list[pathlib.Path]:
  """Writes `taxonomy.json` and `taxonomy.png` into `out` (each atomically)."""
  from taskonomy_jax.taxonomy import draw  # matplotlib only when drawing

  out.mkdir(parents=True, exist_ok=True)
  json_path, png_path = out / "taxonomy.json", out / "taxonomy.png"
  files.write_atomic(json_path, json.dumps(tax.to_json(), indent=1))
  draw.draw_taxonomy(tax, png_path)
  return [json_path, png_path]


def add_subcommand(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser(
      "solve", help="the Transfer Learning API: which tasks to supervise, how to serve targets",
      description="Solve the Taskonomy BIP (Section 3.4 of the paper) on published or computed "
                  "affinities: choose the tasks to supervise within a budget and the transfer "
                  "serving each target. Exit code 2 on bad input.")
  p.add_argument("--targets", type=_names, required=True,
                 help="comma-separated target tasks (registry names or original code names)")
  p.add_argument("--sources", type=_names, default=None,
                 help="comma-separated tasks that may be supervised (default: all in the data)")
  p.add_argument("--budget", type=float, required=True,
                 help="supervision budget: total cost of the supervised tasks (cost 1 each "
                      "unless --costs)")
  p.add_argument("--order", type=int, default=1, help="maximum transfer order, 1-4 (default 1)")
  p.add_argument("--data", default="default",
                 help="published set (default, 1k, 16k), a folder of published results (JSON "
                      "or the original results/ pickles), or an affinity-table JSON file")
  p.add_argument("--results-dir", default=None,
                 help=f"where set names resolve (default ${published.ENV_VAR}, then "
                      "the copy shipped with the package)")
  p.add_argument("--costs", type=_weights("cost"), default=None,
                 help="per-task labelling costs: NAME=COST,... or a .json file (default 1)")
  p.add_argument("--importance", type=_weights("importance"), default=None,
                 help="per-target importance: NAME=WEIGHT,... or a .json file (default 1)")
  p.add_argument("--solver", default=bip.DEFAULT_SOLVER,
                 help=f"mixed-integer solver: {', '.join(bip.SOLVERS)} (default "
                      f"{bip.DEFAULT_SOLVER})")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="folder for taxonomy.json and taxonomy.png (default: JSON to stdout)")
  p.set_defaults(run=_run_solve)


def _run_solve(args: argparse.Namespace) -> int:
  with stdout_to_stderr():
    tax = solve_taxonomy(args.targets, args.budget, args.sources, args.order, args.data,
                         args.costs, args.importance, args.solver, args.results_dir)
    for note in tax.notes:
      print(f"note: {note}", file=sys.stderr)
  if args.out is None:
    print(json.dumps(tax.to_json(), indent=1))
    return 0
  paths = write_outputs(tax, args.out)
  sup = ", ".join(tax.supervised) or "nothing"
  print(f"supervise {sup} (cost {tax.cost:g} of {tax.budget:g}); mean Quality "
        f"{_fmt(tax.mean_quality)}, mean Gain {_fmt(tax.mean_gain)}")
  for s in tax.served:
    how = "own network" if s.transfer.is_self else " + ".join(s.transfer.sources)
    print(f"  {s.target:18} <- {how:40} affinity {s.affinity:.4f}  Q {_fmt(s.quality)}  "
          f"G {_fmt(s.gain)}")
  print("wrote " + ", ".join(str(p) for p in paths))
  return 0


def _fmt(x: float | None) -> str:
  return "n/a" if x is None else f"{x:.3f}"
