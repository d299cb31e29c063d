"""Does the taxonomy survive a stronger task bank? `make taxonomy`'s run with a wider encoder
trained twice as long.

The default run's task networks are narrow (8 planes in the first stage) and short (400 steps),
so a transfer's quality there measures, in part, how little each network learned. This config
doubles both the encoder width and the task-bank steps and leaves the transfers, the data and
the solver as they are; if the affinities and the chosen taxonomy (report.json's gates, rho
against the paper's affinities) barely move, the default run's taxonomy is not an artefact of
its small task bank. The from-scratch baselines use the task network's architecture, so they
widen too, and Gain compares like with like.

  taskonomy taxonomy --config experiments/configs/taxonomy_wider_bank.py --workdir out/wider_bank
  taskonomy taxonomy --config experiments/configs/taxonomy_wider_bank.py:tiny --workdir /tmp/wb

then compare `out/wider_bank/08_taxonomy/out/report.json` with the default run's
(`docs/taxonomy_default/`). Any size of the packaged config works (`:cpu_full`, `:paper`); `--set`
overrides still apply on top. Cost: not measured; the task-bank stage does about 4x the
encoder FLOPs per step (twice the width, convolutions scale with its square) for twice the
steps, so expect it to dominate the run on CPU.
"""

import ml_collections

from taskonomy_jax.configs import taxonomy

WIDTH_FACTOR = 2  # encoder planes relative to the packaged config's
STEPS_FACTOR = 2  # task-bank training steps relative to the packaged config's


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  """`arg`: a size of the packaged taxonomy config ('default', 'cpu_full', 'tiny', 'paper')."""
  c = taxonomy.get_config(arg)
  c.model.width *= WIDTH_FACTOR
  c.taskbank.num_steps *= STEPS_FACTOR
  return c
