"""One task network of the task bank (paper Sec. 4 and supplementary).

Paper size (256x256, ResNet-50 encoder, 15-layer decoder, Adam 1e-4, batch 32):
  taskonomy train task_network:paper --task normal --workdir gs://bucket/taskbank/normal
  Cost: ~0.5 s/step on one A100 / v4 chip at batch 32 (estimate, not measured here); the original
  trained each network for ~30 epochs of ~4M images. On a TPU VM pod or several GPU nodes add
  `--set multihost=True` (experiments/launch/).

CPU size (the same code, narrow and shallow, 64x64, toy data), ~1 min on 2 CPU cores:
  taskonomy train task_network:cpu --task normal --workdir /tmp/taskbank/normal

Any field can be overridden, e.g. `--set train.num_steps=1000 --set model.dtype=bfloat16`.
"""

import ml_collections

# The values that differ between the sizes; everything else is the same for both.
SIZES = {
    "paper": dict(
        resolution=256,
        width=64,  # planes of the first ResNet stage
        blocks=(3, 4, 6, 3),  # ResNet-50
        decoder_width_multiplier=1.0,
        fc_hidden=2048,
        learning_rate=1e-4,  # original: Adam, 1e-4
        decay_steps=(120_000,),  # original: /10 late in training
        num_steps=200_000,
        batch_size=32,
        log_every=100,
        checkpoint_every=5_000,
        eval_every=10_000,
        bn_recompute_batches=0,
        builder_config="r256",
        num_train=4096,
        num_eval=256,
    ),
    "cpu": dict(
        resolution=64,
        width=8,
        blocks=(1, 1, 1, 1),
        decoder_width_multiplier=1 / 4,
        fc_hidden=64,
        learning_rate=1e-3,
        decay_steps=(),
        num_steps=60,
        batch_size=8,
        log_every=10,
        checkpoint_every=20,
        eval_every=0,
        # BatchNorm statistics re-gathered under the final weights (loop.LoopConfig): Adam at
        # 1e-3 moves the weights faster than the running averages follow: held-out depth MAE
        # 0.0299 -> 0.0285 on the same network (BUILD_NOTES.md "Training loop"). Not in the
        # paper.
        bn_recompute_batches=50,
        builder_config="r64_tiny",
        num_train=256,
        num_eval=32,
    ),
}


def get_config(arg: str = "paper") -> ml_collections.ConfigDict:
  """`arg`: 'paper' (default) or 'cpu' (the same config shrunk for a laptop)."""
  if arg not in SIZES:
    raise ValueError(f"config argument must be one of {tuple(SIZES)}, got {arg!r}")
  size = SIZES[arg]
  c = ml_collections.ConfigDict()
  c.task = "normal"
  c.resolution = size["resolution"]

  c.model = ml_collections.ConfigDict()
  c.model.width = size["width"]
  c.model.blocks = size["blocks"]
  c.model.rep_channels = 8  # the 16x16x8 representation
  c.model.decoder_width_multiplier = size["decoder_width_multiplier"]
  c.model.fc_hidden = size["fc_hidden"]
  c.model.dropout = 0.5
  c.model.dtype = "float32"  # compute dtype; 'bfloat16' on TPUs/GPUs

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = size["learning_rate"]
  c.optimizer.weight_decay = 2e-6  # original: 2e-6 (L2)
  c.optimizer.decay_steps = size["decay_steps"]

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = size["num_steps"]
  c.train.batch_size = size["batch_size"]
  c.train.seed = 0
  c.train.log_every = size["log_every"]
  c.train.checkpoint_every = size["checkpoint_every"]
  c.train.keep_checkpoints = 3
  c.train.eval_every = size["eval_every"]
  c.train.eval_batches = 4
  c.train.bn_recompute_batches = size["bn_recompute_batches"]
  c.train.num_devices = ml_collections.FieldReference(None, field_type=int)
  c.train.fsdp = False
  c.train.progress = True

  c.data = ml_collections.ConfigDict()
  c.data.name = "toy"  # in-memory; or the TFDS datasets 'taskonomy_synthetic' / 'taskonomy'
  # The TFDS datasets' builder config (of the config's resolution) and folder (None: the TFDS
  # default); the synthetic one is rendered when missing.
  c.data.builder_config = size["builder_config"]
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  c.data.num_train = size["num_train"]
  c.data.num_eval = size["num_eval"]

  # `taskonomy train`: call jax.distributed.initialize(), one network over every process's
  # devices (TPU VM pods, multi-node GPU). `taskonomy taskbank train`: the processes divide the
  # tasks, each training its own on its own devices (taskonomy_jax/train/workers.py).
  c.multihost = False
  return c
