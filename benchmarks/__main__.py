"""`python -m benchmarks`: the suite, the scaling study, the projection (see each module).

    python -m benchmarks [--quick] [--out DIR] [--only NAME ...] [--taxonomy-workdir DIR]
    python -m benchmarks scaling [--quick] [--out DIR] [--only STUDY ...]
    python -m benchmarks project SUITE_JSON [--gpu GPU_JSON]
    python -m benchmarks.gpu [--tiny] [--out DIR]          # the accelerator run
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence


def _suite_parser() -> argparse.ArgumentParser:
  from benchmarks import suite
  p = argparse.ArgumentParser(prog="python -m benchmarks",
                              description="Run every benchmark beside its baseline; one table.",
                              epilog="Other commands: `python -m benchmarks scaling -h`, "
                                     "`python -m benchmarks project -h`.")
  p.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
  p.add_argument("--size", choices=("tiny", "quick", "full"),
                 help="explicit size (overrides --quick); tiny is for tests")
  p.add_argument("--out", default="out/bench", help="where suite.json/suite.md go")
  p.add_argument("--only", nargs="+", metavar="NAME",
                 help=f"run only these (of: {', '.join(suite.BENCHMARKS)})")
  p.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="leave these out")
  p.add_argument("--taxonomy-workdir",
                 help="a finished `make taxonomy` workdir: report its timings.json by stage")
  p.add_argument("--in-process", action="store_true",
                 help="run every benchmark in this process (default: one process each)")
  return p


def _main_suite(argv: Sequence[str]) -> int:
  from benchmarks import suite
  args = _suite_parser().parse_args(argv)
  size = args.size or ("quick" if args.quick else "full")
  names = suite.check_names(args.only or list(suite.BENCHMARKS))
  suite.check_names(args.skip)
  if not args.taxonomy_workdir and not args.only:
    args.skip.append("taxonomy")  # nothing to report without a workdir
  names = [n for n in names if n not in args.skip]
  rows, _, _ = suite.run_suite(names, size, args.out, args.taxonomy_workdir,
                               isolated=not args.in_process)
  return 1 if any(r.unit == "" and r.ours is None for r in rows) else 0


def _main_one(argv: Sequence[str]) -> int:
  from benchmarks import suite
  p = argparse.ArgumentParser(prog="python -m benchmarks _one",
                              description="(internal) run one benchmark, write its result")
  p.add_argument("name")
  p.add_argument("--size", required=True)
  p.add_argument("--result", required=True)
  p.add_argument("--taxonomy-workdir")
  args = p.parse_args(argv)
  return suite.main_one(args.name, args.size, args.result, args.taxonomy_workdir)


def _main_scaling(argv: Sequence[str]) -> int:
  from benchmarks import scaling
  p = argparse.ArgumentParser(prog="python -m benchmarks scaling",
                              description="How each cost grows with the work: one PNG each.")
  p.add_argument("--quick", action="store_true")
  p.add_argument("--size", choices=("tiny", "quick", "full"))
  p.add_argument("--out", default="out/bench/scaling")
  p.add_argument("--only", nargs="+", metavar="STUDY",
                 help=f"run only these (of: {', '.join(scaling.STUDIES)})")
  args = p.parse_args(argv)
  size = args.size or ("quick" if args.quick else "full")
  failed = scaling.run_all(args.only or list(scaling.STUDIES), size, args.out)
  return 1 if failed else 0


def _main_project(argv: Sequence[str]) -> int:
  from benchmarks import projection
  p = argparse.ArgumentParser(prog="python -m benchmarks project",
                              description="Project a suite run (or a GPU run) to paper scale.")
  p.add_argument("suite_json", help="suite.json written by `python -m benchmarks`")
  p.add_argument("--gpu", help="gpu.json from `python -m benchmarks.gpu`: use its train rate")
  args = p.parse_args(argv)
  doc = json.loads(pathlib.Path(args.suite_json).read_text())
  rates = projection.rates_from_suite(doc["details"])
  if args.gpu:
    rates = projection.with_gpu(rates, json.loads(pathlib.Path(args.gpu).read_text()))
  print(projection.markdown(projection.project(rates, projection.PaperScale.from_config())))
  return 0


COMMANDS = {"scaling": _main_scaling, "project": _main_project, "_one": _main_one}


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if argv and argv[0] in COMMANDS:
    return COMMANDS[argv[0]](argv[1:])
  return _main_suite(argv)


if __name__ == "__main__":
  sys.exit(main())
