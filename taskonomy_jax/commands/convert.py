"""`taskonomy convert-visualpriors`: PyTorch task-bank weights (visualpriors) as a Flax checkpoint."""

from __future__ import annotations

import argparse

from taskonomy_jax import tasks
from taskonomy_jax.convert import visualpriors


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
  p = subparsers.add_parser(
      "convert-visualpriors", help="convert PyTorch task-bank weights (visualpriors) to Flax",
      description="Convert a visualpriors encoder (and decoder) .pth into a Flax checkpoint.")
  p.add_argument("--task", required=True, help="task name, e.g. normal")
  p.add_argument("--encoder", required=True, help="<task>_encoder-<hash>.pth")
  p.add_argument("--decoder", help="<task>_decoder-<hash>.pth (absent for some tasks)")
  p.add_argument("--out", required=True, help="output workdir (checkpoints/0 is written)")
  p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
  spec = tasks.get(args.task)
  variables = visualpriors.convert(spec, visualpriors.load_pth(args.encoder),
                      visualpriors.load_pth(args.decoder) if args.decoder else None)
  print(visualpriors.save(variables, args.out))
  return 0
