"""The task bank: every trainable task network of the registry (25) plus the random encoder.

CPU size (64x64 synthetic world `r64_tiny`, narrow encoder, 150 steps per task); rendered and
prepared on first use, then trained task after task; re-running resumes:
  taskonomy taskbank train experiments/configs/taskbank.py:cpu --workdir /tmp/bank
  taskonomy taskbank evaluate --bank /tmp/bank
  Cost: measured in BUILD_NOTES.md ("Task bank"), dominated by XLA compiling 26 networks on CPU.

Paper size (256x256, ResNet-50, 15-layer decoder, Adam 1e-4, batch 32, dataset `r256` or the
real `taskonomy`): the same command with `:paper` on a TPU VM / GPU host.

`:tiny` is the test size (32x32 `r32_mini`, a few steps).
"""

import importlib.util
import os

import ml_collections


def _task_network():
  # Loaded by path: config files are read as files (`load_config`), not as a package.
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "task_network.py")
  spec = importlib.util.spec_from_file_location("_task_network_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module

SIZES = ("paper", "cpu", "tiny")


def get_config(arg: str = "cpu") -> ml_collections.ConfigDict:
  """`arg`: 'cpu' (default), 'paper' or 'tiny'."""
  if arg not in SIZES:
    raise ValueError(f"config argument must be one of {SIZES}, got {arg!r}")
  # One task network's settings are shared by every task (paper Sec. 4: same hyperparameters).
  c = _task_network().get_config("paper" if arg == "paper" else "cpu")
  c.task = ""  # set per task by the bank trainer
  c.tasks = ()  # empty: every task of the registry (25 trained + random projection)
  # {task: settings laid over these for that task alone}, e.g. a bigger model for depth.
  c.per_task = ml_collections.ConfigDict()
  c.init_prng_impl = "rbg"  # faster init compilation (BUILD_NOTES.md)
  c.compilation_cache = True  # jax's persistent cache under <workdir>/.jax_cache

  c.data = ml_collections.ConfigDict()
  c.data.name = "taskonomy_synthetic"
  c.data.builder_config = {"paper": "r256", "cpu": "r64_tiny", "tiny": "r32_mini"}[arg]
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)  # None: TFDS default
  c.data.build_if_missing = True
  c.data.seed = 0
  c.data.num_eval = 1  # the loop evaluates on the validation split at the end
  # Multi-view tasks: partner draws per training view (1: one fixed pair per view).
  c.data.draws_per_anchor = 1

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 16
  c.eval.max_examples = 512  # held-out views per task for the table
  c.eval.max_train_examples = 512  # training views for the trivial baseline

  if arg == "cpu":
    c.resolution = 64
    c.train.num_steps = 150
    c.train.batch_size = 16
    c.train.log_every = 25
    c.train.checkpoint_every = 50
  elif arg == "tiny":
    c.resolution = 32
    c.model.width = 4
    c.model.fc_hidden = 16
    c.model.decoder_width_multiplier = 1 / 16
    c.train.num_steps = 4
    c.train.batch_size = 4
    c.train.log_every = 1
    c.train.checkpoint_every = 2
    c.train.progress = False
    c.train.bn_recompute_batches = 2  # exercised, cheaply
    c.eval.batch_size = 8
  return c
