"""The accelerator run: paper-size train step in bf16 (img/s, MFU), batched transfers, input rate.

On one H100/H200 (about 5-8 minutes, most of it compiling):

    pip install -e '.[test]' -c requirements/constraints.txt 'jax[cuda12]==0.10.2'
    python -m benchmarks.gpu --out out/gpu

On CPU at a tiny size (what the tests run; seconds of compute, minutes of compile when loaded):

    XLA_FLAGS=--xla_backend_optimization_level=0 python -m benchmarks.gpu --tiny --out /tmp/gpu

Reported (gpu.json, gpu.md in --out):
  train_step: the paper-size normal network (ResNet-50 encoder, 15-layer decoder, 256x256) with
    bf16 compute (float32 parameters and Adam), one jitted step of the training loop: img/s,
    FLOPs per step counted from the jaxpr (convolutions and matmuls, forward + backward) and
    from XLA's cost analysis, and MFU = counted FLOPs/s / the chip's peak dense bf16 rate
    (`flops.PEAK_BF16`; omitted for chips not in the table, e.g. any CPU). Issue 9's goal:
    MFU >= 45%.
  transfers: stacked vs one-by-one readouts at paper readout size (16x16x32 input, full-width
    decoder, batch 32), through `transfers.measure`.
  input_pipeline: our grain pipeline's samples/s on synthetic views at 256x256 (omnidata's
    loader is not run: the GPU image need not have torch).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
from typing import Any

import jax

from benchmarks import flops, input_pipeline, report, train_step, transfers
from taskonomy_jax import files

CONFIGS: dict[str, dict[str, Any]] = {
    "paper": {
        "train_step": {"resolution": 256, "batch": 64, "steps": 20, "task": "normal",
                       "model": {"dtype": "bfloat16"}},
        "transfers": {"readouts": 8, "steps": 30, "repeats": 1, "batch": 32, "side": 16,
                      "channels": 32, "decoder_width": 1.0},
        "input_pipeline": {"buildings": 2, "resolution": 256, "points": 8, "workers": (0, 8),
                           "batch_size": 32, "batches": 20},
    },
    "tiny": {
        # A vector task (FC head): the 15-layer pixel decoder would triple the CPU compile
        # time of a test; the FLOP counting of pixel networks is tested on its own.
        "train_step": {"resolution": 32, "batch": 2, "steps": 2, "task": "room_layout",
                       "model": {"dtype": "bfloat16", "width": 8, "blocks": (1, 1, 1, 1),
                                 "fc_hidden": 16}},
        "transfers": {"readouts": 2, "steps": 2, "repeats": 1, "batch": 2, "side": 2,
                      "channels": 8, "decoder_width": 1 / 32, "target": "room_layout"},
        "input_pipeline": {"buildings": 1, "resolution": 32, "points": 2, "workers": (0,),
                           "batch_size": 4, "batches": 3},
    },
}


def measure_train_step(resolution: int, batch: int, steps: int, model: dict[str, Any],
                       task: str = "normal") -> dict[str, Any]:
  """img/s of the jitted training step, its FLOPs two ways, and MFU on this device."""
  fs = train_step.flax_step(resolution, batch, model, task=task)
  t0 = time.perf_counter()
  compiled = fs.step.lower(fs.state, fs.batch, fs.key).compile()
  compile_s = time.perf_counter() - t0
  counted = flops.counted_flops(fs.step, fs.state, fs.batch, fs.key)
  state = fs.state
  for _ in range(2):  # warm-up (allocation, autotuning)
    state, m = compiled(state, fs.batch, fs.key)
  jax.block_until_ready(m["loss"])
  t0 = time.perf_counter()
  for _ in range(steps):
    state, m = compiled(state, fs.batch, fs.key)
  jax.block_until_ready(m["loss"])
  step_s = (time.perf_counter() - t0) / steps
  kind = jax.devices()[0].device_kind
  return {"task": task, "resolution": resolution, "batch": batch, "steps": steps,
          "dtype": model.get("dtype", "float32"), "model": model, "compile_s": compile_s,
          "step_s": step_s, "img_per_s": batch / step_s, "counted_flops": counted,
          "xla_flops": flops.xla_flops(compiled), "peak_flops": flops.peak_flops(kind),
          "mfu": flops.mfu(counted, step_s, kind), "loss": float(m["loss"])}


def measure_pipeline(c: dict[str, Any], work: pathlib.Path) -> dict[str, Any]:
  input_pipeline.mark_flags_parsed()
  data = input_pipeline.prepare(work, c["buildings"], c["resolution"], c["points"])
  m = input_pipeline.measure(data, c["workers"], c["batch_size"], c["batches"], 1,
                             baseline=False)
  best = max(m["rows"], key=lambda r: r["ours"])
  return {**m, "samples_per_s": best["ours"], "workers": best["workers"],
          "render_s": data.export_s}


PARTS = ("train_step", "transfers", "input_pipeline")


def run(config: str, out_dir: str | pathlib.Path,
        parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
  """Measures `parts` (in the order of PARTS) and writes gpu.json / gpu.md after each one, so a
  run stopped by a lease's time limit keeps what it measured."""
  unknown = set(parts) - set(PARTS)
  if unknown or not parts:
    raise ValueError(f"unknown parts {sorted(unknown)}; accepted: {list(PARTS)}, one or more")
  c = CONFIGS[config]
  start = time.perf_counter()
  out = pathlib.Path(out_dir)
  doc: dict[str, Any] = {"config": config, "machine": report.machine(),
                         "device_kind": jax.devices()[0].device_kind}
  print(f"device: {doc['device_kind']} x{jax.device_count()}", flush=True)

  def save() -> None:
    doc["seconds"] = time.perf_counter() - start
    files.write_atomic(out / "gpu.json", json.dumps(doc, indent=1, default=str))
    files.write_atomic(out / "gpu.md", markdown(doc) + "\n")

  if "train_step" in parts:
    doc["train_step"] = t = measure_train_step(**c["train_step"])
    mfu = "n/a (chip not in flops.PEAK_BF16)" if t["mfu"] is None else f"{100 * t['mfu']:.1f}%"
    print(f"train step {t['resolution']}x{t['resolution']} {t['dtype']} batch {t['batch']}: "
          f"{t['img_per_s']:.1f} img/s, {t['counted_flops'] / 1e9:.1f} GFLOP/step counted, "
          f"{(t['xla_flops'] or 0) / 1e9:.1f} XLA, MFU {mfu} (compile {t['compile_s']:.0f} s; "
          f"{time.perf_counter() - start:.0f} s so far)", flush=True)
    save()
  if "transfers" in parts:
    doc["transfers"] = tr = transfers.measure(**c["transfers"])
    print(f"transfers K={tr['readouts']}: {tr['transfers_per_hour']} per hour; stacked vs fresh "
          f"{tr['ratio_vs_fresh']:.2f}x, vs reused {tr['ratio_vs_reused']:.2f}x "
          f"({time.perf_counter() - start:.0f} s so far)", flush=True)
    save()
  if "input_pipeline" in parts:
    with tempfile.TemporaryDirectory(prefix="gpu_pipeline_") as tmp:
      doc["input_pipeline"] = p = measure_pipeline(c["input_pipeline"], pathlib.Path(tmp))
    print(f"input pipeline {p['resolution']}x{p['resolution']}: {p['samples_per_s']:.0f} "
          f"samples/s ({p['workers']} workers)", flush=True)
    save()
  print(f"{doc['seconds']:.0f} s in all; written {out / 'gpu.json'}, {out / 'gpu.md'}")
  return doc


def markdown(doc: dict[str, Any]) -> str:
  """The measured parts of `doc` as a markdown table (a part not run has no rows)."""
  rows = ["| measurement | value |", "| --- | --- |"]
  if "train_step" in doc:
    t = doc["train_step"]
    mfu = "- (chip not in the peak table)" if t["mfu"] is None else f"{100 * t['mfu']:.1f}%"
    rows += [f"| train step {t['resolution']}² {t['dtype']}, batch {t['batch']} | "
             f"{t['img_per_s']:.1f} img/s ({1e3 * t['step_s']:.1f} ms/step) |",
             f"| FLOPs/step counted (conv+matmul) / XLA | {t['counted_flops']:.3g} / "
             f"{t['xla_flops'] or 0:.3g} |",
             f"| MFU (goal >= 45%) | {mfu} |"]
  if "transfers" in doc:
    tr = doc["transfers"]
    rows += [f"| transfers/hour, K={tr['readouts']} stacked / fresh / reused | "
             + " / ".join(f"{tr['transfers_per_hour'][v]:.0f}" for v in transfers.VARIANTS)
             + " |",
             f"| stacked vs fresh compiles (goal >= 20x) / vs reused | "
             f"{tr['ratio_vs_fresh']:.2f}x / {tr['ratio_vs_reused']:.2f}x |"]
  if "input_pipeline" in doc:
    p = doc["input_pipeline"]
    rows.append(f"| input pipeline {p['resolution']}², {p['workers']} workers | "
                f"{p['samples_per_s']:.0f} samples/s |")
  rows.append(f"| wall time of this script | {doc['seconds']:.0f} s |")
  return "\n".join([f"# GPU path ({doc['config']})", "", report.machine_text(doc["machine"]),
                    "", *rows])


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--tiny", action="store_true", help="a tiny size that runs on CPU (tests)")
  ap.add_argument("--out", default="out/gpu")
  ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS,
                  help="what to measure (default: all)")
  args = ap.parse_args(argv)
  run("tiny" if args.tiny else "paper", args.out, tuple(args.parts))
  return 0


if __name__ == "__main__":
  sys.exit(main())
