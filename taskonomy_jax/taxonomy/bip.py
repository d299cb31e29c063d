"""The paper's binary integer program (Section 3.4): which tasks to supervise, how to serve the rest.

Given target tasks T, the tasks S that may be supervised (each with a labelling cost l_j), a
supervision budget B and a maximum transfer order k, choose binary s_j (task j is supervised) and
x_i (transfer i is used) to

    maximise   sum_i r_target(i) * a_i * x_i          (r: target importance, a: affinity)
    subject to sum_{i -> t} x_i = 1        for every target t (exactly one transfer in)
               x_i <= s_j                  for every source j of transfer i
               x_self(t) = s_t             a supervised target is served by its own network
               sum_j l_j s_j <= B          (the supervision budget)

The paper writes the source constraint aggregated, `order(i) * x_i <= sum_j s_j`; it has the
same integer solutions but a weaker LP relaxation, so branch-and-bound works much harder
(`formulation="naive"` keeps it for the benchmark). The default goes one step past the per-source
rows: since only one transfer into a target is chosen, the transfers into target t that need
source j can share one row, `sum_i x_i <= s_j`, which is tighter still and has fewer rows.

Before the solve, transfers that cannot be optimal are dropped: a transfer is dominated when
another transfer to the same target needs a subset of its sources and has at least its affinity
(swapping one for the other never costs budget and never lowers the objective). The budget is a
`cvxpy.Parameter`, so a sweep over budgets compiles the problem once.

In the `strong` and `tight` formulations only s is declared binary: once s is integral, each
target's rows leave the simplex over the transfers whose sources are all supervised (or only its
own network, if it is supervised itself), whose vertices are integral, so the program's optimum
is the integer optimum; the transfers are read back from s (`BipSolver._solution`), never from a
fractional x. Branch-and-bound then branches on the N supervision choices only. (The `naive` row
lets a fractional x_i through with some of its sources supervised, so there x stays binary.)
Budgets at or above the cost of the unconstrained optimum (every target on its best transfer)
are answered without a solve, and so is a budget b between the cost c of an optimum found at a
larger budget and that budget (the optimum never rises as the budget falls, and that answer fits
in b); `BipSolver.sweep` solves from the largest budget down so that each solve answers a range.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping, Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from taskonomy_jax.taxonomy.affinities import SELF, AffinityTable, Transfer, resolve_node

MAX_ORDER = 4


class BadProblemError(ValueError):
  """A malformed or unsolvable problem; the message says which input is wrong and why."""


class InfeasibleBudgetError(BadProblemError):
  """No selection of supervised tasks within the budget serves every target."""


@dataclasses.dataclass(frozen=True)
class _SolverInfo:
  cvxpy_name: str
  exact_options: Mapping  # options that make the solver prove optimality (no relative gap)
  package: str


# Mixed-integer backends by name. `exact_options` close the default optimality gaps, so the
# answer is the true optimum, not one within 0.01% of it. HiGHS also gets tighter feasibility
# tolerances: with its defaults (1e-6/1e-7) it returned transfers 3e-7 below the optimum on the
# published affinities, whose values go down to 1e-4 (found by the brute-force tests).
# The last three only steer the search, never the answer: on the random 26-task order-4
# instances of `benchmarks/bip_solve.py` (root gap a few percent, 1-200 nodes) HiGHS spent about
# half its time in the RINS/RENS sub-MIPs and in strong branching. Without them, `sweep` over
# seeds 0-4 took 30.3 s in all against 37.0 s with them (seed 0: 3.8 vs 6.6 s, seed 4: 4.5 vs
# 4.2 s).
_HIGHS_EXACT = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "mip_feasibility_tolerance": 1e-9,
                "primal_feasibility_tolerance": 1e-9, "dual_feasibility_tolerance": 1e-9,
                "presolve": "off", "output_flag": False, "mip_heuristic_run_rins": False,
                "mip_heuristic_run_rens": False, "mip_pscost_minreliable": 0}
SOLVERS: dict[str, _SolverInfo] = {
    "highs": _SolverInfo("HIGHS", _HIGHS_EXACT, "highspy"),
    "scipy": _SolverInfo("SCIPY", {"scipy_options": {"mip_rel_gap": 0.0}}, "scipy"),
    "glpk_mi": _SolverInfo("GLPK_MI", {}, "cvxopt"),
    "cbc": _SolverInfo("CBC", {"allowableGap": 0.0}, "cylp"),
    "scip": _SolverInfo("SCIP", {"scip_params": {"limits/gap": 0.0}}, "pyscipopt"),
    "gurobi": _SolverInfo("GUROBI", {"MIPGap": 0.0}, "gurobipy"),
    "cplex": _SolverInfo("CPLEX", {}, "cplex"),
    "mosek": _SolverInfo("MOSEK", {}, "mosek"),
    "xpress": _SolverInfo("XPRESS", {}, "xpress"),
    "copt": _SolverInfo("COPT", {}, "coptpy"),
}
DEFAULT_SOLVER = "highs"
# How "a transfer needs its sources supervised" is written (see `BipSolver`).
FORMULATIONS = ("strong", "tight", "naive")


def check_solver(name: str) -> _SolverInfo:
  """The backend called `name`; raises `BadProblemError` if unknown or not installed here."""
  key = name.strip().lower()
  if key not in SOLVERS:
    raise BadProblemError(
        f"unknown solver {name!r}; mixed-integer solvers by name: {', '.join(SOLVERS)}")
  info = SOLVERS[key]
  if info.cvxpy_name not in cp.installed_solvers():
    here = [k for k, v in SOLVERS.items() if v.cvxpy_name in cp.installed_solvers()]
    raise BadProblemError(
        f"solver {name!r} is not installed (pip package {info.package!r}); installed here: "
        f"{', '.join(here)}")
  return info


@dataclasses.dataclass(frozen=True)
class Problem:
  """A BIP instance after validation and candidate selection (pure data, no solver state).

  Attributes:
    targets: target node names, T entries.
    nodes: the supervisable nodes some candidate needs, N entries (the s variables).
    costs: (N,) labelling cost of each node.
    importance: (T,) importance of each target.
    candidates: the C candidate transfers, grouped by target.
    affinity: (C,) affinity of each candidate.
    cand_target: (C,) index into `targets` of each candidate's target.
    max_order: the maximum transfer order allowed.
    num_pruned: how many dominated transfers were dropped.
  """

  targets: tuple[str, ...]
  nodes: tuple[str, ...]
  costs: np.ndarray
  importance: np.ndarray
  candidates: tuple[Transfer, ...]
  affinity: np.ndarray
  cand_target: np.ndarray
  max_order: int
  num_pruned: int = 0

  def required(self, i: int) -> tuple[int, ...]:
    """Indices into `nodes` that candidate i needs supervised."""
    index = {n: k for k, n in enumerate(self.nodes)}
    return tuple(index[n] for n in self.candidates[i].required_sources())

  def incidence(self) -> sp.csr_matrix:
    """(C, N) 0/1 matrix: candidate i needs node j."""
    index = {n: k for k, n in enumerate(self.nodes)}
    rows, cols = [], []
    for i, t in enumerate(self.candidates):
      for s in t.required_sources():
        rows.append(i)
        cols.append(index[s])
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                         shape=(len(self.candidates), len(self.nodes)))


def resolve_names(names: Iterable[str] | str | None, what: str) -> list[str]:
  """Node names for `names`: a list of task names or one comma-separated string (as on the
  command line); raises `BadProblemError` if there are none or one is not a string."""
  accepted = ("give a list of task names or a comma-separated string, e.g. "
              "['normal', 'reshading']")
  if names is None:
    raise BadProblemError(f"no {what} given; {accepted}")
  if isinstance(names, str):
    names = names.split(",")
  elif not isinstance(names, Iterable):
    raise BadProblemError(f"{what} must be task names; {accepted}, got {names!r}")
  names = list(names)
  bad = [n for n in names if not isinstance(n, str)]
  if bad:
    raise BadProblemError(f"{what} must be task names (strings), got {bad[0]!r}; {accepted}")
  out = list(dict.fromkeys(resolve_node(n) for n in names if n.strip()))
  if not out:
    raise BadProblemError(f"no {what} given; {accepted}")
  return out


def check_weight(what: str, name: str, value: object) -> float:
  """One cost or importance (`what`) of task `name` as a float; raises `BadProblemError` if
  it is not a finite number >= 0 (a boolean is not a number here)."""
  real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
  if not real or not math.isfinite(value) or value < 0:
    raise BadProblemError(f"{what} of {name!r} must be a finite number >= 0, got {value!r}")
  return float(value)


def _check_weights(weights: Mapping[str, float] | None, allowed: Sequence[str], what: str,
                   among: str, default: float = 1.0) -> np.ndarray:
  """Per-name weights (costs or importance) as an array over `allowed` (the `among`: sources or
  targets); `default` for the rest."""
  if weights is not None and not isinstance(weights, Mapping):
    raise BadProblemError(f"{what} must be a mapping of task name -> number >= 0, got "
                          f"{type(weights).__name__}")
  resolved: dict[str, float] = {}
  for name, value in (weights or {}).items():
    if not isinstance(name, str):
      raise BadProblemError(f"{what} keys must be task names, got {name!r}")
    node = resolve_node(name)
    if node not in allowed:
      raise BadProblemError(
          f"{what} given for {node!r}, which is not among the {among} ({', '.join(allowed)})")
    resolved[node] = check_weight(what, node, value)
  return np.array([resolved.get(n, default) for n in allowed], dtype=float)


def check_order(order: int) -> int:
  if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not (
      1 <= order <= MAX_ORDER):
    raise BadProblemError(f"order must be an integer from 1 to {MAX_ORDER}, got {order!r}")
  return int(order)


def check_budget(budget: float) -> float:
  if isinstance(budget, bool) or not isinstance(budget, (int, float, np.number)) or not (
      math.isfinite(budget)):
    raise BadProblemError(f"budget must be a finite number >= 0, got {budget!r}")
  if budget < 0:
    raise BadProblemError(f"budget must be >= 0 (the total labelling cost allowed), got {budget}")
  return float(budget)


def prune_dominated(cands: Sequence[Transfer], aff: Sequence[float]) -> list[int]:
  """Indices of the transfers (all to one target) that are not dominated, in input order.

  Transfer i is dominated if another kept transfer j needs a subset of i's sources and has
  affinity >= a_i (ties: the lower order, then the earlier one, is kept). A target's own network
  is never dropped.
  """
  order = sorted(range(len(cands)), key=lambda i: (-aff[i], cands[i].order, i))
  kept: list[int] = []
  for i in order:
    req = set(cands[i].required_sources())
    if cands[i].is_self or not any(
        set(cands[j].required_sources()) <= req for j in kept):
      kept.append(i)
  return sorted(kept)


def candidate_lists(per_target: Sequence[Sequence[tuple[Transfer, float]]], prune: bool = True
                    ) -> tuple[list[Transfer], list[float], list[int], int]:
  """The candidates of a problem from each target's (transfer, affinity) pairs, in order.

  Returns (transfers, affinities, target index of each, how many were pruned as dominated
  (`prune_dominated`; none when not `prune`)).
  """
  cands: list[Transfer] = []
  affs: list[float] = []
  tidx: list[int] = []
  pruned = 0
  for k, mine in enumerate(per_target):
    keep = (prune_dominated([m[0] for m in mine], [m[1] for m in mine]) if prune
            else range(len(mine)))
    pruned += len(mine) - len(keep)
    for i in keep:
      cands.append(mine[i][0])
      affs.append(mine[i][1])
      tidx.append(k)
  return cands, affs, tidx, pruned


def build_problem(table: AffinityTable, targets: Iterable[str], sources: Iterable[str] | None = None,
                  order: int = 1, costs: Mapping[str, float] | None = None,
                  importance: Mapping[str, float] | None = None, prune: bool = True) -> Problem:
  """Validates the inputs and selects the candidate transfers.

  Args:
    table: the affinities (published or computed).
    targets: target task names (any registry name, code name or alias).
    sources: the tasks that may be supervised; default every task of the table.
    order: maximum transfer order, 1 to 4.
    costs: labelling cost per source task (default 1 each; the paper's budget counts tasks).
    importance: weight per target (default 1 each).
    prune: drop dominated transfers (off only to cross-check the pruning).

  Raises:
    tasks.UnknownTaskError: a name is not a task (the message lists the closest names).
    BadProblemError: order outside 1-4, a negative cost or importance, or a target that no
      allowed transfer serves.
  """
  order = check_order(order)
  target_list = resolve_names(targets, "targets")
  source_list = (resolve_names(sources, "sources") if sources is not None else table.nodes)
  source_set = set(source_list)
  by_target: dict[str, list[tuple[Transfer, float]]] = {t: [] for t in target_list}
  for tr, a in table.affinity.items():
    if tr.target in by_target:
      by_target[tr.target].append((tr, a))
  per_target: list[list[tuple[Transfer, float]]] = []
  for t in target_list:
    available = by_target[t]
    if not available:
      raise BadProblemError(
          f"target {t!r} cannot be served: the affinity data ({table.source}) has no transfer "
          f"to it; targets with data: {', '.join(table.targets)}")
    has_self = t in source_set and any(tr.is_self for tr, _ in available)
    mine = []
    for tr, a in sorted(available):
      if tr.is_self:
        ok = has_self
      else:
        # With its own network available, a supervised target is served by it, so transfers
        # that need the target itself supervised can never be chosen.
        ok = (tr.order <= order and set(tr.sources) <= source_set
              and not (has_self and t in tr.sources))
      if ok:
        mine.append((tr, a))
    if not mine:
      raise BadProblemError(
          f"target {t!r} cannot be served: no transfer of order <= {order} from the allowed "
          f"sources reaches it (allow {t!r} itself as a source, or more sources, or a higher "
          "order)")
    per_target.append(mine)
  cands, affs, tidx, pruned = candidate_lists(per_target, prune)
  used = {s for tr in cands for s in tr.required_sources()}
  nodes = tuple(n for n in source_list if n in used)
  cost_all = _check_weights(costs, source_list, "cost", "sources")
  cost_of = dict(zip(source_list, cost_all, strict=True))
  return Problem(
      targets=tuple(target_list), nodes=nodes,
      costs=np.array([cost_of[n] for n in nodes], dtype=float),
      importance=_check_weights(importance, target_list, "importance", "targets"),
      candidates=tuple(cands), affinity=np.array(affs, dtype=float),
      cand_target=np.array(tidx, dtype=int), max_order=order, num_pruned=pruned)


@dataclasses.dataclass(frozen=True)
class Solution:
  """One solved instance: what to supervise and the transfer serving each target.

  `objective` is sum over targets of importance * affinity of the chosen transfer.
  """

  budget: float
  supervised: tuple[str, ...]
  chosen: dict[str, Transfer]
  objective: float
  cost: float
  solve_seconds: float = 0.0
  nodes: int | None = None  # branch-and-bound nodes (HiGHS only; 0 when no solve was needed)


def objective_of(problem: Problem, chosen: Mapping[str, Transfer]) -> float:
  """Importance-weighted affinity of a choice of one transfer per target."""
  aff = {tr: a for tr, a in zip(problem.candidates, problem.affinity, strict=True)}
  weight = dict(zip(problem.targets, problem.importance, strict=True))
  return float(sum(weight[t] * aff[tr] for t, tr in chosen.items()))


class BipSolver:
  """The CVXPY model of one `Problem`, compiled once and re-solved for any budget.

  Args:
    problem: the instance.
    solver: a name from `SOLVERS` (default HiGHS).
    formulation: `strong` (default: one row per target and source, `sum of x_i over the
      transfers into t that need j <= s_j`), `tight` (one `x_i <= s_j` per transfer and source)
      or `naive` (the paper's aggregated `order * x_i <= sum_j s_j`). All three have the same
      integer solutions; their LP relaxations are successively weaker.
    relax: drop integrality altogether (the LP relaxation, to measure its bound with
      `lp_bound`; `solve` then returns None).
  """

  def __init__(self, problem: Problem, solver: str = DEFAULT_SOLVER,
               formulation: str = "strong", relax: bool = False):
    if formulation not in FORMULATIONS:
      raise BadProblemError(
          f"formulation must be one of {', '.join(FORMULATIONS)}, got {formulation!r}")
    self.problem = problem
    self.solver_info = check_solver(solver)
    self.formulation = formulation
    self.relax = relax
    num_c, num_n = len(problem.candidates), len(problem.nodes)
    # x binary only where the rows do not make it integral by themselves (module docstring).
    x_binary = formulation == "naive" and not relax
    self.x = cp.Variable(num_c, boolean=x_binary, nonneg=not x_binary)
    self.s = cp.Variable(num_n, boolean=not relax, nonneg=relax)
    # The budget row is `cost_share @ s <= 1`, refilled by `set_budget`: each node's cost as a
    # share of the budget, nodes dearer than the whole budget switched off by `affordable`.
    # Written as `costs @ s <= budget`, a cost of 1e15 or more (HiGHS's largest matrix entry)
    # made the solve fail ("Cannot unpack invalid solution") although such a node can simply
    # never be bought; as shares, every coefficient lies in [0, 1] whatever the costs' scale.
    self.cost_share = cp.Parameter(num_n, nonneg=True, value=np.zeros(num_n))
    self.affordable = cp.Parameter(num_n, nonneg=True, value=np.zeros(num_n))
    weight = problem.importance[problem.cand_target] * problem.affinity
    # The objective likewise: weights over 1 (large importance or affinities) are scaled down
    # to at most 1, so HiGHS never sees a huge cost coefficient; the chosen transfers are the
    # same, and `Solution.objective` is recomputed from the unscaled values.
    weight = weight / max(1.0, float(weight.max(initial=0.0)))
    by_target = sp.csr_matrix(
        (np.ones(num_c), (problem.cand_target, np.arange(num_c))),
        shape=(len(problem.targets), num_c))
    inc = problem.incidence().tocoo()
    is_self = np.array([t.is_self for t in problem.candidates], dtype=bool)
    cons = [by_target @ self.x == 1, self.cost_share @ self.s <= 1, self.s <= self.affordable]
    if formulation == "strong":
      # One row per (target, source): the transfers into one target that need source j are
      # used at most s_j times in total. Implies every x_i <= s_j (x >= 0) and is tighter,
      # because at most one of them is chosen anyway.
      pair = problem.cand_target[inc.row] * num_n + inc.col
      keys, row_of = np.unique(pair, return_inverse=True)
      lhs = sp.csr_matrix((np.ones(inc.nnz), (row_of, inc.row)), shape=(len(keys), num_c))
      rhs = sp.csr_matrix((np.ones(len(keys)), (np.arange(len(keys)), keys % num_n)),
                          shape=(len(keys), num_n))
      cons.append(lhs @ self.x <= rhs @ self.s)
    elif formulation == "tight":
      # One row per (transfer, needed source): x_i - s_j <= 0.
      pick_x = sp.csr_matrix((np.ones(inc.nnz), (np.arange(inc.nnz), inc.row)),
                             shape=(inc.nnz, num_c))
      pick_s = sp.csr_matrix((np.ones(inc.nnz), (np.arange(inc.nnz), inc.col)),
                             shape=(inc.nnz, num_n))
      cons.append(pick_x @ self.x <= pick_s @ self.s)
    else:
      orders = np.asarray(inc.tocsr().sum(axis=1)).ravel()
      cons.append(sp.diags(orders) @ self.x <= inc.tocsr() @ self.s)
    if is_self.any():
      self_idx = np.flatnonzero(is_self)
      index = {n: k for k, n in enumerate(problem.nodes)}
      node_idx = [index[problem.candidates[i].target] for i in self_idx]
      cons.append(self.x[self_idx] >= self.s[node_idx])
    if relax:
      cons += [self.x <= 1, self.s <= 1]
    self.cvx = cp.Problem(cp.Maximize(weight @ self.x), cons)
    self._weight_scale = max(1.0, float(
        (problem.importance[problem.cand_target] * problem.affinity).max(initial=0.0)))
    self._required = [problem.required(i) for i in range(num_c)]
    self._free_best = self._unconstrained_best()
    # Optima found so far (budget, solution), and the largest budget found infeasible.
    self._solved: list[tuple[float, Solution]] = []
    self._infeasible_at = -math.inf

  def _unconstrained_best(self) -> tuple[np.ndarray, float] | None:
    """(supervised mask, its cost) of an optimum whatever the budget, or None if not found.

    Each target takes its best transfer (own network first among equals). That value bounds
    the objective at every budget; it is reached when no target the choice supervises would
    have to leave its best transfer for its own network (`x_self = s_t`), and then every budget
    that pays for those sources has this optimum.
    """
    p = self.problem
    index = {n: k for k, n in enumerate(p.nodes)}
    on = np.zeros(len(p.nodes), dtype=bool)
    best = []
    for k in range(len(p.targets)):
      mine = np.flatnonzero(p.cand_target == k)
      i = int(min(mine, key=lambda i: (-p.affinity[i], not p.candidates[i].is_self,
                                       p.candidates[i].order, i)))
      best.append(i)
      on[list(self._required[i])] = True
    for k, t in enumerate(p.targets):
      has_self = any(p.candidates[i].is_self for i in np.flatnonzero(p.cand_target == k))
      if has_self and t in index and on[index[t]] and not p.candidates[best[k]].is_self:
        return None
    return on, float(p.costs[on].sum())

  def set_budget(self, budget: float) -> float:
    """Fills the budget row's parameters for `budget` (checked; returned as a float)."""
    budget = check_budget(budget)
    costs = self.problem.costs
    affordable = costs <= budget
    self.affordable.value = affordable.astype(float)
    # Budget 0: only free nodes are affordable, and they take no share.
    self.cost_share.value = np.where(affordable, costs / budget if budget > 0 else 0.0, 0.0)
    return budget

  def solve(self, budget: float) -> Solution | None:
    """Solves for `budget` (None for a relaxed model); raises `InfeasibleBudgetError` if
    nothing within it serves all."""
    budget = self.set_budget(budget)
    start = time.perf_counter()
    if not self.relax:
      known = self._known(budget, start)
      if known is not None:
        return known
    opts = {k: (dict(v) if isinstance(v, dict) else v)
            for k, v in self.solver_info.exact_options.items()}
    try:
      # warm_start=False: with cvxpy 1.9.3 + HiGHS 1.16, re-solving after a budget change with
      # the previous answer passed as a start returned non-optimal answers ("optimal" status),
      # caught by the brute-force tests (BUILD_NOTES.md, "The BIP"). A cold start costs a few ms.
      self.cvx.solve(solver=self.solver_info.cvxpy_name, warm_start=False, **opts)
    except cp.error.SolverError as e:
      raise RuntimeError(f"{self.solver_info.cvxpy_name} failed on the taxonomy BIP: {e}") from e
    elapsed = time.perf_counter() - start
    if self.cvx.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
      self._infeasible_at = max(self._infeasible_at, budget)
      need = min_budget(self.problem)
      raise InfeasibleBudgetError(
          f"budget {budget:g} is too small: serving every target needs a budget of at least "
          f"{need:g} (targets: {', '.join(self.problem.targets)})")
    if self.cvx.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
      raise RuntimeError(f"{self.solver_info.cvxpy_name} ended with status {self.cvx.status}")
    if self.relax:
      return None
    nodes = getattr(self.cvx.solver_stats.extra_stats, "mip_node_count", None)
    sol = self._solution(budget, self.s.value > 0.5, elapsed, nodes)
    self._solved.append((budget, sol))
    return sol

  def _known(self, budget: float, start: float) -> Solution | None:
    """The answer at `budget` if earlier work already proves it (module docstring), else None;
    raises `InfeasibleBudgetError` at or below a budget already found infeasible."""
    if budget <= self._infeasible_at:
      raise InfeasibleBudgetError(
          f"budget {budget:g} is too small: serving every target needs a budget of at least "
          f"{min_budget(self.problem):g} (targets: {', '.join(self.problem.targets)})")
    if self._free_best is not None and self._free_best[1] <= budget:
      return self._solution(budget, self._free_best[0], time.perf_counter() - start, 0)
    for b0, sol in self._solved:
      if b0 >= budget and sol.cost <= budget:
        return dataclasses.replace(sol, budget=budget, nodes=0,
                                   solve_seconds=time.perf_counter() - start)
    return None

  def sweep(self, budgets: Sequence[float]) -> list[Solution | None]:
    """Solves at every budget (None where infeasible), in the order given.

    Works from the largest budget down: an optimum of cost c found at budget b is the answer
    at every budget in [c, b], and a budget found infeasible makes every smaller one so.
    """
    out: list[Solution | None] = [None] * len(budgets)
    for k in sorted(range(len(budgets)), key=lambda k: -check_budget(budgets[k])):
      try:
        out[k] = self.solve(budgets[k])
      except InfeasibleBudgetError:
        break
    return out

  def lp_bound(self, budget: float) -> float:
    """The optimum of the LP relaxation at `budget` in objective units (importance *
    affinity), for a model built with relax=True."""
    if not self.relax:
      raise BadProblemError("lp_bound needs a model built with relax=True")
    self.solve(budget)
    return float(self.cvx.value) * self._weight_scale

  def _solution(self, budget: float, s: np.ndarray, elapsed: float,
                nodes: int | None = None) -> Solution:
    """The answer for the supervised mask `s`: each target on its best transfer whose sources
    are all supervised, or on its own network if it is supervised itself (the program's rules).
    Given s, that is the maximum of the program over x, so the answer is read from s alone."""
    p = self.problem
    index = {n: k for k, n in enumerate(p.nodes)}
    chosen = {}
    for k, t in enumerate(p.targets):
      mine = [i for i in np.flatnonzero(p.cand_target == k) if all(s[j] for j in self._required[i])]
      selfs = [i for i in mine if p.candidates[i].is_self]
      if selfs and t in index and s[index[t]]:
        mine = selfs
      if not mine:
        raise RuntimeError(f"the solver's answer leaves target {t!r} unserved")
      chosen[t] = p.candidates[max(mine, key=lambda i: (p.affinity[i], -p.candidates[i].order))]
    # Report only the tasks something uses (a solver may switch on a useless free node).
    used = {n for tr in chosen.values() for n in tr.required_sources()}
    supervised = tuple(n for n, on in zip(p.nodes, s, strict=True) if on and n in used)
    cost = float(sum(c for n, c in zip(p.nodes, p.costs, strict=True) if n in supervised))
    return Solution(budget, supervised, chosen, objective_of(p, chosen), cost, elapsed, nodes)


def solve(problem: Problem, budget: float, solver: str = DEFAULT_SOLVER) -> Solution:
  """Solves one instance at one budget (see `BipSolver` to sweep budgets)."""
  return BipSolver(problem, solver).solve(budget)


def min_budget(problem: Problem) -> float:
  """The smallest budget with which every target can be served (a small set-cover MILP)."""
  num_c, num_n = len(problem.candidates), len(problem.nodes)
  x = cp.Variable(num_c, boolean=True)
  s = cp.Variable(num_n, boolean=True)
  by_target = sp.csr_matrix((np.ones(num_c), (problem.cand_target, np.arange(num_c))),
                            shape=(len(problem.targets), num_c))
  inc = problem.incidence()
  orders = np.asarray(inc.sum(axis=1)).ravel()
  # Costs as shares of the largest, so that no coefficient is too large for HiGHS (see
  # `BipSolver`); the answer is the true cost of the cheapest set found.
  scale = float(problem.costs.max(initial=0.0)) or 1.0
  prob = cp.Problem(cp.Minimize((problem.costs / scale) @ s),
                    [by_target @ x == 1, sp.diags(orders) @ x <= inc @ s])
  prob.solve(solver=cp.HIGHS, output_flag=False, mip_rel_gap=0.0, mip_abs_gap=0.0)
  return float(problem.costs @ (s.value > 0.5))


def brute_force(problem: Problem, budget: float) -> tuple[float, tuple[str, ...]] | None:
  """Exhaustive search over every set of supervised nodes (2^N sets; for tests, N <= ~16).

  For each affordable set S, each target takes its own network if it is in S and has one, else
  its best transfer whose sources are all in S. Returns (best objective, one best S) or None when
  no affordable set serves every target. Written independently of the MILP: no pruning needed.
  """
  p = problem
  num_n = len(p.nodes)
  if num_n > 20:
    raise ValueError(f"brute force over {num_n} nodes is too large")
  subsets = np.arange(2 ** num_n, dtype=np.int64)
  bits = (subsets[:, None] >> np.arange(num_n)) & 1  # (2^N, N)
  affordable = bits @ p.costs <= budget + 1e-9
  req_mask = np.array([sum(1 << j for j in p.required(i)) for i in range(len(p.candidates))],
                      dtype=np.int64)
  feasible = (subsets[:, None] & req_mask[None, :]) == req_mask[None, :]  # (2^N, C)
  total = np.zeros(len(subsets))
  index = {n: k for k, n in enumerate(p.nodes)}
  for k, t in enumerate(p.targets):
    mine = np.flatnonzero(p.cand_target == k)
    vals = np.where(feasible[:, mine], p.affinity[mine][None, :], -np.inf)
    best = vals.max(axis=1)
    selfs = [i for i in mine if p.candidates[i].is_self]
    if selfs and t in index:
      on = bits[:, index[t]] == 1
      best = np.where(on, p.affinity[selfs[0]], best)
    reachable = np.isfinite(best)
    total[reachable] += p.importance[k] * best[reachable]
    total[~reachable] = -np.inf
  total[~affordable] = -np.inf
  if not np.isfinite(total).any():
    return None
  b = int(np.argmax(total))
  return float(total[b]), tuple(n for j, n in enumerate(p.nodes) if bits[b, j])


def solution_is_feasible(problem: Problem, sol: Solution) -> bool:
  """Checks a solution against the rules directly (used by tests)."""
  supervised = set(sol.supervised)
  if set(sol.chosen) != set(problem.targets):
    return False
  if sum(c for n, c in zip(problem.nodes, problem.costs, strict=True)
         if n in supervised) > sol.budget + 1e-9:
    return False
  for t, tr in sol.chosen.items():
    if not set(tr.required_sources()) <= supervised:
      return False
    if t in supervised and any(c.is_self and c.target == t for c in problem.candidates) and (
        not tr.is_self):
      return False
  return True


__all__ = ["SELF", "BadProblemError", "BipSolver", "InfeasibleBudgetError", "Problem",
           "Solution", "brute_force", "build_problem", "solve"]
