"""`taskonomy taxonomy`: the whole method on the synthetic world, as resumable stages."""

from __future__ import annotations

import argparse
import json
import pathlib
import time

from taskonomy_jax import config_files
from taskonomy_jax.transfer import gates, pipeline


def add_subcommand(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser(
      "taxonomy", help="the whole pipeline on the synthetic world (resumable)",
      description="Render, build, train the task bank and the transfers, compute affinities, "
                  "solve the BIP and draw the figures. Rerunning skips finished stages.")
  p.add_argument("--config", default="taxonomy",
                 help="a packaged config NAME[:arg] or a file path/to/config.py[:arg] "
                      "(default %(default)s, installed with the package; 'taxonomy:tiny' for a "
                      "smoke run)")
  p.add_argument("--workdir", default="out/taxonomy", help="outputs (default %(default)s)")
  p.add_argument("--until", choices=pipeline.STAGES, help="stop after this stage")
  p.add_argument("--bank", metavar="DIR",
                 help="an already trained task bank (`taskonomy taskbank train --workdir DIR`) "
                      "to read instead of training the run's own; it must hold every target and "
                      "random projection at the run's resolution")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config field, e.g. --set transfer.num_steps=50")
  p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
  config = config_files.load_config(args.config)
  config_files.apply_overrides(config, args.set)
  if args.bank:
    config.taskbank.bank = str(pathlib.Path(args.bank).resolve())
  start = time.time()
  run = pipeline.run_pipeline(config, args.workdir, args.until)
  print(f"done in {time.time() - start:.0f} s; outputs:")
  for name, path in pipeline.outputs(run).items():
    print(f"  {name:24} {path}{'' if path.exists() else '  (not made yet)'}")
  report = pipeline.report_path(run)
  if report.is_file():  # the gates, last: whether this taxonomy carries signal
    print("\n".join(gates.summary_lines(json.loads(report.read_text()))))
  return 0
