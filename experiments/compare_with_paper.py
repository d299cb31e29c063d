"""Computed first-order affinities vs the paper's published ones (BUILD_NOTES.md, "The taxonomy
pipeline and its gates").

  TASKONOMY_PAPER_RESULTS=/work/shared/paper_results .venv/bin/python \
      experiments/compare_with_paper.py out/taxonomy/07_affinities/table/affinities.json

Prints, as JSON, `taskonomy_jax.taxonomy.compare.compare`: Spearman rank correlations on the same
source -> target pairs (all pairs together, and per target); for each 3D target, how many of its
best first-order sources are 3D tasks, here and in the paper; and both tables' task similarity
trees (paper Fig. 13) over the same tasks: the 3D tasks' cohesion with a permutation p-value,
cophenetic correlation and adjusted Rand index of the flat clusters.
"""

from __future__ import annotations

import argparse
import json

from taskonomy_jax.taxonomy import compare, published
from taskonomy_jax.taxonomy.affinities import AffinityTable


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("affinities", help="affinities.json of a taxonomy run")
  p.add_argument("--data", default="default", help="published set (default, 1k, 16k)")
  args = p.parse_args()
  print(json.dumps(compare.compare(AffinityTable.load(args.affinities),
                                   published.load_published(args.data)), indent=1))


if __name__ == "__main__":
  main()
