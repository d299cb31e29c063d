"""Train any task network by name: `taskonomy train` as a script, with the same arguments.

  python -m experiments.train task_network:cpu --task depth_zbuffer --workdir /tmp/depth
  python -m experiments.train task_network:paper --task normal --set multihost=True \
      --set model.dtype=bfloat16 --workdir gs://BUCKET/taskbank/normal

CONFIG is a packaged config `NAME[:arg]` or a file `path/to/config.py[:arg]`; fields are
overridden with `--set key=value`, as in every `taskonomy` subcommand. Re-running the same
command resumes from the workdir's latest checkpoint. The arguments go to the `train`
subcommand itself (taskonomy_jax/commands/train.py), so the two cannot drift apart; this script
is for hosts that run a checkout rather than an installed `taskonomy` (experiments/launch/).
"""

import sys

from taskonomy_jax.commands import main

if __name__ == "__main__":
  sys.exit(main.main(["train", *sys.argv[1:]]))
