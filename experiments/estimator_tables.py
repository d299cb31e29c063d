"""Estimator affinity tables other than `estimators.affinity_table`'s, on committed runs.

Each run folder (`tools/export_run.sh`'s: report.json with its `estimators` section and the
transfer table affinities.json) gives the RSA and CKA scores of its bank; each table variant
goes through the BIP at the run's budget and order, and its supervised set is scored on the
transfer results as the report scores the packaged table (`transfer.estimates`): the mean
Quality of the best measured transfers the set allows, over the transfer-based taxonomy's.
Nothing is retrained; seconds per run.

  PYTHONPATH=. .venv/bin/python experiments/estimator_tables.py docs/taxonomy_default \\
      docs/taxonomy_cpu_full

Prints one line per run and measure: the packaged rank table's ratio, then each variant's
(docs/tried_and_dropped.md and docs/estimators.md have the numbers).
"""

from __future__ import annotations

import argparse
import json
import pathlib
from collections.abc import Callable, Sequence

import numpy as np

from taskonomy_jax.taxonomy import estimators
from taskonomy_jax.taxonomy.affinities import SELF, AffinityTable, Transfer, make_transfer
from taskonomy_jax.transfer import estimates

# A variant maps one target's source scores (S,) to its first-order entries (S,) in [0, 1], the
# best source 1; `variant_table` adds the packaged table's tie-break (self 1 + eps).
Variant = Callable[[np.ndarray], np.ndarray]


def _clipped(col: np.ndarray) -> np.ndarray:
  """Scores as the rank table's tie-break reads them: NaN and negatives 0, at most 1."""
  return np.minimum(estimators.nonnegative_scores(col), 1.0)


def _over_best(col: np.ndarray) -> np.ndarray:
  c = _clipped(col)
  return c / max(c.max(), 1e-9)


def _min_max(col: np.ndarray) -> np.ndarray:
  c = _clipped(col)
  return (c - c.min()) / max(c.max() - c.min(), 1e-9)


def _z_scores(col: np.ndarray) -> np.ndarray:
  c = _clipped(col)
  z = np.clip((c - c.mean()) / (c.std() + 1e-9), 0.0, None)
  return z / max(z.max(), 1e-9)


def _top_three(col: np.ndarray) -> np.ndarray:
  return np.clip(estimators.source_ranks(col) * len(col) - (len(col) - 3), 0.0, None) / 3


VARIANTS: dict[str, Variant] = {
    "rank": estimators.source_ranks,
    "rank_squared": lambda col: estimators.source_ranks(col) ** 2, "top_three": _top_three,
    "over_best": _over_best, "min_max": _min_max, "z_scores": _z_scores}
SELF_BONUSES = (0.5, 1.0, 2.0)


def variant_table(scores: np.ndarray, names: Sequence[str], targets: Sequence[str],
                  variant: Variant) -> AffinityTable:
  """`variant`'s first-order entries per target (scores (n, n) over `names`) plus
  `estimators.rank_tie_break` x the clipped score, self 1 + that weight: the packaged rank
  table for `estimators.source_ranks`."""
  idx = {n: i for i, n in enumerate(names)}
  eps = estimators.rank_tie_break(len(names), len(targets))
  affinity = {}
  for t in targets:
    others = [s for s in names if s != t]
    column = np.array([scores[idx[s], idx[t]] for s in others], np.float64)
    values = variant(column) + eps * _clipped(column)
    affinity[Transfer((SELF,), t)] = 1.0 + eps
    affinity.update({make_transfer([s], t): float(v) for s, v in zip(others, values, strict=True)})
  return AffinityTable(affinity, source="variant")


def with_self_bonus(table: AffinityTable, targets: Sequence[str], bonus: float) -> AffinityTable:
  """`table` with `bonus` added to every target's own entry."""
  affinity = dict(table.affinity)
  for t in targets:
    affinity[Transfer((SELF,), t)] += bonus
  return AffinityTable(affinity, source=table.source)


def quality_ratios(run: pathlib.Path, orders: int = 1, seed: int = 0
                   ) -> dict[str, dict[str, list[float]]]:
  """{measure: {table: Quality ratios}} on the run folder `run`, one per target order (the
  given order, then `orders` - 1 random permutations): a table whose BIP optimum is not unique
  can give a different supervised set in another order."""
  section = json.loads((run / "report.json").read_text())["estimators"]
  transfer = AffinityTable.load(run / "affinities.json")
  names, budget, order = section["networks"], section["budget"], section["order"]
  targets = sorted(section["rsa"]["rankings"])
  rng = np.random.default_rng(seed)
  target_orders = [targets] + [list(rng.permutation(targets)) for _ in range(orders - 1)]

  def quality(table: AffinityTable, ts: Sequence[str]) -> float:
    return estimates._taxonomy(table, transfer, ts, budget, order)["best_from_set"][
        "mean_quality"]
  reference = quality(transfer, targets)
  out = {}
  for measure in estimators.MEASURES:
    scores = np.array([[section[measure]["scores"][a][b] for b in names] for a in names])
    packaged = estimators.affinity_table(scores, names, targets)
    tables = {k: variant_table(scores, names, targets, v) for k, v in VARIANTS.items()}
    # The 'rank' variant is the packaged table, entry for entry.
    assert all(np.isclose(packaged.affinity[k], v, rtol=0, atol=1e-12)
               for k, v in tables["rank"].affinity.items())
    tables.update({f"rank+self{b:g}": with_self_bonus(tables["rank"], targets, b)
                   for b in SELF_BONUSES})
    out[measure] = {k: [quality(t, ts) / reference for ts in target_orders]
                    for k, t in tables.items()}
  return out


def _span(values: Sequence[float]) -> str:
  """'0.84', or '0.80-0.85' when the values differ at the printed precision."""
  lo, hi = f"{min(values):.2f}", f"{max(values):.2f}"
  return lo if lo == hi else f"{lo}-{hi}"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("runs", nargs="+", type=pathlib.Path)
  parser.add_argument("--orders", type=int, default=1,
                      help="solve in this many target orders (the given one, then random)")
  args = parser.parse_args()
  for run in args.runs:
    for measure, ratios in quality_ratios(run, args.orders).items():
      print(f"{run.name} {measure}: " + ", ".join(
          f"{k} {_span(v)}" for k, v in ratios.items()), flush=True)


if __name__ == "__main__":
  main()
