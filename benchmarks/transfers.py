"""Transfers/hour, stacked vs one by one, through `transfers_batched.measure` (one interface).

The suite, the scaling study and the GPU script call the transfer benchmark only through
`measure` here, which returns one normalised form per K:

  {"readouts": K, "steps": S, "transfers_per_hour": {"batched": .., "sequential_fresh": ..,
   "sequential_reused": ..}, "ratio_vs_fresh": .., "ratio_vs_reused": .., "raw": <as returned>}
"""

from __future__ import annotations

from typing import Any

from benchmarks import transfers_batched

VARIANTS = ("batched", "sequential_fresh", "sequential_reused")


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
  """Transfers/hour of each variant for K=`readouts` readouts trained `steps` steps each,
  batched with the backend's stacked conv implementation."""
  raw = transfers_batched.measure(readouts=(readouts,), steps=steps, repeats=repeats, **sizes)
  (row,) = raw["batched"].values()
  return normalise({**row[str(readouts)], "settings": {k: v for k, v in raw.items()
                                                        if k != "batched"}}, readouts, steps)
