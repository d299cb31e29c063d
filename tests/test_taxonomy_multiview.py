"""Multi-view targets and source-only tasks in a whole (tiny) run, as `taxonomy:cpu_full` has
them: each multi-view sample's views come from the right camera points, its readout reads the
sources' representations of each of its views, and the gates measure it on its own samples."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from taskonomy_jax import config_files, tasks
from taskonomy_jax.configs import taxonomy as taxonomy_config
from taskonomy_jax.train import checkpoint
from taskonomy_jax.transfer import pipeline, predictor, readout, training

TARGETS = ("edge_texture", "fixated_pose", "point_matching")
EXTRA = ("jigsaw", "random")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> pipeline.Run:
  config = taxonomy_config.get_config("tiny")
  config_files.apply_overrides(config, [
      f"targets={TARGETS}", f"extra_sources={EXTRA}", "data.points_per_building=6",
      "data.num_validation=2", "data.num_test=2"])
  return pipeline.run_pipeline(config, tmp_path_factory.mktemp("tax"), until="taxonomy")


def test_multi_view_samples_pair_the_right_views(run):
  for split in ("validation", "test"):
    views = run.views(split)
    points = views.points
    pose = np.asarray(views.records("fixated_pose"))
    assert pose.shape[1] == 2 and len(pose) == len(views)  # every point has 2+ views here
    assert np.all(points[pose[:, 0]] == points[pose[:, 1]]) and np.all(pose[:, 0] != pose[:, 1])
    np.testing.assert_array_equal(views.task_points("fixated_pose"), points[pose[:, 0]])
    match = np.asarray(views.records("point_matching"))
    labels = np.asarray(views.target("point_matching"))
    np.testing.assert_array_equal(labels, points[match[:, 0]] == points[match[:, 1]])
    assert 0 < labels.mean() < 1
    assert views.records("edge_texture") is None


def test_a_multi_view_readout_reads_each_views_representation(run):
  """The stored held-out losses of the fixated-pose readout from jigsaw, recomputed by hand
  from the cached representations of each sample's two views."""
  target, source = "fixated_pose", "jigsaw"
  spec = tasks.get(target)
  unit = run.unit_of("transfers1", target)
  members = pipeline.load_members(unit)
  assert {t for t, _ in members} == {target}
  assert sorted(s for _, (s,) in members) == sorted(set(run.bank) - {target})
  k = members.index((target, (source,)))
  losses = np.load(unit / "losses.npy")
  test = run.views("test")
  assert losses.shape == (len(members), len(test.records(target)))

  mean, std = training.channel_stats(run.rep(source, "validation"))
  rep = (np.asarray(run.rep(source, "test")) - mean) / std
  channels = pipeline.input_channels(run, "transfers1")
  assert channels == run.config.model.rep_channels  # first order: one representation
  records = np.asarray(test.records(target))
  inputs = np.concatenate([readout.pad_channels(rep[records[:, v]], channels)
                           for v in range(2)], axis=-1)
  variables = checkpoint.load_variables(str(run.ckpt / "transfers1" / unit.name))
  one = {c: traverse_util.unflatten_dict({n: np.asarray(a)[k] for n, a in
                                          traverse_util.flatten_dict(variables[c]).items()})
         for c in ("params", "batch_stats")}  # readout k of the stack
  module = readout.build(spec, pipeline.readout_config(run))
  out = np.asarray(module.apply(one, inputs))
  offset, scale = pipeline.residual(run, target)
  pred = out * scale + offset
  got = readout.per_example_losses(spec, jnp.asarray(pred), {
      "targets": jnp.asarray(test.target(target)), "mask": jnp.asarray(test.mask(target))})
  np.testing.assert_allclose(np.asarray(got), losses[k], rtol=2e-4, atol=1e-6)


def test_gates_and_taxonomy_cover_every_target(run):
  report = json.loads(pipeline.report_path(run).read_text())
  assert set(report["gates"]["networks"]["per_target"]) == set(TARGETS)
  # The linear probe reads each multi-view sample's views too: a score from every source.
  probe = report["estimators"]["probe"]
  for t in TARGETS:
    assert all(probe["scores"][s][t] is not None for s in run.bank)
  per_target = pipeline.target_losses_of_run(run)
  for t in ("fixated_pose", "point_matching"):
    n = len(run.views("test").records(t))
    assert per_target[t].losses.shape[1] == n and per_target[t].self_losses.shape == (n,)
    for kind in ("mean", "median"):
      assert np.load(run.unit_of("taskbank", t) / f"{t}.{kind}_losses.npy").shape == (n,)
  # Source-only tasks are sources of every target, never targets; no predictions cached.
  assert not list(run.unit_of("taskbank", "jigsaw").glob("*losses.npy"))
  # The served predictor maps one image: multi-view targets are left out, refused when named.
  with pytest.raises(ValueError, match="multi-view"):
    predictor.TransferPredictor.load(run.workdir, ["fixated_pose<-jigsaw"], run.config)

