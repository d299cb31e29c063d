"""What the subcommands share: argparse value types and keeping stdout for the answer."""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
from collections.abc import Callable, Iterator

from taskonomy_jax import files
from taskonomy_jax.taxonomy import bip


def task_names(text: str) -> list[str]:
  """The argparse type of `--targets`/`--sources`: comma-separated names (resolved later)."""
  names = [n.strip() for n in text.split(",") if n.strip()]
  if not names:
    raise argparse.ArgumentTypeError("expected a comma-separated list of task names")
  return names


def weights(what: str) -> Callable[[str], dict[str, float]]:
  """The argparse type of `--costs`/`--importance` (`what`: cost or importance):
  `NAME=VALUE,NAME=VALUE` or a JSON file holding an object of that shape."""

  def parse(text: str) -> dict[str, float]:
    if text.endswith(".json") and pathlib.Path(text).is_file():
      try:
        data = files.loads_json(pathlib.Path(text).read_bytes(), text)
      except files.JsonInputError as e:
        raise argparse.ArgumentTypeError(f"{e}; expected an object NAME -> number") from None
      if not isinstance(data, dict):
        raise argparse.ArgumentTypeError(f"{text} must hold a JSON object NAME -> number")
      try:  # values here, so the message names the file; names resolve in the solver
        return {name: bip.check_weight(what, name, value) for name, value in data.items()}
      except bip.BadProblemError as e:
        raise argparse.ArgumentTypeError(f"{text}: {e}") from None
    out = {}
    for item in text.split(","):
      name, sep, value = item.partition("=")
      try:
        out[name.strip()] = float(value)
      except ValueError:
        sep = ""
      if not sep:
        raise argparse.ArgumentTypeError(
            f"expected NAME=NUMBER pairs separated by commas (or a .json file), got {item!r}")
    return out

  return parse


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
  """Sends anything the native solvers print (HiGHS prints a banner) to stderr, so stdout
  carries only the JSON answer."""
  sys.stdout.flush()
  saved = os.dup(1)
  try:
    os.dup2(2, 1)
    yield
  finally:
    sys.stdout.flush()
    os.dup2(saved, 1)
    os.close(saved)
