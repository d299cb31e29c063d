"""How each cost grows with the work: one study, one JSON and one PNG each.

    python -m benchmarks scaling --out docs/benchmarks [--quick] [--only bip ...]

Studies (`STUDIES`):
  bip                 BIP time (build + a sweep of every budget, and the slowest single solve)
                      vs number of tasks and maximum order, on task subsets of the published
                      `1k` table and on random tables (`bip_solve.random_table`).
  pipeline_workers    input pipeline samples/s vs worker count, ours and omnidata-tools'.
  transfers_readouts  transfers/hour vs readouts per compiled step (`transfers.measure`).
  end_to_end          world render + export, and the TFDS build, vs number of buildings.
Each study runs in its own process (as the suite's benchmarks do).
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from taskonomy_jax import files

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _sizes(size: str) -> dict[str, dict[str, Any]]:
  from benchmarks import sizes
  if size not in sizes.SIZES:
    raise ValueError(f"unknown size {size!r}; accepted: {', '.join(sizes.SIZES)}")
  tiny, quick = size == "tiny", size == "quick"
  return {
      "bip": {"tasks": (3, 5) if tiny else (4, 13, 26) if quick else (4, 8, 13, 19, 26),
              "orders": (1, 2) if tiny else (1, 4) if quick else (1, 2, 3, 4),
              "sources": ("published",) if tiny else ("published", "random")},
      "pipeline_workers": {"workers": (0,) if tiny else (0, 2) if quick else (0, 1, 2, 4),
                           "buildings": 1 if tiny else 2 if quick else 4,
                           "resolution": 32 if tiny else 64, "points": 2 if tiny else 8,
                           "batches": 3 if tiny else 20 if quick else 50,
                           "baseline": not tiny},
      "transfers_readouts": {"readouts": (1, 2) if tiny else (1, 4) if quick else (1, 2, 4, 8),
                             "steps": 2 if tiny else 10},
      "end_to_end": {"buildings": (1,) if tiny else (1, 2) if quick else (1, 2, 4, 8),
                     "resolution": 32 if tiny else 64, "points": 2 if tiny else 8},
  }


def _bip_tables(source: str, n: int):
  """(table, targets, sources) of an n-task instance."""
  from benchmarks import bip_solve
  from taskonomy_jax.taxonomy import published
  if source == "random":
    table = bip_solve.random_table(num_tasks=n)
    return table, table.targets, table.nodes
  table = published.load_published("1k")
  rng = np.random.default_rng(0)
  targets = list(rng.permutation(table.targets))
  others = list(rng.permutation([t for t in table.nodes if t not in targets]))
  chosen = (targets + others)[:n]
  return table, [t for t in chosen if t in table.targets], chosen


def study_bip(c: dict[str, Any], work: pathlib.Path) -> dict[str, Any]:
  """Per (source, tasks, order): build once, then solve every budget 1..tasks (a sweep)."""
  from taskonomy_jax.taxonomy import bip
  points = []
  for source in c["sources"]:
    for n in c["tasks"]:
      table, targets, srcs = _bip_tables(source, n)
      for order in c["orders"]:
        t0 = time.perf_counter()
        solver = bip.BipSolver(bip.build_problem(table, targets, srcs, order=order))
        build = time.perf_counter() - t0
        per = []
        first = max(1, int(np.ceil(bip.min_budget(solver.problem) - 1e-9)))
        for budget in range(first, len(srcs) + 1):
          t1 = time.perf_counter()
          solver.solve(budget)
          per.append(time.perf_counter() - t1)
        points.append({"source": source, "tasks": len(srcs), "targets": len(targets),
                       "order": order, "candidates": len(solver.problem.candidates),
                       "build_s": build, "sweep_s": build + sum(per),
                       "worst_single_s": build + max(per),
                       "worst_budget": first + int(np.argmax(per))})
        print(f"bip {source} tasks={len(srcs)} order={order}: sweep {points[-1]['sweep_s']:.2f} s,"
              f" worst single {points[-1]['worst_single_s']:.2f} s", flush=True)
  return {"points": points}


def plot_bip(data: dict[str, Any], fig: Any) -> None:
  sources = sorted({p["source"] for p in data["points"]})
  axes = fig.subplots(1, len(sources), sharey=True, squeeze=False)[0]
  for ax, source in zip(axes, sources, strict=True):
    pts = [p for p in data["points"] if p["source"] == source]
    for i, order in enumerate(sorted({p["order"] for p in pts})):
      xs = [p for p in pts if p["order"] == order]
      color = f"C{i}"
      ax.plot([p["tasks"] for p in xs], [p["sweep_s"] for p in xs], "o-", color=color,
              label=f"order <= {order}: sweep of every budget")
      ax.plot([p["tasks"] for p in xs], [p["worst_single_s"] for p in xs], "x:", color=color,
              label=f"order <= {order}: slowest single solve")
    ax.set(title=f"{source} affinities", xlabel="tasks", yscale="log")
    for goal in (1.0, 10.0):  # the single-solve and sweep goals
      ax.axhline(goal, color="grey", ls="--", lw=0.8)
    ax.legend(fontsize=7)
  axes[0].set_ylabel("seconds (build included)")


def study_pipeline_workers(c: dict[str, Any], work: pathlib.Path) -> dict[str, Any]:
  from benchmarks import input_pipeline
  input_pipeline.mark_flags_parsed()
  data = input_pipeline.prepare(work / "data", c["buildings"], c["resolution"], c["points"])
  return input_pipeline.measure(data, c["workers"], 16, c["batches"], 1, c["baseline"])


def plot_pipeline_workers(data: dict[str, Any], fig: Any) -> None:
  ax = fig.subplots()
  w = [r["workers"] for r in data["rows"]]
  ax.plot(w, [r["ours"] for r in data["rows"]], "o-", label="ours (grain threads)")
  if data["rows"][0]["omnidata"] is not None:
    ax.plot(w, [r["omnidata"] for r in data["rows"]], "s-",
            label="omnidata-tools (DataLoader processes)")
  ax.set(xlabel="workers", ylabel="samples/s", xticks=w,
         title=f"input pipeline, {data['resolution']}x{data['resolution']}, "
               f"batch {data['batch_size']}")
  ax.legend()


def study_transfers_readouts(c: dict[str, Any], work: pathlib.Path) -> dict[str, Any]:
  from benchmarks import transfers
  rows = []
  for k in c["readouts"]:
    rows.append(transfers.measure(k, c["steps"], 1))
    print(f"transfers K={k}: {rows[-1]['transfers_per_hour']}", flush=True)
  return {"rows": rows, "steps": c["steps"]}


def plot_transfers_readouts(data: dict[str, Any], fig: Any) -> None:
  ax = fig.subplots()
  ks = [r["readouts"] for r in data["rows"]]
  for v, label in (("batched", "stacked in one step"),
                   ("sequential_fresh", "one by one, compiled each"),
                   ("sequential_reused", "one by one, step reused")):
    ax.plot(ks, [r["transfers_per_hour"][v] for r in data["rows"]], "o-", label=label)
  ax.set(xlabel="readouts per compiled step (K)", ylabel="transfers/hour", xscale="log",
         yscale="log", xticks=ks, xticklabels=[str(k) for k in ks],
         title=f"transfers, {data['steps']} steps each (compile included)")
  ax.minorticks_off()
  ax.legend()


def study_end_to_end(c: dict[str, Any], work: pathlib.Path) -> dict[str, Any]:
  from benchmarks import input_pipeline
  # Warm-up: the caster's and the builder's one-off costs (JIT compile, imports) stay out.
  input_pipeline.prepare(work / "warmup", 1, c["resolution"], 1, first_seed=1000)
  rows = []
  for n in c["buildings"]:
    d = input_pipeline.prepare(work / f"b{n}", n, c["resolution"], c["points"])
    rows.append({"buildings": n, "views": d.views, "export_s": d.export_s, "build_s": d.build_s})
    print(f"end to end {n} buildings: {rows[-1]}", flush=True)
  return {"rows": rows, "resolution": c["resolution"]}


def plot_end_to_end(data: dict[str, Any], fig: Any) -> None:
  ax = fig.subplots()
  rows = data["rows"]
  x = [r["buildings"] for r in rows]
  ax.plot(x, [r["export_s"] for r in rows], "o-", label="render + export (world)")
  ax.plot(x, [r["build_s"] for r in rows], "s-", label="TFDS build")
  ax.plot(x, [r["export_s"] + r["build_s"] for r in rows], "k^-", label="both")
  ax.set(xlabel="buildings", ylabel="seconds", xticks=x,
         xticklabels=[f"{r['buildings']}\n({r['views']} views)" for r in rows],
         title=f"dataset from scratch, {data['resolution']}x{data['resolution']}")
  ax.legend()


Study = tuple[Callable[[dict[str, Any], pathlib.Path], dict[str, Any]], Callable[..., None]]
STUDIES: dict[str, Study] = {
    "bip": (study_bip, plot_bip),
    "pipeline_workers": (study_pipeline_workers, plot_pipeline_workers),
    "transfers_readouts": (study_transfers_readouts, plot_transfers_readouts),
    "end_to_end": (study_end_to_end, plot_end_to_end),
}


def check_names(names: Sequence[str]) -> list[str]:
  unknown = [n for n in names if n not in STUDIES]
  if unknown:
    raise ValueError(f"unknown scaling study {unknown}; accepted: {', '.join(STUDIES)}")
  return list(names)


def plot(name: str, data: dict[str, Any]) -> bytes:
  """The study's figure as PNG bytes."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig = plt.figure(figsize=(10 if name == "bip" else 6, 4), layout="constrained")
  STUDIES[name][1](data, fig)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100)
  plt.close(fig)
  return buf.getvalue()


def run_study(name: str, size: str, out_dir: str | os.PathLike) -> dict[str, str]:
  """Runs one study here and writes `<name>.json` and `<name>.png` (atomically)."""
  from benchmarks import report
  c = _sizes(size)[check_names([name])[0]]
  with tempfile.TemporaryDirectory(prefix=f"scaling_{name}_") as tmp:
    start = time.perf_counter()
    data = STUDIES[name][0](c, pathlib.Path(tmp))
  data.update(study=name, size=size, seconds=time.perf_counter() - start,
              machine=report.machine())
  out = pathlib.Path(out_dir)
  files.write_atomic(out / f"{name}.json", json.dumps(data, indent=1, default=str))
  files.write_atomic(out / f"{name}.png", plot(name, data))
  return {"json": str(out / f"{name}.json"), "png": str(out / f"{name}.png")}


def run_all(names: Sequence[str], size: str, out_dir: str | os.PathLike) -> list[str]:
  """Each study in a fresh process (XLA flags as the suite sets them); returns the failures."""
  from benchmarks import suite
  failed = []
  for i, name in enumerate(check_names(names)):
    print(f"[{i + 1}/{len(names)}] scaling: {name} ({size})", flush=True)
    env = {**os.environ, **suite.ENV.get(name.split("_")[0], {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", "import sys; from benchmarks import scaling; "
                           "scaling.run_study(*sys.argv[1:])", name, size, str(out_dir)],
                          cwd=REPO_ROOT, env=env, check=False)
    if proc.returncode:
      failed.append(name)
      print(f"[{i + 1}/{len(names)}] scaling: {name} FAILED (exit {proc.returncode})")
  print(f"written under {out_dir}" + (f"; failed: {failed}" if failed else ""))
  return failed
