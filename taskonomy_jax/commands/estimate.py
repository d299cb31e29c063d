"""`taskonomy estimate`: RSA and linear CKA between a bank's networks on a folder of images.

  taskonomy estimate --bank DIR --images DIR [--tasks a,b,...] [--resamples 200] --out DIR

writes `DIR/estimates.json` (scores, per-network source rankings, optional bootstrap intervals)
and `DIR/{rsa,cka}_affinities.json`, affinity tables `taskonomy solve --data` reads. The bank is
a task-bank workdir or a folder of converted `visualpriors` checkpoints (one subfolder per task).
"""

from __future__ import annotations

import argparse
import json
import pathlib

from taskonomy_jax import files
from taskonomy_jax.transfer import estimate_bank


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
  p = subparsers.add_parser(
      "estimate", help="task relations from frozen networks: RSA and CKA (no training)",
      description="Score every pair of a bank's networks by representation similarity (RSA, "
                  "linear CKA) on a folder of images, rank each network's sources and write "
                  "affinity tables that `taskonomy solve --data` reads.")
  p.add_argument("--bank", required=True,
                 help="a task-bank workdir, or a folder of converted visualpriors checkpoints "
                      "(`taskonomy convert-visualpriors --out DIR/<task>`)")
  p.add_argument("--images", required=True, help="a folder of images (PNG, JPEG, ...)")
  p.add_argument("--tasks", help="comma-separated task names (default: every network found)")
  p.add_argument("--resamples", type=int, default=0,
                 help="bootstrap resamples of the images for intervals (default: none)")
  p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default %(default)s)")
  p.add_argument("--out", required=True, help="output folder")
  p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
  names = [n.strip() for n in args.tasks.split(",") if n.strip()] if args.tasks else None
  summary, tables = estimate_bank.estimate_from_bank(args.bank, args.images, names,
                                                     resamples=args.resamples, seed=args.seed)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  files.write_atomic(out / "estimates.json", json.dumps(summary, indent=1))
  for measure, table in tables.items():
    table.save(out / f"{measure}_affinities.json")
  print(f"{summary['images']} images, {len(summary['networks'])} networks; "
        f"encoded in {summary['encode_seconds']:.1f} s")
  for measure in tables:
    print(f"{measure}: best sources per network")
    for target, ranked in summary[measure]["rankings"].items():
      best = ", ".join(f"{s} {summary[measure]['scores'][s][target]:.2f}" for s in ranked[:3])
      print(f"  {target:20} {best}")
  print(f"written: {out / 'estimates.json'}, "
        + ", ".join(str(out / f"{m}_affinities.json") for m in tables))
  return 0
