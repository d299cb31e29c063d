"""Runs the training loop in its own process (tests set XLA_FLAGS before jax starts).

Prints one JSON line with the run's facts: per-step losses are in <workdir>/metrics.jsonl.
Not a test module (no `test_` prefix); used by test_train_sharding.py and test_train_resume.py.
"""

import argparse
import json
import time

import jax
import numpy as np

from taskonomy_jax.configs import task_network
from taskonomy_jax.train import sharding, task, toy_data


def tiny_config(args):
  c = task_network.get_config("cpu")
  c.task = args.task
  c.resolution = 32
  c.model.width = 4
  c.model.decoder_width_multiplier = 1 / 8
  c.train.num_steps = args.steps
  c.train.batch_size = 8
  c.train.log_every = 1
  c.train.checkpoint_every = 4
  c.train.keep_checkpoints = 5
  c.train.num_devices = args.devices
  c.train.fsdp = args.fsdp
  c.train.progress = False
  c.train.bn_recompute_batches = 0  # tested in test_train_loop.py; compiles cost here
  c.optimizer.name = args.optimizer
  # Small SGD steps: a larger rate makes this tiny network chaotic (a 1e-6 perturbation of
  # the parameters grows to 1e-3 of the loss within 10 steps), hiding what the test checks.
  c.optimizer.learning_rate = 1e-3 if args.optimizer == "adam" else 3e-4
  c.data.num_train = 24  # 3 batches an epoch: the run crosses epoch boundaries
  c.data.num_eval = 0
  return c


def readme_snippet_facts(workdir: str) -> dict:
  """Runs the README's fine-tuning snippet as written on `workdir`'s checkpoint."""
  import pathlib

  from taskonomy_jax import train

  readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
  snippet = readme.split("<!-- finetune-snippet -->")[1].split("<!-- /finetune-snippet -->")[0]
  code = snippet.split("```python")[1].split("```")[0].strip()
  model_config = tiny_config(argparse.Namespace(task="normal", steps=1, devices=1, fsdp=False,
                                                optimizer="adam")).model
  images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  scope = {"model_config": model_config, "images": images, "workdir": workdir}
  exec(code, scope)
  variables, model = scope["variables"], scope["model"]
  trained = train.load_variables(workdir)
  fresh = jax.jit(model.init)(jax.random.key(0), images)  # the same values: init is pure

  def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                     strict=True))
  out = jax.jit(model.apply)(variables, images)
  return {
      "lines": len(code.splitlines()),
      "encoder_is_trained": all(same(variables[c]["encoder"], trained[c]["encoder"])
                                for c in ("params", "batch_stats")),
      "decoder_is_new": same(variables["params"]["decoder"], fresh["params"]["decoder"]),
      "fresh_encoder_differs": not same(fresh["params"]["encoder"], trained["params"]["encoder"]),
      "output_shape": list(out.shape),
      "finite": bool(np.isfinite(np.asarray(out)).all()),
  }


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--workdir", required=True)
  p.add_argument("--task", default="depth_zbuffer")
  p.add_argument("--steps", type=int, default=12)
  p.add_argument("--devices", type=int, default=1)
  p.add_argument("--fsdp", action="store_true")
  p.add_argument("--optimizer", default="adam")
  p.add_argument("--delay", type=float, default=0.0, help="seconds of sleep per example")
  p.add_argument("--readme", action="store_true", help="run the README snippet on --workdir")
  args = p.parse_args()
  if args.readme:
    print("FACTS " + json.dumps(readme_snippet_facts(args.workdir)), flush=True)
    return
  if args.delay:  # slow the data down so a test can kill the run mid-way
    original = task.DATASETS["toy"]

    def slow(*a):
      def wait(x):
        time.sleep(args.delay)
        return x
      return original(*a).map(wait)
    task.DATASETS["toy"] = slow
  config = tiny_config(args)
  state = task.train_task(config, args.workdir)

  mesh = sharding.make_mesh(args.devices)
  example = toy_data.dataset(task.tasks.get(args.task), 8, 32)[0]
  batch = sharding.global_batch({k: np.stack([v] * 8) for k, v in example.items()}, mesh)
  leaves = jax.tree.leaves(state.params)
  facts = {
      "num_devices": len(jax.devices()),
      "batch_shard_rows": sorted(s.data.shape[0] for s in batch["inputs"].addressable_shards),
      "batch_shard_devices": len({s.device for s in batch["inputs"].addressable_shards}),
      "param_devices": sorted({len(x.sharding.device_set) for x in leaves}),
      "params_fully_replicated": all(x.sharding.is_fully_replicated for x in leaves),
      "split_params": sum(
          1 for x in leaves if x.addressable_shards[0].data.shape != x.shape),
      "num_params": len(leaves),
      "step": int(state.step),
  }
  print("FACTS " + json.dumps(facts), flush=True)


if __name__ == "__main__":
  main()
