"""From measured rates to the paper's scale: how long would the whole Taskonomy run take here?

The paper's scale (DESIGN.md): 26 tasks, ~3,000 transfer functions, 4M views at 256x256, a
ResNet-50 task bank; the original run took 47,886 GPU-hours. The amounts of training are the
project's own paper-size config (`taxonomy:paper`, taskonomy_jax/configs: task-bank and
transfer steps and batch sizes), so the projection and the config cannot disagree.

Assumptions (each is a choice; change `PaperScale` or the rates to see its effect):
  1. Work scales with pixels: a fully convolutional network's FLOPs, the ray caster's rays and
     the decoders' bytes are all proportional to H x W, so a rate measured at side s is
     rate x (s / 256)^2 at 256. The efficiency (FLOP/s achieved) is taken as size-independent.
  2. A transfer readout's training step and an encoder's forward pass run at the same FLOP/s as
     the task network's training step; their costs relative to it are counted FLOPs
     (`flops.paper_flops`: conv + matmul FLOPs of each traced program).
  3. Every task network (one per task) trains for the config's steps; every transfer for the
     config's transfer steps, whatever its order; representations are computed once per task
     on the transfer set (`transfer_images`). Evaluation and tournaments are not counted.
  4. The input pipeline runs on host cores beside the accelerator, so it is not added to the
     critical path (its time is reported, and it bounds the step rate if it is the slower).
  5. Rendering is the synthetic world's; the paper scanned real buildings (not a cost there).
  6. One device runs everything in sequence; N devices divide the training rows by ~N.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any

PAPER_CONFIG = "taxonomy"  # the packaged config (taskonomy_jax/configs/taxonomy.py)
PAPER_GPU_HOURS = 47_886  # the original run's reported total (DESIGN.md)


class MissingMeasurement(ValueError):
  """A rate the projection needs was not measured in the given results."""


@dataclasses.dataclass(frozen=True)
class PaperScale:
  tasks: int = 26
  transfers: int = 3000
  views: int = 4_000_000
  resolution: int = 256
  taskbank_steps: int = 200_000
  taskbank_batch: int = 32
  transfer_steps: int = 30_000
  transfer_batch: int = 32
  transfer_images: int = 16_000  # the transfer (validation) set each source is encoded on

  @classmethod
  def from_config(cls, config: str = PAPER_CONFIG) -> PaperScale:
    """Steps and batch sizes from the project's paper-size taxonomy config (a packaged config
    name or a config file's path, `config_files.load_config`)."""
    from taskonomy_jax import config_files
    c = config_files.load_config(f"{config}:paper")
    return cls(taskbank_steps=c.taskbank.num_steps, taskbank_batch=c.taskbank.batch_size,
               transfer_steps=c.transfer.num_steps, transfer_batch=c.transfer.batch_size)


@dataclasses.dataclass(frozen=True)
class Rates:
  """Measured rates, each at the side length it was measured at.

  Attributes:
    train_img_per_s: task-network training images/s (forward + backward + update).
    flops: counted FLOPs per image at the paper's size: network_step, readout_step,
      encoder_forward (`flops.paper_flops`).
    bip_sweep_s: a full budget sweep on the paper-scale (published, all tasks, order 4)
      instance, or None.
    where: the machine/device, in words.
  """

  train_img_per_s: float
  train_side: int
  world_views_per_s: float | None
  world_side: int
  pipeline_samples_per_s: float | None
  pipeline_side: int
  flops: Mapping[str, float]
  bip_sweep_s: float | None = None
  where: str = ""


def _at(rate: float, side: int, target: int) -> float:
  """A per-item rate measured at `side` x `side`, moved to `target` x `target` (assumption 1)."""
  return rate * (side / target) ** 2


def project(rates: Rates, scale: PaperScale | None = None) -> dict[str, Any]:
  """Seconds per component of the paper-scale run at the measured rates.

  Returns {"components": [{"name", "work", "unit", "rate_per_s", "seconds",
  "critical_path"}], "total_s", "total_h", "paper_gpu_hours", "scale", "where"}; rates are at
  the paper's resolution; `total_s` sums the components on the critical path.
  """
  scale = scale or PaperScale()
  res = scale.resolution
  f = rates.flops
  net = _at(rates.train_img_per_s, rates.train_side, res)
  comps = []

  def add(name: str, work: float, unit: str, rate: float | None, critical: bool,
          seconds: float | None = None) -> None:
    if seconds is None and rate is not None:
      seconds = work / rate
    comps.append({"name": name, "work": work, "unit": unit, "rate_per_s": rate,
                  "seconds": seconds, "critical_path": critical})

  bank_images = scale.tasks * scale.taskbank_steps * scale.taskbank_batch
  add("render the views (synthetic world)", scale.views, "views",
      None if rates.world_views_per_s is None
      else _at(rates.world_views_per_s, rates.world_side, res), True)
  add("input pipeline for the task bank", bank_images, "images",
      None if rates.pipeline_samples_per_s is None
      else _at(rates.pipeline_samples_per_s, rates.pipeline_side, res), False)
  add("task bank: train one network per task", bank_images, "images", net, True)
  add("representations of the transfer set", scale.tasks * scale.transfer_images, "images",
      net * f["network_step"] / f["encoder_forward"], True)
  add("transfers: train every readout", scale.transfers * scale.transfer_steps
      * scale.transfer_batch, "images", net * f["network_step"] / f["readout_step"], True)
  add("BIP: every budget, all tasks, order <= 4", 1, "sweep", None, True,
      seconds=rates.bip_sweep_s)
  total = sum(c["seconds"] for c in comps if c["critical_path"] and c["seconds"] is not None)
  return {"components": comps, "total_s": total, "total_h": total / 3600,
          "paper_gpu_hours": PAPER_GPU_HOURS, "scale": dataclasses.asdict(scale),
          "where": rates.where, "missing": [c["name"] for c in comps if c["seconds"] is None]}


def _detail(details: Mapping[str, Any], name: str) -> dict[str, Any]:
  d = details.get(name) or {}
  if d.get("error") or not d.get("details"):
    raise MissingMeasurement(f"the {name!r} benchmark has no result")
  return d["details"]


def rates_from_suite(details: Mapping[str, Any]) -> Rates:
  """Rates from a suite run's details (`suite.json`'s "details"); train_step is required."""
  train = _detail(details, "train_step")
  if "paper_flops" not in train:
    raise MissingMeasurement("the train_step result has no paper_flops")
  big = max(train["rows"], key=lambda r: r["size"])
  world = pipe = bip = None
  with contextlib.suppress(MissingMeasurement):
    world = _detail(details, "world")
  with contextlib.suppress(MissingMeasurement):
    pipe = _detail(details, "input_pipeline")
  with contextlib.suppress(MissingMeasurement):
    bip = _detail(details, "bip").get("published")
  return Rates(
      train_img_per_s=big["ours"], train_side=big["size"],
      world_views_per_s=world["views_per_s"] if world else None,
      world_side=world["resolution"] if world else 256,
      pipeline_samples_per_s=max(r["ours"] for r in pipe["rows"]) if pipe else None,
      pipeline_side=pipe.get("resolution", 64) if pipe else 256,
      flops=train["paper_flops"],
      bip_sweep_s=bip["ours_sweep"] if bip and bip.get("order") == 4 else None,
      where=train.get("where", "this machine"))


def project_suite(details: Mapping[str, Any], scale: PaperScale | None = None) -> dict[str, Any]:
  return project(rates_from_suite(details), scale or PaperScale.from_config())


def _dur(s: float | None) -> str:
  if s is None:
    return "not measured"
  if s < 120:
    return f"{s:.1f} s"
  if s < 48 * 3600:
    return f"{s / 3600:.1f} h"
  return f"{s / 86400:,.0f} days ({s / 3600:,.0f} h)"


def markdown(proj: Mapping[str, Any]) -> str:
  sc = proj["scale"]
  lines = [f"At the rates measured on {proj['where'] or 'this machine'}; {sc['tasks']} tasks, "
           f"{sc['transfers']:,} transfers, {sc['views']:,} views at {sc['resolution']}x"
           f"{sc['resolution']}; task bank {sc['taskbank_steps']:,} steps x batch "
           f"{sc['taskbank_batch']} per task, transfers {sc['transfer_steps']:,} steps x batch "
           f"{sc['transfer_batch']} each (assumptions: `benchmarks/projection.py`).", "",
           "| component | work | rate at paper size | time |", "| --- | --- | --- | --- |"]
  for c in proj["components"]:
    rate = "-" if c["rate_per_s"] is None else f"{c['rate_per_s']:.3g} {c['unit']}/s"
    note = "" if c["critical_path"] else " (beside training, not summed)"
    lines.append(f"| {c['name']}{note} | {c['work']:,.0f} {c['unit']} | {rate} | "
                 f"{_dur(c['seconds'])} |")
  lines.append(f"| **total (critical path)** | | | **{_dur(proj['total_s'])}** |")
  lines += ["", f"The original run: {proj['paper_gpu_hours']:,} GPU-hours."]
  if proj["missing"]:
    lines.append(f"Not measured (left out of the total): {', '.join(proj['missing'])}.")
  return "\n".join(lines)


def with_gpu(rates: Rates, gpu: Mapping[str, Any]) -> Rates:
  """`rates` with the training (and, if measured, input pipeline) rates of a `gpu.py` run."""
  t = gpu.get("train_step")
  if not t or not t.get("img_per_s"):
    raise MissingMeasurement("the GPU results have no train_step img_per_s")
  p = gpu.get("input_pipeline") or {}
  return dataclasses.replace(
      rates, train_img_per_s=t["img_per_s"], train_side=t["resolution"],
      pipeline_samples_per_s=p.get("samples_per_s", rates.pipeline_samples_per_s),
      pipeline_side=p.get("resolution", rates.pipeline_side),
      where=f"{gpu.get('device_kind', 'the accelerator')} ({t.get('dtype', '')} train step)")
