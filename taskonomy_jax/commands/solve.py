"""`taskonomy solve`: the Transfer Learning API (the BIP of paper Sec. 3.4) on the command line."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from taskonomy_jax.commands import common
from taskonomy_jax.taxonomy import bip, draw, published
from taskonomy_jax.taxonomy.api import solve_taxonomy


def add_subcommand(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser(
      "solve", help="the Transfer Learning API: which tasks to supervise, how to serve targets",
      description="Solve the Taskonomy BIP (Section 3.4 of the paper) on published or computed "
                  "affinities: choose the tasks to supervise within a budget and the transfer "
                  "serving each target. Exit code 2 on bad input.")
  p.add_argument("--targets", type=common.task_names, required=True,
                 help="comma-separated target tasks (registry names or original code names)")
  p.add_argument("--sources", type=common.task_names, default=None,
                 help="comma-separated tasks that may be supervised (default: all in the data)")
  p.add_argument("--budget", type=float, required=True,
                 help="supervision budget: total cost of the supervised tasks (cost 1 each "
                      "unless --costs)")
  p.add_argument("--order", type=int, default=1, help="maximum transfer order, 1-4 (default 1)")
  p.add_argument("--data", default="default",
                 help="published set (default, 1k, 16k), the computed synthetic-world table "
                      "(synthetic: docs/taxonomy_cpu_full), a folder of published results "
                      "(JSON or the original results/ pickles), or an affinity-table JSON file")
  p.add_argument("--results-dir", default=None,
                 help=f"where set names resolve (default ${published.ENV_VAR}, then "
                      "the copy shipped with the package)")
  p.add_argument("--costs", type=common.weights("cost"), default=None,
                 help="per-task labelling costs: NAME=COST,... or a .json file (default 1)")
  p.add_argument("--importance", type=common.weights("importance"), default=None,
                 help="per-target importance: NAME=WEIGHT,... or a .json file (default 1)")
  p.add_argument("--solver", default=bip.DEFAULT_SOLVER,
                 help=f"mixed-integer solver: {', '.join(bip.SOLVERS)} (default "
                      f"{bip.DEFAULT_SOLVER})")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="folder for taxonomy.json and taxonomy.png (default: JSON to stdout)")
  p.set_defaults(run=_run_solve)


def _run_solve(args: argparse.Namespace) -> int:
  with common.stdout_to_stderr():
    tax = solve_taxonomy(args.targets, args.budget, args.sources, args.order, args.data,
                         args.costs, args.importance, args.solver, args.results_dir)
    for note in tax.notes:
      print(f"note: {note}", file=sys.stderr)
  if args.out is None:
    print(json.dumps(tax.to_json(), indent=1))
    return 0
  paths = draw.write_outputs(tax, args.out)
  sup = ", ".join(tax.supervised) or "nothing"
  print(f"supervise {sup} (cost {tax.cost:g} of {tax.budget:g}); mean Quality "
        f"{_fmt(tax.mean_quality)}, mean Gain {_fmt(tax.mean_gain)}")
  for s in tax.served:
    how = "own network" if s.transfer.is_self else " + ".join(s.transfer.sources)
    print(f"  {s.target:18} <- {how:40} affinity {s.affinity:.4f}  Q {_fmt(s.quality)}  "
          f"G {_fmt(s.gain)}")
  print("wrote " + ", ".join(str(p) for p in paths))
  return 0


def _fmt(x: float | None) -> str:
  return "n/a" if x is None else f"{x:.3f}"
