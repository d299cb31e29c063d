"""Transfers: stacked readouts equal one-by-one training, beam search, affinities, atomic units."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest

from taskonomy_jax import models, tasks
from taskonomy_jax.models.decoders import flatten_nhwc
from taskonomy_jax.taxonomy import ahp
from taskonomy_jax.taxonomy.affinities import SELF, make_transfer
from taskonomy_jax.transfer import affinity, readout, stages, training

OPT = {"name": "adam", "learning_rate": 3e-3, "weight_decay": 2e-6}
SMALL = {"readout_channels": 4, "decoder_width_multiplier": 1 / 16, "fc_hidden": 16,
         "dropout": 0.5}


def _problem(task: str, k: int, n: int = 12, side: int = 2, channels: int = 16, seed: int = 0):
  """K readouts' inputs (n, K, side, side, channels) and K different targets (and masks)."""
  spec = tasks.get(task)
  rng = np.random.default_rng(seed)
  inputs = rng.normal(size=(n, k, side, side, channels)).astype(np.float32)
  shape = spec.output_shape(16 * side)
  targets = [np.tanh(rng.normal(size=(n, *shape))).astype(np.float32) for _ in range(k)]
  mshape = shape[:-1] if spec.pixel_output else ()
  masks = [(rng.uniform(size=(n, *mshape)) > 0.2).astype(np.float32) for _ in range(k)]
  return spec, inputs, targets, masks


@pytest.mark.parametrize("task", ["room_layout", pytest.param("depth_zbuffer",
                                                              marks=pytest.mark.slow)])
def test_stacked_readouts_equal_one_by_one(task, tmp_path):
  k, steps = 3, 4
  # SGD, not Adam: Adam divides each gradient by its own running magnitude, so where a gradient
  # is ~0 the last-bit differences of K=3 vs K=1 reductions moved weights by up to 16% of a step
  # (27 of 576 in one depth_zbuffer layer on one machine). SGD's update is proportional to the
  # gradient, so those differences stay last-bit; a readout trained on another's data or seed
  # differs by whole updates.
  opt = {"name": "sgd", "learning_rate": 0.05, "weight_decay": 2e-6}
  param_atol = 1e-5
  spec, inputs, targets, masks = _problem(task, k)
  module = readout.build(spec, SMALL)
  cfg = {"num_steps": steps, "batch_size": 4, "seed": 7}
  seeds = [11, 12, 13]
  together = training.StackedSource(inputs, targets, masks)
  state = training.train_stacked(module, spec, together, seeds, opt, cfg, tmp_path / "all")
  losses = training.stacked_losses(module, spec, state, together, batch=5)
  assert losses.shape == (k, len(inputs))
  for i in range(k):
    alone = training.StackedSource(inputs[:, i:i + 1], targets[i:i + 1], masks[i:i + 1])
    one = training.train_stacked(module, spec, alone, [seeds[i]], opt, cfg, tmp_path / str(i))
    got = jax.tree.map(lambda a, i=i: np.asarray(a)[i], (state.params, state.batch_stats))
    want = jax.tree.map(lambda a: np.asarray(a)[0], (one.params, one.batch_stats))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      np.testing.assert_allclose(g, w, rtol=2e-4, atol=param_atol)
    np.testing.assert_allclose(losses[i], training.stacked_losses(module, spec, one, alone)[0],
                               rtol=2e-4, atol=2e-5)
  # Training did something: the readouts moved away from their initialisation and differ.
  init = readout.init_stacked(module, inputs[:1, 0], seeds)["params"]
  moved = [float(np.abs(np.asarray(a) - np.asarray(b)).max())
           for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(init), strict=True)]
  assert max(moved) > 1e-3


def test_per_example_losses_match_the_training_loss():
  spec, _inputs, targets, masks = _problem("normal", 1, n=5)
  pred = np.tanh(np.random.default_rng(1).normal(size=targets[0].shape)).astype(np.float32)
  per = np.asarray(readout.per_example_losses(spec, pred, {"targets": targets[0],
                                                          "mask": masks[0]}))
  from taskonomy_jax.train import losses
  for i in range(5):
    one = losses.task_loss(spec, pred[i:i + 1], {"targets": targets[0][i:i + 1],
                                                 "mask": masks[0][i:i + 1]})
    np.testing.assert_allclose(per[i], float(one), rtol=1e-6)
  # By hand: masked mean absolute error of example 0.
  m = masks[0][0][..., None] * np.ones(3)
  np.testing.assert_allclose(per[0], np.sum(np.abs(pred[0] - targets[0][0]) * m) / m.sum(),
                             rtol=1e-5)


def test_stacked_inputs_concatenate_sources_and_pad():
  reps = {"a": np.full((3, 2, 2, 2), 1.0, np.float32), "b": np.full((3, 2, 2, 2), 2.0, np.float32)}
  x = training.StackedInputs(reps, [("a",), ("a", "b"), ("b",)], channels=6)
  item = x[1]
  assert item.shape == (3, 2, 2, 6)
  np.testing.assert_array_equal(item[0, 0, 0], [1, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(item[1, 0, 0], [1, 1, 2, 2, 0, 0])
  np.testing.assert_array_equal(item[2, 0, 0], [2, 2, 0, 0, 0, 0])
  np.testing.assert_array_equal(x.batch(0, 3)[1], item)
  with pytest.raises(ValueError, match="channels"):
    readout.pad_channels(np.zeros((1, 7)), 6)


def test_multi_view_inputs_put_each_views_sources_side_by_side():
  rng = np.random.default_rng(0)
  reps = {s: rng.normal(size=(5, 2, 2, 2)).astype(np.float32) for s in ("a", "b")}
  records = np.array([[0, 3], [4, 1], [2, 2]])  # three pairs of views
  x = training.StackedInputs(reps, [("a",), ("a", "b")], channels=4, records=records)
  assert len(x) == 3
  batch = x.batch(0, 3)
  assert batch.shape == (3, 2, 2, 2, 8)  # (B, K, h, w, V * channels)
  for i, views in enumerate(records):
    for v, view in enumerate(views):
      block = batch[i, :, :, :, 4 * v:4 * (v + 1)]
      np.testing.assert_array_equal(block[0], readout.pad_channels(reps["a"][view], 4))
      np.testing.assert_array_equal(
          block[1], np.concatenate([reps["a"][view], reps["b"][view]], -1))
  np.testing.assert_array_equal(x[1], batch[1])


def test_multi_view_readouts_run_each_view_through_the_same_layers():
  """A fixated-pose readout applies its convs to each view's block with one set of weights
  (as the task network's one encoder), then reads both views' features together."""
  spec = tasks.get("fixated_pose")
  module = readout.build(spec, SMALL)
  rng = np.random.default_rng(0)
  a, b = (rng.normal(size=(3, 2, 2, 8)).astype(np.float32) for _ in range(2))
  v = module.init({"params": jax.random.key(0)}, np.concatenate([a, b], -1), train=False)
  assert v["params"]["conv0"]["kernel"].shape[-2] == 8  # one view's channels

  def conv0(x):
    _, inter = module.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
    return np.asarray(inter["intermediates"]["conv0"]["__call__"][0])

  ab, ba = conv0(np.concatenate([a, b], -1)), conv0(np.concatenate([b, a], -1))
  assert ab.shape == (6, 2, 2, SMALL["readout_channels"])  # (B * V, h, w, c)
  ab, ba = ab.reshape(3, 2, *ab.shape[1:]), ba.reshape(3, 2, *ba.shape[1:])
  np.testing.assert_allclose(ab[:, 0], ba[:, 1], rtol=1e-6)
  np.testing.assert_allclose(ab[:, 1], ba[:, 0], rtol=1e-6)
  out = module.apply(v, np.concatenate([a, b], -1))
  assert out.shape == (3, 6)
  # The head reads the views in order: swapping them changes the predicted relative pose.
  assert not np.allclose(out, module.apply(v, np.concatenate([b, a], -1)))
  with pytest.raises(ValueError, match="not a transfer target"):
    readout.build(tasks.get("jigsaw"), SMALL)


def test_zero_padding_does_not_change_a_readout():
  spec = tasks.get("room_layout")
  module = readout.build(spec, SMALL)
  x = np.random.default_rng(0).normal(size=(4, 2, 2, 8)).astype(np.float32)
  v = module.init({"params": jax.random.key(0)}, readout.pad_channels(x, 32), train=False)
  w = jax.tree.map(lambda a: a, v)
  kernel = np.asarray(v["params"]["conv0"]["kernel"])
  w["params"]["conv0"]["kernel"] = kernel[:, :, :8]
  a = module.apply(v, readout.pad_channels(x, 32))
  b = module.apply(w, x)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_beam_candidates_take_combinations_of_the_best_sources():
  rng = np.random.default_rng(0)
  base = rng.uniform(size=200)
  # Source i's loss is base + i/10: s0 best, then s1, ... (a consistent tournament).
  losses = np.stack([base + i / 10 for i in range(6)])
  names = ["s3", "s0", "s5", "s1", "s4", "s2"]
  order = [int(n[1]) for n in names]
  cands = training.beam_candidates(names, losses[order], beam=3, max_order=3)
  assert cands == [("s0", "s1"), ("s0", "s2"), ("s1", "s2"), ("s0", "s1", "s2")]
  assert len(training.beam_candidates(names, losses[order], beam=5, max_order=4)) == 25


def test_group_tasks_stacks_equal_shapes_only():
  groups = training.group_tasks(["normal", "depth_zbuffer", "autoencoding", "reshading",
                                 "room_layout", "random"])
  assert groups == [["normal", "autoencoding"], ["depth_zbuffer", "reshading"], ["room_layout"],
                    ["random"]]
  # Multi-view targets read samples of their own: fixated and non-fixated pose do not stack.
  assert training.group_tasks(["fixated_pose", "nonfixated_pose", "room_layout"]) == [
      ["fixated_pose"], ["nonfixated_pose"], ["room_layout"]]


def test_affinity_table_from_losses():
  n = 100
  rng = np.random.default_rng(0)
  self_l = rng.uniform(1, 2, n)
  good = self_l - 0.5        # beats self on every example
  bad = self_l + 1.0         # loses to self everywhere
  mixed = np.where(np.arange(n) < 30, self_l - 0.1, self_l + 0.1)  # wins on 30%
  scratch = self_l + 0.5
  tl = affinity.TargetLosses([("a",), ("b",), ("a", "c")], np.stack([good, bad, mixed]),
                             self_l, scratch)
  table = affinity.affinity_table({"normal": tl})
  t = {name: make_transfer(s, "normal") for name, s in
       [("good", ("a",)), ("bad", ("b",)), ("mixed", ("a", "c")), ("self", (SELF,))]}
  assert table.quality[t["good"]] == 1.0 and table.quality[t["bad"]] == 0.0
  assert table.quality[t["mixed"]] == pytest.approx(0.3)
  assert table.quality[t["self"]] == 0.5
  assert table.gain[t["good"]] == 1.0 and table.gain[t["bad"]] == 0.0
  assert table.gain[t["mixed"]] == 1.0  # mixed is below scratch (self + 0.5) everywhere
  assert table.baseline_quality["normal"] == 0.0
  aff = {k: table.affinity[v] for k, v in t.items()}
  assert sum(aff.values()) == pytest.approx(1.0)
  assert aff["good"] > aff["self"] > aff["mixed"] > aff["bad"]
  # One tournament over all four candidates, as ahp computes it.
  want = ahp.affinities_from_losses(np.stack([good, bad, mixed, self_l]))
  np.testing.assert_allclose([aff["good"], aff["bad"], aff["mixed"], aff["self"]], want)
  with pytest.raises(ValueError, match="expected"):
    affinity.TargetLosses([("a",)], np.zeros((2, n)), self_l, scratch)


def test_run_unit_is_atomic_and_skips_finished_units(tmp_path):
  unit = tmp_path / "stage" / "u"

  def boom(tmp: pathlib.Path):
    (tmp / "half.npy").write_text("x")
    raise RuntimeError("killed")

  with pytest.raises(RuntimeError):
    stages.run_unit(unit, boom)
  assert not unit.exists() and list((tmp_path / "stage").iterdir()) == []
  calls = []
  assert stages.run_unit(unit, lambda tmp: calls.append((tmp / "out.txt").write_text("ok")),
                         info={"k": 1})
  assert (unit / "out.txt").read_text() == "ok" and stages.marker_info(unit)["k"] == 1
  assert not stages.run_unit(unit, lambda tmp: calls.append(1))
  assert len(calls) == 1
  # A stale temporary folder (a killed run) is cleaned by the next run of that unit.
  other = tmp_path / "stage" / "v"
  stale = tmp_path / "stage" / ".v.tmp-dead"
  stale.mkdir()
  stages.run_unit(other, lambda tmp: None)
  assert not stale.exists() and stages.is_done(other)
  assert json.loads((other / stages.MARKER).read_text())["seconds"] >= 0


def test_residual_target_losses_equal_the_full_predictions_losses():
  """A residual readout learns (target - mean) / scale; its held-out loss times
  `loss_factor` is that of prediction * scale + mean against the target (L1 and L2, masked),
  so tournaments compare full predictions."""
  rng = np.random.default_rng(0)
  for task in ("depth_zbuffer", "room_layout"):
    spec = tasks.get(task)
    shape = spec.output_shape(32)
    targets = rng.uniform(-1, 1, (6, *shape)).astype(np.float32)
    masks = (rng.uniform(size=(6, *shape[:-1], 1)) > 0.3).astype(np.float32) \
        if spec.pixel_output else None
    mean = readout.masked_mean(targets, masks)
    pred = rng.normal(size=(6, *shape)).astype(np.float32)
    batch = {"targets": targets} if masks is None else {"targets": targets, "mask": masks}
    scale = readout.residual_scale(targets, mean, masks)
    valid = np.broadcast_to(masks > 0, targets.shape) if masks is not None else \
        np.ones(targets.shape, bool)
    assert scale == pytest.approx(float(np.std((targets - mean)[valid])), rel=1e-6)
    for s in (1.0, scale):
      residual = readout.ResidualTarget(targets, mean, s)
      full = readout.per_example_losses(spec, pred * s + mean, batch)
      res = readout.per_example_losses(spec, pred, {**batch, "targets": residual[0:6]})
      np.testing.assert_allclose(res * readout.loss_factor(spec, s), full, rtol=1e-5,
                                 atol=1e-6)


def test_masked_mean_counts_only_valid_entries():
  t = np.array([[[1.0]], [[3.0]], [[100.0]]])
  m = np.array([[[1.0]], [[1.0]], [[0.0]]])
  assert readout.masked_mean(t, m)[0, 0] == pytest.approx(2.0)
  assert readout.masked_mean(t, np.zeros_like(m))[0, 0] == 0.0
  assert readout.masked_mean(t)[0, 0] == pytest.approx(104 / 3)


def test_pixel_shuffle_head_places_each_cells_outputs_in_its_block():
  """Output pixel (4i + a, 4j + b) is a linear function of the features at cell (i, j) alone."""
  from taskonomy_jax.models.decoders import PixelShuffleHead
  head = PixelShuffleHead(out_channels=2, upsample_steps=2, apply_tanh=False)
  x = np.zeros((1, 3, 3, 5), np.float32)
  v = head.init(jax.random.key(0), x)
  base = np.asarray(head.apply(v, x))
  x[0, 1, 2] = 1.0  # one cell changes
  diff = np.abs(np.asarray(head.apply(v, x)) - base).sum(-1)[0]
  assert diff.shape == (12, 12)
  changed = np.argwhere(diff > 0)
  assert changed[:, 0].min() == 4 and changed[:, 0].max() == 7
  assert changed[:, 1].min() == 8 and changed[:, 1].max() == 11


@pytest.mark.parametrize("offset", [0, 1, 3])
def test_pixel_shuffle_head_computes_one_block_pixel_alone_with_the_same_variables(offset):
  """`only_block_offset`: the full output's pixel (offset, offset) of every block, from the
  variables (names, shapes, values at init) the full head has."""
  from taskonomy_jax.models.decoders import PixelShuffleHead
  full = PixelShuffleHead(out_channels=3, upsample_steps=2, apply_tanh=True)
  one = PixelShuffleHead(out_channels=3, upsample_steps=2, apply_tanh=True,
                         only_block_offset=offset)
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
  v = full.init(jax.random.key(0), x)
  assert jax.tree.all(jax.tree.map(np.array_equal, v, one.init(jax.random.key(0), x)))
  want = np.asarray(full.apply(v, x))[:, offset::4, offset::4]
  np.testing.assert_allclose(np.asarray(one.apply(v, x)), want, rtol=1e-6, atol=1e-7)
  with pytest.raises(ValueError, match=r"only_block_offset must be in \[0, 4\)"):
    PixelShuffleHead(out_channels=3, upsample_steps=2, only_block_offset=4).init(
        jax.random.key(0), x)


def test_loss_pixels_only_readouts_train_as_the_full_output():
  """A metric-embedding readout under `loss_pixels_only` outputs only its loss's grid (one
  pixel per representation cell) and gets the full output's loss and gradients from the same
  variables; other targets' readouts are unchanged by the setting."""
  from taskonomy_jax.train import losses
  spec = tasks.get("segment_unsup2d")
  cfg = {**SMALL, "output_stride": 4, "pixel_head": "shuffle"}
  full, grid = readout.build(spec, cfg), readout.build(spec, {**cfg, "loss_pixels_only": True})
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 16, 16, 8)).astype(np.float32)
  segments = rng.integers(0, 4, (2, 64, 64))
  v = full.init(jax.random.key(0), x)
  assert jax.tree.all(jax.tree.map(np.array_equal, v, grid.init(jax.random.key(0), x)))
  assert grid.apply(v, x).shape == (2, 16, 16, spec.channels)

  def loss(params, module):
    return losses.metric_embedding(module.apply({**v, "params": params}, x), segments)

  (lf, gf), (lg, gg) = (jax.value_and_grad(loss)(v["params"], m) for m in (full, grid))
  assert float(lf) == pytest.approx(float(lg), rel=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8), gf, gg)
  depth = tasks.get("depth_zbuffer")
  plain, flagged = readout.build(depth, cfg), readout.build(depth, {**cfg, "loss_pixels_only": True})
  np.testing.assert_array_equal(np.asarray(flagged.apply(plain.init(jax.random.key(0), x), x)),
                                np.asarray(plain.apply(plain.init(jax.random.key(0), x), x)))


def test_residual_readouts_have_a_linear_output_and_classification_keeps_logits():
  spec = tasks.get("depth_zbuffer")
  cfg = {**SMALL, "output_stride": 4, "residual": True, "pixel_head": "shuffle"}
  m = readout.build(spec, cfg)
  assert m.residual
  x = np.full((1, 4, 4, 8), 50.0, np.float32)
  out = np.asarray(m.apply(m.init(jax.random.key(0), x), x))
  assert out.shape == (1, 16, 16, 1) and np.abs(out).max() > 1.0  # no tanh
  assert not readout.build(tasks.get("segment_semantic"), cfg).residual
  with pytest.raises(ValueError, match="pixel_head 'fancy' is unknown"):
    readout.build(spec, {**cfg, "pixel_head": "fancy"})


def test_stacked_inputs_standardise_each_source_per_channel():
  rng = np.random.default_rng(1)
  reps = {"a": rng.normal(5.0, 3.0, (40, 2, 2, 4)).astype(np.float32),
          "b": np.abs(rng.normal(0, 1e-3, (40, 2, 2, 4))).astype(np.float32)}
  stats = {s: training.channel_stats(r) for s, r in reps.items()}
  inputs = training.StackedInputs(reps, [("a",), ("a", "b")], 8, stats)
  x = inputs.batch(0, 40)  # (N, K, h, w, 8)
  np.testing.assert_allclose(x[:, 1].reshape(-1, 8).mean(0), 0, atol=1e-4)
  np.testing.assert_allclose(x[:, 1].reshape(-1, 8).std(0), 1, atol=1e-3)
  assert np.all(x[:, 0, ..., 4:] == 0)  # first order: padded, not standardised
  dead = np.zeros((3, 2, 2, 1), np.float32)
  assert training.channel_stats(dead)[1][0] == 1.0  # a dead channel passes unscaled


def test_trivial_images_and_their_losses():
  spec = tasks.get("depth_zbuffer")
  rng = np.random.default_rng(2)
  targets = rng.uniform(-1, 1, (30, 8, 8, 1)).astype(np.float32)
  masks = np.ones((30, 8, 8), np.float32)  # pixel masks come without a channel axis
  images = training.trivial_images(targets, masks)
  np.testing.assert_allclose(images["mean"], targets.mean(0), atol=1e-6)
  np.testing.assert_allclose(images["median"], np.median(targets, 0), atol=1e-6)
  inputs = np.zeros((30, 8, 8, 3), np.float32)
  losses = training.prediction_losses(spec, training.constant(images["median"]), inputs,
                                      targets, masks, batch=16)  # a padded last batch
  expected = np.abs(targets - images["median"]).mean(axis=(1, 2, 3))
  np.testing.assert_allclose(losses, expected, rtol=1e-5)


# Task networks small enough to build in a test: representation (B, 4, 4, 8) at 16x16 input.
NET = {"width": 4, "blocks": (1, 0, 0, 0), "output_stride": 4, "rep_channels": 8,
       "decoder_width_multiplier": 1 / 32, "decoder_min_channels": 4, "fc_hidden": 16}
FROZEN_READOUT = {"frozen_target_decoder": True, "readout_channels": 4,
                  **{k: NET[k] for k in ("output_stride", "rep_channels",
                                         "decoder_width_multiplier", "decoder_min_channels",
                                         "fc_hidden")}}


def _target_network(task: str, seed: int, linear_output: bool = False):
  """A task network (module, variables) with random weights and non-trivial BN statistics."""
  net = models.build(task, {**NET, "linear_output": linear_output})
  v = net.init(jax.random.key(seed), np.zeros((1, 16, 16, 3), np.float32))
  stats = jax.tree.map(lambda a: a + 0.3 * jax.random.uniform(jax.random.key(seed + 1), a.shape),
                       v["batch_stats"])
  return net, {"params": v["params"], "batch_stats": stats}


@pytest.mark.parametrize("task", ["depth_zbuffer", "room_layout"])
def test_a_frozen_decoder_readout_is_the_target_network_after_the_transfer_function(task):
  # Known answer: readout(x) == std * squash(decoder_of_target_network(conv1(relu(conv0(x)))))
  # + mean, with the target network's own decoder and output transform.
  spec = tasks.get(task)
  module = readout.build(spec, FROZEN_READOUT)
  assert module.pixel_head == "decoder" and not module.residual
  linear = task == "depth_zbuffer"  # a network trained on standardised targets: no tanh
  net, v = _target_network(task, 3, linear_output=linear)
  stats = {"mean": [0.5] * spec.channels, "std": [2.0] * spec.channels}
  x = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype(np.float32)
  init = readout.init_stacked(module, x, [5])
  stacked = readout.target_decoders(module, [readout.TargetNetwork(task, net, v, stats)], init)
  one = jax.tree.map(lambda a: np.asarray(a)[0], stacked)
  got = np.asarray(module.apply(one, x))

  p = one["params"]["transfer"]
  def conv(h, kernel, bias):
    y = jax.lax.conv_general_dilated(h, kernel, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias
  z = conv(jax.nn.relu(conv(x, p["conv0"]["kernel"], p["conv0"]["bias"])),
           p["conv1"]["kernel"], p["conv1"]["bias"])
  out = np.asarray(net.apply(v, z if spec.decoder == "pixel" else flatten_nhwc(z), False,
                             method=lambda m, r, t: m.decoder(r, t)))
  squashed = spec.decoder == "pixel" and not linear
  assert float(one["params"]["target"]["squash"]) == float(squashed)
  np.testing.assert_allclose(got, out * 2.0 + 0.5, rtol=1e-4, atol=1e-5)
  # Stacked with readouts into another target, sharing decoders by group: the same outputs.
  other = readout.TargetNetwork("other", *_target_network(task, 4, linear_output=linear), None)
  nets = [readout.TargetNetwork(task, net, v, stats), other, readout.TargetNetwork(
      task, net, v, stats)]
  three = readout.target_decoders(module, nets, readout.init_stacked(module, x, [5, 6, 5]))
  apply = readout.stacked_apply(module, groups=readout.decoder_groups([n.name for n in nets]))
  pred, _ = apply(three, np.stack([x, x, x], 1), False)
  np.testing.assert_allclose(pred[0], got, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(pred[2], got, rtol=1e-4, atol=1e-5)
  alone = np.asarray(module.apply(jax.tree.map(lambda a: np.asarray(a)[1], three), x))
  np.testing.assert_allclose(pred[1], alone, rtol=1e-4, atol=1e-5)
  assert readout.decoder_groups(["a", "b", "a"]) == ((0, 2), (1,))


def test_frozen_target_decoders_stay_as_trained(tmp_path):
  # Two readouts into two different targets' networks; Adam with weight decay: every frozen
  # parameter and BN statistic is bitwise the target network's after training, the transfer
  # functions moved.
  spec, inputs, targets, masks = _problem("depth_zbuffer", 2, side=4, channels=8)
  targets = [t[:, :16, :16] for t in targets]  # 16x16 outputs of 4x4 representations
  masks = [m[:, :16, :16] for m in masks]
  module = readout.build(spec, FROZEN_READOUT)
  nets = [readout.TargetNetwork("depth_zbuffer",
                                *_target_network("depth_zbuffer", 1, linear_output=True),
                                {"mean": [0.1], "std": [0.5]}),
          readout.TargetNetwork("edge_texture", *_target_network("edge_texture", 2), None)]
  state = training.train_stacked(module, spec, training.StackedSource(inputs, targets, masks),
                                 [0, 1], {**OPT, "weight_decay": 1e-2},
                                 {"num_steps": 6, "batch_size": 4, "seed": 0}, tmp_path,
                                 target_networks=nets)
  for k, net in enumerate(nets):
    for got, want in ((state.params["target"]["decoder"], net.variables["params"]["decoder"]),
                      (state.batch_stats["target"]["decoder"],
                       net.variables["batch_stats"]["decoder"])):
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(np.asarray(g)[k], np.asarray(w))
    out = {key: round(float(np.asarray(state.params["target"][key])[k].ravel()[0]), 6)
           for key in ("squash", "mean", "std")}
    assert out == ({"squash": 0.0, "mean": 0.1, "std": 0.5} if net.target_stats else
                   {"squash": 1.0, "mean": 0.0, "std": 1.0})
  init = readout.init_stacked(module, inputs[:1, 0], [0, 1])["params"]
  assert np.abs(np.asarray(state.params["transfer"]["conv1"]["kernel"])
                - np.asarray(init["transfer"]["conv1"]["kernel"])).max() > 1e-4
  with pytest.raises(ValueError, match="need 2 target networks"):
    training.train_stacked(module, spec, training.StackedSource(inputs, targets, masks),
                           [0, 1], OPT, {"num_steps": 1, "batch_size": 4, "seed": 0},
                           tmp_path / "none")


def test_frozen_target_decoder_settings_are_checked():
  spec = tasks.get("depth_zbuffer")
  with pytest.raises(ValueError, match="predicts the target itself"):
    readout.build(spec, {**FROZEN_READOUT, "residual": True})
  module = readout.build(spec, FROZEN_READOUT)
  x = np.zeros((1, 4, 4, 8), np.float32)
  wider = models.build("depth_zbuffer", {**NET, "decoder_min_channels": 8})
  v = wider.init(jax.random.key(0), np.zeros((1, 16, 16, 3), np.float32))
  with pytest.raises(ValueError, match="do not fit the readout's"):
    readout.target_decoders(module, [readout.TargetNetwork("depth_zbuffer", wider, v, None)],
                            readout.init_stacked(module, x, [0]))
  apply = readout.stacked_apply(module, groups=((0,),))
  with pytest.raises(ValueError, match="do not cover the 2 stacked readouts"):
    apply(readout.init_stacked(module, x, [0, 1]), np.zeros((1, 2, 4, 4, 8), np.float32), False)
