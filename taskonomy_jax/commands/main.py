"""The `taskonomy` command line: one command, a subcommand per thing a user runs.

Each subcommand is a module of `taskonomy_jax/commands/` (listed in `commands.SUBCOMMANDS`); this
module only builds the parser and maps errors to exit codes:
0 success, 1 runtime failure (a missing component, an unwritable file), 2 bad input (unknown
task, bad option value, also argparse's usage errors), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from taskonomy_jax import tasks, xla_flags
from taskonomy_jax.commands import SUBCOMMANDS

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


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
