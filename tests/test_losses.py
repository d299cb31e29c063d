"""Losses and metrics on known answers and brute-force cross-checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from taskonomy_jax import tasks
from taskonomy_jax.train import losses, metrics


def test_every_trained_task_has_its_loss_and_metric():
  for spec in tasks.trainable():
    assert losses.get(spec.loss) and metrics.get(spec.metric)
  with pytest.raises(ValueError, match=r"accepted: .*'l1'"):
    losses.get("l3")
  with pytest.raises(ValueError, match="has no loss"):
    losses.task_loss(tasks.get("random"), jnp.zeros(1), {"targets": jnp.zeros(1)})


def test_masked_l1_counts_only_valid_pixels():
  pred = jnp.array([[[[1.0, 3.0]], [[5.0, 0.0]]]])  # (1, 2, 1, 2)
  target = jnp.zeros((1, 2, 1, 2))
  mask = jnp.array([[[1.0], [0.0]]])  # (1, 2, 1): second pixel invalid
  # valid elements: |1|, |3| -> mean 2 (SUM_BY_NONZERO_WEIGHTS, channels counted)
  assert float(losses.l1(pred, target, mask)) == pytest.approx(2.0)
  assert float(losses.l1(pred, target)) == pytest.approx(9 / 4)
  assert float(losses.l2(pred, target, mask)) == pytest.approx(5.0)
  assert float(losses.l1(pred, target, jnp.zeros((1, 2, 1)))) == 0.0  # nothing valid


def test_softmax_xent_known_answers():
  c = 17
  logits = jnp.zeros((2, 3, 3, c))
  labels = jnp.zeros((2, 3, 3), jnp.int32)
  assert float(losses.softmax_xent(logits, labels)) == pytest.approx(math.log(c), rel=1e-6)
  sharp = jax.nn.one_hot(labels, c) * 50.0
  assert float(losses.softmax_xent(sharp, labels)) < 1e-6
  # class-rebalancing weights scale each pixel; zero-weight pixels do not count
  w = jnp.zeros((2, 3, 3)).at[0, 0, 0].set(3.0)
  assert float(losses.weighted_softmax_xent(logits, labels, w)) == pytest.approx(
      3 * math.log(c), rel=1e-6)


def test_soft_xent_and_kl():
  logits = jnp.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
  p = jax.nn.softmax(logits)
  entropy = -jnp.sum(p * jnp.log(p), axis=-1).mean()
  assert float(losses.soft_xent(logits, p)) == pytest.approx(float(entropy), rel=1e-5)
  assert float(metrics.kl(logits, p)) == pytest.approx(0.0, abs=1e-6)
  q = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
  want = -np.mean([np.log(p[0, 0]), np.log(p[1, 2])])
  assert float(metrics.kl(logits, q)) == pytest.approx(float(want), rel=1e-5)


def test_metric_embedding_known_answers():
  segments = jnp.zeros((1, 32, 32), jnp.int32).at[:, :, 16:].set(1)  # left / right halves
  same_emb = jnp.zeros((1, 32, 32, 4))
  # All embeddings equal: same-segment pairs cost ~0, the half of pairs across segments cost
  # -log(1 - sigma) with sigma clipped at 1 - 1e-7 (in float32: 1 - 2^-23).
  want = 0.5 * -math.log(1.0 - float(np.float32(1 - 1e-7)))
  assert float(losses.metric_embedding(same_emb, segments)) == pytest.approx(want, rel=1e-3)
  # Segments far apart in embedding space: every pair is right, the loss is ~0.
  far = jnp.where(segments[..., None] == 1, 5.0, 0.0) * jnp.ones((1, 32, 32, 4))
  assert float(losses.metric_embedding(far, segments)) < 1e-5
  assert float(metrics.pair_accuracy(far, segments)) == 1.0
  assert float(metrics.pair_accuracy(same_emb, segments)) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("h, w, grid", [(64, 64, 16), (32, 48, 16), (30, 64, 16), (8, 8, 16)])
def test_grid_sample_takes_the_documented_pixels(h, w, grid):
  """The strided slice (grid divides the image) and the gather pick the same pixels: row
  (i * H) // g + H // (2g), column alike, g = min(grid, side); gradients land on them alone."""
  x = jnp.arange(2 * h * w * 3, dtype=jnp.float32).reshape(2, h, w, 3)
  gh, gw = min(grid, h), min(grid, w)
  rows = [(i * h) // gh + h // (2 * gh) for i in range(gh)]
  cols = [(j * w) // gw + w // (2 * gw) for j in range(gw)]
  want = np.asarray(x)[:, rows][:, :, cols].reshape(2, gh * gw, 3)
  np.testing.assert_array_equal(np.asarray(losses.grid_sample(x, grid)), want)
  grad = np.asarray(jax.grad(lambda x: losses.grid_sample(x, grid).sum())(x))
  hit = np.zeros((h, w), bool)
  hit[np.ix_(rows, cols)] = True
  assert np.all(grad[:, hit] == 1) and np.all(grad[:, ~hit] == 0)


@pytest.mark.parametrize("side, block, want", [(64, 4, 2), (64, 2, None), (32, 2, 1), (8, 1, 0),
                                               (48, 3, 1), (30, 2, None)])
def test_grid_block_offset_is_where_grid_sample_reads_each_block(side, block, want):
  """Known answers, and where an offset exists, `grid_sample` is exactly pixel (offset, offset)
  of every block."""
  assert losses.grid_block_offset(side, block) == want
  if want is not None:
    x = jnp.arange(side * side, dtype=jnp.float32).reshape(1, side, side, 1)
    np.testing.assert_array_equal(np.asarray(losses.grid_sample(x)),
                                  np.asarray(x[:, want::block, want::block]).reshape(1, -1, 1))


def test_angular_error():
  pred = jnp.array([[[[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]]])
  target = jnp.array([[[[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]]])
  assert float(metrics.angular_error_deg(pred, target)) == pytest.approx(67.5, rel=1e-5)
  mask = jnp.array([[[0.0, 1.0]]])
  assert float(metrics.angular_error_deg(pred, target, mask)) == pytest.approx(45.0, rel=1e-5)


def test_accuracy_and_miou_against_brute_force():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 6, 6, 5)).astype(np.float32)
  labels = rng.integers(0, 5, size=(2, 6, 6))
  mask = (rng.uniform(size=(2, 6, 6)) > 0.3).astype(np.float32)
  pred = logits.argmax(-1)
  acc = (pred == labels)[mask > 0].mean()
  assert float(metrics.accuracy(logits, labels, mask)) == pytest.approx(acc, rel=1e-6)
  ious = []
  for c in range(5):
    p, t = (pred == c) & (mask > 0), (labels == c) & (mask > 0)
    if (p | t).any():
      ious.append((p & t).sum() / (p | t).sum())
  assert float(metrics.miou(logits, labels, mask)) == pytest.approx(np.mean(ious), rel=1e-6)


def test_task_loss_uses_the_registry_and_mask():
  spec = tasks.get("depth_zbuffer")  # l1 over valid depth
  pred = jnp.ones((1, 4, 4, 1))
  batch = {"targets": jnp.zeros((1, 4, 4, 1)),
           "mask": jnp.zeros((1, 4, 4, 1)).at[0, 0, 0, 0].set(1.0)}
  assert float(losses.task_loss(spec, pred, batch)) == 1.0
  assert float(metrics.task_metric(spec, pred * 0.5, batch)) == 0.5
