"""What a wider encoder costs a CPU task network's training step: `make taxonomy`'s task network
(64x64 views, the 16x16x8 representation, the narrow pixel decoder) at the packaged encoder
width and at `--factor` times it, one task's loop step (forward, loss, backward, Adam), the two
steps alternating in one process (benchmarks/train_step.py's `step_seconds`).

  .venv/bin/python -m benchmarks.encoder_width --task depth_zbuffer --factor 4 --steps 20

Printed: seconds per step of each and their ratio (wide / packaged).
"""

from __future__ import annotations

import argparse

from benchmarks import train_step
from taskonomy_jax.configs import taxonomy


def measure(task: str = "depth_zbuffer", factor: int = 4, batch: int = 16, steps: int = 20,
            size: str = "default") -> dict[str, float]:
  """{"packaged", "wide": median seconds per step, "ratio": wide / packaged}."""
  config = taxonomy.get_config(size)
  model = config.model.to_dict()
  side = int(config.data.resolution)

  def step(width: int):
    fs = train_step.flax_step(side, batch, {**model, "width": width}, task=task)
    holder = {"state": fs.state}

    def run():
      holder["state"], metrics = fs.step(holder["state"], fs.batch, fs.key)
      metrics["loss"].block_until_ready()
    return run

  packaged, wide = train_step.step_seconds([step(model["width"]), step(model["width"] * factor)],
                                           steps)
  return {"packaged": packaged, "wide": wide, "ratio": wide / packaged}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--task", default="depth_zbuffer")
  parser.add_argument("--factor", type=int, default=4)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--steps", type=int, default=20)
  args = parser.parse_args()
  r = measure(args.task, args.factor, args.batch, args.steps)
  print(f"{args.task}, batch {args.batch}: packaged width {r['packaged'] * 1e3:.1f} ms/step, "
        f"{args.factor}x width {r['wide'] * 1e3:.1f} ms/step, ratio {r['ratio']:.2f}")


if __name__ == "__main__":
  main()
