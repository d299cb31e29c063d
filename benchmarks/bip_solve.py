"""BIP solve time: our formulation beside the paper's naive one, on the same machine in one run.

    .venv/bin/python benchmarks/bip_solve.py [--seeds 0,1,2,3,4] [--naive-sweep] [--per-budget]

Instances:
- `published`: the paper's `1k` set (orders 1-4), all 22 targets, every task may be supervised,
  maximum order 4 (the all-task order-4 instance).
- `random` (one per seed): 26 tasks, each a target, its own network, every first-order transfer,
  orders 2-4 over each target's 5 best first-order sources (1,326 candidates), random affinities.
- `random40`: the same recipe over 40 synthetic tasks (seed 0), built as a `bip.Problem`
  directly since the task registry has 26 names.

Ours: the `strong` per-(target, source) rows with only s binary, dominated transfers pruned, the
budget a `cp.Parameter` (compiled once), HiGHS with presolve off. Naive: the paper's aggregated
row `order * x_i <= sum_j s_j` with x binary, no pruning, the problem rebuilt for every budget,
HiGHS defaults (presolve on), cut off after `--naive-limit` seconds (then shown as `>=`).

Per budget: the optimum, the LP relaxation's gap to it (ours and naive, % of the optimum),
branch-and-bound nodes and the time of a single solve (a fresh model at that budget, from the
affinity table to the answer, building included). `single` is the slowest budget's single solve;
`sweep` is one model's `BipSolver.sweep` over budgets 1..#tasks, building included. Goals
(issue 23): on the random 26-task instances median single <= 1 s, median sweep <= 10 s, worst
seed within 2x of those; the published instance no slower than before.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np

from taskonomy_jax import tasks
from taskonomy_jax.taxonomy import bip, published
from taskonomy_jax.taxonomy.affinities import SELF, AffinityTable, Transfer, make_transfer

_NAIVE_OPTIONS = {"output_flag": False, "mip_rel_gap": 0.0}


def random_affinities(names: list[str], beam: int = 5, seed: int = 0) -> dict[Transfer, float]:
  """All first order + orders 2-4 over each target's top `beam` first-order sources."""
  rng = np.random.default_rng(seed)
  aff: dict[Transfer, float] = {}
  for t in names:
    aff[Transfer((SELF,), t)] = float(rng.uniform(0.05, 0.3))
    firsts = {s: float(rng.uniform(0, 0.2)) for s in names if s != t}
    aff.update({Transfer((s,), t): a for s, a in firsts.items()})
    top = sorted(firsts, key=firsts.get, reverse=True)[:beam]
    for k in range(2, 5):
      for combo in itertools.combinations(top, k):
        base = max(firsts[s] for s in combo)
        aff[make_transfer(combo, t)] = base + float(rng.uniform(-0.05, 0.1))
  return aff


def random_table(num_tasks: int = 26, beam: int = 5, seed: int = 0) -> AffinityTable:
  """The random instance over the first `num_tasks` registry tasks (at most 26)."""
  return AffinityTable(random_affinities(tasks.names()[:num_tasks], beam, seed),
                       source=f"random seed {seed}")


def random_problem(num_tasks: int = 40, beam: int = 5, seed: int = 0, order: int = 4,
                   prune: bool = True) -> bip.Problem:
  """The random instance over `num_tasks` synthetic task names, as `bip.build_problem` would
  select it (every task a target and a source, unit costs and importance)."""
  names = [f"task{k:02d}" for k in range(num_tasks)]
  aff = random_affinities(names, beam, seed)
  cands, affs, tidx, pruned = bip.candidate_lists(
      [sorted((tr, a) for tr, a in aff.items() if tr.target == t and tr.order <= order)
       for t in names], prune)
  return bip.Problem(targets=tuple(names), nodes=tuple(names), costs=np.ones(num_tasks),
                     importance=np.ones(num_tasks), candidates=tuple(cands),
                     affinity=np.array(affs), cand_target=np.array(tidx), max_order=order,
                     num_pruned=pruned)


def naive_solve(problem: bip.Problem, budget: int, limit: float) -> tuple[float, float, bool]:
  """Builds and solves the naive model (unpruned `problem`) for one budget: (objective, seconds
  including building, whether it hit the time limit)."""
  start = time.perf_counter()
  model = bip.BipSolver(problem, formulation="naive")
  model.set_budget(budget)
  model.cvx.solve(solver=cp.HIGHS, warm_start=False, time_limit=limit, **_NAIVE_OPTIONS)
  hit = model.cvx.solver_stats.extra_stats.mip_gap > 0
  return float(model.cvx.value) * model._weight_scale, time.perf_counter() - start, hit


def measure_instance(make: Callable[[bool], bip.Problem], budgets: list[int],
                     naive_sweep: bool = False, naive_limit: float = 60.0) -> dict[str, Any]:
  """Ours beside the naive formulation on one instance (optima checked equal where both end).

  `make(prune)` builds the problem from the affinities. Returns the sizes, `rows` (per budget:
  optimum, LP gaps, nodes, single-solve seconds, naive seconds or None), `single`, `sweep`,
  `naive_single` (at our slowest budget) and `naive_sweep` (None unless asked).
  """
  rows = []
  for b in budgets:
    start = time.perf_counter()
    problem = make(True)
    sol = bip.BipSolver(problem).solve(b)
    single = time.perf_counter() - start
    unpruned = make(False)
    lp_ours = bip.BipSolver(problem, relax=True).lp_bound(b)
    lp_naive = bip.BipSolver(unpruned, formulation="naive", relax=True).lp_bound(b)
    rows.append({"budget": b, "optimum": sol.objective, "nodes": sol.nodes, "single": single,
                 "gap_ours": 100 * (lp_ours - sol.objective) / sol.objective,
                 "gap_naive": 100 * (lp_naive - sol.objective) / sol.objective, "naive": None})
  worst = max(range(len(rows)), key=lambda k: rows[k]["single"])
  for k, r in enumerate(rows):
    if naive_sweep or k == worst:
      obj, r["naive"], r["naive_cut"] = naive_solve(unpruned, r["budget"], naive_limit)
      if not r["naive_cut"]:
        assert abs(obj - r["optimum"]) < 1e-6, (r["budget"], obj, r["optimum"])
  start = time.perf_counter()
  problem = make(True)
  sweep = bip.BipSolver(problem).sweep(budgets)
  sweep_s = time.perf_counter() - start
  assert np.allclose([s.objective for s in sweep], [r["optimum"] for r in rows], atol=1e-9)
  return {"targets": len(problem.targets), "nodes": len(problem.nodes),
          "candidates": len(unpruned.candidates), "pruned": problem.num_pruned, "rows": rows,
          "worst_budget": rows[worst]["budget"], "single": rows[worst]["single"],
          "sweep": sweep_s, "naive_single": rows[worst]["naive"],
          "naive_single_cut": rows[worst].get("naive_cut", False),
          "naive_sweep": sum(r["naive"] for r in rows) if naive_sweep else None}


def measure(names: tuple[str, ...] = ("published", "random"), data: str = "1k",
            naive_sweep: bool = True, order: int = 4, seed: int = 0,
            naive_limit: float = 60.0) -> dict[str, dict[str, Any]]:
  """`measure_instance` on each named instance (`published`: the `data` set; `random`: the
  26-task instance of `seed`), every budget 1..#tasks, with the keys `benchmarks/suite.py`
  reads (`ours_single`, `naive_single`, `ours_sweep`, `naive_sweep`, ...)."""
  known = {"published": lambda: published.load_published(data),
           "random": lambda: random_table(seed=seed)}
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ValueError(f"unknown BIP instance(s) {unknown}; accepted: {sorted(known)}")
  out = {}
  for name in names:
    table = known[name]()
    m = measure_instance(lambda prune, t=table: bip.build_problem(t, t.targets, order=order,
                                                                  prune=prune),
                         list(range(1, len(table.nodes) + 1)), naive_sweep, naive_limit)
    out[name] = {**m, "tasks": len(table.nodes), "order": order, "budgets": len(m["rows"]),
                 "ours_single": m["single"], "ours_sweep": m["sweep"]}
  return out


def _secs(value: float | None, cut: bool = False) -> str:
  return "-" if value is None else f"{'>=' if cut else ''}{value:.3f}"


def _print(name: str, m: dict[str, Any], per_budget: bool) -> None:
  print(f"\n[{name}] {m['targets']} targets, {m['nodes']} supervisable: {m['candidates']} "
        f"candidate transfers, {m['pruned']} pruned as dominated -> "
        f"{m['candidates'] - m['pruned']}")
  if per_budget:
    print("  budget  optimum    LP gap ours  naive   nodes  single s  naive s")
    for r in m["rows"]:
      print(f"  {r['budget']:6d}  {r['optimum']:8.4f}  {round(r['gap_ours'], 2) + 0.0:9.2f}%  "
            f"{round(r['gap_naive'], 2) + 0.0:6.2f}%  {r['nodes']:6d}  {r['single']:8.3f}  "
            f"{_secs(r['naive'], r.get('naive_cut', False)):>7s}")
  naive = _secs(m["naive_single"], m["naive_single_cut"])
  print(f"  single (budget {m['worst_budget']}): ours {m['single']:.3f} s, naive {naive} s; "
        f"sweep of {len(m['rows'])} budgets: ours {m['sweep']:.3f} s, naive "
        f"{_secs(m['naive_sweep'])} s")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", default="1k", help="published set for the published instance")
  parser.add_argument("--seeds", default="0,1,2,3,4", help="seeds of the random 26-task instance")
  parser.add_argument("--naive-sweep", action="store_true", help="naive solve at every budget")
  parser.add_argument("--naive-limit", type=float, default=60.0, help="seconds per naive solve")
  parser.add_argument("--per-budget", action="store_true", help="print the per-budget rows")
  parser.add_argument("--skip", default="", help="comma-separated: published, random40")
  args = parser.parse_args()
  skip = set(args.skip.split(","))
  run = dict(naive_sweep=args.naive_sweep, naive_limit=args.naive_limit)
  if "published" not in skip:
    table = published.load_published(args.data)
    m = measure_instance(lambda prune: bip.build_problem(table, table.targets, order=4,
                                                         prune=prune),
                         list(range(1, len(table.nodes) + 1)), **run)
    _print(f"published {args.data}, order <= 4", m, args.per_budget)
  singles, sweeps = [], []
  for seed in [int(s) for s in args.seeds.split(",") if s]:
    table = random_table(seed=seed)
    m = measure_instance(lambda prune, t=table: bip.build_problem(t, t.targets, order=4,
                                                                  prune=prune),
                         list(range(1, 27)), **run)
    _print(f"random 26 tasks, seed {seed}", m, args.per_budget)
    singles.append(m["single"])
    sweeps.append(m["sweep"])
  if singles:
    print(f"\n[random 26 tasks, seeds {args.seeds}] single: median {statistics.median(singles):.3f}"
          f" s, worst {max(singles):.3f} s (goal 1 s); sweep: median "
          f"{statistics.median(sweeps):.3f} s, worst {max(sweeps):.3f} s (goal 10 s)")
  if "random40" not in skip:
    m = measure_instance(lambda prune: random_problem(40, prune=prune), list(range(1, 41)), **run)
    _print("random 40 tasks, seed 0", m, args.per_budget)


if __name__ == "__main__":
  main()
