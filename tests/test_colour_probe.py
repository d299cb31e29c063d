"""experiments/colour_probe.py: its R^2 on known answers."""

from __future__ import annotations

import numpy as np

from experiments import colour_probe


def test_colour_r2_known_answers():
  rng = np.random.default_rng(0)
  images = {s: rng.uniform(-1, 1, size=(6, 16, 16, 3)).astype(np.float32)
            for s in colour_probe.SPLITS}
  colours = {s: colour_probe.cell_means(v, 4) for s, v in images.items()}
  assert colours["test"].shape == (6, 4, 4, 3)
  np.testing.assert_allclose(colours["test"][0, 1, 2], images["test"][0, 4:8, 8:12].mean((0, 1)),
                             rtol=1e-5)
  # A representation holding each cell's colour (in a linear mix, plus a dead channel): R^2 ~ 1.
  mix = rng.normal(size=(3, 5))
  holding = {s: np.concatenate([c @ mix, np.zeros((*c.shape[:3], 1))], -1)
             for s, c in colours.items()}
  assert colour_probe.colour_r2(holding, colours) > 0.99
  # One independent of the image: no better than the mean colour.
  noise = {s: rng.normal(size=(6, 4, 4, 6)) for s in colour_probe.SPLITS}
  assert colour_probe.colour_r2(noise, colours) < 0.05
