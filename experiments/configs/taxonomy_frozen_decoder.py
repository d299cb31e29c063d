"""The taxonomy with the original's transfer: each readout maps its sources into the target
network's representation and predicts through that network's trained decoder, frozen.

StanfordVL/taskonomy's `TransferNet` (code/lib/models/perceptual_transfer.py) trains only a
small transfer function and backpropagates through the target's frozen decoder; the packaged
config instead trains each readout's head from scratch on a standardised residual
(BUILD_NOTES.md, "The taxonomy pipeline and its gates", has both measured). Through the frozen
decoder a step costs ~16 ms per readout at batch 8 on 2 CPU cores (the decoder runs at full
resolution), about 3x a step of the packaged readouts at batch 16, so this config trains 200
steps at batch 8 to stay near the default run's time:

  taskonomy taxonomy --config experiments/configs/taxonomy_frozen_decoder.py --workdir out/fd
  taskonomy taxonomy --config experiments/configs/taxonomy_frozen_decoder.py --workdir out/fd \
      --bank out/taxonomy/03_taskbank/bank    # on the default run's task bank

Any size of the packaged config works (`:tiny`, `:cpu_full`, `:paper`: the paper's sizes keep their
own transfer steps and batch); `--set` overrides apply on top. Readouts through a frozen decoder
go to single-view targets only (a multi-view target's decoder reads every view's
representation), so at `:cpu_full` and `:paper` the poses, egomotion and point matching are
sources, not targets (18 targets of 22).
"""

import ml_collections

from taskonomy_jax import tasks
from taskonomy_jax.configs import taxonomy

# CPU sizes: the frozen decoder's full-resolution backward pass makes a step ~3x dearer.
CPU_STEPS, CPU_BATCH = 200, 8


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  """`arg`: a size of the packaged taxonomy config ('default', 'cpu_full', 'tiny', 'paper')."""
  c = taxonomy.get_config(arg)
  c.readout.frozen_target_decoder = True
  # The frozen decoder predicts the target itself, in its units.
  c.readout.residual = False
  c.readout.standardize_residual = False
  multi_view = [t for t in c.targets if tasks.get(t).num_views > 1]
  c.targets = [t for t in c.targets if t not in multi_view]
  c.extra_sources = [*c.extra_sources, *multi_view]  # still in the bank, as sources
  if arg in ("default", "cpu_full"):
    c.scratch.batch_size = c.transfer.batch_size  # the baselines (Gain) as the packaged run's
    c.transfer.num_steps = CPU_STEPS
    c.transfer.batch_size = CPU_BATCH
  return c
