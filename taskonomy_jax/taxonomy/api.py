"""The Transfer Learning API: targets, sources, budget, order -> a taxonomy (JSON and a graph).

`solve_taxonomy` is the Python call; `taskonomy solve` is the same call on the command line.
The affinities come from the paper's published results (`--data default|1k|16k`, or a folder of
them) or from a table this project computed (`--data PATH.json`, see `AffinityTable.save`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence

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
