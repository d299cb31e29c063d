"""One training step of the paper-size config on CPU (slow: ~40M parameters at 256x256)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from taskonomy_jax import models, tasks
from taskonomy_jax.configs import task_network
from taskonomy_jax.train import loop, losses, task, toy_data

# torchvision's ResNet-50 without its classifier, plus the 3x3 conv to 8 channels and its BN.
ENCODER_PARAMS = 25_557_032 - 2_049_000 + 3 * 3 * 2048 * 8 + 2 * 8


@pytest.mark.slow
def test_one_step_of_the_paper_size_config():
  config = task_network.get_config("paper")
  spec = tasks.get(config.task)
  assert config.resolution == 256 and tuple(config.model.blocks) == (3, 4, 6, 3)
  model = models.build(spec, config.model)
  data = toy_data.dataset(spec, 2, config.resolution)
  batch = {k: jnp.asarray(np.stack([data[i][k] for i in range(2)])) for k in data[0]}
  variables = loop.init_variables(model, batch["inputs"], 0)
  n_enc = sum(x.size for x in jax.tree.leaves(variables["params"]["encoder"]))
  assert n_enc == ENCODER_PARAMS
  tx = task.make_optimizer(config.optimizer)
  state = loop.TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                          batch_stats=variables["batch_stats"],
                          opt_state=tx.init(variables["params"]))
  step = jax.jit(loop.make_train_step(loop.network_apply(model),
                                      lambda p, b: losses.task_loss(spec, p, b), tx))
  new, metrics = step(state, batch, jax.random.key(0))
  assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
  assert int(new.step) == 1
  delta = optax.global_norm(jax.tree.map(lambda a, b: a - b, new.params, state.params))
  assert float(delta) > 0
