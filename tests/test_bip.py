"""The taxonomy BIP against brute force, on random instances and on the paper's affinities."""

import itertools

import numpy as np
import pytest

from taskonomy_jax import tasks
from taskonomy_jax.taxonomy import bip, published
from taskonomy_jax.taxonomy.affinities import SELF, AffinityTable, Transfer, make_transfer

# Registry names used as node names of the random instances.
_POOL = ["normal", "depth_zbuffer", "reshading", "edge_occlusion", "curvature", "keypoints3d",
         "edge_texture", "keypoints2d", "autoencoding", "denoising", "room_layout"]


def _random_table(rng: np.random.Generator, max_order: int) -> tuple[AffinityTable, list, list]:
  """A random instance: 4-9 nodes, 1-5 targets, all first-order transfers (a few missing),
  random higher-order ones, own networks for most targets, affinities with ties."""
  n = int(rng.integers(4, 10))
  nodes = list(rng.choice(_POOL, size=n, replace=False))
  targets = list(rng.choice(nodes, size=int(rng.integers(1, min(5, n) + 1)), replace=False))
  aff = {}
  decimals = int(rng.choice([1, 2, 6]))  # coarse values make ties
  for t in targets:
    if rng.random() < 0.8:
      aff[Transfer((SELF,), t)] = round(float(rng.random()), decimals)
    for s in nodes:
      if rng.random() < 0.85:
        aff[Transfer((s,), t)] = round(float(rng.random()), decimals)
    for k in range(2, max_order + 1):
      for _ in range(int(rng.integers(0, 6))):
        srcs = rng.choice(nodes, size=k, replace=False)
        aff[make_transfer(srcs, t)] = round(float(rng.random()) * 1.3, decimals)
  return AffinityTable(aff), nodes, targets


def _random_costs(rng, nodes):
  kind = rng.integers(3)
  if kind == 0:
    return None  # unit costs
  if kind == 1:
    return {s: float(rng.choice([0.0, 0.5, 1.0, 2.0, 3.0])) for s in nodes}
  return {s: float(rng.uniform(0, 3)) for s in nodes}


def _check_against_brute_force(problem, solver, budget, unpruned=None):
  expected = bip.brute_force(unpruned or problem, budget)
  if expected is None:
    with pytest.raises(bip.InfeasibleBudgetError, match="too small"):
      solver.solve(budget)
    return False
  sol = solver.solve(budget)
  assert bip.solution_is_feasible(problem, sol), sol
  assert sol.objective == pytest.approx(expected[0], abs=1e-7), (budget, sol, expected)
  return True


def test_random_instances_match_brute_force():
  rng = np.random.default_rng(0)
  solved = infeasible = 0
  for case in range(300):
    order = 1 + case % 3
    table, nodes, targets = _random_table(rng, order)
    sources = [s for s in nodes if rng.random() < 0.8] or nodes[:1]
    importance = ({t: float(rng.choice([0.0, 0.5, 1.0, 3.0])) for t in targets}
                  if rng.random() < 0.5 else None)
    kwargs = dict(sources=sources, order=order, costs=_random_costs(rng, sources),
                  importance=importance)
    try:
      problem = bip.build_problem(table, targets, **kwargs)
    except bip.BadProblemError as e:  # some random instance leaves a target with no transfer
      assert "cannot be served" in str(e)
      continue
    unpruned = bip.build_problem(table, targets, prune=False, **kwargs)
    solver = bip.BipSolver(problem, formulation=bip.FORMULATIONS[case % 2])  # strong, tight
    total = float(problem.costs.sum())
    for budget in sorted({0.0, float(rng.uniform(0, total)), float(rng.integers(0, 4)), total}):
      if _check_against_brute_force(problem, solver, budget, unpruned):
        solved += 1
      else:
        infeasible += 1
  assert solved > 500 and infeasible > 20  # both outcomes are exercised


def _plain_optimum(problem, budget):
  """The paper's formulation (x binary, aggregated rows) solved afresh at `budget`, without
  any of `BipSolver.solve`'s shortcuts; None if infeasible."""
  plain = bip.BipSolver(problem, formulation="naive")
  plain.set_budget(budget)
  plain.cvx.solve(solver="HIGHS", **bip._HIGHS_EXACT)
  if plain.cvx.status == "infeasible":
    return None
  return float(plain.cvx.value) * plain._weight_scale


def test_sweep_and_shortcuts_match_the_plain_formulation():
  """Only s binary with the transfers read from s, the unconstrained optimum answered without
  a solve, and the sweep's reuse of a larger budget's optimum (and of an infeasible budget):
  at every budget, the same optimum as the plain formulation on the unpruned problem."""
  rng = np.random.default_rng(5)
  reused = solved = infeasible = 0
  for case in range(60):
    order = 1 + case % 4
    table, nodes, targets = _random_table(rng, order)
    costs = _random_costs(rng, nodes)
    try:
      problem = bip.build_problem(table, targets, nodes, order, costs)
    except bip.BadProblemError:
      continue
    unpruned = bip.build_problem(table, targets, nodes, order, costs, prune=False)
    total = float(problem.costs.sum())
    budgets = [0.0, 1.0, 2.0, 3.0, total / 2, total, total + 1, float(rng.uniform(0, total))]
    model = bip.BipSolver(problem, formulation=bip.FORMULATIONS[case % 2])
    for budget, sol in zip(budgets, model.sweep(budgets), strict=True):
      expected = _plain_optimum(unpruned, budget)
      if expected is None:
        assert sol is None
        with pytest.raises(bip.InfeasibleBudgetError, match="too small"):
          model.solve(budget)  # answered from the sweep's infeasible budget
        infeasible += 1
        continue
      assert sol is not None and bip.solution_is_feasible(problem, sol), (budget, sol)
      assert sol.objective == pytest.approx(expected, abs=1e-7), (case, budget, sol, expected)
      fresh = bip.BipSolver(problem).solve(budget)
      assert fresh.objective == pytest.approx(expected, abs=1e-7)
      reused += sol.nodes == 0
      solved += 1
  assert solved > 200 and reused > 100 and infeasible > 10


def test_any_scale_of_costs_budget_and_importance_gives_the_same_optimum():
  """HiGHS refuses matrix entries of 1e15 or more: costs of that size used to end in 'Cannot
  unpack invalid solution'. Costs enter as shares of the budget and weights are scaled to at
  most 1, so scaling costs with the budget, or all importance, changes nothing."""
  rng = np.random.default_rng(2)
  checked = 0
  for case in range(60):
    order = 1 + case % 2
    table, nodes, targets = _random_table(rng, order)
    costs = {s: float(rng.choice([0.0, 0.5, 1.0, 2.0, 3.0])) for s in nodes}
    try:
      problem = bip.build_problem(table, targets, nodes, order, costs)
    except bip.BadProblemError:
      continue
    scale = float(rng.choice([1e-200, 1e15, 1e20, 1e300]))
    weight = float(rng.choice([1e15, 1e300]))
    huge = bip.build_problem(table, targets, nodes, order, {n: c * scale for n, c in costs.items()},
                             {t: weight for t in targets})
    for budget in (1.0, 2.0, 3.5):
      expected = bip.brute_force(problem, budget)
      if expected is None:
        with pytest.raises(bip.InfeasibleBudgetError, match="too small"):
          bip.solve(huge, budget * scale)
        continue
      sol = bip.solve(huge, budget * scale)
      assert bip.objective_of(problem, sol.chosen) == pytest.approx(expected[0], abs=1e-7)
      assert sol.cost <= budget * scale * (1 + 1e-9)
      checked += 1
  assert checked > 50


def test_a_task_dearer_than_the_budget_is_never_supervised():
  table = AffinityTable({Transfer((SELF,), "normal"): 0.9, Transfer(("reshading",), "normal"): 0.2,
                         Transfer((SELF,), "reshading"): 0.5})
  for cost in (1e14, 1e15, 1e300, np.finfo(float).max):
    problem = bip.build_problem(table, ["normal", "reshading"], costs={"normal": cost})
    sol = bip.solve(problem, 1)
    assert sol.supervised == ("reshading",) and sol.objective == pytest.approx(0.7)
    assert bip.min_budget(problem) == 1
    assert bip.solve(problem, cost).objective == pytest.approx(1.4)  # now normal is affordable


def test_naive_formulation_matches_tight_on_unpruned_problems():
  rng = np.random.default_rng(1)
  for case in range(40):
    table, nodes, targets = _random_table(rng, 1 + case % 3)
    problem = bip.build_problem(table, targets, nodes, order=1 + case % 3, prune=False)
    naive = bip.BipSolver(problem, formulation="naive")
    for budget in (1.0, 2.0, float(len(problem.nodes))):
      _check_against_brute_force(problem, naive, budget)


def test_pruning_keeps_the_optimum_and_drops_dominated():
  a, b, c, t = "normal", "reshading", "curvature", "depth_zbuffer"
  table = AffinityTable({
      Transfer((a,), t): 0.5,
      make_transfer([a, b], t): 0.4,  # dominated by a alone
      make_transfer([a, c], t): 0.7,  # better than a alone: kept
      Transfer((b,), t): 0.6,
  })
  problem = bip.build_problem(table, [t], order=2)
  assert set(problem.candidates) == {Transfer((a,), t), make_transfer([a, c], t),
                                     Transfer((b,), t)}
  assert problem.num_pruned == 1
  sol = bip.solve(problem, 1)
  assert sol.chosen[t] == Transfer((b,), t) and sol.supervised == (b,)
  sol = bip.solve(problem, 2)
  assert sol.chosen[t] == make_transfer([a, c], t)
  assert sol.objective == pytest.approx(0.7)


def test_supervised_target_is_served_by_its_own_network():
  # Supervising `normal` is needed to serve `reshading` (the only transfer), and a transfer to
  # `normal` from `normal` scores above its own network: the rule still gives `self`.
  n, r = "normal", "reshading"
  table = AffinityTable({Transfer((SELF,), n): 0.2, Transfer((n,), n): 0.9,
                         Transfer((n,), r): 0.5, Transfer((SELF,), r): 0.6})
  sol = bip.solve(bip.build_problem(table, [n, r], [n]), 1)
  assert sol.supervised == (n,)
  assert sol.chosen[n].is_self and sol.chosen[r] == Transfer((n,), r)
  assert sol.objective == pytest.approx(0.7)
  sol = bip.solve(bip.build_problem(table, [n, r], [n, r]), 2)
  assert sol.chosen[r].is_self and sol.objective == pytest.approx(0.8)


def _published_cases(table, rng, count, max_nodes):
  nodes = table.nodes
  for _ in range(count):
    k = int(rng.integers(1, 9))
    targets = list(rng.choice(table.targets, size=k, replace=False))
    extra = [s for s in rng.choice(nodes, size=max_nodes, replace=False) if s not in targets]
    sources = list(dict.fromkeys([*targets[: int(rng.integers(0, k + 1))], *extra]))[:max_nodes]
    yield targets, sources


@pytest.mark.parametrize("order", [1, 2])
def test_published_subsets_match_brute_force(paper_results_dir, order):
  table = published.load_published("default", root=paper_results_dir)
  rng = np.random.default_rng(10 + order)
  checked = 0
  for targets, sources in _published_cases(table, rng, 60, 12):
    costs = _random_costs(rng, sources) if rng.random() < 0.4 else None
    try:
      problem = bip.build_problem(table, targets, sources, order=order, costs=costs)
    except bip.BadProblemError:
      continue
    solver = bip.BipSolver(problem)
    for budget in (1, 2, 3, 5, float(problem.costs.sum())):
      checked += _check_against_brute_force(problem, solver, budget)
  assert checked >= 150


def test_all_targets_all_sources_published_known_properties(paper_results_dir):
  """With every task allowed, a budget of every task is the unconstrained optimum: each target
  takes its best transfer overall."""
  table = published.load_published("default", root=paper_results_dir)
  problem = bip.build_problem(table, table.targets, order=2)
  sol = bip.BipSolver(problem).solve(len(problem.nodes))
  best = 0.0
  for t in table.targets:
    own = table.affinity.get(Transfer((SELF,), t), -1)
    others = max(a for tr, a in table.affinity.items() if tr.target == t and t not in tr.sources
                 and not tr.is_self)
    best += max(own, others)
  # The unconstrained value is an upper bound, reached unless serving a target by its own
  # network blocks a better transfer; the solver can never exceed it.
  assert sol.objective <= best + 1e-9
  # More budget never hurts.
  values = [bip.BipSolver(problem).solve(b).objective for b in (1, 2, 4, 8)]
  assert values == sorted(values)


@pytest.mark.parametrize("kwargs,message", [
    (dict(order=0), "order must be an integer from 1 to 4, got 0"),
    (dict(order=5), "order must be an integer from 1 to 4, got 5"),
    (dict(costs={"normal": -1}), "cost of 'normal' must be a finite number >= 0"),
    (dict(importance={"reshading": float("nan")}), "importance of 'reshading'"),
    (dict(sources=["normal"]), "target 'reshading' cannot be served"),
])
def test_bad_problems_are_named(kwargs, message):
  table = AffinityTable({Transfer((SELF,), "normal"): 0.5, Transfer(("reshading",), "normal"): 0.4,
                         Transfer((SELF,), "reshading"): 0.5})
  args = dict(sources=["normal", "reshading"], order=1) | kwargs
  with pytest.raises(bip.BadProblemError, match=message.replace("(", r"\(")):
    bip.build_problem(table, ["normal", "reshading"], **args)


def test_unknown_task_and_missing_target_and_budget_errors():
  table = AffinityTable({Transfer(("reshading",), "normal"): 0.4})
  with pytest.raises(tasks.UnknownTaskError, match="Did you mean 'normal'"):
    bip.build_problem(table, ["normall"])
  with pytest.raises(bip.BadProblemError, match=r"'depth_zbuffer' cannot be served.*no transfer"):
    bip.build_problem(table, ["depth_zbuffer"])
  problem = bip.build_problem(table, ["normal"])
  with pytest.raises(bip.BadProblemError, match="budget must be >= 0"):
    bip.solve(problem, -1)
  with pytest.raises(bip.InfeasibleBudgetError, match=r"budget 0.5 is too small.*at least 1"):
    bip.solve(problem, 0.5)


def test_solver_choice_by_name():
  table = AffinityTable({Transfer(("reshading",), "normal"): 0.4})
  problem = bip.build_problem(table, ["normal"])
  assert bip.solve(problem, 1, solver="scipy").objective == pytest.approx(0.4)
  with pytest.raises(bip.BadProblemError, match=r"unknown solver 'cplx'.*highs"):
    bip.BipSolver(problem, solver="cplx")
  missing = [k for k, v in bip.SOLVERS.items()
             if v.cvxpy_name not in __import__("cvxpy").installed_solvers()]
  with pytest.raises(bip.BadProblemError, match=f"solver '{missing[0]}' is not installed"):
    bip.BipSolver(problem, solver=missing[0])


def test_brute_force_known_answer():
  # Two targets, three candidate sources, unit costs, budget 1: supervising `normal` serves both
  # at 0.6 + 0.5; `reshading` alone gives 0.9 + 0.0 (served by its own network, and nothing for
  # depth is reachable) -> infeasible; so the answer is `normal` with 1.1.
  table = AffinityTable({
      Transfer(("normal",), "depth_zbuffer"): 0.6, Transfer(("normal",), "reshading"): 0.5,
      Transfer((SELF,), "reshading"): 0.9, Transfer(("curvature",), "depth_zbuffer"): 0.7,
  })
  problem = bip.build_problem(table, ["depth_zbuffer", "reshading"])
  assert bip.brute_force(problem, 1) == (pytest.approx(1.1), ("normal",))
  assert bip.brute_force(problem, 2)[0] == pytest.approx(1.6)  # curvature + reshading
  assert bip.brute_force(problem, 0) is None
  for b in (1, 2):
    assert bip.solve(problem, b).objective == pytest.approx(bip.brute_force(problem, b)[0])


def test_all_sets_of_a_tiny_instance_enumerated_by_hand():
  """Cross-check brute force itself with an itertools enumeration on a 4-node instance."""
  rng = np.random.default_rng(5)
  table, nodes, targets = _random_table(rng, 2)
  problem = bip.build_problem(table, targets, nodes, order=2, prune=False)
  for budget in range(len(problem.nodes) + 1):
    best = None
    for k in range(budget + 1):
      for chosen in itertools.combinations(problem.nodes, k):
        value = 0.0
        for ti, t in enumerate(problem.targets):
          opts = [a for tr, a, ct in zip(problem.candidates, problem.affinity,
                                         problem.cand_target, strict=True)
                  if ct == ti and set(tr.required_sources()) <= set(chosen)
                  and (tr.is_self or t not in chosen
                       or not any(c.is_self and c.target == t for c in problem.candidates))]
          if not opts:
            value = None
            break
          value += problem.importance[ti] * max(opts)
        if value is not None and (best is None or value > best):
          best = value
    got = bip.brute_force(problem, budget)
    assert (got is None) == (best is None)
    if best is not None:
      assert got[0] == pytest.approx(best)
