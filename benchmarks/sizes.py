"""How big each benchmark runs: `get_config(size)` for size "tiny" (tests), "quick" (a smoke
run of a few minutes) or "full" (the suite's real run, about 20 minutes on 2 idle cores).

    python -m benchmarks --quick        # size "quick"
    python -m benchmarks                # size "full"
"""

from __future__ import annotations

import ml_collections

SIZES = ("tiny", "quick", "full")


def get_config(size: str = "full") -> ml_collections.ConfigDict:
  if size not in SIZES:
    raise ValueError(f"unknown benchmark size {size!r}; accepted: {', '.join(SIZES)}")
  tiny, quick = size == "tiny", size == "quick"
  c = ml_collections.ConfigDict()
  # Issue 3's goal: 2,000 views at 64x64 in under a minute on 2 cores.
  c.world = dict(views=20 if tiny else 200 if quick else 2000, resolution=32 if tiny else 64,
                 baseline_views=5 if tiny else 20 if quick else 100,
                 workers=0 if tiny or quick else 2)
  c.input_pipeline = dict(buildings=1 if tiny else 2 if quick else 4,
                          resolution=32 if tiny else 64, points=2 if tiny else 8,
                          workers=(0,) if tiny else (0, 2), batch_size=4 if tiny else 16,
                          batches=5 if tiny else 20 if quick else 100,
                          repeats=1 if tiny or quick else 3)
  # The paper-size network; 256x256 only in the full run (minutes per step on 2 cores).
  c.train_step = dict(sizes=(32,) if tiny else (64,) if quick else (64, 128, 256),
                      batch=1 if tiny else 2, steps=1 if tiny else 2, paper_flops=not tiny)
  # Depth target, pixel decoder at 1/16 width on 4x4x32 inputs (transfers_batched's defaults).
  c.transfers = dict(readouts=2 if tiny else 4 if quick else 8,
                     steps=2 if tiny else 10 if quick else 20, repeats=1)
  c.bip = dict(instances=("published",) if tiny or quick else ("published", "random"),
               order=1 if tiny else 4, naive_sweep=not tiny, data="1k")
  return c
