"""`taskonomy tasks [NAME]`: the task dictionary, as a table or JSON."""

from __future__ import annotations

import argparse
import json

from taskonomy_jax import tasks


def add_subcommand(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser("tasks", help="list the task dictionary (or one task)",
                     description="List the 26 Taskonomy tasks, or show one by any of its names.")
  p.add_argument("name", nargs="?", help="a registry name, original code name or alias")
  p.add_argument("--json", action="store_true", help="print JSON instead of a table")
  p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
  specs = [tasks.get(args.name)] if args.name else list(tasks.all_tasks())
  if args.json:
    rows = [{**t.__dict__, "output_shape_256": t.output_shape(256)} for t in specs]
    print(json.dumps(rows if not args.name else rows[0], indent=1))
    return 0
  print(f"{'name':18} {'code name':30} {'views':5} {'decoder':8} {'loss':22} source-only")
  for t in specs:
    print(f"{t.name:18} {t.code_name:30} {t.num_views:<5} {t.decoder:8} {t.loss:22} "
          f"{'yes' if t.source_only else ''}")
  return 0
