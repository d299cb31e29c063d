"""The taxonomy with a task bank trained 3x as long and the original's frozen-decoder transfer:
the configuration under which no 3D known answer is contradicted beyond its interval.

Measured on the world of synthetic dataset 1.0.0 (no albedo drift; add `--set
data.albedo_drift=0.0` to rerun it), where `make taxonomy`'s 15-minute run ranked random
projection mid-field for depth_euclidean and 3D keypoints with sources worse than it beyond
their bootstrap intervals. With the task networks trained 1,200 steps instead of 400 and each readout mapping
its sources through the target network's frozen decoder (`taxonomy_frozen_decoder.py`, here
at the probe's 400 steps and batch 16), random projection is last of 7 for depth_euclidean and
6th for depth_zbuffer, and its two remaining misses (reshading, 3D keypoints) are ties
(docs/random_projection.md; this config's run: docs/taxonomy_bank1200_frozen_decoder/). 35 min
21 s on 2 quiet cores (task bank 823 s, transfers 683 + 406 s), peak RSS 4.27 GiB:

  taskonomy taxonomy --config experiments/configs/taxonomy_strong_bank.py --workdir out/strong

Any size of the packaged config works (`:tiny` for a smoke run); the paper's sizes keep their
own steps. `--set` overrides apply on top.
"""

import pathlib

import ml_collections

from taskonomy_jax import config_files

BANK_STEPS_FACTOR = 3  # task-bank steps relative to the packaged config's
TRANSFER_STEPS, TRANSFER_BATCH = 400, 16  # the frozen-decoder readouts' CPU schedule here
FROZEN_DECODER = pathlib.Path(__file__).with_name("taxonomy_frozen_decoder.py")


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  """`arg`: a size of the packaged taxonomy config ('default', 'cpu_full', 'tiny', 'paper')."""
  c = config_files.load_config(f"{FROZEN_DECODER}:{arg}")
  if arg in ("default", "cpu_full"):
    c.taskbank.num_steps *= BANK_STEPS_FACTOR
    c.transfer.num_steps = TRANSFER_STEPS
    c.transfer.batch_size = TRANSFER_BATCH
  return c
