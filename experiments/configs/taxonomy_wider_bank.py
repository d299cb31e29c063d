"""Does the taxonomy change with stronger task networks? The packaged config with encoders 4x as
wide (the 16x16x8 representation, the readouts, the data and the solver unchanged).

At 64x64 the pixel decoder's full-resolution layers take much of a task network's step, so 4x
the encoder planes cost its training step only 1.5x (`python -m benchmarks.encoder_width`: 134
vs 208 ms for depth_zbuffer at batch 16) while doing for the depth network what 4-8x the steps
do (docs/random_projection.md, "The whole taxonomy"). The from-scratch
baselines use the task network's architecture, so they widen too, and Gain compares like with
like. Measured on `make taxonomy`'s size (docs/taxonomy_wider_bank/; the same config as
`--set model.width=32`, checked equal): every network stronger (2D keypoints 0.64 -> 0.50 of
the median image's held-out loss, depths 0.80 -> 0.76, 3D keypoints 0.94 -> 0.91), first-order
transfers beating random 26 -> 34 of 42, rho against the paper 0.72 -> 0.77 (per-target mean
0.58 -> 0.47), 3D cohesion 0.62 (p 1.0) -> 0.83 (p 0.10); the same two gates fail (random in
the worse half for 3D keypoints, the 3D cohesion). At `:cpu_full` size
(docs/taxonomy_wider_bank_cpu_full/): 2 h 20 min against the packaged 1 h 44 min, rho 0.46 ->
0.51, first-order transfers beating random 170 -> 225 of 528, 3 of 8 gates (was 2):

  taskonomy taxonomy --config experiments/configs/taxonomy_wider_bank.py --workdir out/wider_bank
  taskonomy taxonomy --config experiments/configs/taxonomy_wider_bank.py:tiny --workdir /tmp/wb

Any size of the packaged config works (`:cpu_full`, `:paper`); `--set` overrides still apply on
top.
"""

import ml_collections

from taskonomy_jax.configs import taxonomy

WIDTH_FACTOR = 4  # encoder planes relative to the packaged config's
STEPS_FACTOR = 1  # task-bank training steps relative to the packaged config's


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  """`arg`: a size of the packaged taxonomy config ('default', 'cpu_full', 'tiny', 'paper')."""
  c = taxonomy.get_config(arg)
  c.model.width *= WIDTH_FACTOR
  c.taskbank.num_steps *= STEPS_FACTOR
  return c
