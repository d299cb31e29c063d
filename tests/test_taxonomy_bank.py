"""One task-bank trainer: `taskonomy taxonomy` trains its task networks and from-scratch
baselines through `taskbank.train.train_task_bank` (as `taskonomy taskbank train` does), and
`--bank DIR` reads an already trained bank instead of training one.

The `:tiny` config end to end (~40 s on an idle 2-core machine), in the default run.
"""

from __future__ import annotations

import inspect
import json
import pathlib
import shutil

import numpy as np
import pytest

from taskonomy_jax import cli
from taskonomy_jax.configs import taxonomy as taxonomy_config
from taskonomy_jax.taskbank import train as bank_train
from taskonomy_jax.train import loop
from taskonomy_jax.transfer import pipeline, predictor

# Where the pipeline may call the training loop from: task networks and from-scratch baselines
# through the task-bank trainer, transfer readouts through the transfer stage.
TRAINERS = {("taskonomy_jax/taskbank/train.py", "train_task_bank"),
            ("taskonomy_jax/transfer/pipeline.py", "_train_transfers")}


def _caller(frames: list[inspect.FrameInfo]) -> set[tuple[str, str]]:
  root = pathlib.Path(pipeline.__file__).resolve().parents[2]
  out = set()
  for f in frames:
    path = pathlib.Path(f.filename).resolve()
    if (root / "taskonomy_jax") in path.parents:  # the library's own frames
      out.add((path.relative_to(root).as_posix(), f.function))
  return out


@pytest.fixture(scope="module")
def traced_run(tmp_path_factory):
  """A tiny run with every call of the training loop recorded: (what it trained, callers)."""
  calls = []
  real = loop.train

  def traced(**kwargs):
    calls.append(_caller(inspect.stack()[1:]))
    return real(**kwargs)

  mp = pytest.MonkeyPatch()
  mp.setattr(loop, "train", traced)
  try:
    workdir = tmp_path_factory.mktemp("bank") / "run"
    run = pipeline.run_pipeline(taxonomy_config.get_config("tiny"), workdir)
  finally:
    mp.undo()
  return run, calls


def test_every_network_trains_through_the_one_trainer(traced_run):
  run, calls = traced_run
  via_bank = [c for c in calls if ("taskonomy_jax/taskbank/train.py", "train_task_bank") in c]
  unknown = [sorted(c) for c in calls if not c & TRAINERS]
  assert not unknown, f"the training loop was called from a second path: {unknown}"
  # The task networks (random projection is not trained) and the from-scratch baselines.
  trained = [t for t in run.bank if t != "random"]
  assert len(via_bank) == len(trained) + len(run.targets)
  for stage, names in (("taskbank", trained), ("scratch", run.targets)):
    bank = run.bank_dir if stage == "taskbank" else run.stage_dir(stage) / pipeline.BANK
    for name in names:
      assert bank_train.is_done(str(bank), name), (stage, name)
  # The recipe's standardised targets, kept beside the network.
  assert bank_train.target_stats(str(run.bank_dir), "depth_zbuffer") is not None
  assert json.loads((run.workdir / "config.json").read_text())["taskbank"]["bank"] == ""


def test_a_given_bank_is_read_not_trained(traced_run, tmp_path, monkeypatch):
  run, _ = traced_run
  trained = []
  monkeypatch.setattr(bank_train, "train_task_bank", lambda *a, **k: trained.append(a))
  workdir = tmp_path / "reuse"
  # The run's own bank, given as an already trained one (as one from `taskbank train`).
  assert cli.main(["taxonomy", "--config", "taxonomy:tiny", "--workdir",
                   str(workdir), "--until", "taskbank", "--bank", str(run.bank_dir)]) == 0
  assert not trained and not (workdir / "03_taskbank" / pipeline.BANK).exists()
  again = predictor.open_run(workdir)  # its config.json records the bank it read
  assert again.bank_dir == run.bank_dir
  for source in run.bank:
    np.testing.assert_array_equal(again.rep(source, "test"), run.rep(source, "test"))
  for target in run.targets:
    name = f"{target}.self_losses.npy"
    np.testing.assert_array_equal(np.load(again.unit_of("taskbank", target) / name),
                                  np.load(run.unit_of("taskbank", target) / name))


def test_a_given_bank_must_hold_the_runs_tasks_at_its_resolution(traced_run, tmp_path):
  run, _ = traced_run
  config = taxonomy_config.get_config("tiny")
  config.taskbank.bank = str(run.bank_dir)
  config.targets = (*config.targets, "keypoints2d")
  with pytest.raises(FileNotFoundError, match=r"has not trained keypoints2d; train them with "
                                              r"`taskonomy taskbank train"):
    pipeline.run_pipeline(config, tmp_path / "more", until="taskbank")
  copy = tmp_path / "bank64"
  shutil.copytree(run.bank_dir, copy)
  bank_json = copy / bank_train.BANK_FILE
  bank_json.write_text(json.dumps({**json.loads(bank_json.read_text()), "resolution": 64}))
  config = taxonomy_config.get_config("tiny")
  config.taskbank.bank = str(copy)
  with pytest.raises(ValueError, match="trained at 64x64 but the run's views are 32x32"):
    pipeline.run_pipeline(config, tmp_path / "other", until="taskbank")
  config.taskbank.bank = str(tmp_path / "nothing")
  with pytest.raises(FileNotFoundError, match="is not a task bank"):
    pipeline.run_pipeline(config, tmp_path / "none", until="taskbank")
