"""First-order readouts of a finished `taskonomy taxonomy` run, retrained under one change.

Asks whether a change to the readouts or to the sources' networks would move random projection
among a target's sources, without rerunning the pipeline: the run's own readout training
(`pipeline._train_transfers`: same readout, schedule, seeds, transfer and test views) on the
run's cached representations, with at most one of

  --readout-channels N   readouts N channels wide (the run's: `readout.readout_channels`);
  --random-blocks B      random projection from an untrained encoder with these blocks per
                         stage (e.g. 1,1,1,1), the bank's width and seed, instead of the run's;
  --retrain-steps N      each listed source but random retrained N steps by the run's task-bank
                         recipe (same decay fractions; its per-task schedule dropped; encoder
                         planes `--width`, default the run's), its networks under --bank-out;
                         a retrained target network's own held-out loss is printed too.

    PYTHONPATH=. .venv/bin/python experiments/readout_probe.py out/taxonomy_cpu_full \\
        --targets depth_zbuffer,normal --sources depth_euclidean,autoencoding,jigsaw,random \\
        --readout-channels 32

Prints per target each source's mean held-out loss over the target's median image's (lower is
better), best first. Readout checkpoints go to a temporary folder; the run is only read.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
from collections.abc import Sequence

import ml_collections
import numpy as np

from experiments.transfer_spread import median_image_loss
from taskonomy_jax import tasks
from taskonomy_jax.taskbank import bank as bank_lib
from taskonomy_jax.taskbank import train as bank_train
from taskonomy_jax.transfer import gates, pipeline, predictor, training

SPLITS = ("validation", "test")  # the transfer-training views, the held-out ones


def random_encoder_reps(run: pipeline.Run, blocks: Sequence[int]) -> dict[str, np.ndarray]:
  """{split: representation} of an untrained encoder of `blocks`, initialised as the bank's
  random projection (the bank's blocks give the run's own)."""
  config = pipeline.bank_config(run)
  config.model.blocks = tuple(blocks)
  model, variables = bank_train.random_encoder(bank_train.task_config(config, gates.RANDOM))
  return {s: training.encode(model, variables, run.views(s).rgb) for s in SPLITS}


def scratch_run(finished: pipeline.Run, folder: pathlib.Path) -> pipeline.Run:
  """A run in `folder` reading `finished`'s views, representations and dataset in place (links),
  with its own checkpoints and a copy of its config: probing writes nothing into `finished`."""
  for name in (finished.stage_dir("views").name, finished.stage_dir("taskbank").name, "tfds"):
    if (finished.workdir / name).exists():  # tfds: the dataset --retrain-steps trains on
      (folder / name).symlink_to((finished.workdir / name).resolve())
  return pipeline.Run(ml_collections.ConfigDict(finished.config.to_dict()), folder)


def retrained_reps(run: pipeline.Run, task: str, steps: int, bank_out: pathlib.Path,
                   width: int | None = None) -> dict[str, np.ndarray]:
  """{split: representation} of `task`'s network retrained `steps` steps (resumes in
  `bank_out`); prints its own held-out loss over the median image's when it is a target."""
  config = pipeline.bank_config(run)
  config.tasks = (task,)
  width = width or int(config.model.width)
  config.model.width = width
  config.train.num_steps = steps
  config.train.checkpoint_every = steps
  config.train.log_every = max(1, steps // 4)
  config.optimizer.decay_steps = tuple(int(f * steps) for f in run.config.taskbank.decay_at)
  config.per_task = {t: {k: v for k, v in over.items() if k not in pipeline.SCHEDULE_KEYS}
                     for t, over in config.per_task.items() if t == task}
  folder = bank_out / (f"{task}_{steps}" + ("" if width == run.config.model.width else
                                              f"_w{width}"))
  bank_train.train_task_bank(config, str(folder))
  bank = bank_lib.TaskBank.load(str(folder), [task])
  if task in run.targets:
    test = run.views("test")
    own = training.prediction_losses(tasks.get(task), bank.batch_apply(task), test.images(task),
                                     test.target(task), test.mask(task))
    print(f"{task} network, {steps} steps, width {width}: held-out loss "
          f"{float(own.mean()) / median_image_loss(run, task):.3f} of the median image's")
  return {s: training.encode(*bank.network(task), run.views(s).rgb) for s in SPLITS}


def probe(run: pipeline.Run, targets: Sequence[str], sources: Sequence[str],
          replaced: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
  """{target: {source: mean held-out loss / the median image's}}; `replaced` overrides sources'
  cached representations ({source: {split: rep}})."""
  cached = run.rep
  run.rep = lambda task, split: replaced[task][split] if task in replaced else cached(task, split)
  out = {}
  with tempfile.TemporaryDirectory() as scratch:  # run.rep stays overridden: a scratch_run
    for target in targets:
      members = [(target, (s,)) for s in sources if s != target]
      tmp = pathlib.Path(scratch) / target
      tmp.mkdir()
      pipeline._train_transfers(run, members, "transfers1", f"probe_{target}", tmp)
      losses = np.load(tmp / "losses.npy").mean(1)
      median = median_image_loss(run, target)
      out[target] = {s[0]: float(v) / median for (_, s), v in zip(members, losses, strict=True)}
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdir", type=pathlib.Path)
  parser.add_argument("--targets", required=True)
  parser.add_argument("--sources", required=True)
  change = parser.add_mutually_exclusive_group()
  change.add_argument("--readout-channels", type=int)
  change.add_argument("--random-blocks")
  change.add_argument("--retrain-steps", type=int)
  parser.add_argument("--width", type=int, help="--retrain-steps' encoder planes")
  parser.add_argument("--bank-out", type=pathlib.Path, default=pathlib.Path("out/probe_bank"))
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as folder:
    run = scratch_run(predictor.open_run(args.workdir), pathlib.Path(folder))
    if args.readout_channels:
      run.config.readout.readout_channels = args.readout_channels
    sources = args.sources.split(",")
    replaced = {}
    if args.random_blocks:
      replaced[gates.RANDOM] = random_encoder_reps(
          run, [int(b) for b in args.random_blocks.split(",")])
    if args.retrain_steps:
      replaced = {s: retrained_reps(run, s, args.retrain_steps, args.bank_out, args.width)
                  for s in sources if s != gates.RANDOM}
    elif args.width:
      parser.error("--width applies to --retrain-steps' networks")
    for target, ratios in probe(run, args.targets.split(","), sources, replaced).items():
      ranked = sorted(ratios.items(), key=lambda kv: kv[1])
      print(f"{target}: " + ", ".join(f"{s} {r:.3f}" for s, r in ranked))


if __name__ == "__main__":
  main()
