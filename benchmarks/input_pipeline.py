"""Input pipeline throughput: our grain pipeline vs omnidata-tools' PyTorch loader, same files.

    python benchmarks/input_pipeline.py --buildings 4 --resolution 64 --workers 0 2

Both read the same exported synthetic views (rgb, normal, depth_zbuffer) and decode them to
training tensors: ours builds the TFDS dataset (array_record) from the exported files with the
real builder, then `grain.MapDataset` -> `SingleViewDecoder(["normal", "depth_zbuffer"])` ->
batches; omnidata's `TaskonomyDataset` with its default transforms in a `torch.utils.data.
DataLoader`. Reported: samples/s of each, side by side, for each worker count, and their ratio.
A second table compares the two storage choices for the TFDS records (zlib tensors, which we
use, vs PNG bytes decoded in the pipeline): bytes per example and decode time per example.
Needs the `omnidata` extra (torch); run with a main guard (worker processes are spawned).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import pathlib
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

DOMAINS = ("rgb", "depth_zbuffer", "normal", "point_info")


def _export(root: pathlib.Path, buildings: int, resolution: int, points: int,
            first_seed: int = 0) -> list[str]:
  from taskonomy_jax.data import synthetic
  cfg = synthetic.world_config(resolution, points_per_building=points)
  seeds = range(first_seed, first_seed + buildings)
  summary = synthetic.export(root / "export", seeds, cfg, layout="domain", domains=DOMAINS)
  return summary.buildings


def _build(root: pathlib.Path, buildings: list[str], resolution: int):
  import tensorflow_datasets as tfds

  from data_builders.taskonomy import taskonomy_dataset_builder as real
  cfg = real.TaskonomyConfig(name="bench", split_size="custom", domains=DOMAINS,
                             buildings={"train": tuple(buildings)}, resolution=resolution)
  builder = real.Builder(config=cfg, data_dir=str(root / "tfds"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(root / "export")))
  return builder


def _rate(batches, batch_size: int, n_batches: int) -> float:
  it = iter(batches)
  next(it)  # warm-up: worker start, first reads
  t = time.perf_counter()
  for _ in range(n_batches):
    next(it)
  return n_batches * batch_size / (time.perf_counter() - t)


def ours(builder, batch_size: int, workers: int, n_batches: int) -> float:
  import grain

  from taskonomy_jax.data import pipeline
  ds = pipeline.single_view_dataset(builder.as_data_source(split="train"),
                                    ["normal", "depth_zbuffer"], batch_size=batch_size, seed=0)
  # grain reads and decodes in `num_threads` threads (zlib and numpy release the GIL), so the
  # same cores as omnidata's worker processes: 1 thread for 0 workers, W threads for W workers.
  opts = grain.ReadOptions(num_threads=max(1, workers), prefetch_buffer_size=4 * max(1, workers))
  return _rate(ds.to_iter_dataset(opts), batch_size, n_batches)


def omnidata(root: pathlib.Path, buildings: list[str], batch_size: int, workers: int,
             n_batches: int) -> float:
  torch = _import_torch_for_omnidata()
  from omnidata_tools.torch.data import taskonomy_dataset as od
  opts = od.TaskonomyDataset.Options(data_path=str(root / "export"),
                                     tasks=["rgb", "normal", "depth_zbuffer"],
                                     buildings=buildings, transform="DEFAULT")
  cwd = os.getcwd()
  os.chdir(root)  # omnidata caches its file lists under ./tmp
  try:
    dataset = od.TaskonomyDataset(opts)
  finally:
    os.chdir(cwd)
  loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                       num_workers=workers, drop_last=True,
                                       persistent_workers=workers > 0)

  def forever():
    while True:
      yield from loader
  return _rate(forever(), batch_size, n_batches)


def _import_torch_for_omnidata():
  import torch
  # PyPI's torchvision is a CUDA build whose ops cannot load next to CPU torch; omnidata uses
  # only its pure-Python transforms (BUILD_NOTES.md, "Interpreter and dependency versions").
  if not hasattr(torch.ops.torchvision, "nms"):
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _import_torch_for_omnidata.lib = lib
  return torch


def storage(builder, n: int = 64) -> list[tuple[str, float, float, float, float]]:
  """Per domain: bytes/example (zlib, PNG) and decode microseconds/example (zlib, PNG)."""
  from PIL import Image

  from taskonomy_jax.data import encodings as enc
  source = builder.as_data_source(split="train")
  rows = []
  for domain in ("rgb", "depth_zbuffer", "normal"):
    arrays = [source[i][domain] for i in range(min(n, len(source)))]
    zl = [zlib.compress(a.tobytes()) for a in arrays]  # what tfds' zlib Tensor encoding stores
    png = [enc.png_bytes(a) for a in arrays]
    t = time.perf_counter()
    for blob, a in zip(zl, arrays, strict=True):
      np.frombuffer(zlib.decompress(blob), a.dtype).reshape(a.shape)
    t_zlib = (time.perf_counter() - t) / len(arrays) * 1e6
    t = time.perf_counter()
    for blob in png:
      with Image.open(io.BytesIO(blob)) as im:
        np.asarray(im)
    t_png = (time.perf_counter() - t) / len(arrays) * 1e6
    rows.append((domain, statistics.mean(map(len, zl)), statistics.mean(map(len, png)),
                 t_zlib, t_png))
  return rows


@dataclasses.dataclass
class Prepared:
  """An exported + built synthetic dataset and what making it cost."""

  root: pathlib.Path
  buildings: list[str]
  builder: Any
  views: int
  resolution: int
  export_s: float
  build_s: float


def prepare(root: str | pathlib.Path, buildings: int = 4, resolution: int = 64, points: int = 8,
            first_seed: int = 0) -> Prepared:
  """Renders + exports `buildings` world buildings under `root`, then builds the TFDS set."""
  root = pathlib.Path(root)
  t0 = time.perf_counter()
  names = _export(root, buildings, resolution, points, first_seed)
  t1 = time.perf_counter()
  builder = _build(root, names, resolution)
  t2 = time.perf_counter()
  return Prepared(root, names, builder, builder.info.splits["train"].num_examples, resolution,
                  t1 - t0, t2 - t1)


def measure(data: Prepared, workers: Sequence[int] = (0, 2), batch_size: int = 16,
            batches: int = 100, repeats: int = 3, baseline: bool = True) -> dict[str, Any]:
  """Samples/s of ours and (if `baseline`) omnidata's loader, medians of alternating runs.

  Returns {"views", "batch_size", "batches", "repeats", "rows": [{"workers", "ours",
  "omnidata", "ratio"}]} with samples/s; omnidata and ratio are None without the baseline.
  """
  rows = []
  for w in workers:
    a, b = [], []
    for _ in range(repeats):
      a.append(ours(data.builder, batch_size, w, batches))
      if baseline:
        b.append(omnidata(data.root, data.buildings, batch_size, w, batches))
    a_med = statistics.median(a)
    b_med = statistics.median(b) if b else None
    rows.append({"workers": w, "ours": a_med, "omnidata": b_med,
                 "ratio": a_med / b_med if b_med else None})
  return {"views": data.views, "resolution": data.resolution, "batch_size": batch_size, "batches": batches,
          "repeats": repeats, "rows": rows}


def mark_flags_parsed() -> None:
  """grain's worker processes read absl flags: mark them parsed before starting any."""
  from absl import flags
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def main() -> None:
  mark_flags_parsed()
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--buildings", type=int, default=4)
  p.add_argument("--first-seed", type=int, default=0)
  p.add_argument("--points", type=int, default=8, help="points per building")
  p.add_argument("--resolution", type=int, default=64)
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument("--batches", type=int, default=100)
  p.add_argument("--repeats", type=int, default=3,
                 help="alternating runs of each loader; medians are reported (the machine may be "
                      "shared, so single runs are noisy)")
  p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
  p.add_argument("--work-dir", help="reuse an export/build here (default: a temp folder)")
  args = p.parse_args()
  root = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix="taskonomy_bench_"))
  data = prepare(root, args.buildings, args.resolution, args.points, args.first_seed)
  print(f"{data.views} views of {len(data.buildings)} buildings at "
        f"{args.resolution}x{args.resolution}, batch {args.batch_size}, {args.batches} timed "
        f"batches after one warm-up batch, median of {args.repeats} alternating runs")
  m = measure(data, args.workers, args.batch_size, args.batches, args.repeats)
  print(f"{'workers':>7} {'ours samples/s':>15} {'omnidata samples/s':>19} {'ratio':>6}")
  for r in m["rows"]:
    print(f"{r['workers']:>7} {r['ours']:>15.1f} {r['omnidata']:>19.1f} {r['ratio']:>6.2f}")
  print(f"\n{'domain':14} {'zlib B':>8} {'PNG B':>8} {'zlib us':>8} {'PNG us':>8}")
  for domain, bz, bp, tz, tp in storage(data.builder):
    print(f"{domain:14} {bz:>8.0f} {bp:>8.0f} {tz:>8.1f} {tp:>8.1f}")


if __name__ == "__main__":
  main()
