"""The `taskonomy` console script (`taskonomy_jax.cli:main`, `python -m taskonomy_jax.cli`).

The command line itself is taskonomy_jax/commands/: `main.py` builds the parser and maps errors
to exit codes, one module per subcommand.
"""

import sys

from taskonomy_jax.commands.main import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    build_parser,
    main,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "build_parser", "main"]

if __name__ == "__main__":
  sys.exit(main())
