"""Computed first-order affinities vs the paper's published ones (BUILD_NOTES.md, issue 6).

  TASKONOMY_PAPER_RESULTS=/work/shared/paper_results .venv/bin/python \
      experiments/compare_with_paper.py out/taxonomy/07_affinities/table/affinities.json

Prints Spearman rank correlations on the same source -> target pairs (all pairs together, and
per target), and whether the 3D tasks cluster: for each 3D target, how many of its best
first-order sources are 3D tasks, here and in the paper; and both tables' task similarity trees
(paper Fig. 13) over the same tasks: the 3D tasks' cohesion with a permutation p-value,
cophenetic correlation and adjusted Rand index of the flat clusters.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy import stats

from taskonomy_jax.taxonomy import published, similarity
from taskonomy_jax.taxonomy.affinities import AffinityTable

THREE_D = similarity.THREE_D


def first_order(table: AffinityTable) -> dict[tuple[str, str], float]:
  return {(t.sources[0], t.target): v for t, v in table.affinity.items()
          if t.order == 1 and not t.is_self}


def compare(ours: AffinityTable, paper: AffinityTable, top: int = 3) -> dict:
  a, b = first_order(ours), first_order(paper)
  pairs = sorted(set(a) & set(b))
  out = {"pairs": len(pairs)}
  if len(pairs) > 2:
    rho = stats.spearmanr([a[p] for p in pairs], [b[p] for p in pairs])
    out["spearman_all"] = {"rho": float(rho.statistic), "p": float(rho.pvalue)}
  per_target = {}
  for t in sorted({p[1] for p in pairs}):
    ps = [p for p in pairs if p[1] == t]
    if len(ps) > 2:
      per_target[t] = float(stats.spearmanr([a[p] for p in ps], [b[p] for p in ps]).statistic)
  out["spearman_per_target"] = per_target
  out["spearman_per_target_mean"] = float(np.mean(list(per_target.values()))) if per_target \
      else None
  cluster = {}
  for t in sorted({p[1] for p in pairs} & set(THREE_D)):
    srcs = [p[0] for p in pairs if p[1] == t]  # the sources both sides measured
    best = {name: sorted(srcs, key=lambda s, d=d: -d[(s, t)])[:top]
            for name, d in (("ours", a), ("paper", b))}
    cluster[t] = {name: {"best": v, "3d": sum(s in THREE_D for s in v),
                         "3d_available": sum(s in THREE_D for s in srcs)}
                  for name, v in best.items()}
  out[f"3d_targets_best_{top}_sources"] = cluster
  # The similarity tree (paper Fig. 13) of both tables over the tasks both measured.
  targets = [t for t in ours.targets if t in set(paper.targets)]
  sources = [s for s in similarity.complete_sources(ours, ours.nodes, targets)
             if s in set(similarity.complete_sources(paper, paper.nodes, targets))]
  if len(sources) > 2:
    out["similarity_tree"] = similarity.compare_trees(ours, paper, sources, targets)
  return out


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("affinities", help="affinities.json of a taxonomy run")
  p.add_argument("--data", default="default", help="published set (default, 1k, 16k)")
  args = p.parse_args()
  print(json.dumps(compare(AffinityTable.load(args.affinities),
                           published.load_published(args.data)), indent=1))


if __name__ == "__main__":
  main()
