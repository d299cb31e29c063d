"""Readouts through the target networks' frozen decoders in a whole (tiny) run: the pipeline
takes each readout's decoder from the run's own task bank, leaves it as trained, and the
transfer predictor reproduces the run's held-out losses from the checkpoint alone."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from taskonomy_jax import config_files, tasks
from taskonomy_jax.taskbank.bank import TaskBank
from taskonomy_jax.train import checkpoint
from taskonomy_jax.transfer import pipeline, predictor, readout

CONFIG = pathlib.Path(__file__).parents[1] / "experiments/configs/taxonomy_frozen_decoder.py"


def test_a_run_through_frozen_target_decoders(tmp_path):
  config = config_files.load_config(f"{CONFIG}:tiny")
  assert config.readout.frozen_target_decoder and not config.readout.residual
  workdir = tmp_path / "tax"
  run = pipeline.run_pipeline(config, workdir, until="transfers1")
  bank = TaskBank.load(str(run.bank_dir))
  (unit,) = run.stage_dir("transfers1").iterdir()
  members = [(t, tuple(s)) for t, s in
             json.loads((unit / "members.json").read_text())]
  variables = checkpoint.load_variables(str(run.ckpt / "transfers1" / unit.name))
  for k, (target, _) in enumerate(members):  # every readout's decoder is its target's, as trained
    want = bank.network(target)[1]
    for got, ref in ((variables["params"]["target"]["decoder"], want["params"]["decoder"]),
                     (variables["batch_stats"]["target"]["decoder"],
                      want["batch_stats"]["decoder"])):
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
        np.testing.assert_array_equal(np.asarray(g)[k], np.asarray(w))
  losses = np.load(unit / "losses.npy")
  test = run.views("test")
  for k, (target, sources) in [(0, members[0]), (len(members) - 1, members[-1])]:
    t = predictor.Transfer(target, sources)
    out = predictor.TransferPredictor.load(workdir, [t], config).batch(np.asarray(test.rgb))
    got = readout.per_example_losses(tasks.get(target), jnp.asarray(out[target]), {
        "targets": jnp.asarray(test.target(target)), "mask": jnp.asarray(test.mask(target))})
    np.testing.assert_allclose(np.asarray(got), losses[k], rtol=1e-5, atol=1e-6, err_msg=str(t))


def test_a_frozen_decoder_for_a_multi_view_target_is_refused_before_anything_runs(tmp_path):
  config = config_files.load_config("taxonomy:tiny")
  config.readout.frozen_target_decoder = True
  config.readout.residual = False
  config.readout.standardize_residual = False
  config.targets = (*config.targets, "fixated_pose")
  with pytest.raises(ValueError, match=r"'fixated_pose' takes 2 views.*single-view targets only"):
    pipeline.run_pipeline(config, tmp_path / "tax")
  assert not (tmp_path / "tax").exists()  # refused before the dataset stage
