"""Checks the paper's headline claim on its published affinities with our solver.

The claim: "the total number of labeled datapoints needed for solving a set of 10 tasks can be
reduced by roughly 2/3 (compared to training independently) while keeping the performance nearly
the same". Supervising a task costs a full training set of labels; a transfer needs only the
small transfer set, so supervising b of the 10 tasks uses about b/10 of the labels. We solve the
BIP for 10 targets with the 10 targets as the only supervisable tasks (cost 1 each), for budgets
3 and 4 (70% and 60% fewer full-size label sets), and compare mean Quality (win rate against the
fully supervised networks; supervising all 10 gives 0.5 by definition) and mean Gain with
supervising all 10.

    .venv/bin/python experiments/fewer_labels_claim.py [--data default] [--samples 300]

Prints one line per named target set and a summary over random 10-target sets; writes the
numbers to `--out` (JSON) if given.

`--sweep DATA,DATA,...` instead solves every budget 1-10 for the named sets on each table side
by side (a published set or an affinity-table file) and writes the curves (`--figure`, PNG)
and a Markdown table (`--out`, with the JSON beside it):

    .venv/bin/python experiments/fewer_labels_claim.py \
        --sweep docs/taxonomy_cpu_full/affinities.json,default \
        --figure docs/taxonomy_cpu_full/fewer_labels.png --out docs/taxonomy_cpu_full/fewer_labels.md
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
from tqdm import tqdm

from taskonomy_jax import files
from taskonomy_jax.commands import common
from taskonomy_jax.taxonomy import api, bip, draw, published
from taskonomy_jax.taxonomy.affinities import Transfer

# Named 10-task sets: the ten 3D/geometric tasks the paper's taxonomies cluster together, and a
# mixed set spanning 2D, 3D, geometry and semantics.
NAMED = {
    "3d+geometry": ["normal", "depth_zbuffer", "depth_euclidean", "reshading", "edge_occlusion",
                    "keypoints3d", "curvature", "segment_unsup25d", "room_layout",
                    "vanishing_point"],
    "mixed": ["normal", "depth_zbuffer", "reshading", "edge_texture", "keypoints2d",
              "segment_unsup2d", "room_layout", "point_matching", "segment_semantic",
              "class_object"],
}


def evaluate(table, targets, order, budgets):
  """Mean Quality / Gain of the taxonomy at each budget, and of supervising all targets."""
  problem = bip.build_problem(table, targets, targets, order)
  model = bip.BipSolver(problem)
  rows = {}
  for b in budgets:
    try:
      tax = api.taxonomy_from_solution(table, problem, model.solve(b), "highs", targets)
    except bip.InfeasibleBudgetError:
      rows[b] = None
      continue
    rows[b] = {"quality": tax.mean_quality, "gain": tax.mean_gain,
               "supervised": list(tax.supervised),
               "served": {s.target: ("own" if s.transfer.is_self else "+".join(s.transfer.sources))
                          for s in tax.served}}
  all_gain = float(np.mean([table.gain[Transfer(("self",), t)] for t in problem.targets]))
  rows["all"] = {"quality": 0.5, "gain": all_gain}
  return rows


def sweep(datas: list[str], orders: list[int], figure: pathlib.Path | None,
          out: pathlib.Path | None) -> None:
  """Mean Quality and Gain against budget 1-10 for each named set, order and table."""
  budgets = list(range(1, 11))
  curves: dict[str, dict[str, dict]] = {name: {} for name in NAMED}
  with common.stdout_to_stderr():
    for data in datas:
      table = published.load_published(data)
      for order in [o for o in orders if o <= table.max_order]:
        for name, targets in NAMED.items():
          rows = evaluate(table, targets, order, budgets)
          curves[name][f"{data}, order <= {order}"] = {
              "budget": [b for b in budgets if rows[b]],
              "quality": [rows[b]["quality"] for b in budgets if rows[b]],
              "gain": [rows[b]["gain"] for b in budgets if rows[b]],
              "supervised": {b: rows[b]["supervised"] for b in budgets if rows[b]},
              "all_gain": rows["all"]["gain"]}
  lines = ["| targets | table, order | " + " | ".join(f"b={b}" for b in budgets)
           + " | all 10: Gain |", "| --- | --- |" + " --- |" * (len(budgets) + 1)]
  for name, series in curves.items():
    for label, c in series.items():
      cells = {b: f"{q:.2f} / {g:.2f}" for b, q, g in zip(c["budget"], c["quality"], c["gain"],
                                                         strict=True)}
      lines.append(f"| {name} | {label} | " + " | ".join(cells.get(b, "-") for b in budgets)
                   + f" | {c['all_gain']:.2f} |")
  text = ("Mean Quality / mean Gain of the BIP's taxonomy for 10 targets (only they "
          "supervisable, cost 1 each) at each budget; all 10 supervised is Quality 0.5.\n\n"
          + "\n".join(lines) + "\n")
  print(text)
  if out:
    files.write_atomic(out, text)
    files.write_atomic(out.with_suffix(".json"), json.dumps(curves, indent=1))
  if figure:
    figure.parent.mkdir(parents=True, exist_ok=True)
    for name, series in curves.items():
      draw.budget_curves(series, figure.with_name(f"{figure.stem}_{name.replace('+', '_')}"
                                                  f"{figure.suffix}"),
                         f"'{name}': 10 targets, only they supervisable (cost 1 each)")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--data", default="default")
  parser.add_argument("--samples", type=int, default=300)
  parser.add_argument("--orders", default="1,2")
  parser.add_argument("--out", type=pathlib.Path, default=None)
  parser.add_argument("--sweep", default=None,
                      help="comma-separated tables to sweep budgets 1-10 on, side by side")
  parser.add_argument("--figure", type=pathlib.Path, default=None)
  args = parser.parse_args()
  if args.sweep:
    sweep(args.sweep.split(","), [int(o) for o in args.orders.split(",")], args.figure, args.out)
    return
  table = published.load_published(args.data)
  budgets = [3, 4, 5]
  report = {"data": table.source, "named": {}, "random": {}}
  orders = [int(o) for o in args.orders.split(",")]
  with common.stdout_to_stderr():
    for order in orders:
      for name, targets in NAMED.items():
        rows = evaluate(table, targets, order, budgets)
        report["named"][f"{name} order<={order}"] = rows
      rng = np.random.default_rng(0)
      samples = []
      for _ in tqdm(range(args.samples), desc=f"random 10-target sets, order {order}"):
        targets = [str(t) for t in rng.choice(table.targets, size=10, replace=False)]
        samples.append({"targets": targets, **{str(k): v for k, v in evaluate(
            table, targets, order, budgets).items()}})
      report["random"][f"order<={order}"] = samples
  for key, rows in report["named"].items():
    print(f"{key}: all 10 supervised: Q 0.500 G {rows['all']['gain']:.3f}")
    for b in budgets:
      r = rows[b]
      print(f"  budget {b}: Q {r['quality']:.3f} G {r['gain']:.3f} supervise "
            f"{', '.join(r['supervised'])}")
      print(f"    served: {r['served']}")
  for key, samples in report["random"].items():
    g_all = np.array([s["all"]["gain"] for s in samples])
    print(f"random 10-target sets ({len(samples)}), {key}: all supervised Q 0.500, G "
          f"{g_all.mean():.3f}")
    for b in budgets:
      q = np.array([s[str(b)]["quality"] for s in samples])
      g = np.array([s[str(b)]["gain"] for s in samples])
      best = samples[int(np.argmax(q))]
      print(f"  budget {b}: Q mean {q.mean():.3f} (5-95%: {np.percentile(q, 5):.3f}-"
            f"{np.percentile(q, 95):.3f}, max {q.max():.3f}); G mean {g.mean():.3f}; sets with "
            f"Q >= 0.45: {np.mean(q >= 0.45):.0%}; best set {best['targets']}")
  if args.out:
    files.write_atomic(args.out, json.dumps(report, indent=1))


if __name__ == "__main__":
  main()
