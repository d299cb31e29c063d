"""Train any task network by name.

  python -m experiments.train --config experiments/configs/task_network.py:cpu \
      --config.task=depth_zbuffer --workdir /tmp/depth

Re-running the same command resumes from the workdir's latest checkpoint.
"""

from absl import app, flags
from ml_collections import config_flags

from taskonomy_jax import xla_flags
from taskonomy_jax.taskbank import data as taskbank_data
from taskonomy_jax.train import sharding, task

_CONFIG = config_flags.DEFINE_config_file("config", None, "run config file[:arg]",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "where checkpoints and logs go")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config = _CONFIG.value
  xla_flags.configure_for_training()
  taskbank_data.register()  # config.data.name may be a TFDS dataset (taskonomy_synthetic, ...)
  sharding.maybe_initialize_distributed(config.multihost)
  task.train_task(config, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
