"""`taskonomy train CONFIG --workdir DIR`: one task network from a run config.

`python -m experiments.train` runs this same subcommand (same arguments, `--set key=value`).
"""

from __future__ import annotations

import argparse

from taskonomy_jax import config_files, tasks
from taskonomy_jax.taskbank import data as taskbank_data
from taskonomy_jax.train import sharding
from taskonomy_jax.train import task as train_task


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
  p = subparsers.add_parser(
      "train", help="train one task network (resumes from the workdir)",
      description="Train a task network from a run config; re-running resumes.")
  p.add_argument("config", help="a packaged config NAME[:arg] (installed with the package), e.g. "
                                "task_network:cpu, or a file path/to/config.py[:arg]")
  p.add_argument("--workdir", required=True, help="checkpoints, TensorBoard events, metrics")
  p.add_argument("--task", help="task name (overrides config.task)")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config field, e.g. --set train.num_steps=100")
  p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
  config = config_files.load_config(args.config)
  config_files.apply_overrides(config, ([f"task={args.task}"] if args.task else []) + args.set)
  tasks.get(config.task)  # unknown task: a clear error before anything heavy
  # `data.name` may name a TFDS dataset (`taskonomy_synthetic`, `taskonomy`) as well as "toy".
  taskbank_data.register()
  sharding.maybe_initialize_distributed(config.get("multihost", False))
  train_task.train_task(config, args.workdir)
  return 0
