"""The task bank: every trainable task network of the registry (25) plus the random encoder.

CPU size (64x64 synthetic world `r64_tiny`, narrow encoder, 150 steps per task); rendered and
prepared on first use, then trained task after task; re-running resumes:
  taskonomy taskbank train taskbank:cpu --workdir /tmp/bank
  taskonomy taskbank evaluate --bank /tmp/bank
  Cost: measured in BUILD_NOTES.md ("Task bank"), dominated by XLA compiling 26 networks on CPU.

Paper size (256x256, ResNet-50, 15-layer decoder, Adam 1e-4, batch 32, dataset `r256` or the
real `taskonomy`): the same command with `:paper` on a TPU VM / GPU host.

`:cpu_full` is the CPU bank measured against trivial baselines on held-out views
(BUILD_NOTES.md, "Task bank" and "Current measured numbers"): the 64x64 `r64_large` world (300 training
buildings; rendered on first use, ~4 min), 1000 steps with two learning-rate drops, fresh
partner views / noise / tile permutations every draw, standardised targets for the vector
regressions, and per task (`per_task`) a 4x-compute network trained 3000 steps for the 3D pixel
tasks and semantic segmentation (whose networks otherwise stay at the mean image / the
background class), 3000 steps for jigsaw, colour jitter
for the poses, mirror + jitter + a 4x encoder for scene classes:
  taskonomy taskbank train taskbank:cpu_full --workdir runs/bank
  taskonomy taskbank evaluate --bank runs/bank --split test
  Cost: about 2.5 h on a quiet 2-core machine, ~14 min of it for each of the five big networks.
  Every network beats its trivial baseline on both held-out splits (BUILD_NOTES.md).

`:tiny` is the test size (32x32 `r32_mini`, a few steps).
"""

import ml_collections

from taskonomy_jax.configs import task_network

# `cpu_full`'s 3D pixel tasks and semantic segmentation: 4x the encoder/decoder compute and 3x
# the steps (BUILD_NOTES.md, "Task bank": at the base size their networks
# barely leave the mean image / the background class).
_BIGGER_3D = {
    "model": {"width": 16, "blocks": (2, 2, 2, 2), "decoder_width_multiplier": 0.5},
    "train": {"num_steps": 3000, "checkpoint_every": 500},
    "optimizer": {"decay_steps": (2000, 2600)},
}
_TASKS_3D = ("depth_zbuffer", "depth_euclidean", "normal", "curvature")
# `cpu_full`'s pose tasks: colour-jittered views, so the networks cannot key on a building's
# random material colours (they overfit the 60 training buildings without it).
_POSE = {"data": {"augment": ("color",)}}
# `cpu_full`'s scene classes: mirrored and colour-jittered views and a 4x-compute encoder (the
# closest of the settings tried; BUILD_NOTES.md, "Task bank").
_SCENE = {"model": {"width": 16, "blocks": (2, 2, 2, 2)},
          "data": {"augment": ("hflip", "color")}}
# `cpu_full`'s jigsaw: a fresh permutation every draw (`draws_per_anchor`) and 3x the steps; at
# 1000 steps its loss stays at chance, ln(100) (BUILD_NOTES.md, "Tried and dropped").
_JIGSAW = {"train": {"num_steps": 3000, "checkpoint_every": 500},
           "optimizer": {"decay_steps": (2000, 2600)}}

# Each size: the task network size every task starts from (paper Sec. 4: one set of
# hyperparameters for all tasks) and the settings laid over that config, nested as it is; the
# paper size is the task network's paper config as it stands.
_CPU_TRAIN = {"batch_size": 16, "log_every": 25}
SIZES = {
    "paper": dict(network="paper", settings={}),
    "cpu": dict(network="cpu", settings={
        "train": {**_CPU_TRAIN, "num_steps": 150, "checkpoint_every": 50}}),
    "cpu_full": dict(network="cpu", settings={
        "train": {**_CPU_TRAIN, "num_steps": 1000, "checkpoint_every": 250},
        "optimizer": {"decay_steps": (600, 850)},
        "data": {"builder_config": "r64_large", "draws_per_anchor": 16},
        "per_task": {**{name: _BIGGER_3D for name in _TASKS_3D},
                     "fixated_pose": _POSE, "nonfixated_pose": _POSE, "class_scene": _SCENE,
                     "jigsaw": _JIGSAW, "segment_semantic": _BIGGER_3D}}),
    "tiny": dict(network="cpu", settings={
        "resolution": 32,
        "model": {"width": 4, "fc_hidden": 16, "decoder_width_multiplier": 1 / 16},
        "train": {"num_steps": 4, "batch_size": 4, "log_every": 1, "checkpoint_every": 2,
                  "bn_recompute_batches": 2,  # exercised, cheaply
                  "progress": False},
        "data": {"builder_config": "r32_mini"},
        "eval": {"batch_size": 8}}),
}


def get_config(arg: str = "cpu") -> ml_collections.ConfigDict:
  """`arg`: 'cpu' (default), 'cpu_full', 'paper' or 'tiny'."""
  if arg not in SIZES:
    raise ValueError(f"config argument must be one of {tuple(SIZES)}, got {arg!r}")
  size = SIZES[arg]
  # One task network's settings are shared by every task (paper Sec. 4: same hyperparameters).
  c = task_network.get_config(size["network"])
  c.task = ""  # set per task by the bank trainer
  c.tasks = ()  # empty: every task of the registry (25 trained + random projection)
  # {task: settings laid over these for that task alone}, e.g. a bigger model for depth.
  c.per_task = ml_collections.ConfigDict()
  c.init_prng_impl = "rbg"  # faster init compilation (BUILD_NOTES.md)
  c.compilation_cache = True  # jax's persistent cache under <workdir>/.jax_cache

  builder_config = c.data.builder_config  # the synthetic world of the network's resolution
  c.data = ml_collections.ConfigDict()
  c.data.name = "taskonomy_synthetic"
  c.data.builder_config = builder_config
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)  # None: TFDS default
  c.data.build_if_missing = True
  c.data.seed = 0
  c.data.num_eval = 1  # the loop evaluates on the validation split at the end
  # Multi-view tasks: partner draws per training view (1: one fixed pair per view).
  c.data.draws_per_anchor = 1
  c.data.augment = ()  # training only: 'hflip', 'color' (class tasks; taskbank/data.py)
  # Vector regressions (layout, vanishing points, poses, egomotion) learn standardised targets,
  # as in the original (statistics of the training split; bank outputs are mapped back).
  c.data.standardize_targets = "vectors"

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 16
  c.eval.max_examples = 512  # held-out views per task for the table
  c.eval.max_train_examples = 512  # training views for the trivial baseline

  c.update(size["settings"])  # recursive: only the named fields change
  return c
