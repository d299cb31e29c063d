"""The `taskonomy` command line, one module per subcommand.

Each module has `add_subcommand(subparsers)`, which adds its parser and sets `run` (args -> exit
code); it turns flags into plain arguments of the library and prints the result. Nothing in the
library imports from here (tests/test_layers.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from taskonomy_jax.commands import (
    convert,
    data,
    estimate,
    figures,
    serve,
    solve,
    taskbank,
    tasks,
    taxonomy,
    train,
    visualize,
    world,
)

# In the order `taskonomy --help` lists them.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    tasks.add_subcommand,
    world.add_subcommand,
    solve.add_subcommand,
    figures.add_subcommand,
    data.add_subcommand,
    train.add_subcommand,
    convert.add_subcommand,
    serve.add_subcommand,
    taskbank.add_subcommand,
    visualize.add_subcommand,
    taxonomy.add_subcommand,
    estimate.add_subcommand,
]
