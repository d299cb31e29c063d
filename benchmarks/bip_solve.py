"""BIP solve time: our formulation beside a naive one, on the same machine in the same run.

    .venv/bin/python benchmarks/bip_solve.py [--data 1k] [--skip-naive-sweep]

Instances:
- `published`: the paper's `1k` set (orders 1-4), all 22 targets, every task may be supervised,
  maximum order 4 (the all-task order-4 instance).
- `random`: 26 tasks, each a target, every first-order transfer plus orders 2-4 over each
  target's 5 best first-order sources (1,300 candidates), random affinities (seed 0).

Ours: the `strong` per-(target, source) rows, dominated transfers pruned, the budget a
`cp.Parameter` (compiled once), HiGHS with presolve off. Naive: the paper's aggregated row
`order * x_i <= sum_j s_j`, no pruning, the problem rebuilt for every budget, HiGHS defaults
(presolve on). A single solve is timed from the affinity table to the answer (building
included) at the budget where ours is slowest; the sweep solves every budget from 1 to the number
of tasks. Goals: single <= 1 s, sweep <= 10 s.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import cvxpy as cp
import numpy as np

from taskonomy_jax import tasks
from taskonomy_jax.taxonomy import bip, published
from taskonomy_jax.taxonomy.affinities import SELF, AffinityTable, Transfer, make_transfer

_NAIVE_OPTIONS = {"output_flag": False}


def random_table(num_tasks: int = 26, beam: int = 5, seed: int = 0) -> AffinityTable:
  """The DESIGN.md instance: all first order + orders 2-4 over each target's top `beam`."""
  rng = np.random.default_rng(seed)
  names = tasks.names()[:num_tasks]
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
  return AffinityTable(aff, source=f"random seed {seed}")


def ours(table: AffinityTable, order: int, budgets: list[int]
         ) -> tuple[float, float, list[float], int, bip.Problem]:
  """(sweep s incl. build, slowest single solve s incl. build, objectives, its index, problem)."""
  start = time.perf_counter()
  problem = bip.build_problem(table, table.targets, order=order)
  model = bip.BipSolver(problem)
  build = time.perf_counter() - start
  per, objs = [], []
  for b in budgets:
    t0 = time.perf_counter()
    objs.append(model.solve(b).objective)
    per.append(time.perf_counter() - t0)
  return build + sum(per), build + max(per), objs, int(np.argmax(per)), problem


def naive_solve(table: AffinityTable, order: int, budget: int) -> float:
  """Builds and solves the naive model for one budget; returns the objective."""
  problem = bip.build_problem(table, table.targets, order=order, prune=False)
  model = bip.BipSolver(problem, formulation="naive")
  model.set_budget(budget)
  model.cvx.solve(solver=cp.HIGHS, warm_start=False, mip_rel_gap=0.0, **_NAIVE_OPTIONS)
  return float(model.cvx.value)


def measure_instance(table: AffinityTable, order: int, naive_sweep: bool = True
                     ) -> dict[str, Any]:
  """Ours beside the naive formulation on one instance (objectives checked equal).

  Returns seconds: `ours_single`, `naive_single` (at the budget where ours was slowest),
  `ours_sweep`, `naive_sweep` (None if skipped), plus the instance's sizes.
  """
  budgets = list(range(1, len(table.nodes) + 1))
  o_sweep, o_single, o_objs, worst, problem = ours(table, order, budgets)
  unpruned = bip.build_problem(table, table.targets, order=order, prune=False)
  t0 = time.perf_counter()
  n_obj = naive_solve(table, order, budgets[worst])
  n_single = time.perf_counter() - t0
  assert abs(n_obj - o_objs[worst]) < 1e-6, (n_obj, o_objs[worst])
  n_sweep = None
  if naive_sweep:
    t0 = time.perf_counter()
    n_objs = [naive_solve(table, order, b) for b in budgets]
    n_sweep = time.perf_counter() - t0
    assert np.allclose(n_objs, o_objs, atol=1e-6)
  return {"targets": len(problem.targets), "tasks": len(table.nodes), "order": order,
          "candidates": len(unpruned.candidates), "pruned": problem.num_pruned,
          "budgets": len(budgets), "worst_budget": budgets[worst],
          "ours_single": o_single, "naive_single": n_single,
          "ours_sweep": o_sweep, "naive_sweep": n_sweep}


def instances(data: str = "1k") -> dict[str, Callable[[], AffinityTable]]:
  """The benchmark's instances by name (tables are built lazily)."""
  return {"published": lambda: published.load_published(data), "random": random_table}


def measure(names: Sequence[str] = ("published", "random"), data: str = "1k",
            naive_sweep: bool = True, order: int = 4) -> dict[str, dict[str, Any]]:
  """`measure_instance` for each named instance (see `instances`)."""
  known = instances(data)
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ValueError(f"unknown BIP instance(s) {unknown}; accepted: {sorted(known)}")
  return {n: measure_instance(known[n](), order, naive_sweep) for n in names}


def _print(name: str, m: dict[str, Any]) -> None:
  print(f"\n[{name}] {m['targets']} targets, {m['tasks']} tasks, order <= {m['order']}: "
        f"{m['candidates']} candidate transfers, {m['pruned']} pruned as dominated -> "
        f"{m['candidates'] - m['pruned']}")
  print(f"  single solve (budget {m['worst_budget']}): ours {m['ours_single']:.3f} s, naive "
        f"{m['naive_single']:.3f} s -> {m['naive_single'] / m['ours_single']:.1f}x")
  if m["naive_sweep"] is not None:
    print(f"  sweep of {m['budgets']} budgets: ours {m['ours_sweep']:.3f} s, naive "
          f"{m['naive_sweep']:.3f} s -> {m['naive_sweep'] / m['ours_sweep']:.1f}x")
  else:
    print(f"  sweep of {m['budgets']} budgets: ours {m['ours_sweep']:.3f} s (naive sweep skipped)")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", default="1k", help="published set for the published instance")
  parser.add_argument("--skip-naive-sweep", action="store_true")
  args = parser.parse_args()
  for name, m in measure(data=args.data, naive_sweep=not args.skip_naive_sweep).items():
    _print(f"published {args.data}" if name == "published" else "random 26 tasks", m)


if __name__ == "__main__":
  main()
