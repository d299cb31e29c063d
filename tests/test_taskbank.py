"""The task bank: self-supervised inputs, baselines, training/resume, evaluation, predictor,
and restoring a trained encoder into a user's model (the README's fine-tuning lines)."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

from taskonomy_jax import tasks
from taskonomy_jax.taskbank import evaluate, selfsup


def _jsonl(path: str) -> list[dict]:
  return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


CONFIG = "taskbank"  # the packaged config (taskonomy_jax/configs/taskbank.py)


# --- self-supervised inputs (no JAX) -------------------------------------------------------------

def test_jigsaw_tiles_follow_the_permutation_of_the_label():
  rng = np.random.default_rng(0)
  img = rng.uniform(-1, 1, (64, 64, 3)).astype(np.float32)
  shuffled, label = selfsup.jigsaw(img, np.random.default_rng(3))
  perm = selfsup.permutations()[label]
  in_order = selfsup.tiles(img)
  assert shuffled.shape == (9, 16, 16, 3)
  for k in range(9):  # slot k holds original tile perm[k]
    np.testing.assert_array_equal(shuffled[k], in_order[perm[k]])
  # tile (row 1, col 2) of a 64-pixel image starts at (24, 48): origins spread over the image
  np.testing.assert_array_equal(in_order[5], img[24:40, 48:64])


def test_permutations_are_100_distinct_and_valid():
  p = selfsup.permutations()
  assert p.shape == (100, 9)  # the original's 100-class max-Hamming set size
  assert len({tuple(r) for r in p}) == 100
  assert (np.sort(p, axis=1) == np.arange(9)).all()


def test_permutations_are_the_greedy_max_hamming_set():
  """Noroozi & Favaro's greedy set: identity first, each next one the farthest (summed Hamming
  distance) from those before. It maximises the *mean* distance, so its mean beats every random
  set's and its minimum (4 here) is at least theirs (2-4)."""
  p = selfsup.permutations()
  np.testing.assert_array_equal(p[0], np.arange(9))

  def dist(a):
    d = (a[:, None, :] != a[None, :, :]).sum(-1)
    return d[np.triu_indices(len(a), 1)]

  ours = dist(p)
  rng = np.random.default_rng(0)
  random_sets = [dist(np.array([rng.permutation(9) for _ in range(100)])) for _ in range(10)]
  assert ours.min() >= max(d.min() for d in random_sets)
  assert ours.mean() > max(d.mean() for d in random_sets)
  # the greedy step, brute force over all 9! for the second and third members
  import itertools
  allp = np.array(list(itertools.permutations(range(9))))
  for i in (1, 2):
    sums = sum((allp != q).sum(-1) for q in p[:i])
    sums[[int(np.flatnonzero((allp == q).all(-1))[0]) for q in p[:i]]] = -1
    assert sums[np.flatnonzero((allp == p[i]).all(-1))[0]] == sums.max()


def test_colorization_labels_are_the_nearest_bins():
  bins = selfsup.color_bins()
  assert bins.shape == (313, 2) and len({tuple(b) for b in bins}) == 313
  assert (bins % 10 == 0).all()
  grey, labels = selfsup.colorization(np.zeros((32, 32, 3), np.float32), None)
  assert labels.shape == (8, 8)
  np.testing.assert_allclose(bins[labels], 0.0, atol=1e-6)  # grey -> the neutral bin
  np.testing.assert_allclose(grey, grey[..., :1].repeat(3, -1))
  # a dull red (sRGB 0.6, 0.2, 0.2): ab = (42.5, 23.5) by the CIE formulas (hand-computed) -> the (40, 20) bin
  red = np.zeros((8, 8, 3), np.float32) + np.array([0.6, 0.2, 0.2], np.float32) * 2 - 1
  _, lab = selfsup.colorization(red, None)
  np.testing.assert_array_equal(bins[lab[0, 0]], [40.0, 20.0])


def test_inpainting_blanks_only_the_centre_and_denoising_is_seeded():
  img = np.random.default_rng(1).uniform(-1, 1, (32, 32, 3)).astype(np.float32)
  x, y = selfsup.inpainting(img, None)
  hole = selfsup.inpainting_mask(32)
  assert hole.sum() == 16 * 16 and hole[8:24, 8:24].all()
  assert (x[hole] == 0).all() and (x[~hole] == img[~hole]).all() and (y == img).all()
  a, _ = selfsup.denoising(img, np.random.default_rng(7))
  b, _ = selfsup.denoising(img, np.random.default_rng(7))
  np.testing.assert_array_equal(a, b)
  assert 0.1 < np.std(a - img) < 0.3 and a.min() >= -1 and a.max() <= 1


# --- baselines: known answers --------------------------------------------------------------------

def test_mean_baseline_scores_the_variance_on_its_own_data():
  spec = tasks.get("room_layout")  # l2 loss, mse metric
  y = np.random.default_rng(0).normal(size=(50, 9)).astype(np.float32)
  data = {"inputs": np.zeros((50, 1)), "targets": y}
  row = evaluate.evaluate_task(spec, lambda x: np.zeros((len(x), 9)), data, data, 32)
  assert row["baseline"] == pytest.approx(np.mean(np.var(y, axis=0)), rel=1e-5)
  assert row["network"] == pytest.approx(np.mean(y ** 2), rel=1e-5)  # zeros predictor
  assert row["higher_is_better"] is False


def test_majority_baseline_and_a_constant_predictor_scores_exactly_the_baseline():
  spec = tasks.get("segment_semantic")  # pixel labels, masked, mIoU
  rng = np.random.default_rng(0)
  labels = rng.choice([0, 3, 5], p=[0.2, 0.5, 0.3], size=(20, 8, 8)).astype(np.int32)
  mask = (rng.uniform(size=(20, 8, 8)) > 0.1).astype(np.float32)
  train = {"inputs": np.zeros((20, 1)), "targets": labels, "mask": mask}
  base = evaluate.baseline_prediction(spec, train, 8)
  assert base.shape == (8, 8, 17) and (np.argmax(base, -1) == 3).all()
  held = {"inputs": np.zeros((20, 1)), "targets": labels[::-1], "mask": mask[::-1]}
  row = evaluate.evaluate_task(spec, lambda x: np.broadcast_to(base, (len(x), *base.shape)),
                               train, held, 8, batch_size=7)
  assert row["network"] == row["baseline"]
  # brute force: predicting class 3 everywhere, IoU of class 3 over classes present
  valid = mask[::-1] != 0
  t = labels[::-1][valid]
  iou3 = np.sum(t == 3) / t.size
  assert row["baseline"] == pytest.approx(iou3 / len(np.unique(t)), rel=1e-6)


def test_colorization_is_scored_by_cross_entropy_against_the_class_frequencies():
  spec = tasks.get("colorization")  # 313 bins at 1/4 resolution, metric xent
  assert spec.metric == "xent"
  rng = np.random.default_rng(0)
  labels = rng.choice([0, 7, 100], p=[0.6, 0.3, 0.1], size=(12, 8, 8)).astype(np.int32)
  train = {"inputs": np.zeros((12, 1)), "targets": labels}
  base = evaluate.baseline_prediction(spec, train, 32)
  assert base.shape == (8, 8, 313)
  freq = np.bincount(labels.ravel(), minlength=313) / labels.size
  np.testing.assert_allclose(np.exp(base[3, 5]), freq, atol=1e-6)
  held_labels = rng.choice([0, 7, 100], p=[0.5, 0.3, 0.2], size=(9, 8, 8)).astype(np.int32)
  held = {"inputs": np.zeros((9, 1)), "targets": held_labels}
  majority = evaluate._majority_class(spec, train, 32)
  row = evaluate.evaluate_task(spec, lambda x: np.broadcast_to(majority, (len(x), 8, 8, 313)),
                               train, held, 32)
  assert row["higher_is_better"] is False
  # brute force: the mean negative log of each held-out label's training frequency
  assert row["baseline"] == pytest.approx(-np.mean(np.log(freq[held_labels])), rel=1e-5)
  assert row["network"] > row["baseline"]  # all mass on the majority bin is worse
  assert not row["beats_baseline"]


def test_soft_baseline_is_the_mean_distribution():
  spec = tasks.get("class_scene")
  p = np.random.default_rng(0).dirichlet(np.ones(63), size=30).astype(np.float32)
  base = evaluate.baseline_prediction(spec, {"targets": p}, 32)
  np.testing.assert_allclose(np.exp(base), p.mean(0) / p.mean(0).sum(), rtol=1e-5)


# --- the bank on the tiny config -----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_bank(tmp_path_factory):
  """A bank of a pixel task and random projection on `r32_mini` (every task's data and the full
  bank are exercised by the CPU run in BUILD_NOTES.md; each network costs a compilation)."""
  from taskonomy_jax import config_files
  from taskonomy_jax.taskbank import train

  root = tmp_path_factory.mktemp("taskbank")
  config = config_files.load_config(f"{CONFIG}:tiny")
  config.data.data_dir = str(root / "tfds")
  config.tasks = ("autoencoding", "random")
  config.train.num_steps = 30  # enough for the loss to fall on one pixel task
  config.per_task = {"random": {"model": {"width": 8}}}  # untrained: costs no training
  workdir = str(root / "bank")
  records = train.train_task_bank(config, workdir)
  return config, workdir, records


def test_bank_trains_every_task_and_training_lowers_the_loss(tiny_bank):
  _, workdir, records = tiny_bank
  assert set(records) == {"autoencoding", "random"}
  assert records["autoencoding"]["steps"] == 30 and records["random"]["steps"] == 0
  rows = _jsonl(os.path.join(workdir, "autoencoding", "metrics.jsonl"))
  losses = [r["loss"] for r in rows if r["split"] == "train"]
  assert len(losses) == 30
  # deterministic (seeded) run; measured 0.489 -> 0.426 on the build machine
  assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10])


def test_finished_tasks_are_skipped_and_an_unfinished_one_resumes(tiny_bank):
  from taskonomy_jax.taskbank import train

  config, workdir, records = tiny_bank
  # "Interrupt" autoencoding after its checkpoint at step 30: its done marker is gone.
  os.remove(os.path.join(workdir, "autoencoding", "done.json"))
  config = type(config)(config.to_dict())
  config.train.num_steps = 32
  again = train.train_task_bank(config, workdir)
  assert again["random"] == records["random"]  # skipped
  assert again["autoencoding"]["steps"] == 32
  rows = _jsonl(os.path.join(workdir, "autoencoding", "metrics.jsonl"))
  steps = [r["step"] for r in rows if r["split"] == "train"]
  assert steps == list(range(1, 33))  # resumed at 31, nothing repeated
  other = type(config)(config.to_dict())
  other.model.width = 8
  with pytest.raises(ValueError, match=r"other model/data settings \(autoencoding\)"):
    train.train_task_bank(other, workdir)
  other = type(config)(config.to_dict())
  other.per_task = {"random": {"model": {"width": 4}}}  # random was trained at width 8
  with pytest.raises(ValueError, match=r"other model/data settings \(random\)"):
    train.train_task_bank(other, workdir)
  # A per_task entry for a task not started yet is taken; finished tasks keep their settings.
  other = type(config)(config.to_dict())
  other.per_task = {**config.per_task.to_dict(), "normal": {"model": {"width": 8}}}
  again = train.train_task_bank(other, workdir)
  assert again["autoencoding"]["settings"]["model"]["width"] == 4
  assert again["random"]["settings"]["model"]["width"] == 8
  saved = json.loads(pathlib.Path(workdir, "bank.json").read_text())
  assert saved["per_task"]["normal"] == {"model": {"width": 8}}


def test_bank_predictor_evaluation_and_picture(tiny_bank, tmp_path):
  from PIL import Image

  from taskonomy_jax import cli
  from taskonomy_jax.taskbank import bank

  _, workdir, _ = tiny_bank
  tb = bank.TaskBank.load(workdir)
  assert set(tb.task_names) == {"autoencoding", "random"}
  image = np.random.default_rng(0).uniform(-1, 1, (32, 32, 3)).astype(np.float32)
  out = tb(image)
  assert out["autoencoding"].shape == (32, 32, 3)
  assert out["random"].shape == (2, 2, 8)
  with pytest.raises(ValueError, match=r"\(32, 32, 3\)"):
    tb(np.zeros((64, 64, 3)))

  table = evaluate.evaluate_bank(workdir)
  assert [r["task"] for r in table["rows"]] == ["autoencoding"]
  assert all(r["n_eval"] > 0 for r in table["rows"])
  assert table["split"] == "validation"
  saved = json.loads(pathlib.Path(workdir, "evaluation.json").read_text())
  assert saved["rows"] == table["rows"]
  # A saved row is reused while the network and its metric are unchanged, else recomputed.
  path = pathlib.Path(workdir, "evaluation.json")
  path.write_text(json.dumps({**saved, "rows": [{**saved["rows"][0], "network": -1.0}]}))
  assert evaluate.evaluate_bank(workdir)["rows"][0]["network"] == -1.0
  path.write_text(json.dumps({**saved, "rows": [{**saved["rows"][0], "network": -1.0,
                                                "metric": "mse"}]}))
  assert evaluate.evaluate_bank(workdir)["rows"] == table["rows"]
  # The test split is scored on its own views, into its own table.
  test = evaluate.evaluate_bank(workdir, split="test")
  assert test["split"] == "test"
  assert json.loads(pathlib.Path(workdir, "evaluation_test.json").read_text()) == test
  assert test["rows"][0]["network"] != table["rows"][0]["network"]
  assert test["rows"][0]["baseline"] != table["rows"][0]["baseline"]
  with pytest.raises(ValueError, match="validation"):
    evaluate.evaluate_bank(workdir, split="train")

  src = tmp_path / "in.png"
  Image.fromarray(((image + 1) * 127.5).astype(np.uint8)).save(src)
  png = tmp_path / "sheet.png"
  assert cli.main(["taskbank", "predict", str(src), "--bank", workdir, "--out", str(png),
                   "--size", "48"]) == 0
  sheet = np.asarray(Image.open(png))
  assert sheet.shape[1] == 2 * 48  # input + autoencoding (random draws nothing)


def test_per_task_settings_build_each_network_as_trained(tiny_bank):
  import jax
  import jax.numpy as jnp

  from taskonomy_jax import models
  from taskonomy_jax.taskbank import bank, train
  from taskonomy_jax.train import loop

  config, workdir, _ = tiny_bank
  tb = bank.TaskBank.load(workdir)
  sample = jnp.zeros((1, 32, 32, 3))

  def shapes(name, model_cfg):
    return jax.tree_util.tree_map(lambda a: a.shape, jax.eval_shape(
        lambda: loop.init_variables(models.build(name, model_cfg), sample, 0))["params"])

  loaded = jax.tree_util.tree_map(lambda a: a.shape, tb._nets["random"][1]["params"])
  assert train.task_settings(config, "random")["model"]["width"] == 8
  assert loaded == shapes("random", train.task_settings(config, "random")["model"])
  assert loaded != shapes("random", config.model)  # the bank's width 4 would not fit


def test_per_task_settings_merge_and_reject_unknown_names():
  from taskonomy_jax import config_files
  from taskonomy_jax.taskbank import train

  config = config_files.load_config(f"{CONFIG}:tiny")
  config.per_task = {"depth_zbuffer": {"model": {"width": 16}, "train": {"num_steps": 7}}}
  depth = train.task_config(config, "depth_zbuffer")
  normal = train.task_config(config, "normal")
  assert (depth.task, depth.model.width, depth.train.num_steps) == ("depth_zbuffer", 16, 7)
  assert (normal.model.width, normal.train.num_steps) == (4, config.train.num_steps)
  assert depth.model.blocks == normal.model.blocks  # untouched settings stay the bank's
  train.check_per_task(config)
  for bad, error, match in [
      ({"depht_zbuffer": {}}, tasks.UnknownTaskError, "Did you mean 'depth_zbuffer'"),
      ({"rgb2depth": {}}, ValueError, "registry name 'depth_zbuffer'"),
      ({"normal": {"model": {"widht": 8}}}, ValueError, r"model\.widht.*width"),
      ({"normal": {"data": {"builder_config": "r64"}}}, ValueError, "one per bank"),
      ({"normal": {"resolution": 64}}, ValueError, "one per bank")]:
    config.per_task = bad
    with pytest.raises(error, match=match):
      train.check_per_task(config)


def test_augmentation_mirrors_and_jitters_reproducibly_and_only_class_tasks():
  from taskonomy_jax.taskbank import data as data_lib

  rng = np.random.default_rng(0)
  image = rng.uniform(-1, 1, (8, 8, 3)).astype(np.float32)
  flips = [data_lib.augment_image(image, ("hflip",), np.random.default_rng(s)) for s in range(20)]
  assert all(np.array_equal(f, image) or np.array_equal(f, image[:, ::-1]) for f in flips)
  assert any(np.array_equal(f, image[:, ::-1]) for f in flips)
  jittered = data_lib.augment_image(image, ("color",), np.random.default_rng(1))
  assert jittered.shape == image.shape and jittered.min() >= -1 and jittered.max() <= 1
  assert not np.allclose(jittered, image)
  shuffled = [data_lib.augment_image(image, ("channels",), np.random.default_rng(s))
              for s in range(10)]
  assert all(sorted(map(tuple, f.reshape(-1, 3).T)) == sorted(map(tuple, image.reshape(-1, 3).T))
             for f in shuffled)
  assert any(not np.array_equal(f, image) for f in shuffled)
  # Draw i is view i % n, the same every time it is read, fresh for each draw; its example is
  # made with index i (draw 0: the view's own index).
  views = [rng.uniform(-1, 1, (8, 8, 3)).astype(np.float32) for _ in range(3)]
  make = lambda i, v: {"inputs": v, "targets": np.int32(i)}  # noqa: E731
  draw = data_lib.FreshDraw(views, make, ("hflip", "color"), seed=5)
  assert [int(draw(i)["targets"]) for i in range(6)] == list(range(6))
  np.testing.assert_array_equal(draw(4)["inputs"], draw(4)["inputs"])
  assert not np.allclose(draw(1)["inputs"], draw(4)["inputs"])
  plain = data_lib.FreshDraw(views, make, (), seed=5)
  np.testing.assert_array_equal(plain(4)["inputs"], views[1])
  assert data_lib.check_augment(tasks.get("class_scene"), ["hflip"]) == ("hflip",)
  with pytest.raises(ValueError, match="accepted"):
    data_lib.check_augment(tasks.get("class_scene"), ["rotate"])
  with pytest.raises(ValueError, match="class_object"):
    data_lib.check_augment(tasks.get("normal"), ["hflip"])
  with pytest.raises(ValueError, match="'hflip' would change fixated_pose"):
    data_lib.check_augment(tasks.get("fixated_pose"), ["color", "hflip"])
  # Multi-view samples: every view jittered on its own, reproducibly.
  pair = {"inputs": np.stack(views[:2]), "targets": np.zeros(6, np.float32)}
  jitter = data_lib.AugmentedViews(("color",), seed=5)
  a, b = jitter(7, pair)["inputs"]
  np.testing.assert_array_equal(jitter(7, pair)["inputs"], np.stack([a, b]))
  ratio = lambda x, v: ((x + 1) / 2).mean((0, 1)) / ((v + 1) / 2).mean((0, 1))  # noqa: E731
  assert not np.allclose(ratio(a, views[0]), ratio(b, views[1]), rtol=1e-3)


def test_readme_fine_tuning_restores_the_trained_encoder(tiny_bank):
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  from taskonomy_jax import models
  from taskonomy_jax.train import checkpoint

  config, workdir, _ = tiny_bank
  m = config.model

  class MyModel(nn.Module):  # a user's new model: our encoder, their head
    @nn.compact
    def __call__(self, x, train=False):
      rep = models.Encoder(width=m.width, blocks=tuple(m.blocks), rep_channels=m.rep_channels,
                           name="encoder")(x, train)
      return nn.Dense(5)(rep.reshape(len(x), -1))

  x = jnp.zeros((1, 32, 32, 3))
  # --- the README's lines ---
  net = MyModel()
  variables = jax.jit(net.init)(jax.random.key(0), x)
  variables = checkpoint.restore_encoder(variables, os.path.join(workdir, "autoencoding"))
  # ---
  trained = checkpoint.load_variables(os.path.join(workdir, "autoencoding"))
  for a, b in zip(jax.tree.leaves(variables["params"]["encoder"]),
                  jax.tree.leaves(trained["params"]["encoder"]), strict=True):
    np.testing.assert_array_equal(a, b)
  img = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3), minval=-1, maxval=1)
  enc = models.Encoder(width=m.width, blocks=tuple(m.blocks), rep_channels=m.rep_channels)
  apply = jax.jit(enc.apply)  # eager flax compiles op by op
  rep_user = apply({k: v["encoder"] for k, v in variables.items() if "encoder" in v}, img)
  rep_bank = apply({k: v["encoder"] for k, v in trained.items()}, img)
  np.testing.assert_allclose(rep_user, rep_bank, rtol=1e-6)
  assert jax.jit(net.apply)(variables, img).shape == (2, 5)


def test_draws_give_jigsaw_fresh_permutations_and_keep_draw_zero(tiny_bank):
  from taskonomy_jax.taskbank import data

  config, _, _ = tiny_bank
  spec = tasks.get("jigsaw")
  once = data.dataset(spec, config.data, "train", 32)
  thrice = data.dataset(spec, {**config.data, "draws_per_anchor": 3}, "train", 32)
  n = len(once)
  assert len(thrice) == 3 * n
  for i in (0, n - 1):
    np.testing.assert_array_equal(thrice[i]["inputs"], once[i]["inputs"])
    assert thrice[i]["targets"] == once[i]["targets"]
  labels = np.array([[int(thrice[d * n + v]["targets"]) for d in range(3)] for v in range(n)])
  assert (labels != labels[:, :1]).any()  # other permutations of the same views
  held = data.dataset(spec, {**config.data, "draws_per_anchor": 3}, "eval", 32)
  assert len(held) == len(data.dataset(spec, config.data, "eval", 32))  # held out: fixed


def test_every_trainable_task_gets_examples_of_the_right_shapes(tiny_bank):
  from taskonomy_jax.taskbank import data

  config, _, _ = tiny_bank
  for spec in tasks.trainable():
    ds = data.dataset(spec, config.data, "train", 32)
    ex = ds[0]
    views = max(spec.num_views, spec.num_tiles)
    side = selfsup.tile_side(32) if spec.num_tiles > 1 else 32
    assert ex["inputs"].shape == ((side, side, 3) if views == 1 else (views, side, side, 3)), \
        spec.name
    out = spec.output_shape(32)
    if spec.dtype == "int32":  # labels: the output without its class axis
      assert ex["targets"].shape == out[:-1], spec.name
    else:
      assert ex["targets"].shape == out, spec.name
    if "mask" in ex:
      assert ex["mask"].shape == out[:2], spec.name
  with pytest.raises(ValueError, match="resolution 64"):
    data.dataset(tasks.get("normal"), config.data, "train", 64)


def test_vector_targets_are_standardised_on_training_statistics_and_mapped_back(
    tiny_bank, tmp_path):
  import jax

  from taskonomy_jax.taskbank import bank, data, train

  config, _, _ = tiny_bank
  spec = tasks.get("room_layout")
  assert [s.name for s in tasks.trainable() if data.has_standardized_targets(s)] == [
      "room_layout", "vanishing_point", "fixated_pose", "nonfixated_pose", "egomotion"]
  raw = data.dataset(spec, config.data, "train", 32)
  y = np.stack([raw[i]["targets"] for i in range(len(raw))]).astype(np.float64)
  stats = data.target_statistics(spec, config.data, 32, max_examples=len(raw))
  spread = y.std(0)
  np.testing.assert_allclose(stats["mean"], y.mean(0), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(stats["std"], np.where(spread > 1e-6, spread, 1.0), rtol=1e-6)
  assert spread[4] < 1e-12 and stats["std"][4] == 1.0  # the camera never rolls: kept unscaled
  held = data.dataset(spec, config.data, "eval", 32)
  scaled = data.dataset(spec, {**config.data, "target_stats": stats}, "eval", 32)
  for i in (0, len(held) - 1):
    np.testing.assert_allclose(
        scaled[i]["targets"], (held[i]["targets"] - np.float32(stats["mean"])) /
        np.float32(stats["std"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(scaled[i]["inputs"], held[i]["inputs"])
  with pytest.raises(ValueError, match="not standardised"):
    data.dataset(tasks.get("segment_semantic"), {**config.data, "target_stats": stats}, "eval",
                 32)

  # The bank measures them before training, keeps them beside the network, maps outputs back.
  cfg = type(config)(config.to_dict())
  cfg.tasks = ("room_layout",)
  cfg.train.num_steps = 2
  workdir = str(tmp_path / "bank")
  train.train_task_bank(cfg, workdir)
  saved = train.target_stats(workdir, "room_layout")
  np.testing.assert_allclose(saved["mean"], data.target_statistics(spec, cfg.data, 32)["mean"])
  tb = bank.TaskBank.load(workdir)
  model, variables = tb._nets["room_layout"]
  x = np.asarray(held[0]["inputs"])[None]
  net = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x))
  np.testing.assert_allclose(tb.batch_apply("room_layout")(x),
                             net * np.float32(saved["std"]) + np.float32(saved["mean"]),
                             rtol=1e-5, atol=1e-5)
  assert train.target_stats(workdir, "autoencoding") is None  # not a vector regression


def test_serve_and_visualize_run_a_trained_bank(tiny_bank, tmp_path):
  import argparse

  from taskonomy_jax import cli
  from taskonomy_jax.commands import serve

  _, workdir, _ = tiny_bank
  args = argparse.Namespace(bank=workdir, taskbank="none", resolution=64, examples=0, seed=0,
                            results_dir=None, max_body_mb=8, max_image_pixels=4096 * 4096)
  service = serve.build_service(args)
  assert service.resolution == 32  # the bank's, not --resolution
  image = np.random.default_rng(1).integers(0, 255, (40, 50, 3), dtype=np.uint8)
  _, panels = service.run_demo(image)
  # Every drawable finished task is shown; random projection has nothing to draw.
  assert [p["task"] for p in panels] == ["autoencoding"]
  assert panels[0]["shape"] == [32, 32, 3]
  # The demo's micro-batches: one forward pass per network, each row its own image's answer.
  images = np.random.default_rng(2).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
  batched = service.predictor.predict_batch(images)
  for k, one in enumerate(images):
    for name, out in service.predictor(one).items():
      np.testing.assert_allclose(batched[name][k], out, rtol=1e-4, atol=1e-5)
  service.close()
  with pytest.raises(ValueError, match="not both"):
    serve.build_service(argparse.Namespace(**{**vars(args), "taskbank": "random"}))
  with pytest.raises(FileNotFoundError, match="not a task bank"):
    serve.build_service(argparse.Namespace(**{**vars(args), "bank": str(tmp_path)}))

  video = tmp_path / "walk.gif"
  assert cli.main(["visualize", "--walk", "0", "--frames", "2", "--tasks", "autoencoding",
                   "--bank", workdir, "--panel", "32", "--out", str(video)]) == 0
  from PIL import Image
  with Image.open(video) as gif:
    assert gif.n_frames == 2


def test_pixel_targets_are_standardised_per_channel_over_valid_pixels(tiny_bank, tmp_path):
  """`standardize_targets='regressions'`: a pixel target's mean and std per channel over its
  valid pixels; the network learns them with a linear output (no tanh: standardised log depth
  reaches -6 and +3) and the bank maps its outputs back."""
  import jax

  from taskonomy_jax.taskbank import bank, data, train

  config, _, _ = tiny_bank
  regressions = [s.name for s in tasks.trainable() if data.has_standardized_targets(
      s, "regressions")]
  assert {"depth_zbuffer", "edge_occlusion", "normal", "room_layout"} <= set(regressions)
  assert "segment_semantic" not in regressions and "jigsaw" not in regressions
  assert not data.has_standardized_targets(tasks.get("room_layout"), "none")
  assert data.standardize_choice(True) == "vectors" and data.standardize_choice(False) == "none"
  with pytest.raises(ValueError, match="standardize_targets must be one of"):
    data.standardize_choice("all")
  spec = tasks.get("depth_zbuffer")
  raw = data.dataset(spec, config.data, "train", 32)
  y = np.stack([raw[i]["targets"] for i in range(len(raw))]).astype(np.float64)
  valid = np.stack([raw[i]["mask"] for i in range(len(raw))]) > 0
  stats = data.target_statistics(spec, config.data, 32, max_examples=len(raw))
  np.testing.assert_allclose(stats["mean"], [y[valid].mean()], rtol=1e-6)
  np.testing.assert_allclose(stats["std"], [y[valid].std()], rtol=1e-6)
  assert y[valid].std() < 0.2  # log depth spreads little: why it is standardised

  cfg = type(config)(config.to_dict())
  cfg.tasks = ("depth_zbuffer",)
  cfg.train.num_steps = 2
  cfg.data.standardize_targets = "regressions"
  workdir = str(tmp_path / "bank")
  train.train_task_bank(cfg, workdir)
  saved = train.target_stats(workdir, "depth_zbuffer")
  np.testing.assert_allclose(saved["std"], stats["std"], rtol=1e-6)
  tb = bank.TaskBank.load(workdir)
  model, variables = tb.network("depth_zbuffer")
  assert model.linear_output
  x = np.asarray(raw[0]["inputs"])[None]
  net = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x))
  np.testing.assert_allclose(tb.batch_apply("depth_zbuffer")(x),
                             net * np.float32(saved["std"]) + np.float32(saved["mean"]),
                             rtol=1e-5, atol=1e-6)


def test_a_bank_moved_with_its_dataset_resumes_but_other_data_is_refused(tmp_path):
  from taskonomy_jax import config_files
  from taskonomy_jax.taskbank import train

  config = config_files.load_config(f"{CONFIG}:tiny")
  config.data.data_dir = str(tmp_path / "old" / "tfds")
  train._check_bank_file(config, str(tmp_path))
  (tmp_path / "autoencoding").mkdir()  # a started task
  moved = type(config)(config.to_dict())
  moved.data.data_dir = str(tmp_path / "new" / "tfds")  # the workdir moved, its dataset with it
  moved.data.build_if_missing = not config.data.build_if_missing
  train._check_bank_file(moved, str(tmp_path))  # accepted (and recorded)
  other = type(config)(config.to_dict())
  other.data.builder_config = "r64_tiny"
  with pytest.raises(ValueError, match="trained with other data"):
    train._check_bank_file(other, str(tmp_path))
