"""The estimators beside the transfer-based affinities of a run.

`taxonomy/estimators.py` scores every pair of the bank's networks by RSA and linear CKA on the
held-out views' cached representations (no training); `transfer/probe.py` solves closed-form
linear readouts from them to the targets' labels (the `probe` measure, where the run's labels
are at hand; its table is the AHP of those readouts' held-out losses). Here a run's taxonomy
stage turns those scores into what report.json's `estimators` section holds, per measure: the
scores with bootstrap intervals (over images; the probe's over camera points), each target's
source ranking and its Spearman correlation with the transfer-based first-order affinities (and
with the paper's published ones), the taxonomy the BIP chooses from the estimator's affinity
table at each budget with Quality and Gain of its supervised set measured on the transfer
results, beside the transfer-based taxonomy's, and the seconds each took against the transfer
stages'. The estimator tables are written beside the outputs
(`estimators/<measure>_affinities.json`), readable by `taskonomy solve --data`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from taskonomy_jax.configs import taxonomy as taxonomy_config
from taskonomy_jax.taxonomy import api, bip, compare, estimators
from taskonomy_jax.taxonomy.affinities import AffinityTable
from taskonomy_jax.transfer import gates
from taskonomy_jax.transfer import probe as probe_lib

# The stages whose seconds an estimator replaces (the task bank and its representations serve
# both; the from-scratch baselines only measure Gain).
TRANSFER_STAGES = ("transfers1", "transfers_high")
FOLDER = "estimators"
PROBE = "probe"
DEFAULTS = taxonomy_config.ESTIMATORS  # for runs whose config predates its `estimators`


def transfer_seconds(*logs: Iterable[Mapping[str, Any]]) -> float | None:
  """Seconds the transfer stages took, from pipeline logs (`Run.log`, timings.json entries),
  later logs first: per unit its own time (`unit_seconds`, whichever attempt ran it) from the
  first entry that has it, else from the first entry that ran; None when neither exists (a
  resumed run's entries written before `unit_seconds`, its earlier timings gone)."""
  seen: dict[tuple[str, str], float] = {}
  for log in logs:
    for e in log:
      key = (e["stage"], e["unit"])
      if e["stage"] not in TRANSFER_STAGES or key in seen:
        continue
      if "unit_seconds" in e:
        seen[key] = float(e["unit_seconds"])
      elif e.get("ran"):
        seen[key] = float(e["seconds"])
  return round(sum(seen.values()), 2) if seen else None


def _agreement(samples: np.ndarray, names: Sequence[str], targets: Sequence[str],
               ours: Mapping[tuple[str, str], float], level: float = 0.95) -> dict[str, Any]:
  """Bootstrap intervals of the Spearman correlations with `ours` ((source, target) -> value):
  over all first-order pairs, and the mean over the targets with over 2 sources (as
  `compare.compare`). samples (B, T, T). An interval is None where no resample defines it (a
  constant ranking, too few pairs)."""
  idx = {n: i for i, n in enumerate(names)}
  pairs = [p for p in sorted(ours) if p[0] in idx and p[1] in idx]
  ref = np.array([ours[p] for p in pairs])
  si, ti = [idx[s] for s, _ in pairs], [idx[t] for _, t in pairs]
  masks = [m for t in targets if (m := np.array([p[1] == t for p in pairs], bool)).sum() > 2]
  alls, means = [], []
  with warnings.catch_warnings():  # constant inputs give NaN, counted as undefined below
    warnings.simplefilter("ignore", stats.ConstantInputWarning)
    for s in samples:
      est = s[si, ti]
      alls.append(stats.spearmanr(est, ref).statistic if len(pairs) > 2 else np.nan)
      per = [stats.spearmanr(est[m], ref[m]).statistic for m in masks]
      per = [r for r in per if np.isfinite(r)]
      means.append(np.mean(per) if per else np.nan)

  def interval(values):
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return None if not len(v) else [float(x) for x in estimators.intervals(v, level)]
  return {"spearman_all": interval(alls), "spearman_per_target_mean": interval(means),
          "level": level}


def _agreement_summary(ours: AffinityTable, other: AffinityTable) -> dict[str, Any]:
  """`compare.compare`'s Spearman part (pairs, all pairs, per target and its mean)."""
  c = compare.compare(ours, other)
  return {k: c.get(k) for k in ("pairs", "spearman_all", "spearman_per_target",
                                "spearman_per_target_mean")}


def _taxonomy(table: AffinityTable, transfer: AffinityTable, targets: Sequence[str],
              budget: float, order: int) -> dict[str, Any]:
  """The BIP on `table` at `budget`: its supervised set, how it serves each target, and Quality
  and Gain on the transfer results of (a) the transfers it chose (where the transfer table
  measured them) and (b) the best measured transfers its supervised set allows."""
  start = time.perf_counter()
  try:
    tax = api.solve_taxonomy(targets, budget, order=order, data=table)
  except bip.InfeasibleBudgetError as e:  # a graph budget too small: said, not fatal
    return {"supervised": None, "infeasible": str(e), "as_chosen": None, "best_from_set": None,
            "solve_seconds": round(time.perf_counter() - start, 3)}
  seconds = time.perf_counter() - start
  chosen = {s.target: s.transfer for s in tax.served}
  return {"supervised": list(tax.supervised), "solve_seconds": round(seconds, 3),
          "as_chosen": estimators.measured_quality(transfer, chosen),
          "best_from_set": estimators.measured_quality(
              transfer, estimators.served_from(transfer, targets, tax.supervised, order))}


def estimator_section(reps: Mapping[str, np.ndarray], transfer: AffinityTable,
                      targets: Sequence[str], budgets: Sequence[float], budget: float,
                      order: int, transfer_secs: float | None, paper: AffinityTable | None,
                      out: pathlib.Path | None = None, resamples: int = 200, seed: int = 0,
                      probe: ProbeInputs | None = None) -> dict[str, Any]:
  """report.json's `estimators` section (JSON-able) for representations `reps` ({network:
  (N, ...)} of the same N views, every target's own network among them) and the run's transfer
  table; writes each measure's affinity table to `out/<measure>_affinities.json` when `out`.
  The measures (`measures`): RSA and CKA, and the linear probe when `probe` is given (its
  scores: its table's first-order affinities, with the target's own network on the diagonal,
  undefined (None) into networks that are no target, intervals over camera-point resamples;
  `heldout_r2`: each first-order readout's held-out R^2).

  Per measure: `scores` ({source: {network: score}}) and their bootstrap `intervals` (lo, hi),
  `rankings` (per target, sources best first), `vs_transfer` and `vs_paper` (Spearman over the
  first-order pairs, per target and overall; `vs_transfer_interval` over the image resamples),
  `taxonomies` (per budget, the estimator's and, under `transfer_taxonomies`, the transfer
  table's: supervised set, Quality and Gain), `quality_ratio` (estimator / transfer mean
  Quality of the best transfers each supervised set allows, at `budget`), `seconds` and
  `speedup` (transfer stages' seconds / the estimator's, scores and BIP, bootstrap apart).
  """
  names = list(reps)
  stacked = [estimators.flatten(reps[n]) for n in names]
  budgets = sorted({*map(float, budgets), float(budget)})
  transfer_tax = {f"{b:g}": _taxonomy(transfer, transfer, targets, b, order) for b in budgets}
  section: dict[str, Any] = {
      "images": len(stacked[0]), "networks": names, "resamples": resamples, "seed": seed,
      "budget": float(budget), "order": order, "transfer_stage_seconds": transfer_secs,
      "transfer_taxonomies": transfer_tax}
  ours = compare.first_order(transfer)
  measured = [(m, functools.partial(_similarity, m, stacked, names, targets, resamples, seed))
              for m in estimators.MEASURES]
  if probe is not None:
    measured.append((PROBE, functools.partial(_probe, probe, reps, targets, resamples, seed)))
  section["measures"] = [m for m, _ in measured]
  for measure, estimate in measured:
    e = estimate()
    scores, table, samples, score_secs = e.scores, e.table, e.samples, e.score_seconds
    lo, hi = estimators.intervals(samples)
    taxes = {f"{b:g}": _taxonomy(table, transfer, targets, b, order) for b in budgets}
    solve_secs = taxes[f"{float(budget):g}"]["solve_seconds"]
    if out is not None:
      table.save(out / f"{measure}_affinities.json")
    q_est, q_tr = ((x[f"{float(budget):g}"]["best_from_set"] or {}).get("mean_quality")
                   for x in (taxes, transfer_tax))
    estimate_secs = score_secs + solve_secs
    section[measure] = {
        "scores": _matrix(scores, names), "intervals": {"lo": _matrix(lo, names),
                                                        "hi": _matrix(hi, names)},
        "rankings": estimators.rankings(scores, names, targets),
        "table": None if out is None else f"{FOLDER}/{measure}_affinities.json",
        "vs_transfer": _agreement_summary(table, transfer),
        "vs_transfer_interval": _agreement(samples, names, targets, ours),
        "vs_paper": None if paper is None else _agreement_summary(table, paper),
        "taxonomies": taxes,
        "quality_ratio": None if not (q_est and q_tr) else q_est / q_tr,
        "seconds": {"scores_and_table": round(score_secs, 3),
                    "bootstrap": round(e.bootstrap_seconds, 3), "solve": solve_secs},
        "speedup": None if not transfer_secs else transfer_secs / estimate_secs,
        **{k: _matrix(m, names) for k, m in e.matrices.items()}}
  return section


@dataclasses.dataclass
class Estimate:
  """One measure's results: scores (S, S) over the bank, its affinity table, the scores on
  bootstrap resamples (B, S, S), the seconds of scores + table and of the resamples, and any
  further (S, S) matrices the report keeps under their names."""

  scores: np.ndarray
  table: AffinityTable
  samples: np.ndarray
  score_seconds: float
  bootstrap_seconds: float
  matrices: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def _similarity(measure: estimators.Measure, stacked: Sequence[np.ndarray], names: list[str],
                targets: Sequence[str], resamples: int, seed: int) -> Estimate:
  """RSA or CKA: their scores, rank table and bootstrap scores over images."""
  start = time.perf_counter()
  scores = estimators.all_pairs(stacked, measure)
  table = estimators.affinity_table(scores, names, targets, source=f"{measure} estimator")
  score_secs = time.perf_counter() - start
  start = time.perf_counter()
  samples = estimators.bootstrap(stacked, measure, resamples, seed)
  return Estimate(scores, table, samples, score_secs, time.perf_counter() - start)


@dataclasses.dataclass
class ProbeInputs:
  """What the linear-probe estimator reads beside `estimator_section`'s representations of
  the scoring views: the bank's representations of the fitting views, a function that reads
  each target's (fitting, scoring) labels for a representation grid (`probe.split_labels`;
  timed with the probe), the scoring samples' camera points per target (bootstrap draws) and
  the transfers' beam and order."""

  fit_reps: Mapping[str, np.ndarray]
  labels: Callable[[tuple[int, int]], Mapping[str, tuple[probe_lib.Labels, probe_lib.Labels]]]
  points: Mapping[str, np.ndarray]
  beam: int
  max_order: int


def _probe(inputs: ProbeInputs, score_reps: Mapping[str, np.ndarray], targets: Sequence[str],
           resamples: int, seed: int) -> Estimate:
  """The linear probe: its table's first-order affinities (the own network's on the
  diagonal) and their camera-point resamples, and the first-order held-out R^2
  (`heldout_r2`); entries into networks that are no target: NaN."""
  start = time.perf_counter()
  probe = probe_lib.Probe(inputs.fit_reps, score_reps)
  result = probe_lib.probe_targets(probe, inputs.labels(probe.grid), inputs.beam,
                                   inputs.max_order)
  table = probe_lib.probe_table(result, source=f"{PROBE} estimator")
  score_secs = time.perf_counter() - start
  start = time.perf_counter()
  transfers, draws = gates.bootstrap_affinities(result.per_target, inputs.points, resamples,
                                                seed)
  idx = {n: i for i, n in enumerate(result.names)}
  scores = np.full((len(idx), len(idx)), np.nan)
  samples = np.full((resamples, len(idx), len(idx)), np.nan)
  for k, tr in enumerate(transfers):
    if tr.order == 1:
      i, j = idx[tr.target if tr.is_self else tr.sources[0]], idx[tr.target]
      scores[i, j], samples[:, i, j] = table.affinity[tr], draws[:, k]
  return Estimate(scores, table, samples, score_secs, time.perf_counter() - start,
                  {"heldout_r2": result.scores})


def _matrix(m: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float | None]]:
  """(T, T) -> {row: {column: value}}, None where undefined (the probe's non-target columns)."""
  return {a: {b: round(float(m[i, j]), 6) if np.isfinite(m[i, j]) else None
              for j, b in enumerate(names)} for i, a in enumerate(names)}


def estimator_report(run: Any, transfer: AffinityTable, out: pathlib.Path) -> dict[str, Any]:
  """`estimator_section` for a pipeline run (`transfer.pipeline.Run`): its bank's cached
  representations of the held-out split (`estimators.split`, default test), its taxonomy
  budgets and order, the paper's table when found; tables written under `out/estimators/`.
  With `estimators.probe` (default) also the linear probe, fitted on the transfer split and
  scored on the test views, as the transfers (`--set estimators.probe=False` leaves it out)."""
  cfg = {**DEFAULTS, **dict(run.config.get("estimators") or {})}
  tc = run.config.taxonomy
  reps = {n: run.rep(n, cfg["split"]) for n in run.bank}
  timings = run.workdir / "timings.json"
  earlier = json.loads(timings.read_text()) if timings.is_file() else []
  folder = out / FOLDER
  folder.mkdir(parents=True, exist_ok=True)
  probe = None
  if cfg["probe"]:
    if cfg["split"] != probe_lib.SCORE_SPLIT:
      raise ValueError(f"the linear probe scores the {probe_lib.SCORE_SPLIT!r} views, as the "
                       f"transfers; estimators.split is {cfg['split']!r} (set estimators.probe="
                       "False to score RSA and CKA on it alone)")
    scoring = run.views(probe_lib.SCORE_SPLIT)
    probe = ProbeInputs(
        fit_reps={n: run.rep(n, probe_lib.FIT_SPLIT) for n in run.bank},
        labels=functools.partial(probe_lib.run_labels, run, run.targets),
        points={t: scoring.task_points(t) for t in run.targets},
        beam=int(run.config.transfer.beam), max_order=int(run.config.transfer.max_order))
  section = estimator_section(
      reps, transfer, run.targets, tuple(tc.graph_budgets), float(tc.budget), int(tc.order),
      transfer_seconds(run.log, earlier), gates.load_paper(), folder,
      int(cfg["resamples"]), int(cfg["seed"]), probe)
  return {"split": cfg["split"], **section}
