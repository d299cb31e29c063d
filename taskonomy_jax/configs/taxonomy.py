"""The whole Taskonomy pipeline on the synthetic world (`make taxonomy`, `taskonomy taxonomy`).

render -> build dataset -> task bank -> representations -> transfers (orders 1-4) -> AHP
affinities -> BIP -> figures and gates. Sizes:

  default: 7 targets, orders 1-3, 48/30/10 buildings, a 16x16x8 representation; 13 min 8 s
    and 3.53 GiB peak for `make taxonomy` on 2 quiet CPU cores, the venv install included
    (BUILD_NOTES.md, "The taxonomy pipeline and its gates"). Its gates are printed last and
    saved as report.json.
    taskonomy taxonomy --config taxonomy --workdir out/taxonomy
  cpu_full: every task of the registry as a source (26), the paper's 22 targets (the
    multi-view ones too), its beam 5 and orders 1-4; cost and gates: BUILD_NOTES.md, "The whole
    taxonomy on one CPU".
    taskonomy taxonomy --config taxonomy:cpu_full --workdir out/taxonomy_cpu_full
  tiny:    the same stages at toy size, about a minute (the end-to-end tests).
    taskonomy taxonomy --config taxonomy:tiny --workdir /tmp/tax
  paper:   the paper's sizes (256x256 ResNet-50 task bank, 1-4 order transfers on 16k images)
    need accelerators; the stages and code are the same (not run here).
  Any of them on an already trained task bank: add `--bank DIR`.

Splits: the task bank trains on `train`; transfers and the from-scratch baselines train on
`validation` (the small labelled transfer budget); every tournament is on `test`.
"""

import ml_collections

# The targets of the default synthetic run: the seven 1-channel L1 pixel tasks, whose readouts
# stack into one compiled model per stage: 2D edges and keypoints, and the paper's 3D cluster (occlusion
# edges, 3D keypoints, reshading, both depths). Sized for `make taxonomy`'s 15 minutes on 2
# cores: the 49 first-order readouts stack into one compiled step.
# MORE_TARGETS adds autoencoding and normals, curvature, and the two 9-d layout vectors (3 more
# groups); ALL_TARGETS every other single-view task the world renders labels for.
TARGETS = (
    "edge_texture", "keypoints2d", "edge_occlusion", "keypoints3d", "reshading",
    "depth_zbuffer", "depth_euclidean",
)
MORE_TARGETS = (*TARGETS, "autoencoding", "normal", "curvature", "room_layout",
                "vanishing_point")
# Every target of the paper (22): the single-view ones, then the multi-view ones, whose readouts
# read the sources' representations of each view side by side (paper Sec. 3.2).
ALL_TARGETS = (*MORE_TARGETS, "denoising", "segment_unsup2d", "segment_unsup25d",
               "segment_semantic", "class_object", "class_scene", "fixated_pose",
               "nonfixated_pose", "egomotion", "point_matching")
# The paper's source-only tasks (no transfers into them) and random projection.
SOURCE_ONLY = ("colorization", "inpainting", "jigsaw", "random")


# The estimators beside the transfers (transfer/estimates.py, docs/estimators.md): RSA and CKA
# on the `split` views' representations, `resamples` bootstrap draws from `seed`; with `probe`,
# the linear probe too (fitted on the transfer split, scored on test, as the transfers).
# A run whose config.json predates this section reads these values.
ESTIMATORS = {"split": "test", "resamples": 200, "seed": 0, "probe": True}


def _follows(section: ml_collections.ConfigDict, field: str) -> ml_collections.FieldReference:
  """A field that takes `section.field`'s value, also after an override of that field, until it
  is set itself. A plain `get_ref` would be two-way: overriding the derived field would change
  its source too (ml_collections sets a shared reference in place); the derived reference
  (`+ 0`) is one-way."""
  return section.get_ref(field) + 0


# The values that differ between the sizes. `cpu_full`, `tiny` and `paper` are written as changes
# to `default` (`paper` to `cpu_full`), so each row shows what that size is about.
SIZES = {
    "default": dict(
        targets=TARGETS,
        extra_sources=("random",),
        resolution=64,
        # Buildings per split. The task bank learns from `train`; `validation` is the transfer
        # budget; `test` holds the tournaments and the gates' intervals. 48 training buildings:
        # at 8 the task networks overfit; 30 transfer buildings (~690 views): on 10, readouts
        # from sources that hold little of a target ended worse than its median image (depth
        # from 2D edges 1.003x; 0.991x on 30); 10 test buildings (~230 views, 80 camera points)
        # separate good sources from random projection beyond their intervals (BUILD_NOTES.md,
        # "The taxonomy pipeline and its gates").
        num_train=48,
        num_validation=30,
        num_test=10,
        points_per_building=8,
        width=8,
        # CPU size: two bottleneck stages at output stride 4, so 64x64 views give the paper's
        # 16x16x8 representation grid (a 4x4x8 one held too little to transfer from); the
        # paper's ResNet-50 keeps stride 16 at 256x256.
        blocks=(1, 1, 0, 0),
        output_stride=4,
        decoder_width_multiplier=1 / 32,
        # At 1/32 the decoder's last layers would keep 1 channel, too narrow to reproduce even
        # the mean depth image (held-out L1 1.33x the mean image's; 1.05x with 8).
        decoder_min_channels=8,
        fc_hidden=32,
        learning_rate=2e-3,
        taskbank_steps=400,
        taskbank_batch_size=16,
        # The CPU readout (standardised residual, 1x1 conv + depth to space; `c.readout`
        # below says why); False: the paper's 15-layer decoder.
        cpu_readout=True,
        transfer_steps=400,
        transfer_batch_size=16,
        # Best first-order sources combined (paper: 5, orders up to 4 = 25 per target); the
        # default run keeps 3 and order 3 (4 per target) for its time budget.
        beam=3,
        max_order=3,
        scratch_steps=200,
        graph_budgets=(2, 4, 8),
        budget=4,
    ),
}
# `cpu_full`'s own recipes for the task networks the shared one left at their trivial baseline
# on the held-out views: the multi-view tasks draw fresh partner views every time (one fixed
# pair per view is easy to memorise) and colour-jittered views, the class and layout tasks
# colour-jittered (and mirrored) views, curvature standardised targets, as the depths; the
# global (one vector per view) tasks 4x the steps: on 200 training buildings object classes
# then beat their baselines, at 400 steps they did not (BUILD_NOTES.md, "The whole taxonomy on
# one CPU"). The from-scratch baselines keep the recipes but not the steps (pipeline.bank_config).
_MULTI_VIEW = {"data": {"draws_per_anchor": 16, "augment": ("color",)}}
_CLASSES = {"data": {"augment": ("hflip", "color")}}
_LONGER = {"train": {"num_steps": 1600, "checkpoint_every": 800},
           "optimizer": {"decay_steps": (960, 1360)}}  # 4x the bank's 400, same decay_at
FULL_RECIPES = {
    "fixated_pose": _MULTI_VIEW, "nonfixated_pose": _MULTI_VIEW, "egomotion": _MULTI_VIEW,
    "point_matching": _MULTI_VIEW, "class_object": _CLASSES, "class_scene": _CLASSES,
    "room_layout": {"data": {"augment": ("color",)}},
    "curvature": {"data": {"standardize_targets": "regressions"}},
}
_GLOBAL = ("fixated_pose", "nonfixated_pose", "point_matching", "class_object", "class_scene",
           "room_layout")
FULL_PER_TASK = {t: {**r, **_LONGER} if t in _GLOBAL else r for t, r in FULL_RECIPES.items()}
# Every task of the registry as a source, every paper target, the paper's beam 5 and orders 1-4,
# on 200 training buildings: on the default's 48, curvature and egomotion stayed at their mean
# image (0.956x and 0.981x on 200).
SIZES["cpu_full"] = dict(SIZES["default"], targets=ALL_TARGETS, extra_sources=SOURCE_ONLY,
                         num_train=200, beam=5, max_order=4, graph_budgets=(2, 4, 6, 8, 10, 12),
                         budget=8, per_task=FULL_PER_TASK)
SIZES["tiny"] = dict(
    SIZES["default"], targets=("depth_zbuffer", "edge_texture"), resolution=32, num_train=2,
    num_validation=1, num_test=1, points_per_building=3, taskbank_steps=8, taskbank_batch_size=8,
    transfer_steps=6, transfer_batch_size=8, beam=2, max_order=2, scratch_steps=6,
    graph_budgets=(1, 2), budget=1)
# The paper's sizes: ResNet-50 at stride 16, its 15-layer decoder as the readout, Adam 1e-4.
SIZES["paper"] = dict(
    SIZES["cpu_full"], per_task=FULL_RECIPES, resolution=256, num_train=60, width=64,
    blocks=(3, 4, 6, 3), output_stride=16, decoder_width_multiplier=1.0, decoder_min_channels=1,
    fc_hidden=2048, learning_rate=1e-4, taskbank_steps=200_000, taskbank_batch_size=32,
    cpu_readout=False, transfer_steps=30_000, transfer_batch_size=32, scratch_steps=30_000)


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  """`arg`: 'default' (make taxonomy), 'cpu_full' (every task, the paper's orders), 'tiny'
  (tests) or 'paper'."""
  if arg not in SIZES:
    raise ValueError(f"config argument must be one of {tuple(SIZES)}, got {arg!r}")
  size = SIZES[arg]
  c = ml_collections.ConfigDict()
  c.targets = size["targets"]
  # Sources: every task network of the bank: the targets', and the extra sources' (random
  # projection; `cpu_full`: also the paper's source-only tasks).
  c.extra_sources = size["extra_sources"]
  # One of several processes (JAX_PROCESS_ID/JAX_NUM_PROCESSES or SLURM_PROCID/SLURM_NTASKS,
  # taskonomy_jax/train/workers.py) on a shared workdir: each trains its share of the task bank
  # and of every transfer group on its own devices; process 0 joins the results. With
  # JAX_COORDINATOR_ADDRESS set, the processes are one jax.distributed job.
  c.multihost = False

  c.data = ml_collections.ConfigDict()
  c.data.name = f"taxonomy_{arg}"
  c.data.resolution = size["resolution"]
  c.data.num_train = size["num_train"]
  c.data.num_validation = size["num_validation"]
  c.data.num_test = size["num_test"]
  c.data.points_per_building = size["points_per_building"]
  # The world of the run: its first building's seed (the splits follow it in order) and the
  # materials' albedo drift (None: `world.WorldConfig`'s; `--set data.albedo_drift=0.0` renders
  # the world of synthetic dataset 1.0.0, which the runs before it used).
  c.data.first_seed = 0
  c.data.albedo_drift = None

  c.model = ml_collections.ConfigDict()
  c.model.width = size["width"]
  c.model.blocks = size["blocks"]
  c.model.output_stride = size["output_stride"]
  c.model.rep_channels = 8
  c.model.decoder_width_multiplier = size["decoder_width_multiplier"]
  c.model.decoder_min_channels = size["decoder_min_channels"]
  c.model.fc_hidden = size["fc_hidden"]
  c.model.dropout = 0.5

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = size["learning_rate"]
  c.optimizer.weight_decay = 2e-6

  c.taskbank = ml_collections.ConfigDict()
  c.taskbank.num_steps = size["taskbank_steps"]
  c.taskbank.batch_size = size["taskbank_batch_size"]
  c.taskbank.seed = 0
  c.taskbank.decay_at = (0.6, 0.85)  # x0.1 at these fractions of the steps
  # The task-bank trainer's recipe (taskonomy_jax/taskbank/train.py, as `taskonomy taskbank
  # train`): vector regressions learn standardised targets, and so do the two depths (per
  # channel over valid pixels, linear output): log depth spreads 0.04 where edges and shading
  # spread 0.3-0.4, and unstandardised the depth networks stayed at the mean image. The
  # [-1, 1] targets keep their units and tanh: standardised, 3D keypoints fell from 0.97x to
  # 1.02x the median image (BUILD_NOTES.md, "The taxonomy pipeline and its gates").
  c.taskbank.standardize_targets = "vectors"
  depth = {"data": {"standardize_targets": "regressions"}}
  c.taskbank.per_task = ml_collections.ConfigDict(  # {task: settings over these}
      {"depth_zbuffer": depth, "depth_euclidean": depth, **size.get("per_task", {})})
  c.taskbank.augment = ()
  c.taskbank.bn_recompute_batches = 0
  # An already trained bank to read instead of training one (`taskonomy taxonomy --bank DIR`).
  c.taskbank.bank = ""

  c.readout = ml_collections.ConfigDict()
  c.readout.readout_channels = 8
  # True: the original's transfer (`TransferNet`): two convs into the target network's
  # representation, then that network's trained decoder, frozen (readout.Readout;
  # experiments/configs/taxonomy_frozen_decoder.py). Not the default: at the CPU budget it
  # failed more gates than the readouts below (BUILD_NOTES.md, "The taxonomy pipeline and its
  # gates").
  c.readout.frozen_target_decoder = False
  # Residual over the target's mean image, linear output (readout.Readout.residual).
  c.readout.residual = size["cpu_readout"]
  # ... divided by its standard deviation (log depth's residual spreads ~0.04, edges' ~0.4);
  # losses are mapped back to the target's units.
  c.readout.standardize_residual = size["cpu_readout"]
  # CPU size: a 1x1 conv + depth to space instead of the 15-layer decoder (measures what the
  # representation holds; converges in hundreds of steps). Paper: the decoder.
  c.readout.pixel_head = "shuffle" if size["cpu_readout"] else "decoder"
  # Derived fields follow their source under `--set` until set themselves (_follows).
  c.readout.decoder_width_multiplier = _follows(c.model, "decoder_width_multiplier")
  c.readout.fc_hidden = _follows(c.model, "fc_hidden")
  c.readout.dropout = _follows(c.model, "dropout")

  c.transfer = ml_collections.ConfigDict()
  c.transfer.num_steps = size["transfer_steps"]
  c.transfer.batch_size = size["transfer_batch_size"]
  c.transfer.seed = 0
  c.transfer.budget = 0  # transfer-train views; 0 = all of the validation split
  # Each source's representation standardised per channel on the transfer split.
  c.transfer.standardize_inputs = True
  c.transfer.beam = size["beam"]
  c.transfer.max_order = size["max_order"]
  # The paper anneals the transfers' learning rate earlier than the task networks'.
  c.transfer.learning_rate = _follows(c.optimizer, "learning_rate")
  c.transfer.decay_at = (0.5, 0.8)
  # Each stacked group's K readouts split over the devices (ceil(K/D) each, the batch
  # replicated; train/sharding.py); False: data parallel over the devices, as on 1 CPU device.
  c.transfer.shard_readouts = False
  # The from-scratch baselines (Gain): the task network's architecture on the transfer budget.
  c.scratch = ml_collections.ConfigDict()
  c.scratch.num_steps = size["scratch_steps"]
  c.scratch.batch_size = _follows(c.transfer, "batch_size")

  c.taxonomy = ml_collections.ConfigDict()
  c.taxonomy.graph_budgets = size["graph_budgets"]
  c.taxonomy.budget = size["budget"]  # the taxonomy.json / taxonomy.png budget
  c.taxonomy.order = _follows(c.transfer, "max_order")

  c.estimators = ml_collections.ConfigDict(ESTIMATORS)
  return c
