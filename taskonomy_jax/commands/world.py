"""`taskonomy world preview`: a PNG contact sheet of every domain for a few views.

    taskonomy world preview --seed 0 --views 4 --resolution 128 --out world_preview.png
"""

from __future__ import annotations

import argparse

from taskonomy_jax.world import preview


def _run(args: argparse.Namespace) -> int:
  path = preview.preview(args.seed, args.views, args.out, args.resolution)
  print(f"wrote {path}")
  return 0


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
  """Registers `taskonomy world preview`."""
  p = subparsers.add_parser("world", help="the procedural Taskonomy world",
                            description="The procedural Taskonomy world.")
  sub = p.add_subparsers(dest="world_command", metavar="WORLD_COMMAND", required=True)
  pv = sub.add_parser("preview", help="write a PNG contact sheet of every domain",
                      description="Render a few views of one building and draw every domain.")
  pv.add_argument("--seed", type=int, default=0, help="building seed (default 0)")
  pv.add_argument("--views", type=int, default=4, help="number of views (rows, default 4)")
  pv.add_argument("--resolution", type=int, default=128, help="image side (default 128)")
  pv.add_argument("--out", default="world_preview.png", help="output PNG path")
  pv.set_defaults(run=_run)
