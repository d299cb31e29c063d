"""How much of each target a run's first-order readouts recover: per target, its own network's
held-out loss and its first-order transfers' (best, random projection, median source, worst),
each over the loss of the target's median image (lower is better; 1 = nothing learnt).

    .venv/bin/python experiments/transfer_spread.py out/taxonomy_cpu_full

Where every source sits within a few percent of 1, the AHP ranks among them (and the
random-projection known answers read from them) are decided by differences that small
(docs/random_projection.md, "The whole taxonomy"). Needs a run's workdir: the per-view losses
are not exported.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

from taskonomy_jax.transfer import gates, pipeline, predictor


def median_image_loss(run: pipeline.Run, target: str) -> float:
  """The target's median image's mean held-out loss (the task-bank stage's baseline)."""
  return float(np.load(run.unit_of("taskbank", target) / f"{target}.median_losses.npy").mean())


def spread_rows(run: pipeline.Run) -> list[str]:
  """One Markdown row per target of `run`: self / best / random / median / worst over the
  median image's mean held-out loss, and how many sources get below 0.98 of it."""
  rows = ["| target | own network | best transfer (source) | random projection | median source "
          "| worst | sources < 0.98 |", "| --- | --- | --- | --- | --- | --- | --- |"]
  for target, tl in pipeline.target_losses_of_run(run).items():
    median = median_image_loss(run, target)
    first = {c[0]: float(loss.mean()) / median
             for c, loss in zip(tl.candidates, tl.losses, strict=True) if len(c) == 1}
    ratios = np.sort(np.asarray(list(first.values())))
    best = min(first, key=first.get)
    rows.append(
        f"| {target} | {float(tl.self_losses.mean()) / median:.3f} | {ratios[0]:.3f} ({best}) "
        f"| {first.get(gates.RANDOM, float('nan')):.3f} | {np.median(ratios):.3f} "
        f"| {ratios[-1]:.3f} | {int((ratios < 0.98).sum())}/{len(ratios)} |")
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdir", type=pathlib.Path)
  args = parser.parse_args()
  print("\n".join(spread_rows(predictor.open_run(args.workdir))))


if __name__ == "__main__":
  main()
