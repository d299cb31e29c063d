"""The gates a computed taxonomy must pass before it counts as a result (issue 20).

A taxonomy is only a result when its run carries signal (DESIGN.md, "the paper's facts"): the
task networks beat trivial baselines, transfers beat random projection beyond noise, the readouts
finished training, and answers known from the paper come out right. Each gate here is a pure
function of held-out losses or affinities; `report` gathers them into one JSON-able verdict and
`summary_lines` into the lines a run prints last.

Noise is measured by a cluster bootstrap: the held-out views of one camera point see the same
scene from nearby poses, so their losses are correlated and resampling views one by one would
understate the noise. Points are drawn with replacement and each drawn point brings all its
views (`point_resamples`). Every interval is a percentile interval over those resamples.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from taskonomy_jax.taxonomy import ahp, api, bip, compare, published, similarity
from taskonomy_jax.taxonomy.affinities import SELF, AffinityTable, Transfer, make_transfer
from taskonomy_jax.transfer import affinity

RANDOM = "random"
BASELINES = ("mean image", "median image")
DEPTHS = ("depth_zbuffer", "depth_euclidean")
# Known answers (b) and (c): in the paper random projection is among the two worst sources of
# these 3D targets, and in the worse half for the other 3D ones.
RANDOM_WORST_TWO = ("depth_zbuffer", "depth_euclidean", "normal", "reshading", "curvature")
RANDOM_WORSE_HALF = ("edge_occlusion", "keypoints3d", "segment_unsup25d")
# Paper agreement: Spearman rho over the common first-order pairs at least this, p below this.
MIN_RHO, MAX_RHO_P = 0.5, 0.01
MAX_COHESION_P = 0.05
# Gates that must have been evaluated for a run to be trusted; the others may be not applicable
# (no paper data, too few 3D tasks in the run) and then neither pass nor fail.
REQUIRED = ("networks", "transfers_vs_random")
TITLES = {
    "networks": "task networks vs mean and median image",
    "transfers_vs_random": "first-order transfers vs random projection",
    "readouts_converged": "readouts converged",
    "depth_pair": "known answer: the two depths are each other's best source",
    "random_worst_two": "known answer: random among the 2 worst sources of depth/normal/"
                        "reshading/curvature",
    "random_worse_half": "known answer: random in the worse half for the other 3D tasks",
    "paper_agreement": f"agreement with the paper (Spearman rho >= {MIN_RHO}, p < {MAX_RHO_P})",
    "three_d_cohesion": f"3D tasks cluster in the similarity tree (p < {MAX_COHESION_P})",
}


# --- the cluster bootstrap ---------------------------------------------------------------------


def _points(groups: np.ndarray) -> tuple[np.ndarray, int]:
  """(N,) point ids -> (N,) index of each view's point in 0..P-1, and P."""
  groups = np.asarray(groups)
  if groups.ndim != 1 or groups.size == 0:
    raise ValueError(f"groups must be a non-empty (N,) array of point ids, got {groups.shape}")
  _, inverse = np.unique(groups, return_inverse=True)
  return inverse.ravel(), int(inverse.max()) + 1


def point_resamples(groups: np.ndarray, num_resamples: int, seed: int = 0) -> np.ndarray:
  """View multiplicities of `num_resamples` cluster-bootstrap resamples.

  Each resample draws P points (P distinct ids in `groups`) with replacement and takes every
  view of each drawn point, so view n appears as often as its point was drawn.

  Args:
    groups: (N,) int id of the camera point of each view.
    num_resamples: B, at least 1.
    seed: seeds numpy's default generator.

  Returns:
    (B, N) int array: how many times each view is in each resample.
  """
  if num_resamples < 1:
    raise ValueError(f"num_resamples must be >= 1, got {num_resamples}")
  inverse, num_points = _points(groups)
  rng = np.random.default_rng(seed)
  draws = rng.integers(0, num_points, (num_resamples, num_points))
  # Count the draws of each point per resample with one bincount over (resample, point) pairs
  # (several times faster than numpy's multinomial, which loops over resamples).
  flat = (np.arange(num_resamples)[:, None] * num_points + draws).ravel()
  counts = np.bincount(flat, minlength=num_resamples * num_points)
  return counts.reshape(num_resamples, num_points)[:, inverse]


def _interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
  """Percentile interval over the last axis of `samples` (..., B) -> (...,), (...,)."""
  if not 0 < level < 1:
    raise ValueError(f"level must lie in (0, 1), got {level}")
  tail = (1 - level) / 2
  low, high = np.quantile(samples, [tail, 1 - tail], axis=-1)
  return low, high


def _check_losses(name: str, x: np.ndarray, n: int | None = None) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim < 1 or x.shape[-1] == 0 or (n is not None and x.shape[-1] != n):
    want = f"(..., {n})" if n is not None else "(..., N) with N > 0"
    raise ValueError(f"{name} has shape {x.shape}, expected {want} (one loss per held-out view)")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} holds NaN or infinite losses")
  return x


def _bootstrap_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """Means of (M, N) per-view values over B resamples given as (B, N) multiplicities -> (M, B)."""
  return (values @ weights.T) / weights.sum(axis=1)


def bootstrap_diff(a: np.ndarray, b: np.ndarray, groups: np.ndarray, num_resamples: int = 1000,
                   seed: int = 0, level: float = 0.95) -> dict[str, float]:
  """Mean difference of two predictors' losses on the same views, with a cluster-bootstrap
  percentile interval.

  Args:
    a, b: (N,) per-example losses of two predictors on the same held-out views.
    groups: (N,) int id of the camera point each view belongs to.
    num_resamples: bootstrap resamples (points drawn with replacement, all their views taken).
    seed: seed of the resampling.
    level: coverage of the interval.

  Returns:
    {"mean": mean(a - b) over all views, "low", "high": the interval's ends}. high < 0 says a
    has the lower loss beyond the resampling noise.
  """
  a = _check_losses("a", a)
  b = _check_losses("b", b, a.shape[-1])
  if a.ndim != 1 or np.shape(groups) != a.shape:
    raise ValueError(f"a, b and groups must be (N,) arrays of one length, got {a.shape}, "
                     f"{b.shape}, {np.shape(groups)}")
  d = a - b
  means = _bootstrap_means(d[None], point_resamples(groups, num_resamples, seed))[0]
  low, high = _interval(means, level)
  return {"mean": float(d.mean()), "low": float(low), "high": float(high)}


# --- gate 1: task networks vs trivial baselines -------------------------------------------------


def network_gate(self_losses: np.ndarray, mean_losses: np.ndarray, median_losses: np.ndarray,
                 groups: np.ndarray, num_resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, Any]:
  """Does a task network beat predicting the training set's mean and median image?

  Args:
    self_losses, mean_losses, median_losses: (N,) per-view held-out losses of the network and of
      the two constant predictions.
    groups: (N,) camera point of each view.

  Returns:
    {"mean image": {mean, low, high, passes}, "median image": {...}, "passes": bool}, where the
    differences are network - baseline and a baseline is beaten when high < 0.
  """
  out: dict[str, Any] = {}
  for name, base in zip(BASELINES, (mean_losses, median_losses), strict=True):
    diff = bootstrap_diff(self_losses, base, groups, num_resamples, seed, level)
    out[name] = {**diff, "passes": diff["high"] < 0}
  out["passes"] = all(out[name]["passes"] for name in BASELINES)
  return out


# --- gate 2: transfers vs random projection -----------------------------------------------------


def transfers_vs_random(candidates: Sequence[tuple[str, ...]], losses: np.ndarray,
                        groups: np.ndarray, random: str = RANDOM, num_resamples: int = 1000,
                        seed: int = 0, level: float = 0.95) -> dict[str, dict[str, Any]]:
  """Each first-order transfer to one target against the random-projection transfer.

  One resample serves every candidate, so the comparisons stay paired by view.

  Args:
    candidates: S source tuples of the target's transfers; `(random,)` must be one of them.
    losses: (S, N) their per-view held-out losses.
    groups: (N,) camera point of each view.

  Returns:
    source name -> {mean, low, high, beats_random} for every first-order candidate but random;
    the difference is candidate - random, and beats_random is high < 0.
  """
  losses = _check_losses("losses", losses)
  if losses.ndim != 2 or len(candidates) != len(losses) or np.shape(groups) != losses.shape[1:]:
    raise ValueError(f"{len(candidates)} candidates, losses {losses.shape} and groups "
                     f"{np.shape(groups)}: expected S candidates, (S, N) and (N,)")
  cands = [tuple(c) for c in candidates]
  if (random,) not in cands:
    raise ValueError(f"no {random!r} transfer among the candidates {cands}: the gate compares "
                     "every transfer with random projection")
  rows = [i for i, c in enumerate(cands) if len(c) == 1 and c != (random,)]
  diffs = losses[rows] - losses[cands.index((random,))]
  means = _bootstrap_means(diffs, point_resamples(groups, num_resamples, seed))
  low, high = _interval(means, level)
  return {cands[i][0]: {"mean": float(d.mean()), "low": float(lo), "high": float(hi),
                        "beats_random": bool(hi < 0)}
          for i, d, lo, hi in zip(rows, diffs, low, high, strict=True)}


# --- gate 4: answers known from the paper ------------------------------------------------------


def _ranked_sources(first_order: Mapping[tuple[str, str], float], target: str) -> list[str]:
  """The target's first-order sources, best (highest affinity) first; the target's own encoder
  (source == target, which the published tables have) is left out: it is no transfer."""
  srcs = [s for (s, t) in first_order if t == target and s not in (target, SELF)]
  return sorted(srcs, key=lambda s: -first_order[(s, target)])


def _random_rank(first_order: Mapping[tuple[str, str], float], target: str,
                 random: str) -> dict[str, Any] | None:
  """Where random projection stands among a target's sources; None when it is not there."""
  ranked = _ranked_sources(first_order, target)
  if random not in ranked:
    return None
  score = first_order[(random, target)]
  return {"rank": ranked.index(random) + 1, "of": len(ranked),
          "num_better": sum(first_order[(s, target)] > score for s in ranked),
          "worse_sources": [s for s in ranked if first_order[(s, target)] < score]}


def _all_pass(results: Iterable[bool | None]) -> bool | None:
  """False if any result is False, True if some are True and none False, else None."""
  results = [r for r in results if r is not None]
  return all(results) if results else None


def known_answers(first_order: Mapping[tuple[str, str], float], targets: Iterable[str],
                  random: str = RANDOM) -> dict[str, dict[str, Any]]:
  """Checks answers the paper's data gives, on a run's first-order affinities.

  (a) `depth_pair`: depth_zbuffer and depth_euclidean are each other's best first-order source.
  (b) `random_worst_two`: for each of depth_zbuffer, depth_euclidean, normal, reshading and
      curvature, random projection is among its two worst sources (at most one source is worse).
  (c) `random_worse_half`: for each of edge_occlusion, keypoints3d and segment_unsup25d, random
      is in the worse half of its sources (at least as many sources beat it as it beats).

  Args:
    first_order: (source, target) -> AHP affinity (higher is better) of first-order transfers;
      random projection is the source `random`. A `target -> target` entry is ignored.
    targets: the run's targets; a check only looks at these.

  Returns:
    check name -> {"passes": True/False, or None when a task it needs is not in the run, and
    "evidence"}; (b) and (c) pass when every target they could check passes.
  """
  targets = set(targets)
  out: dict[str, dict[str, Any]] = {}
  evidence: dict[str, Any] = {}
  for target, other in (DEPTHS, DEPTHS[::-1]):
    ranked = _ranked_sources(first_order, target) if target in targets else []
    if other in ranked:
      evidence[target] = {"best": ranked[0], "best_affinity": first_order[(ranked[0], target)],
                          f"{other}_affinity": first_order[(other, target)],
                          f"{other}_rank": ranked.index(other) + 1, "passes": ranked[0] == other}
  out["depth_pair"] = {"passes": (all(e["passes"] for e in evidence.values())
                                  if len(evidence) == 2 else None), "evidence": evidence}
  rules = (("random_worst_two", RANDOM_WORST_TWO, lambda r: len(r["worse_sources"]) <= 1),
           ("random_worse_half", RANDOM_WORSE_HALF,
            lambda r: r["num_better"] >= len(r["worse_sources"])))
  for name, names, rule in rules:
    per_target = {}
    for target in names:
      r = _random_rank(first_order, target, random) if target in targets else None
      if r is not None:
        per_target[target] = {**r, "passes": bool(rule(r))}
    out[name] = {"passes": _all_pass(r["passes"] for r in per_target.values()),
                 "evidence": per_target}
  return out


# --- noise on the affinities and on the selection ----------------------------------------------


# Camera points of the held-out examples: one (N,) array every target is measured on, or per
# target its own (N_t,) array (a multi-view target's samples are not the views), all in one id
# space.
Groups = np.ndarray | Mapping[str, np.ndarray]


def _check_per_target(per_target: Mapping[str, affinity.TargetLosses],
                      groups: Groups) -> dict[str, np.ndarray]:
  """Every target's (N_t,) point ids, checked against its losses."""
  if not per_target:
    raise ValueError("per_target is empty: no target's losses to resample")
  shared = not isinstance(groups, Mapping)
  missing = [] if shared else sorted(set(per_target) - set(groups))
  if missing:
    raise ValueError(f"no point ids for {', '.join(missing)}")
  out = {t: np.asarray(groups if shared else groups[t]) for t in per_target}
  for target, tl in per_target.items():
    n = len(out[target])
    if len(tl.self_losses) != n:
      raise ValueError(f"{target}: {len(tl.self_losses)} held-out examples but {n} point ids; "
                       "each target's losses and point ids must be of the same examples")
  return out


def target_resamples(per_target: Mapping[str, affinity.TargetLosses], groups: Groups,
                     num_resamples: int, seed: int = 0) -> dict[str, np.ndarray]:
  """`point_resamples` shared by every target: one draw of the camera points (over every id
  any target has), each target's examples taking their point's multiplicity.

  Returns:
    target -> (B, N_t) int multiplicities. With one (N,) array for all targets, each is
    `point_resamples(groups, num_resamples, seed)`.
  """
  by_target = _check_per_target(per_target, groups)
  universe = np.unique(np.concatenate([g.ravel() for g in by_target.values()]))
  counts = point_resamples(universe, num_resamples, seed)  # (B, P): universe ids are distinct
  return {t: counts[:, np.searchsorted(universe, g)] for t, g in by_target.items()}


def bootstrap_affinities(per_target: Mapping[str, affinity.TargetLosses], groups: Groups,
                         num_resamples: int = 200, seed: int = 0
                         ) -> tuple[list[Transfer], np.ndarray]:
  """`affinity.affinity_table`'s affinities on cluster-bootstrap resamples of the views.

  One resample (`point_resamples`) serves every candidate of every target, so each tournament
  stays paired by view. A tournament on a resample is the multiplicity-weighted mean of the
  per-view comparisons, so the (S, S, N) comparisons are made once and each resample is one
  matrix product; the AHP eigenvector is then `ahp.ahp_affinities` per resample. That
  eigen-decomposition is the cost (0.2-0.4 ms at S = 10-30 on one shared core): 200 resamples
  took 0.3 s at 7 targets x 9 candidates x 220 views and 2.6 s at 22 targets x 31.

  Args:
    per_target: every target's losses.
    groups: (N,) camera point of each view, or per target its examples' (`Groups`).

  Returns:
    The T transfers (each target's candidates, then `self`) and a (B, T) array of affinities.
  """
  resamples = target_resamples(per_target, groups, num_resamples, seed)
  transfers: list[Transfer] = []
  columns = []
  for target, tl in per_target.items():
    weights = resamples[target].astype(np.float64)  # (B, N_t)
    total = weights.sum(axis=1)
    losses = np.concatenate([tl.losses, tl.self_losses[None]])
    _check_losses(f"{target}'s losses", losses)
    s = len(losses)
    a, b = losses[:, None, :], losses[None, :, :]
    beats = ((a < b) + 0.5 * (a == b)).reshape(s * s, -1)  # (S*S, N), as in tournament_matrix
    wins = (beats @ weights.T / total).T.reshape(-1, s, s)  # (B, S, S)
    columns.append(np.stack([ahp.ahp_affinities(w) for w in wins]))
    transfers += [make_transfer(c, target) for c in [*tl.candidates, (SELF,)]]
  return transfers, np.concatenate(columns, axis=1)


def affinity_intervals(per_target: Mapping[str, affinity.TargetLosses], groups: Groups,
                       num_resamples: int = 200, seed: int = 0, level: float = 0.95
                       ) -> dict[Transfer, tuple[float, float]]:
  """Percentile interval of every transfer's affinity over cluster-bootstrap resamples.

  Args: as `bootstrap_affinities`; level: coverage of each interval.

  Returns:
    transfer -> (low, high), for every candidate of every target and each target's `self`.
  """
  transfers, samples = bootstrap_affinities(per_target, groups, num_resamples, seed)
  low, high = _interval(samples.T, level)
  return {t: (float(lo), float(hi)) for t, lo, hi in zip(transfers, low, high, strict=True)}


def _resampled(per_target: Mapping[str, affinity.TargetLosses],
               examples: Mapping[str, np.ndarray]) -> dict[str, affinity.TargetLosses]:
  """Every target's losses on its examples `examples[target]` (an index array, repeats
  allowed)."""
  return {t: affinity.TargetLosses(tl.candidates, tl.losses[:, examples[t]],
                                   tl.self_losses[examples[t]], tl.scratch_losses[examples[t]])
          for t, tl in per_target.items()}


def selection_frequencies(per_target: Mapping[str, affinity.TargetLosses], groups: Groups,
                          budgets: Sequence[float], order: int = 1, num_resamples: int = 50,
                          seed: int = 0, sources: Sequence[str] | None = None,
                          costs: Mapping[str, float] | None = None,
                          solver: str = bip.DEFAULT_SOLVER) -> dict[float, dict[str, float]]:
  """How often the BIP picks each supervised set when the held-out views are resampled.

  For each cluster-bootstrap resample: the affinity table of the resampled losses
  (`affinity.affinity_table`), the BIP compiled once (`bip.BipSolver`; dominated-transfer pruning
  depends on the affinities, so the model cannot be shared across resamples), then solved at
  every budget. Budgets below the smallest feasible one (the same for every resample: pruning
  keeps, for each dropped transfer, one needing a subset of its sources) count as `infeasible`
  without a solve. The solves are the cost (CVXPY + HiGHS, ~20 ms each, compiling ~10 ms): 50
  resamples x 4 budgets took 4-6 s at 7 targets x 8 candidates (`api.solve_taxonomy` per budget,
  which compiles every time, took 1.5 times as long).

  Args:
    per_target: every target's losses; the targets are the BIP's targets.
    groups: (N,) camera point of each view, or per target its examples' (`Groups`).
    budgets: supervision budgets to solve at.
    order: maximum transfer order; sources, costs, solver: as `bip.build_problem` / `BipSolver`.

  Returns:
    budget -> {"+".join(sorted(supervised set)) or "infeasible": fraction of resamples}, most
    frequent first.
  """
  multiplicity = target_resamples(per_target, groups, num_resamples, seed)
  targets = list(per_target)
  need = bip.min_budget(bip.build_problem(affinity.affinity_table(per_target), targets, sources,
                                          order, costs))
  counts: dict[float, dict[str, int]] = {b: {} for b in budgets}
  for r in range(num_resamples):
    examples = {t: np.repeat(np.arange(m.shape[1]), m[r]) for t, m in multiplicity.items()}
    table = affinity.affinity_table(_resampled(per_target, examples))
    model = bip.BipSolver(bip.build_problem(table, targets, sources, order, costs), solver)
    for budget in budgets:
      key = api.INFEASIBLE
      if budget >= need - 1e-9:
        # A fallback: the budget check above should already have caught infeasibility.
        with contextlib.suppress(bip.InfeasibleBudgetError):
          key = api.supervised_key(model.solve(budget).supervised)
      counts[budget][key] = counts[budget].get(key, 0) + 1
  return {b: {k: v / num_resamples for k, v in sorted(c.items(), key=lambda kv: -kv[1])}
          for b, c in counts.items()}


# --- agreement with the paper and the 3D cluster ------------------------------------------------


def paper_agreement(ours: AffinityTable, paper: AffinityTable) -> dict[str, Any]:
  """`compare.compare(ours, paper)` plus `passes`: Spearman rho >= MIN_RHO and p < MAX_RHO_P
  over the first-order pairs both tables have (None when under 3 pairs)."""
  out = compare.compare(ours, paper)
  rho = out.get("spearman_all")
  out["passes"] = None if rho is None else bool(rho["rho"] >= MIN_RHO and rho["p"] < MAX_RHO_P)
  return out


def load_paper(data: str = "default") -> AffinityTable | None:
  """The paper's published table, or None when it cannot be found here (the gate is then not
  evaluated)."""
  try:
    return published.load_published(data)
  except published.PublishedDataError:
    return None


def three_d_cohesion(table: AffinityTable, group: Sequence[str] = similarity.THREE_D,
                     samples: int = 2000, seed: int = 0) -> dict[str, Any]:
  """How tightly the 3D tasks cluster in the table's own similarity tree (paper Fig. 13).

  The tree is over every task with a first-order affinity to each target (as in
  `compare.compare`), each task's feature its transfer-out affinities. Returns {"tasks" (the 3D
  tasks in the tree), "cohesion", "p" (permutation p-value, `similarity.cohesion_p_value`),
  "passes": p < MAX_COHESION_P}; p and passes are None with under 3 3D tasks in the tree, or
  when every task in it is a 3D task (nothing to cluster apart from).
  """
  targets = table.targets
  tasks = similarity.complete_sources(table, table.nodes, targets)
  members = [t for t in tasks if t in set(group)]
  out: dict[str, Any] = {"tasks": members, "cohesion": None, "p": None, "passes": None}
  if len(members) >= 3 and len(tasks) > len(members):
    z = similarity.similarity_tree(similarity.transfer_out_features(table, tasks, targets))
    out["cohesion"] = similarity.cohesion(z, tasks, group)
    out["p"] = similarity.cohesion_p_value(z, tasks, group, samples, seed)
    out["passes"] = bool(out["p"] < MAX_COHESION_P)
  return out


# --- the report ----------------------------------------------------------------------------------


def _jsonable(x: Any) -> Any:
  """Transfers as 'a+b -> t' strings, numpy scalars as Python numbers, tuples as lists."""
  if isinstance(x, Mapping):
    return {(str(k) if isinstance(k, Transfer) else k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, Transfer):
    return str(x)
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, np.ndarray):
    return x.tolist()
  return x


def _verdict(passes: bool | None) -> str:
  return {True: "pass", False: "FAIL", None: "not evaluated"}[passes]


def _networks_gate(networks: Mapping[str, Mapping]) -> dict[str, Any]:
  failed = [t for t, g in networks.items() if not g["passes"]]
  passes = not failed if networks else None
  detail = f"; not clearly below both: {', '.join(failed)}" if failed else ""
  return {"passes": passes, "per_target": dict(networks),
          "rule": "every task network's held-out loss is below the mean-image and median-image "
                  "baselines' beyond the bootstrap interval",
          "line": f"{len(networks) - len(failed)}/{len(networks)} networks beat both{detail}"}


def _transfers_gate(transfers: Mapping[str, Mapping]) -> dict[str, Any]:
  flags = [r["beats_random"] for per in transfers.values() for r in per.values()]
  beats = sum(flags)
  passes = 2 * beats >= len(flags) if flags else None
  return {"passes": passes, "per_target": dict(transfers), "beats": beats, "of": len(flags),
          "rule": "at least half of all first-order transfers have a lower loss than random "
                  "projection's beyond the bootstrap interval",
          "line": f"{beats}/{len(flags)} first-order transfers beat random beyond their "
                  "interval; half needed"}


def _converged_gate(converged: Mapping[Transfer | str, bool] | None,
                    on_train: Mapping[Transfer | str, bool] | None = None) -> dict[str, Any]:
  if converged is None:
    return {"passes": None, "line": "no convergence record given"}
  stuck = sorted(str(t) for t, ok in converged.items() if not ok)
  more = f"; still falling: {', '.join(stuck[:5])}{' ...' if len(stuck) > 5 else ''}" \
      if stuck else ""
  gate = {"passes": not stuck if converged else None, "not_plateaued": stuck,
          "rule": "every readout's held-out loss plateaued before training stopped",
          "line": f"{len(converged) - len(stuck)}/{len(converged)} readouts plateaued{more}"}
  if on_train is not None:  # beside the gate, not part of it: a memorising readout's loss on
    # the views it trains on keeps falling after its held-out loss has stopped
    gate["train_loss_plateaued"] = (f"{sum(map(bool, on_train.values()))}/{len(on_train)} "
                                    "readouts' loss on transfer-training probe views plateaued")
  return gate


def _separated(check: Mapping[str, Any], transfers: Mapping[str, Mapping]) -> dict[str, Any]:
  """A random-projection check with, per target, the sources whose held-out loss differs from
  random projection's beyond the bootstrap interval (`transfers_vs_random`) on either side:
  the AHP rank counts every source, so a rank decided only by sources within their intervals is
  a tie, not a reversal of the paper's answer."""
  evidence = {}
  for target, e in check["evidence"].items():
    per = transfers.get(target, {})
    evidence[target] = {
        **e, "better_beyond_interval": [s for s, r in per.items() if r["beats_random"]],
        "worse_beyond_interval": [s for s, r in per.items() if r["low"] > 0]}
  return {**check, "evidence": evidence}


def _wrong(target: str, e: Mapping[str, Any]) -> str:
  if "worse_beyond_interval" not in e:
    return target
  n = len(e["worse_beyond_interval"])
  return (f"{target} ({n} source{'s' if n != 1 else ''} worse than random beyond the interval)"
          if n else f"{target} (no source worse than random beyond the interval: a tie)")


def _known_gate(check: Mapping[str, Any]) -> dict[str, Any]:
  ev = check["evidence"]
  failed = [t for t, e in ev.items() if not e["passes"]]
  if check["passes"] is None:
    line = "the tasks it needs are not in this run"
  else:
    line = f"{len(ev) - len(failed)}/{len(ev)} targets right"
    line += f"; wrong: {', '.join(_wrong(t, ev[t]) for t in failed)}" if failed else ""
  return {**check, "line": line}


def _paper_gate(paper: Mapping[str, Any] | None) -> dict[str, Any]:
  if paper is None:
    return {"passes": None, "line": "the paper's data was not found"}
  rho = paper.get("spearman_all")
  line = (f"Spearman rho {rho['rho']:.2f} (p {rho['p']:.2g}) over {paper['pairs']} pairs"
          if rho else f"only {paper['pairs']} common first-order pairs")
  return {**paper, "line": line}


def _cohesion_gate(cohesion: Mapping[str, Any] | None) -> dict[str, Any]:
  if cohesion is None or cohesion["p"] is None:
    return {**(cohesion or {}), "passes": None, "line": "fewer than 3 3D tasks in the tree"}
  return {**cohesion, "line": f"p {cohesion['p']:.3g} (cohesion {cohesion['cohesion']:.2f}, "
                              f"{len(cohesion['tasks'])} 3D tasks)"}


def report(networks: Mapping[str, Mapping], transfers: Mapping[str, Mapping],
           known: Mapping[str, Mapping], converged: Mapping[Transfer | str, bool] | None = None,
           paper: Mapping[str, Any] | None = None, cohesion: Mapping[str, Any] | None = None,
           intervals: Mapping[Transfer, tuple[float, float]] | None = None,
           frequencies: Mapping[float, Mapping[str, float]] | None = None,
           selection_resamples: int | None = None,
           converged_on_train: Mapping[Transfer | str, bool] | None = None) -> dict[str, Any]:
  """Every gate's result and the verdict, JSON-able.

  Gates (each {"passes": True/False/None, "line", evidence}):
    networks: every task network beats the mean and the median image beyond its interval.
    transfers_vs_random: at least half of all first-order transfers (over every target) have a
      lower loss than random projection's beyond their interval.
    readouts_converged: every readout plateaued; with `converged_on_train`, its line
      `train_loss_plateaued` counts the readouts whose training-probe loss plateaued too.
    depth_pair, random_worst_two, random_worse_half: `known_answers`' checks; each target of
      the last two also lists the sources better and worse than random projection beyond
      their interval (from `transfers`), and a wrong target's line says whether any source
      was worse beyond it or the rank is a tie. Pass and fail stay the AHP ranks'.
    paper_agreement: Spearman rho >= MIN_RHO and p < MAX_RHO_P (None without the paper's data).
    three_d_cohesion: the 3D tasks' cohesion p-value < MAX_COHESION_P (None under 3 3D tasks).
  A gate that is None was not applicable and neither passes nor fails, except the REQUIRED
  ones (networks, transfers vs random), which fail when there is nothing to judge.

  Args:
    networks: target -> `network_gate` result. transfers: target -> `transfers_vs_random` result.
    known: `known_answers` result. converged: readout -> whether its held-out loss plateaued;
      converged_on_train: the same on transfer-training views (reported, gates nothing).
    paper: `paper_agreement` result, None when the paper's data was not found.
    cohesion: `three_d_cohesion` result. intervals, frequencies: `affinity_intervals` and
      `selection_frequencies` results, reported beside the gates (they gate nothing).
    selection_resamples: how many resamples `frequencies` are fractions of.

  Returns:
    {"trusted": bool (no gate failed), "failed": [names of failed gates], "gates": {name: gate},
    and "affinity_intervals" / "selection_frequencies" (+ "selection_resamples") when given}.
  """
  gates = {"networks": _networks_gate(networks), "transfers_vs_random": _transfers_gate(transfers),
           "readouts_converged": _converged_gate(converged, converged_on_train)}
  gates["depth_pair"] = _known_gate(known["depth_pair"])
  for name in ("random_worst_two", "random_worse_half"):
    gates[name] = _known_gate(_separated(known[name], transfers))
  gates["paper_agreement"] = _paper_gate(paper)
  gates["three_d_cohesion"] = _cohesion_gate(cohesion)
  failed = [name for name, g in gates.items()
            if g["passes"] is False or (g["passes"] is None and name in REQUIRED)]
  out: dict[str, Any] = {"trusted": not failed, "failed": failed, "gates": gates}
  if intervals is not None:
    out["affinity_intervals"] = {str(t): list(v) for t, v in intervals.items()}
  if frequencies is not None:
    out["selection_frequencies"] = {f"{b:g}": dict(f) for b, f in frequencies.items()}
    out["selection_resamples"] = selection_resamples
  return _jsonable(out)


def summary_lines(rep: Mapping[str, Any]) -> list[str]:
  """The lines a run prints last: one per gate, then the verdict as a plain sentence."""
  lines = []
  for name, g in rep["gates"].items():
    verdict = "FAIL" if name in rep["failed"] else _verdict(g["passes"])
    lines.append(f"{TITLES.get(name, name)}: {verdict} ({g['line']})")
  if rep["trusted"]:
    lines.append("all gates pass: the taxonomy carries signal")
  else:
    lines.append(f"GATES FAILED ({', '.join(rep['failed'])}): this taxonomy is not to be trusted")
  return lines


def run_gates(per_target: Mapping[str, affinity.TargetLosses],
              baselines: Mapping[str, tuple[np.ndarray, np.ndarray]], groups: Groups,
              converged: Mapping[Transfer | str, bool] | None = None,
              paper: AffinityTable | None = None, budgets: Sequence[float] = (),
              order: int = 1, random: str = RANDOM, num_resamples: int = 1000,
              interval_resamples: int = 200, selection_resamples: int = 50,
              seed: int = 0,
              converged_on_train: Mapping[Transfer | str, bool] | None = None
              ) -> dict[str, Any]:
  """Every gate on a run's held-out losses -> `report`.

  Args:
    per_target: every target's losses (`affinity.TargetLosses`, first-order candidates with
      `(random,)` among them).
    baselines: target -> ((N_t,) mean-image losses, (N_t,) median-image losses).
    groups: (N,) camera point of each view, or per target its examples' (`Groups`).
    converged: readout -> plateaued (held-out); converged_on_train: the same on the training
      probe views (reported beside the gate). paper: the paper's table (`load_paper()`), or None.
    budgets: budgets for `selection_frequencies` (none: skipped); order: its transfer order.
  """
  missing = sorted(set(per_target) - set(baselines))
  if missing:
    raise ValueError(f"no mean/median-image losses for {', '.join(missing)}")
  points = _check_per_target(per_target, groups)
  networks = {t: network_gate(tl.self_losses, *baselines[t], points[t], num_resamples, seed)
              for t, tl in per_target.items()}
  transfers = {t: transfers_vs_random(tl.candidates, tl.losses, points[t], random,
                                      num_resamples, seed) for t, tl in per_target.items()}
  table = affinity.affinity_table(per_target)
  frequencies = (selection_frequencies(per_target, groups, budgets, order, selection_resamples,
                                       seed) if len(budgets) else None)
  return report(
      networks, transfers, known_answers(compare.first_order(table), per_target, random),
      converged, paper_agreement(table, paper) if paper is not None else None,
      three_d_cohesion(table),
      affinity_intervals(per_target, groups, interval_resamples, seed), frequencies,
      selection_resamples, converged_on_train)


__all__ = ["affinity_intervals", "bootstrap_affinities", "bootstrap_diff", "known_answers",
           "load_paper", "network_gate", "paper_agreement", "point_resamples", "report",
           "run_gates", "selection_frequencies", "summary_lines", "target_resamples",
           "three_d_cohesion", "transfers_vs_random"]
