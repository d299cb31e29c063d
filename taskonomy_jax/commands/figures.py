"""`taskonomy figures --out DIR`: the taxonomy figures recomputed from affinities."""

from __future__ import annotations

import argparse
import pathlib

from taskonomy_jax.commands import common
from taskonomy_jax.taxonomy import bip
from taskonomy_jax.taxonomy.figures import make_figures


def add_subcommand(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser("figures", help="draw the affinity matrix, taxonomies and budget curves",
                     description="Recompute the taxonomy figures from published (or computed) "
                                 "affinities.")
  p.add_argument("--out", type=pathlib.Path, required=True, help="output folder")
  p.add_argument("--data", default="default",
                 help="published set (default, 1k, 16k), the computed table (synthetic), a "
                      "folder, or an affinity-table file")
  p.add_argument("--results-dir", default=None, help="where set names resolve")
  p.add_argument("--targets", type=common.task_names, default=None,
                 help="targets of the graphs and curves (default: every target in the data)")
  p.add_argument("--orders", type=lambda s: [int(x) for x in s.split(",")], default=None,
                 help="maximum orders to sweep, e.g. 1,2 (default: all in the data, up to 4)")
  p.add_argument("--graph-budgets", type=lambda s: [float(x) for x in s.split(",")],
                 default=[2, 4, 8], help="budgets of the drawn taxonomies (default 2,4,8)")
  p.add_argument("--solver", default=bip.DEFAULT_SOLVER)
  p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
  with common.stdout_to_stderr():
    paths = make_figures(args.out, args.data, args.results_dir, args.targets, args.orders,
                         args.graph_budgets, args.solver)
  for p in paths:
    print(f"wrote {p}")
  return 0
