"""The whole method on the synthetic world, as resumable stages (`make taxonomy`).

dataset -> views -> task bank (+ representations) -> from-scratch baselines -> first-order
transfers -> higher-order transfers -> affinities -> taxonomy, figures and gates.

The task networks and the from-scratch baselines train through the one task-bank trainer
(`taskonomy_jax.taskbank.train.train_task_bank`, as `taskonomy taskbank train`), into task banks
(`03_taskbank/bank`, `04_scratch/bank`) that `taskonomy serve --bank` and `visualize --bank`
load as they are; `--bank DIR` reads an already trained bank instead of training one.

Each stage is a set of units (one per task or target); each unit is written atomically with a
completion marker (taskonomy_jax/transfer/stages.py), so a rerun skips what is finished and a
killed run loses at most the unit in progress (whose training resumes from its checkpoint).

Multi-process (`multihost=True`, every process running the same command on a shared workdir):
each process trains its share of the task networks, of the baselines and of every transfer
group (a contiguous slice of the group's readouts, a part unit `<stage>/parts/<group>/<p>of<n>`)
on its own devices; after a barrier process 0 joins the parts into the group's unit, laid out
as a one-process run lays it out, and alone runs the dataset, views, affinities and taxonomy
stages; every stage ends at a barrier. A process killed mid-run is rerun with the others: the
finished units, parts and task networks are skipped.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from taskonomy_jax import files, malloc, tasks, workdir_lock, xla_flags
from taskonomy_jax.taskbank import bank as bank_lib
from taskonomy_jax.taskbank import train as bank_train
from taskonomy_jax.taxonomy import api, draw, figures
from taskonomy_jax.taxonomy.affinities import AffinityTable
from taskonomy_jax.train import workers
from taskonomy_jax.transfer import affinity, estimates, gates, stages, training
from taskonomy_jax.transfer import readout as readout_lib
from taskonomy_jax.transfer import views as views_lib

STAGES = ("dataset", "views", "taskbank", "scratch", "transfers1", "transfers_high",
          "affinities", "taxonomy")
# Inside the task-bank and scratch stage folders: the bank the one task-bank trainer
# (taskonomy_jax/taskbank/train.py) writes; beside it, one unit per task of cached outputs.
BANK = "bank"


@dataclasses.dataclass
class Run:
  """Paths and config of one pipeline run; `log` collects (stage, unit, ran, seconds)."""

  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  # This process's place in a multihost run (train/workers.py).
  group: workers.WorkGroup = dataclasses.field(default_factory=workers.WorkGroup)
  log: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  _views: dict[str, views_lib.Views] = dataclasses.field(default_factory=dict, repr=False)

  def stage_dir(self, stage: str) -> pathlib.Path:
    return self.workdir / f"{STAGES.index(stage) + 1:02d}_{stage}"

  @property
  def ckpt(self) -> pathlib.Path:
    return self.workdir / "checkpoints"

  @property
  def targets(self) -> list[str]:
    return [tasks.get(t).name for t in self.config.targets]

  @property
  def bank(self) -> list[str]:
    """Every source: the task networks (one per target) and the extra sources (random)."""
    return self.targets + [tasks.get(t).name for t in self.config.extra_sources]

  def views(self, split: str) -> views_lib.Views:
    """The split's decoded views, opened once per run (their memory maps are shared)."""
    if split not in self._views:
      self._views[split] = views_lib.Views(self.stage_dir("views") / split)
    return self._views[split]

  @property
  def bank_dir(self) -> pathlib.Path:
    """The task bank the run reads: `taskbank.bank` (`--bank DIR`, trained beforehand by
    `taskonomy taskbank train`), else the one the task-bank stage trains in the run."""
    given = self.config.taskbank.get("bank")
    return pathlib.Path(given) if given else self.stage_dir("taskbank") / BANK

  def groups(self, names: Sequence[str]) -> dict[str, list[str]]:
    """Stackable groups (one compiled readout model each), keyed by unit name."""
    return {f"{i:02d}_{g[0]}": g for i, g in enumerate(training.group_tasks(names))}

  def unit_of(self, stage: str, task: str) -> pathlib.Path:
    """The unit holding `task`'s outputs of `stage`: one per task for the task bank and the
    from-scratch baselines, one per stackable group of targets for the transfers."""
    name = tasks.get(task).name
    if stage in ("taskbank", "scratch"):
      return self.stage_dir(stage) / name
    unit = next(u for u, g in self.groups(self.targets).items() if name in g)
    return self.stage_dir(stage) / unit

  def rep(self, task: str, split: str) -> np.ndarray:
    return np.load(self.unit_of("taskbank", task) / f"{task}.{split}.rep.npy", mmap_mode="r")


def _units(run: Run, stage: str, names: Sequence[str],
           fn: Callable[[str, pathlib.Path], Any], who: str = "first") -> None:
  """Runs `fn(name, tmp_dir)` for every unfinished unit of `stage`, with a progress bar.

  In a multi-process run `who` says which process runs which units: 'first' (process 0 all of
  them: cheap or single-writer stages), 'share' (each its `WorkGroup.share` of `names`) or
  'each' (each all of `names`, its own part units). Every process then waits until all of
  `names` are done.
  """
  everything = list(names)
  if who == "share":
    names = run.group.share(names)
  elif who == "first" and not run.group.is_first:
    names = []
  elif who not in ("first", "share", "each"):
    raise ValueError(f"who={who!r}")
  bar = tqdm(names, desc=stage, unit="unit", file=sys.stdout, leave=True,
             disable=not names)
  for name in bar:
    bar.set_postfix_str(name)
    start = time.time()
    path = run.stage_dir(stage) / name
    ran = stages.run_unit(path, lambda tmp, n=name: fn(n, tmp))
    # `unit_seconds`: what the unit took when it ran, in whichever process or attempt, so a
    # resumed run's timings still cover the whole run.
    run.log.append({"stage": stage, "unit": name, "ran": ran,
                    "seconds": round(time.time() - start, 2),
                    "unit_seconds": stages.marker_info(path)["seconds"]})
  workers.wait_for(lambda: all(stages.is_done(run.stage_dir(stage) / n) for n in everything),
                   f"the other processes' {stage} units", group=run.group)


# --- stages ----------------------------------------------------------------------------------

def stage_dataset(run: Run) -> None:
  def fn(_, tmp):
    views_lib.build_dataset(run.config.data, run.workdir / "tfds")
    (tmp / "data.json").write_text(json.dumps(run.config.data.to_dict()))
  _units(run, "dataset", ["tfds"], fn)


def stage_views(run: Run) -> None:
  def fn(split, tmp):
    n = views_lib.decode_split(run.config.data, run.workdir / "tfds", split, run.targets, tmp)
    (tmp / "count.json").write_text(json.dumps({"views": n}))
  _units(run, "views", list(views_lib.SPLITS), fn)


def _transfer_opt(run: Run, num_steps: int) -> dict[str, Any]:
  """The readouts' optimizer: the transfer learning rate, x0.1 at each `transfer.decay_at`
  fraction of `num_steps` (the paper anneals the transfers earlier than the task networks)."""
  t = run.config.transfer
  return {**run.config.optimizer.to_dict(), "learning_rate": t.learning_rate,
          "decay_steps": tuple(int(f * num_steps) for f in t.get("decay_at", ()))}


def _transfer_train_cfg(run: Run) -> dict[str, Any]:
  t = run.config.transfer
  # Each process trains its part of a group on its own devices (made explicit: also right
  # should the process be part of a jax.distributed job).
  return {"num_steps": t.num_steps, "batch_size": t.batch_size, "seed": t.seed,
          "local_devices": True}


def readout_config(run: Run) -> dict[str, Any]:
  """The readouts' module settings: the run's `readout` block and its representation's stride."""
  module = {k: v for k, v in run.config.readout.to_dict().items()
            if k != "standardize_residual"}  # the targets' transform (`residual`), not a layer
  # A readout through the target network's frozen decoder takes that network's decoder shape.
  model = run.config.model
  return {**module, "output_stride": int(model.get("output_stride", 16)),
          "rep_channels": int(model.rep_channels),
          "decoder_min_channels": int(model.get("decoder_min_channels", 1))}


def source_stats(run: Run, sources: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Per-channel statistics of each source's representation on the transfer-training split
  (`training.channel_stats`), when `transfer.standardize_inputs`."""
  if not run.config.transfer.get("standardize_inputs", False):
    return {}
  return {s: training.channel_stats(run.rep(s, "validation")) for s in sources}


def residual(run: Run, target: str) -> tuple[np.ndarray, float] | None:
  """A residual readout's output transform, (offset, scale): it learns (target - offset) /
  scale, over the transfer-training split's valid entries: `offset` the best constant image for
  the target's loss (per-pixel median for L1, mean for L2), `scale` the residual's standard
  deviation (1 without `readout.standardize_residual`); None when the readouts predict the
  target itself. From the median, an L1 readout into a sparse target (occlusion edges, 3D
  keypoints: background nearly everywhere) starts at the baseline it must beat; from the mean,
  1.8x that loss, 400 steps did not bring any readout back to it."""
  spec = tasks.get(target)
  if not (run.config.readout.get("residual", False) and readout_lib.is_regression(spec)):
    return None
  val = run.views("validation")
  mask = val.mask(target) if spec.pixel_output else None
  offset = training.trivial_images(val.target(target), mask)[
      "median" if spec.loss == "l1" else "mean"]
  scale = readout_lib.residual_scale(val.target(target), offset, mask) \
      if run.config.readout.get("standardize_residual", False) else 1.0
  return offset, scale


# Per-task settings of how long and on what schedule a task network trains; the from-scratch
# baselines take theirs from `scratch` instead.
SCHEDULE_KEYS = ("train", "optimizer")


def bank_config(run: Run, stage: str = "taskbank") -> ml_collections.ConfigDict:
  """The config of the one task-bank trainer (taskonomy_jax/taskbank/train.py) for the run's
  task networks ('taskbank': every source, on `train`) or its from-scratch baselines ('scratch':
  every target, on the transfer budget of `validation`, with the transfers' learning rate and
  schedule). Both read the run's TFDS dataset."""
  c = run.config
  tb = c.taskbank
  scratch = stage == "scratch"
  if scratch:
    sc = c.get("scratch") or {}  # configs without the section train as the transfers
    steps = int(sc.get("num_steps", c.transfer.num_steps))
    lr, decay_at = c.transfer.learning_rate, c.transfer.get("decay_at", ())
    # A budget smaller than a batch trains on batches of the whole budget.
    views = min(len(run.views("validation")), int(c.transfer.budget or 0) or 1 << 30)
    batch = min(int(sc.get("batch_size", c.transfer.batch_size)), views)
    seed = c.transfer.seed
  else:
    steps, lr, decay_at = int(tb.num_steps), c.optimizer.learning_rate, tb.get("decay_at", ())
    batch, seed = tb.batch_size, tb.seed
  per_task = tb.get("per_task") or {}
  per_task = per_task.to_dict() if hasattr(per_task, "to_dict") else dict(per_task)
  if scratch:  # a task's own data and model recipe, but the transfer budget's steps: a task
    # network trained longer on `train` (SCHEDULE_KEYS) does not make its baseline train longer
    per_task = {t: {k: v for k, v in over.items() if k not in SCHEDULE_KEYS}
                for t, over in per_task.items()}
  return ml_collections.ConfigDict({
      "tasks": tuple(run.targets if scratch else run.bank),
      # Each process trains its share of the tasks (the trainer divides them).
      "multihost": bool(c.get("multihost", False)),
      # The same per-task recipe: a baseline trained otherwise would misstate Gain.
      "per_task": per_task,
      "resolution": int(c.data.resolution),
      "model": c.model.to_dict(),
      "optimizer": {**c.optimizer.to_dict(), "learning_rate": lr,
                    "decay_steps": tuple(int(f * steps) for f in decay_at)},
      "train": {"num_steps": steps, "batch_size": int(batch), "seed": int(seed),
                "log_every": max(1, steps // 8), "checkpoint_every": max(1, steps // 2),
                "keep_checkpoints": 1, "eval_every": 0, "eval_batches": 1,
                "bn_recompute_batches": int(tb.get("bn_recompute_batches", 0)),
                "num_devices": None, "fsdp": False, "progress": True},
      "data": {"name": "taskonomy_synthetic", "builder_config": c.data.name,
               "data_dir": str((run.workdir / "tfds").resolve()), "build_if_missing": False,
               "seed": 0, "num_eval": 0, "draws_per_anchor": 1,
               "augment": tuple(tb.get("augment", ())),
               "standardize_targets": tb.get("standardize_targets", "vectors"),
               "train_split": "validation" if scratch else "train",
               "train_examples": int(c.transfer.budget or 0) if scratch else 0},
  })


def check_bank(run: Run) -> None:
  """A bank given with `--bank` must hold every source of the run, trained at its resolution.

  Raises:
    FileNotFoundError: no bank there, or tasks of the run missing from it.
    ValueError: the bank's resolution differs from the run's.
  """
  config = files.read_json(str(run.bank_dir / bank_train.BANK_FILE))
  if config is None:
    raise FileNotFoundError(f"--bank {run.bank_dir} is not a task bank (no "
                            f"{bank_train.BANK_FILE}); train one with `taskonomy taskbank train`")
  missing = [t for t in run.bank if not bank_train.is_done(str(run.bank_dir), t)]
  if missing:
    raise FileNotFoundError(f"the bank {run.bank_dir} has not trained {', '.join(missing)}; "
                            f"train them with `taskonomy taskbank train ... --workdir "
                            f"{run.bank_dir} --tasks {','.join(missing)}`")
  if int(config["resolution"]) != int(run.config.data.resolution):
    raise ValueError(f"the bank {run.bank_dir} was trained at {config['resolution']}x"
                     f"{config['resolution']} but the run's views are "
                     f"{run.config.data.resolution}x{run.config.data.resolution}")


def _check_rep(run: Run, task: str, rep: np.ndarray) -> None:
  """Readouts are built for the run's representation (model.rep_channels at output_stride)."""
  side = int(run.config.data.resolution) // int(run.config.model.get("output_stride", 16))
  want = (side, side, int(run.config.model.rep_channels))
  if tuple(rep.shape[1:]) != want:
    raise ValueError(f"{task}'s representation is {tuple(rep.shape[1:])}, but the run's readouts "
                     f"take {want} (model.output_stride, model.rep_channels): give the run the "
                     "bank's model settings")


def _bank_outputs(run: Run, stage: str, bank_dir: pathlib.Path, names: Sequence[str]) -> None:
  """One unit per task of `bank_dir`: its network's per-example losses on the test views, and
  for the task bank also its representation of the transfer splits and the trivial baselines'
  losses (report.json's first gate)."""
  val, test = run.views("validation"), run.views("test")

  def fn(name, tmp):
    bank = bank_lib.TaskBank.load(str(bank_dir), [name])
    spec = tasks.get(name)
    if stage == "taskbank":
      reps = training.encode(*bank.network(name), np.concatenate([val.rgb, test.rgb]))
      _check_rep(run, name, reps)
      np.save(tmp / f"{name}.validation.rep.npy", reps[:len(val)])
      np.save(tmp / f"{name}.test.rep.npy", reps[len(val):])
    if name not in run.targets:  # a source only (random projection, jigsaw, ...)
      return
    losses = training.prediction_losses(spec, bank.batch_apply(name), test.images(name),
                                        test.target(name), test.mask(name))
    np.save(tmp / f"{name}.{'self_losses' if stage == 'taskbank' else 'losses'}.npy", losses)
    if stage == "taskbank":
      train = run.views("train")
      for kind, image in training.trivial_predictions(
          spec, train.target(name), train.mask(name), int(run.config.data.resolution)).items():
        np.save(tmp / f"{name}.{kind}_losses.npy",
                training.prediction_losses(spec, training.constant(image), test.images(name),
                                           test.target(name), test.mask(name)))
  _units(run, stage, list(names), fn, who="share")


def _train_bank(run: Run, stage: str, bank_dir: pathlib.Path) -> None:
  """The one task-bank trainer on `bank_config(run, stage)` (it resumes by itself: finished
  tasks are skipped, an interrupted one restarts from its checkpoint)."""
  config = bank_config(run, stage)
  todo = [t for t in config.tasks if not bank_train.is_done(str(bank_dir), t)]
  start = time.time()
  if todo:
    bank_train.train_task_bank(config, str(bank_dir))
  run.log.append({"stage": stage, "unit": BANK, "ran": bool(todo),
                  "seconds": round(time.time() - start, 2),
                  "unit_seconds": round(sum(bank_train.done_record(str(bank_dir), t)["seconds"]
                                            for t in config.tasks), 2)})


def stage_taskbank(run: Run) -> None:
  """The task networks (and random projection, an untrained encoder), trained on `train` by
  the task-bank trainer, or read from the bank `--bank` names; then each network's
  representation of the transfer splits and its held-out losses (the tournament's `self`)."""
  if run.config.taskbank.get("bank"):
    check_bank(run)
  else:
    _train_bank(run, "taskbank", run.bank_dir)
  _bank_outputs(run, "taskbank", run.bank_dir, run.bank)


def stage_scratch(run: Run) -> None:
  """Per target, its task network trained from pixels on the transfer budget by the same
  trainer (the Gain baseline), and its held-out losses."""
  bank_dir = run.stage_dir("scratch") / BANK
  _train_bank(run, "scratch", bank_dir)
  _bank_outputs(run, "scratch", bank_dir, run.targets)


Member = tuple[str, tuple[str, ...]]  # (target, sources)


def _residual_targets(views: views_lib.Views, target: str,
                      transform: tuple[np.ndarray, float] | None):
  t = views.target(target)
  return t if transform is None else readout_lib.ResidualTarget(t, *transform)


# Readouts count as converged when their held-out loss (the test views the tournaments score)
# fell by less than this fraction over the second half of their steps (BUILD_NOTES.md, "The
# taxonomy pipeline and its gates"). Their loss on PROBE_VIEWS transfer-training views is kept
# beside it: a vector readout's keeps falling as it memorises the ~660 views.
PLATEAU_TOLERANCE = 0.05
PROBE_VIEWS = 64
# plateau.json's entries with one value per readout (the rest describe the whole unit).
PER_READOUT_PLATEAU_KEYS = ("loss_mid", "loss_end", "plateaued", "train_loss_mid",
                            "train_loss_end", "train_plateaued")
# converged_readouts' flags: the held-out loss (the gate's) and the training probe's.
PLATEAU_FLAGS = ("plateaued", "train_plateaued")


def input_channels(run: Run, stage: str) -> int:
  """Channels of one view's readout input in `stage`: its sources' representations concatenated
  and zero-padded to the stage's highest order (first order: one representation; orders 2-4:
  `max_order` of them). Padding first-order inputs to order 4's channels too would cost their
  compiled step 2x (BUILD_NOTES.md, "The whole taxonomy on one CPU") for zeros."""
  orders = 1 if stage == "transfers1" else int(run.config.transfer.max_order)
  return orders * int(run.config.model.rep_channels)


def _train_transfers(run: Run, members: list[Member], tag: str, unit: str,
                     tmp: pathlib.Path, first: int = 0, part: str = "") -> None:
  """All `members` (readouts into targets of one stackable group) in one compiled step.

  Trains half the steps, measures each readout's loss on the held-out views and on (up to) 64
  transfer-training views, trains on (the loop resumes from its checkpoint: the same run as one
  call) and measures again: `plateau.json` records both and whether each readout's held-out
  loss plateaued. The half-way losses
  are kept beside the checkpoints: a unit killed after its last checkpoint would otherwise,
  when redone, measure the end state twice (the loop restores its latest checkpoint, even for
  the half-way call) and call every readout converged.

  `members` may be a slice of a group's readouts, from the group's `first`-th on (a part,
  named `part`, of a multi-process run): each readout keeps the seed it has in the whole group,
  so the parts train what the group trains in one process.
  """
  spec = tasks.get(members[0][0])
  channels = input_channels(run, tag)  # per view
  cands = [srcs for _, srcs in members]
  needed = sorted({s for c in cands for s in c})
  stats = source_stats(run, needed)
  val, test = run.views("validation"), run.views("test")
  transforms = {t: residual(run, t) for t in {t for t, _ in members}}

  def source(views: views_lib.Views, split: str, limit: int | None = None):
    # A multi-view target stacks with no other (`training.group_key`): one set of samples.
    return training.StackedSource(
        training.StackedInputs({s: run.rep(s, split) for s in needed}, cands, channels, stats,
                               records=views.records(spec.name)),
        [_residual_targets(views, t, transforms[t]) for t, _ in members],
        [views.mask(t) for t, _ in members], limit=limit)

  train_source = source(val, "validation", run.config.transfer.budget or None)
  train_probe = source(val, "validation", min(PROBE_VIEWS, len(train_source)))
  held_out = source(test, "test")
  readout = readout_lib.build(spec, {**readout_config(run), "loss_pixels_only": True})
  seeds = [run.config.transfer.seed + first + k for k in range(len(members))]
  cfg = _transfer_train_cfg(run)
  half = max(1, cfg["num_steps"] // 2)
  ckpt = run.ckpt / tag / unit / part if part else run.ckpt / tag / unit

  target_networks, groups = None, None
  if readout.frozen_target_decoder:
    bank = bank_lib.TaskBank.load(str(run.bank_dir), sorted(transforms))
    target_networks = [readout_lib.TargetNetwork(t, *bank.network(t), bank.target_stats(t))
                       for t, _ in members]
    groups = readout_lib.decoder_groups([t for t, _ in members])

  def train(steps: int):
    return training.train_stacked(readout, spec, train_source, seeds,
                                  _transfer_opt(run, cfg["num_steps"]),
                                  {**cfg, "num_steps": steps, "checkpoint_every": half}, ckpt,
                                  shard=bool(run.config.transfer.get("shard_readouts", False)),
                                  target_networks=target_networks)

  def losses(state, views) -> np.ndarray:  # (K, N) per-example losses in residual units
    return training.stacked_losses(readout, spec, state, views, groups=groups)

  mid_path = ckpt / "probe_loss_mid.json"
  if not mid_path.is_file():
    state = train(half)
    stages.write_json_atomic(mid_path, {  # float32 values, exact in JSON
        "held_out": losses(state, held_out).mean(1).tolist(),
        "train": losses(state, train_probe).mean(1).tolist()})
  mid = {k: np.asarray(v, np.float64) for k, v in json.loads(mid_path.read_text()).items()}
  state = train(cfg["num_steps"])
  test_losses = losses(state, held_out)
  end = {"held_out": test_losses.mean(1).astype(np.float64),
         "train": losses(state, train_probe).mean(1).astype(np.float64)}
  # Losses on residual targets, times these, are in the targets' own units.
  factors = np.asarray([1.0 if transforms[t] is None else
                        readout_lib.loss_factor(tasks.get(t), transforms[t][1])
                        for t, _ in members], np.float32)[:, None]
  np.save(tmp / "losses.npy", test_losses * factors)
  (tmp / "members.json").write_text(json.dumps([[t, list(s)] for t, s in members]))
  plateaued = {k: plateau_flags(mid[k], end[k]) for k in mid}
  per_readout = {
      "loss_mid": mid["held_out"].tolist(), "loss_end": end["held_out"].tolist(),
      "plateaued": plateaued["held_out"],
      "train_loss_mid": mid["train"].tolist(), "train_loss_end": end["train"].tolist(),
      "train_plateaued": plateaued["train"]}
  assert tuple(per_readout) == PER_READOUT_PLATEAU_KEYS  # _join_parts concatenates these
  (tmp / "plateau.json").write_text(json.dumps({
      "steps": [half, cfg["num_steps"]], "tolerance": PLATEAU_TOLERANCE, **per_readout}))


def plateau_flags(mid: np.ndarray, end: np.ndarray) -> list[bool]:
  """(K,) losses half-way and at the end -> whether each fell by less than PLATEAU_TOLERANCE
  of its half-way value (a rising loss has plateaued too: more steps would not lower it)."""
  drop = (mid - end) / np.maximum(np.abs(mid), 1e-12)
  return (drop < PLATEAU_TOLERANCE).tolist()


PARTS = "parts"  # a stage's part units, one per group and process of a multi-process run


def part_bounds(k: int, processes: int) -> list[tuple[int, int]]:
  """A group of `k` readouts split into `processes` contiguous slices [start, stop) of sizes
  differing by at most one (empty ones when k < processes)."""
  edges = [round(i * k / processes) for i in range(processes + 1)]
  return list(itertools.pairwise(edges))


def _transfer_stage(run: Run, stage: str, members_of: Callable[[str], list[Member]]) -> None:
  """Trains every group's readouts (`members_of(group unit)`) as `stage`'s units: one per group,
  or in a multi-process run one part per group and process, then joined by process 0."""
  groups = list(run.groups(run.targets))
  n, me = run.group.count, run.group.index
  if n == 1:
    _units(run, stage, groups,
           lambda unit, tmp: _train_transfers(run, members_of(unit), stage, unit, tmp))
    return
  part = f"{me}of{n}"
  # Each process its slice of every group: groups are few (one per output kind) and large.
  mine = [g for g in groups if not stages.is_done(run.stage_dir(stage) / g)
          and _part_size(members_of, g, n, me)]

  def train_part(name, tmp):
    unit = pathlib.PurePath(name).parent.name
    start, stop = part_bounds(len(members_of(unit)), n)[me]
    _train_transfers(run, members_of(unit)[start:stop], stage, unit, tmp, first=start,
                     part=f"{PARTS}/{part}")
  _units(run, stage, [f"{PARTS}/{g}/{part}" for g in mine], train_part, who="each")
  if run.group.is_first:  # the join waits for every process's non-empty parts
    parts = [run.stage_dir(stage) / PARTS / g / f"{p}of{n}" for g in groups
             if not stages.is_done(run.stage_dir(stage) / g)
             for p in range(n) if _part_size(members_of, g, n, p)]
    workers.wait_for(lambda: all(map(stages.is_done, parts)),
                     f"the other processes' {stage} parts", group=run.group)
  _units(run, stage, groups, lambda unit, tmp: _join_parts(run, stage, unit, n, tmp))


def _part_size(members_of: Callable[[str], list[Member]], unit: str, n: int, me: int) -> int:
  start, stop = part_bounds(len(members_of(unit)), n)[me]
  return stop - start


def _join_parts(run: Run, stage: str, unit: str, n: int, tmp: pathlib.Path) -> None:
  """A group's unit from its parts, in the group's order: the files one process writes."""
  folders = [run.stage_dir(stage) / PARTS / unit / f"{p}of{n}" for p in range(n)]
  folders = [f for f in folders if stages.is_done(f)]  # a part of no readouts is not written
  members = [m for f in folders for m in load_members(f)]
  np.save(tmp / "losses.npy", np.concatenate([np.load(f / "losses.npy") for f in folders]))
  (tmp / "members.json").write_text(json.dumps([[t, list(s)] for t, s in members]))
  plateaus = [json.loads((f / "plateau.json").read_text()) for f in folders]
  joined = {k: v for k, v in plateaus[0].items()}
  for key in PER_READOUT_PLATEAU_KEYS:
    joined[key] = [x for p in plateaus for x in p[key]]
  (tmp / "plateau.json").write_text(json.dumps(joined))


def transfers1_members(run: Run, unit: str) -> list[Member]:
  """A group's first-order readouts: every source (random projection included) -> each of its
  targets but the target itself (`self` stands for its own network)."""
  return [(t, (s,)) for t in run.groups(run.targets)[unit] for s in run.bank if s != t]


def stage_transfers1(run: Run) -> None:
  """Every source (random projection included) -> every target; one compiled step per group of
  stackable targets."""
  _transfer_stage(run, "transfers1", lambda unit: transfers1_members(run, unit))


def load_members(folder: pathlib.Path) -> list[Member]:
  return [(t, tuple(s)) for t, s in json.loads((folder / "members.json").read_text())]


def load_losses(folder: pathlib.Path) -> tuple[list[Member], np.ndarray]:
  return load_members(folder), np.load(folder / "losses.npy")


def target_losses(folder: pathlib.Path, target: str) -> tuple[list[tuple[str, ...]], np.ndarray]:
  """One target's candidates and their (S, N) losses from a transfer unit."""
  members, losses = load_losses(folder)
  rows = [i for i, (t, _) in enumerate(members) if t == target]
  return [members[i][1] for i in rows], losses[rows]


def transfers_high_members(run: Run, unit: str) -> list[Member]:
  """A group's higher-order readouts: for each target, combinations of its `beam` best
  first-order sources."""
  members = []
  for target in run.groups(run.targets)[unit]:
    cands, losses = target_losses(run.stage_dir("transfers1") / unit, target)
    members += [(target, c) for c in training.beam_candidates(
        [c[0] for c in cands], losses, run.config.transfer.beam, run.config.transfer.max_order)]
  return members


def stage_transfers_high(run: Run) -> None:
  """Orders 2..max_order from each target's `beam` best first-order sources."""
  if run.config.transfer.max_order > 1:
    _transfer_stage(run, "transfers_high", lambda unit: transfers_high_members(run, unit))


def target_losses_of_run(run: Run) -> dict[str, Any]:
  """Every target's held-out losses (`affinity.TargetLosses`): its first- and higher-order
  transfers, its own network and its from-scratch baseline, all on the test views."""
  per_target = {}
  for target in run.targets:
    cands, losses = target_losses(run.unit_of("transfers1", target), target)
    high_dir = run.unit_of("transfers_high", target)
    if stages.is_done(high_dir):
      hc, hl = target_losses(high_dir, target)
      cands, losses = cands + hc, np.concatenate([losses, hl])
    per_target[target] = affinity.TargetLosses(
        candidates=cands, losses=losses,
        self_losses=np.load(run.unit_of("taskbank", target) / f"{target}.self_losses.npy"),
        scratch_losses=np.load(run.unit_of("scratch", target) / f"{target}.losses.npy"))
  return per_target


def stage_affinities(run: Run) -> None:
  def fn(_, tmp):
    per_target = target_losses_of_run(run)
    table = affinity.affinity_table(per_target, source=str(run.workdir))
    table.save(tmp / "affinities.json")
    summary = {t: affinity.summary(tl) for t, tl in per_target.items()}
    (tmp / "losses_summary.json").write_text(json.dumps(summary, indent=1))
  _units(run, "affinities", ["table"], fn)


def converged_readouts(run: Run) -> dict[str, dict[str, bool]]:
  """Flag (`PLATEAU_FLAGS`: 'plateaued', the held-out loss; 'train_plateaued', the loss on the
  transfer-training probe views) -> 'sources -> target' -> whether that readout's loss
  plateaued, from every `plateau.json` of the run, each read once."""
  out: dict[str, dict[str, bool]] = {flag: {} for flag in PLATEAU_FLAGS}
  for stage in ("transfers1", "transfers_high"):
    for unit in sorted(run.stage_dir(stage).glob("*/plateau.json")):
      members = load_members(unit.parent)
      plateau = json.loads(unit.read_text())
      for flag, flags in out.items():
        for (target, sources), ok in zip(members, plateau[flag], strict=True):
          flags[f"{'+'.join(sources)} -> {target}"] = bool(ok)
  return out


def gates_report(run: Run) -> dict[str, Any]:
  """The run's gates (taskonomy_jax/transfer/gates.py) on its test views: task networks vs the
  mean and median image, transfers vs random projection, readout convergence, the known
  answers, agreement with the paper's affinities (when its data is found), bootstrap intervals
  of every affinity and how often each budget's supervised set is chosen across resamples."""
  per_target = target_losses_of_run(run)
  baselines = {t: tuple(np.load(run.unit_of("taskbank", t) / f"{t}.{name}_losses.npy")
                        for name in ("mean", "median")) for t in run.targets}
  tc = run.config.taxonomy
  # The taxonomy's own budget too, so taxonomy.json always says how stable its choice is.
  budgets = tuple(sorted({*map(float, tc.graph_budgets), float(tc.budget)}))
  test = run.views("test")
  converged = converged_readouts(run)
  return gates.run_gates(per_target, baselines, {t: test.task_points(t) for t in run.targets},
                         converged=converged["plateaued"],
                         converged_on_train=converged["train_plateaued"],
                         paper=gates.load_paper(), budgets=budgets, order=tc.order)


def affinities_path(run: Run) -> pathlib.Path:
  return run.stage_dir("affinities") / "table" / "affinities.json"


def stage_taxonomy(run: Run) -> None:
  tc = run.config.taxonomy

  def fn(_, tmp):
    report = gates_report(run)
    # Beside the gates (untouched): RSA and CKA from the cached representations, no training.
    report["estimators"] = estimates.estimator_report(
        run, AffinityTable.load(affinities_path(run)), tmp)
    stages.write_json_atomic(tmp / REPORT, report)
    # The report's resampled choices, drawn and written with the taxonomies (not recomputed).
    selection = api.Selection.from_report(report)
    tax = api.solve_taxonomy(run.targets, tc.budget, order=tc.order,
                             data=str(affinities_path(run)))
    draw.write_outputs(dataclasses.replace(tax, selection=selection), tmp)
    figures.make_figures(tmp / "figures", data=str(affinities_path(run)),
                         graph_budgets=tuple(tc.graph_budgets), selection=selection)
    draw.affinity_error_bars(AffinityTable.load(affinities_path(run)),
                             report.get("affinity_intervals", {}),
                             tmp / "figures" / "affinity_intervals.png")
  _units(run, "taxonomy", ["out"], fn)


REPORT = "report.json"


def report_path(run: Run) -> pathlib.Path:
  return run.stage_dir("taxonomy") / "out" / REPORT


STAGE_FNS: dict[str, Callable[[Run], None]] = {
    "dataset": stage_dataset, "views": stage_views, "taskbank": stage_taskbank,
    "scratch": stage_scratch, "transfers1": stage_transfers1,
    "transfers_high": stage_transfers_high, "affinities": stage_affinities,
    "taxonomy": stage_taxonomy,
}


def configure_jax(cache_dir: pathlib.Path) -> None:
  """The CPU training flags (taskonomy_jax/xla_flags.py) and a persistent compilation cache in
  the workdir, so a rerun or a group of equal shapes loads compiled steps. XLA's full
  optimisation stays on: `--xla_backend_optimization_level=0` compiled ~5x faster but ran the
  task bank's steps ~4x slower (BUILD_NOTES.md, "Speed and memory"). Must run before JAX's
  first computation."""
  xla_flags.add(*xla_flags.cpu_training_flags())
  malloc.return_large_blocks()  # peak RSS: the stacked readouts' input batches (malloc.py)
  jax.config.update("jax_compilation_cache_dir", str(cache_dir))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def run_pipeline(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                 until: str | None = None) -> Run:
  """Runs (or resumes) every stage up to `until` (default: all); returns the run's log.

  With `config.multihost`, each process of the run (train/workers.py) makes this same call on
  the same workdir and does its share.
  """
  if until is not None and until not in STAGES:
    raise ValueError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}")
  unknown = [t for t in config.targets if not readout_lib.is_transfer_target(tasks.get(t))]
  if unknown:
    raise ValueError(f"targets {unknown} are not transfer targets (pixel, vector or multi-view "
                     "tasks; the source-only tasks and random projection can be extra_sources)")
  # Readout settings a target cannot take (e.g. a frozen decoder for a multi-view target) fail
  # here, not when the transfers reach that target hours into the run.
  readouts = readout_config(Run(config, pathlib.Path(workdir)))
  for t in config.targets:
    readout_lib.build(tasks.get(t), readouts)
  group = workers.work_group(bool(config.get("multihost", False)))
  return _run_stages(config, workdir, until, group)


@workdir_lock.locked  # a second run on the workdir is refused, naming the first
def _run_stages(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                until: str | None, group: workers.WorkGroup) -> Run:
  with workers.heartbeat(group, workdir) as beating:  # the other processes see this one alive
    run = Run(config, pathlib.Path(workdir), beating)
    run.workdir.mkdir(parents=True, exist_ok=True)
    configure_jax(run.workdir / "jax_cache")
    if group.is_first:
      # The config the run was made with: predictors and exports rebuild its networks from it.
      stages.write_json_atomic(run.workdir / "config.json", config.to_dict())
    for i, name in enumerate(STAGES):
      start = time.time()
      print(f"[{i + 1}/{len(STAGES)}] {name}", flush=True)
      STAGE_FNS[name](run)
      ran = sum(e["ran"] for e in run.log if e["stage"] == name)
      print(f"[{i + 1}/{len(STAGES)}] {name}: {ran} unit(s) run, "
            f"{time.time() - start:.1f} s", flush=True)
      if name == until:
        break
  me = run.group.index
  timings = run.workdir / ("timings.json" if me == 0 else f"timings.process{me}.json")
  stages.write_json_atomic(timings, run.log)
  return run


def outputs(run: Run) -> dict[str, pathlib.Path]:
  out = run.stage_dir("taxonomy") / "out"
  return {"taxonomy": out / "taxonomy.json", "graph": out / "taxonomy.png",
          "gates (report.json)": out / REPORT,
          "affinity heatmap": out / "figures" / "affinity_matrix.png",
          "affinities with intervals": out / "figures" / "affinity_intervals.png",
          "taxonomies by budget": out / "figures" / "taxonomies.png",
          "quality/gain vs budget": out / "figures" / "quality_gain_vs_budget.png",
          "similarity tree": out / "figures" / "similarity_tree.png",
          "affinities": affinities_path(run),
          "estimator affinities (RSA, CKA, probe)": out / estimates.FOLDER,
          "task bank (serve --bank)": run.bank_dir}
