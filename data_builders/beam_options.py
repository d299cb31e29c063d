"""Apache Beam pipeline options from a command-line string, checked, and never from sys.argv.

    opts = beam_options.pipeline_options(beam_options.split(
        "--runner=DataflowRunner --project=p --region=us-central1 --temp_location=gs://b/tmp"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir="gs://b/taskonomy", beam_options=opts))

Why explicit flags: `PipelineOptions()` without `flags` parses `sys.argv`, and TFDS builds it that
way when given no options, so Beam logged "Discarding unparseable args: [...]" with our whole
command line. Why checked: Beam keeps an unknown flag as a custom option and a misspelled one
(`--num_worker=8`) would silently do nothing on a cluster that costs money by the hour.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Sequence
from typing import Any

# The flag `--beam-runner direct` stands for (kept for the scripts that used it).
RUNNERS = {"direct": "DirectRunner"}


class BeamOptionsError(ValueError):
  """A --beam-pipeline-options string that is not valid Beam flags (the message says why)."""


def split(spec: str) -> list[str]:
  """`spec` (shell syntax) -> flags.

  Raises:
    BeamOptionsError: unbalanced quotes, or a word that is not a `--flag`.
  """
  try:
    flags = shlex.split(spec)
  except ValueError as e:
    raise BeamOptionsError(f"--beam-pipeline-options {spec!r}: {e}") from None
  # A value given as a separate word (`--project p`) follows a flag; a word after a word is not.
  for prev, word in zip([None, *flags], flags, strict=False):
    if not word.startswith("--") and (prev is None or not prev.startswith("--") or "=" in prev):
      raise BeamOptionsError(
          f"--beam-pipeline-options: {word!r} is not a --flag (write --name=value, e.g. "
          "--runner=DataflowRunner)")
  return flags


def _parser() -> Any:
  """Beam's own parser with every option class Beam defines (runner options included)."""
  # pylint: disable-next=g-import-not-at-top (apache_beam is optional: the `beam` extra)
  from apache_beam.options import pipeline_options as po

  # Beam's subclass: some options are declared with `add_value_provider_argument`.
  parser = po._BeamArgumentParser(allow_abbrev=False, exit_on_error=False)
  for cls in {str(c): c for c in po.PipelineOptions.__subclasses__()}.values():
    cls._add_argparse_args(parser)
  return parser


STACKED_BUNDLE_OFF = "--no_direct_runner_use_stacked_bundle"


def pipeline_options(flags: Sequence[str]) -> Any:
  """`PipelineOptions(flags=flags)` after checking every flag is one Beam knows, with a value
  of the right type.

  Raises:
    BeamOptionsError: an unknown flag (with the closest known names) or a bad value.
  """
  # pylint: disable-next=g-import-not-at-top (apache_beam is optional: the `beam` extra)
  from apache_beam.options import pipeline_options as po

  parser = _parser()
  try:
    _, unknown = parser.parse_known_args(list(flags))
  except Exception as e:  # argparse.ArgumentError: a bad value (argparse is the CLI's import)
    raise BeamOptionsError(f"--beam-pipeline-options: {e}") from None
  unknown = [f for f in unknown if f.startswith("--")]
  if unknown:
    known = [a for action in parser._actions for a in action.option_strings]
    hints = []
    for flag in unknown:
      close = difflib.get_close_matches(flag.split("=", 1)[0], known, n=2)
      hints.append(f"{flag}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    raise BeamOptionsError(f"--beam-pipeline-options: unknown Beam option(s): "
                           f"{', '.join(hints)}")
  flags = list(flags)
  # Beam's worker processes rebuild the options from a dict (`PipelineOptions.from_dictionary`),
  # which turns this DirectRunner option's default, True, into `--direct_runner_use_stacked_bundle`,
  # a flag they cannot parse ("Discarding unparseable args"); a False value is left out. The
  # option only sets how the bundle-based DirectRunner stacks values in memory.
  if STACKED_BUNDLE_OFF not in flags:
    flags.append(STACKED_BUNDLE_OFF)
  return po.PipelineOptions(flags=flags)
