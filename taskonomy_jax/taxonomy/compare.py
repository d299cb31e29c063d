"""Two affinity tables side by side: a computed taxonomy against the paper's published one.

Spearman rank correlations over the first-order (source -> target) pairs both tables measured
(all pairs together and per target), whether the 3D tasks' best sources are 3D tasks in each,
and both tables' task similarity trees (paper Fig. 13) over the tasks both can place: the 3D
tasks' cohesion with a permutation p-value, cophenetic correlation and adjusted Rand index.
`experiments/compare_with_paper.py` is the command line for it; `transfer/gates.py` turns it
into the paper-agreement gate.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from taskonomy_jax.taxonomy import similarity
from taskonomy_jax.taxonomy.affinities import AffinityTable

THREE_D = similarity.THREE_D


def first_order(table: AffinityTable) -> dict[tuple[str, str], float]:
  """(source, target) -> affinity of every first-order transfer (a target's own network left
  out; the paper's `target -> target` readout off its own encoder is kept)."""
  return {(t.sources[0], t.target): v for t, v in table.affinity.items()
          if t.order == 1 and not t.is_self}


def compare(ours: AffinityTable, paper: AffinityTable, top: int = 3) -> dict:
  """How `ours` agrees with `paper` (JSON-able).

  Returns a dict with `pairs` (how many first-order pairs both have), `spearman_all`
  ({rho, p}, when over 2 pairs), `spearman_per_target` and its mean, `3d_targets_best_{top}_
  sources` (per 3D target, each table's best `top` sources and how many are 3D tasks), and, when
  over 2 tasks can be placed in both trees, `similarity_tree` (`similarity.compare_trees`) and
  `3d_cohesion_p` ({ours, paper}: the permutation p-value of the 3D tasks' cohesion in each
  tree).
  """
  a, b = first_order(ours), first_order(paper)
  pairs = sorted(set(a) & set(b))
  out: dict = {"pairs": len(pairs)}
  if len(pairs) > 2:
    rho = stats.spearmanr([a[p] for p in pairs], [b[p] for p in pairs])
    out["spearman_all"] = {"rho": float(rho.statistic), "p": float(rho.pvalue)}
  per_target = {}
  for t in sorted({p[1] for p in pairs}):
    ps = [p for p in pairs if p[1] == t]
    if len(ps) > 2:
      per_target[t] = float(stats.spearmanr([a[p] for p in ps], [b[p] for p in ps]).statistic)
  out["spearman_per_target"] = per_target
  out["spearman_per_target_mean"] = (float(np.mean(list(per_target.values()))) if per_target
                                     else None)
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
    tree = similarity.compare_trees(ours, paper, sources, targets)
    out["similarity_tree"] = tree
    out["3d_cohesion_p"] = {name: tree[name]["group_cohesion_p"] for name in ("ours", "paper")}
  return out
