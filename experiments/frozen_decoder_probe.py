"""Transfers through the target network's frozen decoder, on a finished `make taxonomy` run.

The original's transfer model (`TransferNet`, StanfordVL/taskonomy
`code/lib/models/perceptual_transfer.py`: "the decoder is frozen. Losses are backpropagated
through the target decoder, and only the encoder weights are changed"; the config generator's
defaults leave it frozen) trains a small transfer function from the source representation into
the *target network's* representation, then runs the target network's own trained decoder.
The pipeline's CPU readout instead trains a pixel head from scratch over a residual
(BUILD_NOTES.md, "The taxonomy pipeline and its gates"). This script measures the original's
form on a run's bank and views, to decide whether the pipeline should adopt it:

    python -m experiments.frozen_decoder_probe --workdir out/taxonomy \
        --targets depth_euclidean,depth_zbuffer,reshading,keypoints3d

For each target and each other network of the bank (random projection included): the
transfer function (3x3 conv to 8 channels, ReLU, 3x3 conv to the representation's channels)
on the per-channel standardised source representation of the transfer split, trained `--steps`
Adam steps (`--learning-rate` 2e-3, x0.1 at 50% and 80%, `--batch` 16) through the frozen
decoder; printed: its held-out masked L1 over the per-pixel median image's, sources best first,
and random projection's rank. `--objective representation` instead regresses the target
network's own representation (no decoder in the step); `--warm-steps N` runs N such steps
before the decoder objective's. The pipeline's form of this readout is
`readout.frozen_target_decoder` (experiments/configs/taxonomy_frozen_decoder.py).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from taskonomy_jax import tasks
from taskonomy_jax.taskbank.bank import TaskBank
from taskonomy_jax.transfer import readout, training

SPLITS = ("validation", "test")  # transfer training, held out


def masked_l1(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Per-example mean |pred - target| over valid pixels: (N, H, W, C) -> (N,)."""
  axes = tuple(range(1, target.ndim))
  return (np.abs(pred - target) * mask).sum(axes) / np.maximum(mask.sum(axes), 1)


def probe_target(bank: TaskBank, reps: dict, views: pathlib.Path, target: str,
                 steps: int, batch: int = 16, seed: int = 0, objective: str = "decoder",
                 learning_rate: float = 2e-3, warm_steps: int = 0) -> dict[str, float]:
  """{source: held-out L1 / the median image's} for every other network of `bank`."""
  model, variables = bank.network(target)
  stats = bank.target_stats(target)  # outputs are standardised: map back
  mean, std = (0.0, 1.0) if stats is None else (float(stats["mean"][0]), float(stats["std"][0]))
  y = {s: np.load(views / s / f"{target}.target.npy").astype(np.float32) for s in SPLITS}
  m = {s: np.load(views / s / f"{target}.mask.npy").astype(np.float32) for s in SPLITS}
  m = {s: a if a.ndim == y[s].ndim else a[..., None] for s, a in m.items()}
  median_loss = masked_l1(np.median(y["validation"], axis=0)[None], y["test"], m["test"]).mean()

  # Representation regression: the target network's own representation of the view, each
  # channel in units of its spread; no decoder in the step. objective 'representation' trains
  # only so (the decoder only predicts for the held-out loss); `warm_steps` of it start the
  # 'decoder' objective.
  rep_sd = reps[target]["validation"].std((0, 1, 2)) + 1e-6

  def transfer_function(x):  # the pipeline's (readout.TransferFunction), into this width
    return readout.TransferFunction(rep_channels=x.shape[-1])

  def predict(params, x):
    z = transfer_function(x).apply(params, x)
    out = model.apply(variables, z, False, method=lambda net, r, t: net.decoder(r, t))
    return out * std + mean

  def rep_loss(params, x, r, w):
    del w
    return jnp.mean(((transfer_function(x).apply(params, x) - r)
                     / rep_sd) ** 2)

  def decoder_loss(params, x, t, w):
    return (jnp.abs(predict(params, x) - t) * w).sum() / jnp.maximum(w.sum(), 1)

  def stepper(loss_fn, n):
    tx = optax.adam(optax.piecewise_constant_schedule(learning_rate, {n // 2: 0.1,
                                                                      n * 4 // 5: 0.1}))
    @jax.jit
    def step(params, opt, x, t, w):
      loss, grads = jax.value_and_grad(loss_fn)(params, x, t, w)
      updates, opt = tx.update(grads, opt, params)
      return optax.apply_updates(params, updates), opt, loss
    return tx, step

  phases = [(rep_loss, "rep", warm_steps), (decoder_loss, "y", steps)]
  if objective == "representation":
    phases = [(rep_loss, "rep", steps)]
  phases = [(stepper(f, n), kind, n) for f, kind, n in phases if n > 0]

  out = {}
  for source in bank.task_names:
    if source == target:
      continue
    x = reps[source]
    mu, sd = x["validation"].mean((0, 1, 2)), x["validation"].std((0, 1, 2)) + 1e-6
    x = {s: (a - mu) / sd for s, a in x.items()}
    params = transfer_function(x["test"]).init(
        jax.random.key(seed), jnp.asarray(x["validation"][:2]))
    rng = np.random.default_rng(seed)
    for (tx, step), kind, n in phases:
      opt = tx.init(params)
      for _ in range(n):
        b = rng.integers(0, len(x["validation"]), batch)
        t = reps[target]["validation"][b] if kind == "rep" else y["validation"][b]
        params, opt, _ = step(params, opt, x["validation"][b], t, m["validation"][b])
    pred = np.concatenate([np.asarray(jax.jit(predict)(params, x["test"][i:i + 64]))
                           for i in range(0, len(x["test"]), 64)])
    out[source] = float(masked_l1(pred, y["test"], m["test"]).mean() / median_loss)
  return out


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True, help="a finished `taskonomy taxonomy` workdir")
  p.add_argument("--targets", required=True, help="comma-separated pixel targets of the run")
  p.add_argument("--steps", type=int, default=400)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--warm-steps", type=int, default=0,
                 help="representation-regression steps before the decoder objective's")
  p.add_argument("--learning-rate", type=float, default=2e-3)
  p.add_argument("--objective", choices=("decoder", "representation"), default="decoder",
                 help="train through the frozen decoder, or regress the target's representation")
  p.add_argument("--out", help="write the results as JSON here")
  args = p.parse_args()
  workdir = pathlib.Path(args.workdir)
  bank = TaskBank.load(str(workdir / "03_taskbank" / "bank"))
  views = workdir / "02_views"
  images = {s: np.load(views / s / "rgb.npy") for s in SPLITS}
  start = time.perf_counter()
  reps = {n: {s: training.encode(*bank.network(n), images[s]) for s in SPLITS}
          for n in bank.task_names}
  print(f"encoded {len(reps)} networks in {time.perf_counter() - start:.0f} s", flush=True)
  results = {}
  for target in args.targets.split(","):
    if tasks.get(target).decoder != "pixel":
      raise SystemExit(f"{target}: only pixel targets have a decoder to freeze")
    scores = results[target] = probe_target(bank, reps, views, target, args.steps,
                                            batch=args.batch, learning_rate=args.learning_rate,
                                            warm_steps=args.warm_steps,
                                            objective=args.objective)
    ranked = sorted(scores, key=scores.get)
    rank = ranked.index("random") + 1 if "random" in scores else None
    print(f"{target}: random {rank}/{len(ranked)}  " +
          " ".join(f"{s}:{scores[s]:.3f}" for s in ranked), flush=True)
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
  main()
