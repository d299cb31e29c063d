"""One task network of the task bank (paper Sec. 4 and supplementary).

Paper size (256x256, ResNet-50 encoder, 15-layer decoder, Adam 1e-4, batch 32):
  python -m experiments.train --config experiments/configs/task_network.py:paper \
      --config.task=normal --workdir gs://bucket/taskbank/normal
  Cost: ~0.5 s/step on one A100 / v4 chip at batch 32 (estimate, not measured here); the original
  trained each network for ~30 epochs of ~4M images.

CPU size (the same code, narrow and shallow, 64x64, toy data), ~1 min on 2 CPU cores:
  python -m experiments.train --config experiments/configs/task_network.py:cpu \
      --config.task=normal --workdir /tmp/taskbank/normal

Any field can be overridden, e.g. `--config.train.num_steps=1000 --config.model.dtype=bfloat16`.
"""

import ml_collections


def get_config(arg: str = "paper") -> ml_collections.ConfigDict:
  """`arg`: 'paper' (default) or 'cpu' (the same config shrunk for a laptop)."""
  if arg not in ("paper", "cpu"):
    raise ValueError(f"config argument must be 'paper' or 'cpu', got {arg!r}")
  cpu = arg == "cpu"
  c = ml_collections.ConfigDict()
  c.task = "normal"
  c.resolution = 64 if cpu else 256

  c.model = ml_collections.ConfigDict()
  c.model.width = 8 if cpu else 64  # planes of the first ResNet stage
  c.model.blocks = (1, 1, 1, 1) if cpu else (3, 4, 6, 3)  # ResNet-50
  c.model.rep_channels = 8  # the 16x16x8 representation
  c.model.decoder_width_multiplier = 1 / 4 if cpu else 1.0
  c.model.fc_hidden = 64 if cpu else 2048
  c.model.dropout = 0.5
  c.model.dtype = "float32"  # compute dtype; 'bfloat16' on TPUs/GPUs

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-3 if cpu else 1e-4  # original: Adam, 1e-4
  c.optimizer.weight_decay = 2e-6  # original: 2e-6 (L2)
  c.optimizer.decay_steps = () if cpu else (120_000,)  # original: /10 late in training

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 60 if cpu else 200_000
  c.train.batch_size = 8 if cpu else 32
  c.train.seed = 0
  c.train.log_every = 10 if cpu else 100
  c.train.checkpoint_every = 20 if cpu else 5_000
  c.train.keep_checkpoints = 3
  c.train.eval_every = 0 if cpu else 10_000
  c.train.eval_batches = 4
  # BatchNorm statistics re-gathered under the final weights (loop.LoopConfig). On the CPU size
  # Adam at 1e-3 moves the weights faster than the running averages follow: held-out depth MAE
  # 0.0299 -> 0.0285 on the same network (BUILD_NOTES.md "Training loop"). Not in the paper.
  c.train.bn_recompute_batches = 50 if cpu else 0
  c.train.num_devices = ml_collections.FieldReference(None, field_type=int)
  c.train.fsdp = False
  c.train.progress = True

  c.data = ml_collections.ConfigDict()
  c.data.name = "toy"  # in-memory; or the TFDS datasets 'taskonomy_synthetic' / 'taskonomy'
  # The TFDS datasets' builder config (of the config's resolution) and folder (None: the TFDS
  # default); the synthetic one is rendered when missing.
  c.data.builder_config = "r64_tiny" if cpu else "r256"
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  c.data.num_train = 256 if cpu else 4096
  c.data.num_eval = 32 if cpu else 256

  c.multihost = False  # call jax.distributed.initialize() (TPU VM pods, multi-node GPU)
  return c
