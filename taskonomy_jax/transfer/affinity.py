"""Held-out losses of a target's candidates -> AHP affinities, Quality and Gain (paper Sec. 3.3).

One tournament per target over *all* its candidates: first- and higher-order transfers and the
target's own fully supervised network (`self`), as the published `all_affinities` files do (they
sum to one per target over all of these).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from taskonomy_jax.taxonomy import ahp
from taskonomy_jax.taxonomy.affinities import SELF, AffinityTable, make_transfer


@dataclasses.dataclass
class TargetLosses:
  """Per-example test losses of one target's candidates.

  Attributes:
    candidates: S source tuples (each a transfer's sources).
    losses: (S, N) their per-example losses.
    self_losses: (N,) the target's own network (the Quality baseline).
    scratch_losses: (N,) a network trained from scratch on the transfer budget (Gain baseline).
  """

  candidates: Sequence[tuple[str, ...]]
  losses: np.ndarray
  self_losses: np.ndarray
  scratch_losses: np.ndarray

  def __post_init__(self) -> None:
    n = len(self.self_losses)
    if self.losses.shape != (len(self.candidates), n) or self.scratch_losses.shape != (n,):
      raise ValueError(f"losses {self.losses.shape} for {len(self.candidates)} candidates, self "
                       f"{self.self_losses.shape}, scratch {self.scratch_losses.shape}: "
                       "expected (S, N), (N,), (N,)")


def affinity_table(per_target: Mapping[str, TargetLosses], source: str = "computed"
                   ) -> AffinityTable:
  """The `AffinityTable` the BIP reads, from every target's losses."""
  affinity, quality, gain, baseline = {}, {}, {}, {}
  for target, tl in per_target.items():
    rows = [*tl.candidates, (SELF,)]
    losses = np.concatenate([tl.losses, tl.self_losses[None]])
    scores = ahp.affinities_from_losses(losses)
    for srcs, row, score in zip(rows, losses, scores, strict=True):
      t = make_transfer(srcs, target)
      affinity[t] = float(score)
      quality[t] = ahp.win_rate(row, tl.self_losses)
      gain[t] = ahp.win_rate(row, tl.scratch_losses)
    baseline[target] = ahp.win_rate(tl.scratch_losses, tl.self_losses)
  return AffinityTable(affinity=affinity, quality=quality, gain=gain, baseline_quality=baseline,
                       source=source)


def summary(tl: TargetLosses) -> dict[str, float]:
  """Mean test loss per candidate, `self` and `scratch` (for reading a run by eye)."""
  out = {"+".join(c): float(np.mean(r)) for c, r in zip(tl.candidates, tl.losses, strict=True)}
  out["self"] = float(np.mean(tl.self_losses))
  out["scratch"] = float(np.mean(tl.scratch_losses))
  return out
