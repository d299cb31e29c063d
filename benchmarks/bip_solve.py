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


def ours(table: AffinityTable, order: int, budgets: list[int]) -> tuple[float, float, list]:
  """(sweep seconds incl. build, slowest single solve incl. build, objectives)."""
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
  model.budget.value = budget
  model.cvx.solve(solver=cp.HIGHS, warm_start=False, mip_rel_gap=0.0, **_NAIVE_OPTIONS)
  return float(model.cvx.value)


def run(name: str, table: AffinityTable, order: int, naive_sweep: bool) -> None:
  budgets = list(range(1, len(table.nodes) + 1))
  o_sweep, o_single, o_objs, worst, problem = ours(table, order, budgets)
  unpruned = bip.build_problem(table, table.targets, order=order, prune=False)
  print(f"\n[{name}] {len(problem.targets)} targets, {len(table.nodes)} tasks, order <= {order}: "
        f"{len(unpruned.candidates)} candidate transfers, {problem.num_pruned} pruned as "
        f"dominated -> {len(problem.candidates)}")
  t0 = time.perf_counter()
  n_obj = naive_solve(table, order, budgets[worst])
  n_single = time.perf_counter() - t0
  assert abs(n_obj - o_objs[worst]) < 1e-6, (n_obj, o_objs[worst])
  print(f"  single solve (budget {budgets[worst]}): ours {o_single:.3f} s, naive {n_single:.3f} s "
        f"-> {n_single / o_single:.1f}x")
  if naive_sweep:
    t0 = time.perf_counter()
    n_objs = [naive_solve(table, order, b) for b in budgets]
    n_sweep = time.perf_counter() - t0
    assert np.allclose(n_objs, o_objs, atol=1e-6)
    print(f"  sweep of {len(budgets)} budgets: ours {o_sweep:.3f} s, naive {n_sweep:.3f} s "
          f"-> {n_sweep / o_sweep:.1f}x")
  else:
    print(f"  sweep of {len(budgets)} budgets: ours {o_sweep:.3f} s (naive sweep skipped)")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", default="1k", help="published set for the published instance")
  parser.add_argument("--skip-naive-sweep", action="store_true")
  args = parser.parse_args()
  run(f"published {args.data}", published.load_published(args.data), 4,
      not args.skip_naive_sweep)
  run("random 26 tasks", random_table(), 4, not args.skip_naive_sweep)


if __name__ == "__main__":
  main()
