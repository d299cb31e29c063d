"""`taskonomy taskbank train | evaluate | predict`: the task bank from the command line."""

from __future__ import annotations

import argparse
import json

from taskonomy_jax import config_files, tasks
from taskonomy_jax.taskbank import evaluate, train, video


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
  p = subparsers.add_parser("taskbank", help="train, evaluate and run the task bank",
                            description="The task bank: one network per task of the registry.")
  sub = p.add_subparsers(dest="taskbank_command", required=True)

  t = sub.add_parser("train", help="train every task network (re-running resumes)")
  t.add_argument("config", nargs="?", default="taskbank:cpu",
                 help="a packaged config NAME[:arg] or a file path/to/config.py[:arg] "
                      "(default: %(default)s, installed with the package)")
  t.add_argument("--workdir", required=True, help="the bank: one folder per task")
  t.add_argument("--tasks", help="comma-separated task names (default: all)")
  t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config field, e.g. --set train.num_steps=300")
  t.set_defaults(run=_run_train)

  e = sub.add_parser("evaluate", help="every network vs a trivial baseline on held-out views")
  e.add_argument("--bank", required=True, help="a task-bank workdir")
  e.add_argument("--split", default="validation", choices=("validation", "test"),
                 help="held-out views to score on: choose settings on validation (default), "
                      "report test")
  e.add_argument("--out", help="JSON table (default: <bank>/evaluation.json, "
                               "<bank>/evaluation_test.json for --split test)")
  e.set_defaults(run=_run_evaluate)

  r = sub.add_parser("predict", help="run every task on one image and draw the outputs")
  r.add_argument("image", help="a PNG or JPEG (centre-cropped and resized to the bank's size)")
  r.add_argument("--bank", required=True, help="a task-bank workdir")
  r.add_argument("--out", required=True, help="PNG to write")
  r.add_argument("--size", type=int, default=128, help="pixels per panel")
  r.set_defaults(run=_run_predict)


def _run_train(args: argparse.Namespace) -> int:
  config = config_files.load_config(args.config)
  config_files.apply_overrides(config, args.set)
  if args.tasks:
    config.tasks = tuple(tasks.get(n.strip()).name for n in args.tasks.split(",") if n.strip())
  records = train.train_task_bank(config, args.workdir)
  print(json.dumps({n: {k: r.get(k) for k in ("steps", "seconds")} for n, r in records.items()},
                   indent=1))
  return 0


def _run_evaluate(args: argparse.Namespace) -> int:
  table = evaluate.evaluate_bank(args.bank, out=args.out, split=args.split)
  print(evaluate.markdown_table(table))
  return 0


def _run_predict(args: argparse.Namespace) -> int:
  video.predict_to_png(args.image, args.bank, args.out, size=args.size)
  print(args.out)
  return 0
