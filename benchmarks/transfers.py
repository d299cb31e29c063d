"""Transfers/hour, stacked vs one by one, through `transfers_batched.measure` (one interface).

`benchmarks/transfers_batched.py` is owned by the transfer work; the suite, the scaling study
and the GPU script call it only through `measure` here, which returns one normalised form:

  {"readouts": K, "steps": S, "transfers_per_hour": {"batched": .., "sequential_fresh": ..,
   "sequential_reused": ..}, "ratio_vs_fresh": .., "ratio_vs_reused": .., "raw": <as returned>}

Until that module exposes `measure(readouts, steps, repeats, **sizes) -> dict`, the same
numbers are taken with its `_run` helper, exactly as its `main()` takes them (the fallback
below; delete it once `transfers_batched.measure` exists).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from benchmarks import transfers_batched

VARIANTS = ("batched", "sequential_fresh", "sequential_reused")
# The sizes the fallback accepts, with `transfers_batched.main()`'s defaults.
FALLBACK_SIZES = {"target": "depth_zbuffer", "batch": 16, "side": 4, "channels": 32,
                  "decoder_width": 1 / 16}


def _fallback(readouts: int, steps: int, repeats: int, **sizes: Any) -> dict[str, Any]:
  from taskonomy_jax import tasks
  from taskonomy_jax.transfer import readout
  unknown = set(sizes) - set(FALLBACK_SIZES)
  if unknown:
    raise ValueError(f"unknown transfer benchmark sizes {sorted(unknown)}; accepted: "
                     f"{sorted(FALLBACK_SIZES)}")
  args = argparse.Namespace(**{**FALLBACK_SIZES, **sizes})
  spec = tasks.get(args.target)
  module = readout.build(spec, {"readout_channels": 8, "decoder_width_multiplier":
                                args.decoder_width, "fc_hidden": 32, "dropout": 0.5})
  run, k = transfers_batched._run, readouts  # private helper: see the module docstring
  secs: dict[str, list[float]] = {v: [] for v in VARIANTS}
  for _ in range(repeats):  # alternating, as main() does
    secs["batched"].append(run(spec, module, k, steps, args)[0])
    secs["sequential_fresh"].append(sum(run(spec, module, 1, steps, args)[0] for _ in range(k)))
    t0, fn = run(spec, module, 1, steps, args)
    secs["sequential_reused"].append(
        t0 + sum(run(spec, module, 1, steps, args, False, fn)[0] for _ in range(k - 1)))
  per_hour = {v: k * 3600 / float(np.median(s)) for v, s in secs.items()}
  return {"transfers_per_hour": per_hour, "seconds": secs, "sizes": vars(args)}


def normalise(raw: dict[str, Any], readouts: int, steps: int) -> dict[str, Any]:
  """The one form above from `transfers_batched.measure`'s dict (see module docstring)."""
  per_hour = raw.get("transfers_per_hour")
  if not isinstance(per_hour, dict) or "batched" not in per_hour:
    raise ValueError("transfers_batched.measure must return {'transfers_per_hour': {'batched': "
                     f"..., 'sequential_fresh': ..., 'sequential_reused': ...}}; got keys "
                     f"{sorted(raw)}")
  ratio = {}
  for base in ("fresh", "reused"):
    r = raw.get(f"ratio_vs_{base}")
    if r is None and per_hour.get(f"sequential_{base}"):
      r = per_hour["batched"] / per_hour[f"sequential_{base}"]
    ratio[f"ratio_vs_{base}"] = r
  return {"readouts": readouts, "steps": steps,
          "transfers_per_hour": {v: per_hour.get(v) for v in VARIANTS}, **ratio, "raw": raw}


def measure(readouts: int, steps: int, repeats: int = 1, **sizes: Any) -> dict[str, Any]:
  """Transfers/hour of each variant for K=`readouts` readouts trained `steps` steps each."""
  fn = getattr(transfers_batched, "measure", None)
  raw = (fn(readouts=readouts, steps=steps, repeats=repeats, **sizes) if fn is not None
         else _fallback(readouts, steps, repeats, **sizes))
  return normalise(raw, readouts, steps)
