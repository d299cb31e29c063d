"""The estimators (RSA, linear CKA, the linear probe) on a finished `make taxonomy` run, from
its cached representations and labels (docs/estimators.md): nothing is trained or rerun, the
run's workdir is only read.

  .venv/bin/python experiments/estimators_on_run.py out/taxonomy --out /tmp/estimators \
      [--timings docs/taxonomy_default/timings.json]

Writes OUT/estimators.json (report.json's `estimators` section, `transfer.estimates`) and
OUT/estimators/{rsa,cka,probe}_affinities.json, and prints per measure: the Spearman correlations of
the estimator's first-order table with the transfer-based one (all pairs, per target, bootstrap
interval) and with the paper's, the BIP's supervised set at each budget with the mean Quality
and Gain of the best measured transfers each set allows, the estimator's seconds and the
speed-up over the transfer stages; each set's rank among all sets of its size by that Quality
(where there are at most `MAX_SETS` such sets).
`--timings`: the timings.json of the run that trained the
transfers (a resumed run's own file records 0 s for the stages it skipped).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import pathlib
import time

import ml_collections

from taskonomy_jax.taxonomy import estimators
from taskonomy_jax.taxonomy.affinities import AffinityTable
from taskonomy_jax.transfer import estimates, pipeline

MAX_SETS = 20_000  # beyond this many sets of a size (the whole taxonomy's), no rank is given


def set_rank(table: AffinityTable, targets: list[str], nodes: list[str], order: int,
             supervised: list[str]) -> tuple[int | str, int]:
  """(rank, count) of `supervised` among every set of its size from `nodes` (unit costs), by
  the mean Quality of the best measured transfers each set allows (1 = best; ties share);
  rank '-' when there are more than `MAX_SETS` sets."""
  count = math.comb(len(nodes), len(supervised))
  if count > MAX_SETS:
    return "-", count

  def quality(s):
    return estimators.measured_quality(
        table, estimators.served_from(table, targets, s, order))["mean_quality"]
  qs = [quality(s) for s in itertools.combinations(nodes, len(supervised))]
  return 1 + sum(q > quality(supervised) + 1e-12 for q in qs), len(qs)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("workdir", help="a finished `make taxonomy` workdir (read only)")
  p.add_argument("--out", required=True, help="output folder")
  p.add_argument("--timings", help="timings.json of the run that trained the transfers")
  args = p.parse_args()
  workdir, out = pathlib.Path(args.workdir), pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  run = pipeline.Run(ml_collections.ConfigDict(
      json.loads((workdir / "config.json").read_text())), workdir)
  if args.timings:
    run.log = json.loads(pathlib.Path(args.timings).read_text())
  start = time.perf_counter()
  rep = estimates.estimator_report(run, AffinityTable.load(pipeline.affinities_path(run)), out)
  rep["wall_seconds"] = round(time.perf_counter() - start, 2)
  (out / "estimators.json").write_text(json.dumps(rep, indent=1))
  table = AffinityTable.load(pipeline.affinities_path(run))
  print(f"{rep['images']} {rep['split']} views, {len(rep['networks'])} networks; transfer stages "
        f"{rep['transfer_stage_seconds']} s; whole report {rep['wall_seconds']} s")
  for m in rep["measures"]:
    s = rep[m]
    vt, iv = s["vs_transfer"], s["vs_transfer_interval"]
    print(f"{m}: vs transfer rho {vt['spearman_all']['rho']:.2f} (p {vt['spearman_all']['p']:.2g},"
          f" 95% [{iv['spearman_all'][0]:.2f}, {iv['spearman_all'][1]:.2f}]), per-target mean "
          f"{vt['spearman_per_target_mean']:.2f} [{iv['spearman_per_target_mean'][0]:.2f}, "
          f"{iv['spearman_per_target_mean'][1]:.2f}]")
    print("  per target: " + ", ".join(f"{t} {r:.2f}"
                                       for t, r in vt["spearman_per_target"].items()))
    if s["vs_paper"]:
      vp = s["vs_paper"]
      print(f"  vs paper: rho {vp['spearman_all']['rho']:.2f} (p {vp['spearman_all']['p']:.2g}, "
            f"{vp['pairs']} pairs), per-target mean {vp['spearman_per_target_mean']:.2f}")
    for b, tx in s["taxonomies"].items():
      tr = rep["transfer_taxonomies"][b]
      if tx["supervised"] is None or tr["supervised"] is None:
        print(f"  budget {b}: infeasible")
        continue
      ranks = [set_rank(table, run.targets, rep["networks"], rep["order"], x["supervised"])
               for x in (tx, tr)]
      (qe, ge), (qt, gt) = ((x["best_from_set"]["mean_quality"], x["best_from_set"]["mean_gain"])
                            for x in (tx, tr))
      print(f"  budget {b}: {'+'.join(tx['supervised'])} Q {qe:.3f} G {ge:.3f} (set {ranks[0][0]} "
            f"of {ranks[0][1]}) | transfer {'+'.join(tr['supervised'])} Q {qt:.3f} G {gt:.3f} "
            f"(set {ranks[1][0]} of {ranks[1][1]})")
    print(f"  seconds {s['seconds']}, speed-up {s['speedup']:.0f}x, Quality ratio at budget "
          f"{rep['budget']:g}: {s['quality_ratio']:.2f}")


if __name__ == "__main__":
  main()
