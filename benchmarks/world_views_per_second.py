"""Views per second of the procedural world (building generation + every domain + point_info).

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=true .venv/bin/python \\
        benchmarks/world_views_per_second.py --views 2000 --resolution 64

Renders buildings seed 0, 1, ... until `--views` views are done, timing generation and
rendering separately (JIT compilation is done in a warm-up first and reported apart). Side by
side, the same views are rendered with frustum culling off (`--baseline-views` of them), the
baseline the ratio is taken against. Issue 3's goal: 2,000 views at 64x64 in under a minute
on 2 cores.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from typing import Any

from tqdm import tqdm

from taskonomy_jax import world


def _run(cfg: world.WorldConfig, n_views: int, cull: bool,
         desc: str) -> tuple[float, float, int, float]:
  """Returns (generation s, rendering s, buildings, CPU s of this process, all threads)."""
  cpu0 = time.process_time()
  gen = render = 0.0
  done, seed = 0, 0
  with tqdm(total=n_views, desc=desc, unit="view") as bar:
    while done < n_views:
      t0 = time.perf_counter()
      b = world.generate_building(seed, cfg)
      t1 = time.perf_counter()
      for _ in world.render_views(b, cfg, cull=cull):
        done += 1
        bar.update()
        if done == n_views:
          break
      render += time.perf_counter() - t1
      gen += t1 - t0
      seed += 1
  return gen, render, seed, time.process_time() - cpu0


_CFG: world.WorldConfig | None = None


def _init_worker(resolution: int) -> None:
  global _CFG
  _CFG = world.WorldConfig(resolution=resolution)
  next(world.render_views(world.generate_building(10_000, _CFG), _CFG))   # compile


def _noop(_: int) -> None:
  return None


def _building(seed: int) -> int:
  return sum(1 for _ in world.render_views(world.generate_building(seed, _CFG), _CFG))


def _run_parallel(resolution: int, n_views: int, workers: int) -> tuple[float, int]:
  """Whole buildings per worker process (how a dataset export would use several cores)."""
  ctx = mp.get_context("spawn")   # JAX is not fork-safe
  with ctx.Pool(workers, _init_worker, (resolution,)) as pool:
    pool.map(_noop, range(4 * workers))          # returns once every worker has compiled
    t0 = time.perf_counter()
    done = seed = 0
    with tqdm(total=n_views, desc=f"{resolution}px, {workers} processes", unit="view") as bar:
      for n in pool.imap(_building, range(10**6)):
        done += n
        seed += 1
        bar.update(n)
        if done >= n_views:
          break
    return time.perf_counter() - t0, done


def measure(views: int = 2000, resolution: int = 64, baseline_views: int = 100,
            workers: int = 2) -> dict[str, Any]:
  """Renders `views` views (timed after a compile warm-up), then the baseline side by side.

  Returns a dict of plain numbers: `views_per_s` (generation + rendering, one process),
  `render_views_per_s`, `cpu_ms_per_view`, `compile_s`, the culled vs un-culled rendering rates
  on the same `baseline_views` views and their ratio `culling_speedup`, and
  `parallel_views_per_s` with `workers` processes (None if `workers` is 0).
  """
  cfg = world.WorldConfig(resolution=resolution)
  t0 = time.perf_counter()
  b = world.generate_building(10_000, cfg)          # warm-up: compiles the caster's shapes
  next(world.render_views(b, cfg))
  compile_s = time.perf_counter() - t0
  gen, render, buildings, cpu = _run(cfg, views, True, f"{resolution}px culled")
  n = min(baseline_views, views)
  _bgen, brender, _, _ = _run(cfg, n, False, f"{resolution}px baseline (no culling)")
  _cgen, crender, _, _ = _run(cfg, n, True, f"{resolution}px culled, same views")
  out = {"views": views, "resolution": resolution, "buildings": buildings,
         "compile_s": compile_s, "generation_s": gen, "render_s": render,
         "views_per_s": views / (gen + render), "render_views_per_s": views / render,
         "cpu_ms_per_view": 1e3 * cpu / views, "baseline_views": n,
         "culled_render_views_per_s": n / crender, "unculled_render_views_per_s": n / brender,
         "culling_speedup": brender / crender, "workers": workers,
         "parallel_views_per_s": None}
  if workers > 0:
    wall, done = _run_parallel(resolution, views, workers)
    out["parallel_views_per_s"] = done / wall
  return out


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--views", type=int, default=2000)
  ap.add_argument("--resolution", type=int, default=64)
  ap.add_argument("--baseline-views", type=int, default=100)
  ap.add_argument("--workers", type=int, default=2,
                  help="also time this many processes rendering whole buildings (0: skip)")
  args = ap.parse_args()
  m = measure(args.views, args.resolution, args.baseline_views, args.workers)
  total = m["generation_s"] + m["render_s"]
  print(f"warm-up (compilation) {m['compile_s']:.1f} s")
  print(f"resolution {args.resolution}: {args.views} views from {m['buildings']} buildings in "
        f"{total:.1f} s = {m['views_per_s']:.1f} views/s "
        f"(generation {m['generation_s']:.1f} s, rendering {m['render_s']:.1f} s = "
        f"{m['render_views_per_s']:.1f} rendered views/s); CPU time "
        f"{m['cpu_ms_per_view']:.1f} ms per view "
        "(wall time suffers when other jobs share the cores; CPU time much less)")
  print(f"rendering speed-up of frustum culling over the baseline on the same "
        f"{m['baseline_views']} views: {m['culling_speedup']:.2f}x "
        f"({m['unculled_render_views_per_s']:.1f} vs {m['culled_render_views_per_s']:.1f} views/s)")
  if m["parallel_views_per_s"] is not None:
    print(f"resolution {args.resolution}, {args.workers} processes: "
          f"{m['parallel_views_per_s']:.1f} views/s "
          f"({m['parallel_views_per_s'] / m['views_per_s']:.2f}x one process)")


if __name__ == "__main__":
  main()
