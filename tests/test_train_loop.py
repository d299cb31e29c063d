"""The loop: BatchNorm statistics re-gathered under the final weights; the metrics it logs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from taskonomy_jax import models, tasks
from taskonomy_jax.train import checkpoint, loop, losses, toy_data

TINY = {"width": 4, "blocks": (1, 1, 1, 1), "decoder_width_multiplier": 1 / 16}
STEPS, BATCH, RECOMPUTE = 3, 4, 5
# x0.1 after the first update: logged learning rates must follow the update count.
SCHEDULE = optax.piecewise_constant_schedule(1e-3, {1: 0.1})


def _run(workdir, recompute: int):
  spec = tasks.get("depth_zbuffer")
  model = models.build(spec, TINY)
  data = toy_data.dataset(spec, 16, 32)
  variables = loop.init_variables(model, jnp.asarray(data[0]["inputs"])[None], 0, prng_impl="rbg")
  cfg = loop.LoopConfig(num_steps=STEPS, batch_size=BATCH, checkpoint_every=100, progress=False,
                        bn_recompute_batches=recompute, log_every=1)
  apply_fn = loop.network_apply(model)
  loop.train(apply_fn=apply_fn, loss_fn=lambda p, b: losses.task_loss(spec, p, b),
             variables=variables, tx=optax.adam(SCHEDULE), data=data, cfg=cfg,
             workdir=str(workdir), learning_rate_fn=SCHEDULE)
  return apply_fn, data, checkpoint.load_variables(str(workdir))


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
  """One run without recomputation, shared: its checkpoint and its metrics are both tested."""
  workdir = tmp_path_factory.mktemp("plain")
  return workdir, _run(workdir, 0)


def test_metrics_log_the_learning_rate_of_each_update_and_steps_per_second(plain_run):
  workdir, _ = plain_run
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [r for r in rows if r["split"] == "train"]
  assert [r["step"] for r in train] == list(range(1, STEPS + 1))
  np.testing.assert_allclose([r["learning_rate"] for r in train], [1e-3, 1e-4, 1e-4])
  # The first step compiles and is not timed; every later log has a positive rate.
  assert "steps_per_sec" not in train[0]
  assert all(r["steps_per_sec"] > 0 for r in train[1:])


def test_recomputed_statistics_are_the_running_average_under_the_final_weights(plain_run,
                                                                              tmp_path):
  _, (_, _, plain) = plain_run
  apply_fn, data, recomputed = _run(tmp_path / "recomputed", RECOMPUTE)
  # The parameters are the training's; only the statistics change.
  for a, b in zip(jax.tree.leaves(plain["params"]), jax.tree.leaves(recomputed["params"]),
                  strict=True):
    np.testing.assert_array_equal(a, b)
  # By hand: the next RECOMPUTE training batches (the iterator continues after the last step),
  # each folded into the running averages by a training-mode forward pass.
  it = loop.batched_iterator(data, BATCH, seed=0)
  for _ in range(STEPS):
    next(it)
  stats = plain["batch_stats"]
  # jitted: eager flax compiles every op separately, which is far slower on CPU
  apply_fn = jax.jit(apply_fn, static_argnums=2)
  for _ in range(RECOMPUTE):
    _, stats = apply_fn({"params": plain["params"], "batch_stats": stats},
                        jnp.asarray(next(it)["inputs"]), True, {"dropout": jax.random.key(0)})
  changed = 0
  for want, got, old in zip(jax.tree.leaves(stats), jax.tree.leaves(recomputed["batch_stats"]),
                            jax.tree.leaves(plain["batch_stats"]), strict=True):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    changed += not np.allclose(got, old)
  assert changed > 0


def test_negative_recompute_count_is_refused(tmp_path):
  with pytest.raises(ValueError, match="bn_recompute_batches must be >= 0"):
    loop.train(apply_fn=None, loss_fn=None, variables={}, tx=None, data=None,
               cfg=loop.LoopConfig(num_steps=1, batch_size=1, bn_recompute_batches=-1),
               workdir=str(tmp_path))
