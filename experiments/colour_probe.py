"""How much of the image's colour each cached representation of a finished run keeps.

For every network of a `taskonomy taxonomy` workdir (random projection included): a ridge
regression (lambda 1, per-feature standardised) from each 16x16 cell's 3x3 neighbourhood of the
representation (72 numbers) to the cell's mean RGB (the 4x4 pixel block it covers at 64x64),
fit on the transfer split, scored (R^2, mean over R, G, B) on the test split:

    python -m experiments.colour_probe --workdir out/taxonomy

An untrained encoder that keeps the colour a trained one discards is a better source than
random projection is in the paper for every target colour predicts (BUILD_NOTES.md, "The
taxonomy pipeline and its gates").
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

SPLITS = ("validation", "test")  # fit, score


def cell_means(images: np.ndarray, cells: int) -> np.ndarray:
  """(N, H, W, 3) -> (N, cells, cells, 3): the mean of each cell's pixel block."""
  n, h, w, c = images.shape
  return images.reshape(n, cells, h // cells, cells, w // cells, c).mean((2, 4))


def neighbourhoods(rep: np.ndarray) -> np.ndarray:
  """(N, h, w, C) -> (N * h * w, 9 C): each cell's 3x3 neighbourhood (zero-padded)."""
  n, h, w, c = rep.shape
  p = np.pad(rep, ((0, 0), (1, 1), (1, 1), (0, 0)))
  x = np.concatenate([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], -1)
  return x.reshape(n * h * w, 9 * c)


def colour_r2(reps: dict[str, np.ndarray], colours: dict[str, np.ndarray], ridge: float = 1.0
              ) -> float:
  """Test R^2 (mean over channels) of the ridge probe fit on `validation`."""
  x = {s: neighbourhoods(reps[s]) for s in SPLITS}
  mu, sd = x["validation"].mean(0), x["validation"].std(0) + 1e-6
  x = {s: np.c_[(v - mu) / sd, np.ones(len(v))] for s, v in x.items()}
  y = {s: colours[s].reshape(-1, colours[s].shape[-1]) for s in SPLITS}
  a = x["validation"]
  w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y["validation"])
  resid = ((x["test"] @ w - y["test"]) ** 2).sum(0)
  total = ((y["test"] - y["test"].mean(0)) ** 2).sum(0)
  return float((1 - resid / total).mean())


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True, help="a finished `taskonomy taxonomy` workdir")
  args = p.parse_args()
  workdir = pathlib.Path(args.workdir)
  rgb = {s: np.load(workdir / "02_views" / s / "rgb.npy").astype(np.float32) for s in SPLITS}
  for path in sorted((workdir / "03_taskbank").glob("*/*.validation.rep.npy")):
    name = path.name.split(".")[0]
    reps = {s: np.load(path.parent / f"{name}.{s}.rep.npy") for s in SPLITS}
    colours = {s: cell_means(rgb[s], reps[s].shape[1]) for s in SPLITS}
    print(f"{name:16s} colour R^2 {colour_r2(reps, colours):.3f}")


if __name__ == "__main__":
  main()
