"""The benchmark suite: every benchmark beside its baseline, one table (`python -m benchmarks`).

Each benchmark is a function `(size config section, Context) -> (rows, details)` in
`BENCHMARKS`, built on the `measure(...)` function of its own module. The runner starts each in
a fresh process (`python -m benchmarks _one NAME`): XLA flags differ between them (the
transfer benchmark compiles at optimisation level 0, as `make taxonomy` does), a crash or an
out-of-memory in one does not lose the others, and no benchmark inherits another's threads,
caches or JIT state. `make taxonomy`'s wall time by stage is read from a finished workdir's
`timings.json` (never re-run here).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from benchmarks import projection, report, sizes
from benchmarks.report import Goal, Row
from taskonomy_jax import xla_flags

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# `make taxonomy` compiles at level 0 (transfer/pipeline.py: configure_jax); the stacked vs
# one-by-one comparison is run the way the pipeline runs it.
# Our training step is timed with the flags the entry points set (taskonomy_jax/xla_flags.py).
ENV: dict[str, dict[str, str]] = {
    "transfers": {"XLA_FLAGS": " ".join(("--xla_backend_optimization_level=0",
                                         *xla_flags.cpu_training_flags()))},
    "train_step": {"XLA_FLAGS": " ".join(xla_flags.cpu_training_flags())},
}
TAXONOMY_GOAL_S = 15 * 60  # issue 6: the default `make taxonomy` within 15 minutes


@dataclasses.dataclass
class Context:
  work_dir: pathlib.Path  # scratch space for this benchmark
  taxonomy_workdir: pathlib.Path | None = None


Result = tuple[list[Row], dict[str, Any]]


def bench_world(c: Mapping[str, Any], ctx: Context) -> Result:
  from benchmarks import world_views_per_second
  m = world_views_per_second.measure(**c)
  res = f"{m['resolution']}x{m['resolution']}"
  rows = [
      Row(f"world: views/s at {res}, generation + rendering, 1 process ({m['views']} views)",
          "views/s", m["views_per_s"], goal=Goal("ours_at_least", 2000 / 60)),
      Row(f"world: rendering with frustum culling vs none ({m['baseline_views']} views)",
          "views/s", m["culled_render_views_per_s"], m["unculled_render_views_per_s"],
          baseline_name="no culling"),
  ]
  if m["parallel_views_per_s"] is not None:
    rows.append(Row(f"world: {m['workers']} processes vs 1", "views/s",
                    m["parallel_views_per_s"], m["views_per_s"], baseline_name="1 process"))
  return rows, m


def bench_input_pipeline(c: Mapping[str, Any], ctx: Context) -> Result:
  from benchmarks import input_pipeline
  input_pipeline.mark_flags_parsed()
  data = input_pipeline.prepare(ctx.work_dir / "input_pipeline", c["buildings"],
                                c["resolution"], c["points"])
  m = input_pipeline.measure(data, c["workers"], c["batch_size"], c["batches"], c["repeats"])
  rows = [Row(f"input pipeline: {c['resolution']}x{c['resolution']}, batch {c['batch_size']}, "
              f"{r['workers']} workers", "samples/s", r["ours"], r["omnidata"],
              baseline_name="omnidata-tools", goal=Goal("ratio_at_least", 2.0))
          for r in m["rows"]]
  m.update(export_s=data.export_s, build_s=data.build_s)
  return rows, m


def bench_train_step(c: Mapping[str, Any], ctx: Context) -> Result:
  from benchmarks import train_step
  m = train_step.measure(c["sizes"], c["batch"], c["steps"])
  m["where"] = report.machine_short()
  if c.get("paper_flops", True):  # for the projection; traced only (~10 s)
    from benchmarks import flops
    m["paper_flops"] = flops.paper_flops()
  rows = [Row(f"train step (paper-size normal net, fp32, Adam): {r['size']}x{r['size']}, "
              f"batch {m['batch']}", "img/s", r["ours"], r["torch"],
              baseline_name="visualpriors PyTorch", goal=Goal("ratio_at_least", 1.0))
          for r in m["rows"]]
  return rows, m


def bench_transfers(c: Mapping[str, Any], ctx: Context) -> Result:
  from benchmarks import transfers
  m = transfers.measure(c["readouts"], c["steps"], c["repeats"])
  per_hour = m["transfers_per_hour"]
  what = f"transfers: {m['readouts']} readouts x {m['steps']} steps, stacked"
  rows = [Row(f"{what} vs one by one (compiled for each)", "transfers/h", per_hour["batched"],
              per_hour["sequential_fresh"], baseline_name="fresh compiles",
              goal=Goal("ratio_at_least", 20.0)),
          Row(f"{what} vs one by one (one compiled step reused)", "transfers/h",
              per_hour["batched"], per_hour["sequential_reused"], baseline_name="reused step")]
  return rows, m


def bench_bip(c: Mapping[str, Any], ctx: Context) -> Result:
  from benchmarks import bip_solve
  m = bip_solve.measure(c["instances"], c["data"], c["naive_sweep"], c["order"])
  rows = []
  for name, r in m.items():
    what = (f"BIP {name} ({r['targets']} targets, {r['tasks']} tasks, order <= {r['order']}, "
            f"{r['candidates']} candidates)")
    rows.append(Row(f"{what}: single solve", "s", r["ours_single"], r["naive_single"],
                    higher_is_better=False, baseline_name="naive",
                    goal=Goal("ours_at_most", 1.0)))
    rows.append(Row(f"{what}: sweep of {r['budgets']} budgets", "s", r["ours_sweep"],
                    r["naive_sweep"], higher_is_better=False, baseline_name="naive",
                    goal=Goal("ours_at_most", 10.0)))
  return rows, m


def taxonomy_stage_seconds(workdir: str | os.PathLike) -> dict[str, Any]:
  """`make taxonomy`'s seconds per stage from `<workdir>/timings.json`.

  A resumed run logs the units it skipped with ~0 s; their first run's seconds are read from
  the unit's `DONE` marker instead (`from_markers` counts them). Returns
  {"stages": {stage: {"seconds", "units", "from_markers"}}, "total_s", "complete"}, where
  `complete` is whether every pipeline stage appears.
  """
  from taskonomy_jax.transfer import pipeline, stages
  workdir = pathlib.Path(workdir)
  path = workdir / "timings.json"
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found: --taxonomy-workdir must be the --workdir of a "
                            "`taskonomy taxonomy` (make taxonomy) run that finished")
  out: dict[str, dict[str, Any]] = {}
  for e in json.loads(path.read_text()):
    if e["stage"] not in pipeline.STAGES:
      raise ValueError(f"{path}: unknown stage {e['stage']!r}; stages: {pipeline.STAGES}")
    s = out.setdefault(e["stage"], {"seconds": 0.0, "units": 0, "from_markers": 0})
    seconds = float(e["seconds"])
    unit_dir = workdir / f"{pipeline.STAGES.index(e['stage']) + 1:02d}_{e['stage']}" / e["unit"]
    if not e["ran"] and stages.is_done(unit_dir):
      seconds = float(stages.marker_info(unit_dir).get("seconds", seconds))
      s["from_markers"] += 1
    s["seconds"] += seconds
    s["units"] += 1
  ordered = {st: out[st] for st in pipeline.STAGES if st in out}
  data = workdir / "01_dataset" / "tfds" / "data.json"  # stage_dataset's copy of config.data
  config = json.loads(data.read_text()).get("name", "?") if data.is_file() else "?"
  return {"stages": ordered, "total_s": sum(s["seconds"] for s in ordered.values()),
          "complete": len(ordered) == len(pipeline.STAGES), "workdir": str(workdir),
          "config": config.removeprefix("taxonomy_")}


def bench_taxonomy(c: Mapping[str, Any], ctx: Context) -> Result:
  if ctx.taxonomy_workdir is None:
    raise ValueError("the taxonomy benchmark needs --taxonomy-workdir DIR (a finished "
                     "`make taxonomy` workdir)")
  m = taxonomy_stage_seconds(ctx.taxonomy_workdir)
  what = f"make taxonomy ({m['config']} config)"
  rows = [Row(f"{what}: stage {st} ({s['units']} units)", "s", s["seconds"],
              higher_is_better=False,
              note=f"{s['from_markers']} from DONE markers" if s["from_markers"] else "")
          for st, s in m["stages"].items()]
  # The 15-minute goal is the default config's; other configs are reported without it.
  goal = m["complete"] and m["config"] == "default"
  rows.append(Row(f"{what}: all stages" + ("" if m["complete"] else " (INCOMPLETE run)"),
                  "s", m["total_s"], higher_is_better=False,
                  goal=Goal("ours_at_most", TAXONOMY_GOAL_S) if goal else None))
  return rows, m


BENCHMARKS: dict[str, Callable[[Mapping[str, Any], Context], Result]] = {
    "world": bench_world,
    "input_pipeline": bench_input_pipeline,
    "train_step": bench_train_step,
    "transfers": bench_transfers,
    "bip": bench_bip,
    "taxonomy": bench_taxonomy,
}


def check_names(names: Sequence[str]) -> list[str]:
  unknown = [n for n in names if n not in BENCHMARKS]
  if unknown:
    raise ValueError(f"unknown benchmark(s) {unknown}; accepted: {', '.join(BENCHMARKS)}")
  return list(names)


def run_one(name: str, size: str, taxonomy_workdir: str | None = None) -> dict[str, Any]:
  """Runs one benchmark in this process: {"rows": [...], "details": {...}, "seconds": s}."""
  cfg = sizes.get_config(size)
  section = dict(cfg[name]) if name in cfg else {}
  start = time.perf_counter()
  with tempfile.TemporaryDirectory(prefix=f"bench_{name}_") as tmp:
    ctx = Context(pathlib.Path(tmp),
                  pathlib.Path(taxonomy_workdir) if taxonomy_workdir else None)
    rows, details = BENCHMARKS[name](section, ctx)
  return {"rows": [r.to_json() for r in rows], "details": details,
          "seconds": time.perf_counter() - start}


def run_isolated(name: str, size: str, taxonomy_workdir: str | None = None) -> dict[str, Any]:
  """`run_one` in a fresh `python -m benchmarks _one` process; errors come back as data."""
  with tempfile.TemporaryDirectory(prefix="bench_result_") as tmp:
    result = pathlib.Path(tmp) / "result.json"
    cmd = [sys.executable, "-m", "benchmarks", "_one", name, "--size", size,
           "--result", str(result)]
    if taxonomy_workdir:
      cmd += ["--taxonomy-workdir", str(taxonomy_workdir)]
    env = {**os.environ, **ENV.get(name, {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, check=False)
    if proc.returncode == 0 and result.is_file():
      return json.loads(result.read_text())
    error = (json.loads(result.read_text()).get("error") if result.is_file()
             else f"exit status {proc.returncode}")
    return {"rows": [], "details": {}, "error": error,
            "seconds": time.perf_counter() - start}


def main_one(name: str, size: str, result_path: str, taxonomy_workdir: str | None) -> int:
  """Entry of the `_one` subprocess: writes the result (or the error) as JSON."""
  from taskonomy_jax import files
  try:
    out = run_one(name, size, taxonomy_workdir)
    code = 0
  except Exception as e:  # the runner reports it and goes on with the other benchmarks
    traceback.print_exc()
    out = {"error": f"{type(e).__name__}: {e}"}
    code = 1
  files.write_atomic(pathlib.Path(result_path), json.dumps(out, indent=1, default=str))
  return code


def run_suite(names: Sequence[str], size: str, out_dir: str | os.PathLike,
              taxonomy_workdir: str | None = None, isolated: bool = True
              ) -> tuple[list[Row], dict[str, Any], dict[str, str]]:
  """Runs `names` in order, prints and writes the one table. Returns (rows, doc, paths)."""
  names = check_names(names)
  mach = report.machine()
  mach["size"] = size
  rows: list[Row] = []
  details: dict[str, Any] = {}
  for i, name in enumerate(names):
    print(f"[{i + 1}/{len(names)}] {name} ({size})", flush=True)
    r = run_isolated(name, size, taxonomy_workdir) if isolated else run_one(
        name, size, taxonomy_workdir)
    details[name] = {k: r[k] for k in ("details", "seconds", "error") if k in r}
    if r.get("error"):
      print(f"[{i + 1}/{len(names)}] {name} FAILED: {r['error']}", flush=True)
      rows.append(Row(f"{name}: FAILED ({r['error'][:120]})", "", None))
      continue
    rows.extend(report.rows_from_json({"rows": r["rows"]}))
    print(f"[{i + 1}/{len(names)}] {name}: {r['seconds']:.0f} s", flush=True)
  mach["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
  sections = []
  try:
    proj = projection.project_suite(details)
    sections.append(("Projection to the paper's scale", projection.markdown(proj)))
    details["projection"] = proj
  except projection.MissingMeasurement as e:
    print(f"(no projection: {e})")
  paths = report.write(out_dir, "suite", rows, mach, details, sections)
  print()
  print(report.machine_text(mach))
  print(report.text_table(rows))
  print(f"\nwritten: {paths['json']}, {paths['md']}")
  return rows, {"machine": mach, "details": details}, paths
