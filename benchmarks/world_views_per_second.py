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


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--views", type=int, default=2000)
  ap.add_argument("--resolution", type=int, default=64)
  ap.add_argument("--baseline-views", type=int, default=100)
  ap.add_argument("--workers", type=int, default=2,
                  help="also time this many processes rendering whole buildings (0: skip)")
  args = ap.parse_args()
  cfg = world.WorldConfig(resolution=args.resolution)
  t0 = time.perf_counter()
  b = world.generate_building(10_000, cfg)          # warm-up: compiles the caster's shapes
  next(world.render_views(b, cfg))
  print(f"warm-up (compilation) {time.perf_counter() - t0:.1f} s")
  gen, render, buildings, cpu = _run(cfg, args.views, True, f"{args.resolution}px culled")
  total = gen + render
  print(f"resolution {args.resolution}: {args.views} views from {buildings} buildings in "
        f"{total:.1f} s = {args.views / total:.1f} views/s "
        f"(generation {gen:.1f} s, rendering {render:.1f} s = {args.views / render:.1f} "
        f"rendered views/s); CPU time {cpu:.1f} s = {1e3 * cpu / args.views:.1f} ms per view "
        "(wall time suffers when other jobs share the cores; CPU time much less)")
  n = min(args.baseline_views, args.views)
  _bgen, brender, _, _ = _run(cfg, n, False, f"{args.resolution}px baseline (no culling)")
  _cgen, crender, _, _ = _run(cfg, n, True, f"{args.resolution}px culled, same views")
  print(f"rendering speed-up of frustum culling over the baseline on the same {n} views: "
        f"{brender / crender:.2f}x ({n / brender:.1f} vs {n / crender:.1f} views/s)")
  if args.workers > 0:
    wall, done = _run_parallel(args.resolution, args.views, args.workers)
    print(f"resolution {args.resolution}, {args.workers} processes: {done} views in {wall:.1f} s "
          f"= {done / wall:.1f} views/s ({done / wall / (args.views / total):.2f}x one process)")


if __name__ == "__main__":
  main()
