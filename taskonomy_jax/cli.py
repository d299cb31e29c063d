"""The `taskonomy` command line: one command, a subcommand per thing a user runs.

Each subcommand lives in the module that owns the capability and registers itself here through
`SUBCOMMANDS`; this file only builds the parser and maps errors to exit codes:
0 success, 1 runtime failure (a missing component, an unwritable file), 2 bad input (unknown
task, bad option value, also argparse's usage errors), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from taskonomy_jax import tasks, xla_flags
from taskonomy_jax.convert import visualpriors as convert_visualpriors
from taskonomy_jax.data import cli as data_cli
from taskonomy_jax.taskbank import cli as taskbank_cli
from taskonomy_jax.taskbank import video as taskbank_video
from taskonomy_jax.taxonomy import api as taxonomy_api
from taskonomy_jax.taxonomy import estimate_cli as taxonomy_estimate
from taskonomy_jax.taxonomy import figures as taxonomy_figures
from taskonomy_jax.train import task as train_task
from taskonomy_jax.transfer import pipeline as transfer_pipeline
from taskonomy_jax.web import serve as web_serve
from taskonomy_jax.world import preview as world_preview

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _add_tasks_command(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser("tasks", help="list the task dictionary (or one task)",
                     description="List the 26 Taskonomy tasks, or show one by any of its names.")
  p.add_argument("name", nargs="?", help="a registry name, original code name or alias")
  p.add_argument("--json", action="store_true", help="print JSON instead of a table")
  p.set_defaults(run=_run_tasks)


def _run_tasks(args: argparse.Namespace) -> int:
  specs = [tasks.get(args.name)] if args.name else list(tasks.all_tasks())
  if args.json:
    rows = [{**t.__dict__, "output_shape_256": t.output_shape(256)} for t in specs]
    print(json.dumps(rows if not args.name else rows[0], indent=1))
    return EXIT_OK
  print(f"{'name':18} {'code name':30} {'views':5} {'decoder':8} {'loss':22} source-only")
  for t in specs:
    print(f"{t.name:18} {t.code_name:30} {t.num_views:<5} {t.decoder:8} {t.loss:22} "
          f"{'yes' if t.source_only else ''}")
  return EXIT_OK


# Modules that own a capability append their `add(subparsers)` function here.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_tasks_command,
    world_preview.add_subcommand,
    taxonomy_api.add_subcommand,
    taxonomy_figures.add_subcommand,
    taxonomy_estimate.add_subcommand,
    data_cli.add_subcommand,
    train_task.add_subcommand,
    convert_visualpriors.add_subcommand,
    web_serve.add_subcommand,
    taskbank_cli.add_subcommand,
    taskbank_video.add_subcommand,
    transfer_pipeline.add_subcommand,
]


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="taskonomy",
      description="Taskonomy in JAX: task bank, transfers, affinities and the taxonomy solver.")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
  for add in SUBCOMMANDS:
    add(sub)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  xla_flags.configure_for_training()
  try:
    return args.run(args)
  except tasks.UnknownTaskError as e:
    print(f"error: {e}", file=sys.stderr)
    return EXIT_BAD_INPUT
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return EXIT_BAD_INPUT
  except (RuntimeError, OSError) as e:  # a missing component, a file that cannot be written
    print(f"error: {e}", file=sys.stderr)
    return EXIT_FAILURE
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


if __name__ == "__main__":
  sys.exit(main())
