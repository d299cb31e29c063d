"""`taskonomy train` on the TFDS datasets: `--set data.name=taskonomy_synthetic` finds the
dataset in a fresh process, whatever that process imported (the datasets and builders are
registered where the data is opened, not by an import elsewhere)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_train_reads_the_synthetic_tfds_dataset_in_a_fresh_process(tmp_path):
  workdir, data_dir = tmp_path / "run", tmp_path / "tfds"
  overrides = {"task": "depth_zbuffer", "resolution": 32, "data.name": "taskonomy_synthetic",
               "data.builder_config": "r32_mini", "data.data_dir": str(data_dir),
               "data.num_eval": 0, "train.num_steps": 2, "train.batch_size": 2,
               "train.log_every": 1, "train.checkpoint_every": 2,
               "train.bn_recompute_batches": 0, "train.progress": False}
  cmd = [sys.executable, "-m", "taskonomy_jax.cli", "train",
         "task_network:cpu", "--workdir", str(workdir)]
  for key, value in overrides.items():
    cmd += ["--set", f"{key}={value}"]
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(
      [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
  proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (data_dir / "taskonomy_synthetic" / "r32_mini").is_dir()  # rendered where told
  assert (workdir / "checkpoints" / "2").is_dir()
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2]
  assert all(math.isfinite(r["loss"]) for r in rows)


def test_experiments_train_takes_the_train_subcommands_arguments(tmp_path):
  """`python -m experiments.train` is `taskonomy train` (one parser, `--set` overrides): a bad
  override and an unknown task fail as they do there, before anything trains."""
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(
      [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
  base = [sys.executable, "-m", "experiments.train", "task_network:cpu",
          "--workdir", str(tmp_path / "run")]
  for extra, message in ((["--set", "train.bacth_size=4"], "config has no field"),
                         (["--task", "normals_typo"], "Unknown task 'normals_typo'")):
    proc = subprocess.run(base + extra, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
  assert not (tmp_path / "run").exists()
