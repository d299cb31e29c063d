"""Figures recomputed from affinities by one command: `taskonomy figures --out DIR`.

- `affinity_matrix.png`: the first-order affinity matrix.
- `taxonomies.png`: the taxonomy graphs for a few budgets.
- `quality_gain_vs_budget.png`: mean Quality and Gain of the chosen taxonomy against the
  supervision budget, one curve per maximum order.
- `similarity_tree.png`: tasks clustered by their transfer-out affinities (the paper's Fig. 13).
- `figures.json`: the numbers behind the curves and graphs.
- `taxonomies_by_budget.json`: the taxonomy (`Taxonomy.to_json`) at every feasible budget, at
  the highest order.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence

from tqdm import tqdm

from taskonomy_jax import files
from taskonomy_jax.taxonomy import api, bip, draw, published
from taskonomy_jax.taxonomy.affinities import AffinityTable


def budget_sweep(table: AffinityTable, targets: Sequence[str], sources: Sequence[str] | None,
                 order: int, budgets: Sequence[float],
                 solver: str = bip.DEFAULT_SOLVER) -> list[api.Taxonomy]:
  """Solves one instance for every budget (compiled once); infeasible budgets are skipped."""
  problem = bip.build_problem(table, targets, sources, order)
  model = bip.BipSolver(problem, solver)
  out = []
  for b in tqdm(budgets, desc=f"order {order} budgets", leave=False):
    try:
      sol = model.solve(b)
    except bip.InfeasibleBudgetError:
      continue
    out.append(api.taxonomy_from_solution(table, problem, sol, solver,
                                          sources if sources is not None else table.nodes))
  return out


def make_figures(out: pathlib.Path, data: str = "default", root: str | None = None,
                 targets: Sequence[str] | None = None, orders: Sequence[int] | None = None,
                 graph_budgets: Sequence[float] = (2, 4, 8),
                 solver: str = bip.DEFAULT_SOLVER,
                 selection: api.Selection | None = None) -> list[pathlib.Path]:
  """Draws the four figures for one affinity set; returns the paths written. `selection`: a
  computed run's resampled choices, drawn and listed with the graphs of its budgets."""
  table = published.load_published(data, root)
  targets = list(targets) if targets else table.targets
  orders = list(orders) if orders else list(range(1, min(table.max_order, bip.MAX_ORDER) + 1))
  for o in orders:
    bip.check_order(o)
  out.mkdir(parents=True, exist_ok=True)
  budgets = list(range(0, len(table.nodes) + 1))
  paths = [out / "affinity_matrix.png", out / "taxonomies.png",
           out / "quality_gain_vs_budget.png", out / "similarity_tree.png", out / "figures.json",
           out / "taxonomies_by_budget.json"]
  draw.affinity_heatmap(table, paths[0], title=f"First-order task affinities ({data})")
  tree_leaves = draw.similarity_dendrogram(table, paths[3],
                                           title=f"Task similarity tree ({data})")
  sweeps = {o: budget_sweep(table, targets, None, o, budgets, solver)
            for o in tqdm(orders, desc="orders")}
  top = max(orders)
  graphs = [dataclasses.replace(t, selection=selection) for t in sweeps[top]
            if t.budget in set(graph_budgets)]
  draw.draw_many(graphs, paths[1])
  series = {f"order <= {o}": {"budget": [t.budget for t in s],
                              "quality": [t.mean_quality for t in s],
                              "gain": [t.mean_gain for t in s]} for o, s in sweeps.items()}
  draw.budget_curves(series, paths[2],
                     f"{len(targets)} targets, any task may be supervised (cost 1 each), "
                     f"published set '{data}'")
  summary = {"data": table.source, "targets": targets, "orders": orders,
             "curves": series, "similarity_tree_leaves": tree_leaves,
             "graphs": [t.to_json() for t in graphs]}
  files.write_atomic(paths[4], json.dumps(summary, indent=1))
  files.write_atomic(paths[5], json.dumps({"data": table.source, "order": top, "taxonomies": [
      dataclasses.replace(t, selection=None).to_json() for t in sweeps[top]]}, indent=1))
  return paths
