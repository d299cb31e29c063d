"""Inputs and targets of the tasks made from RGB alone: denoising, inpainting, colorization, jigsaw.

The dataset stores no targets for these (taskonomy_jax/data/targets.py says so); the original
task bank made them from the RGB image in its preprocessing, and so does this module, one pure
function per task in `SELF_SUPERVISED`. Each takes one view's RGB (H, W, 3) float32 in [-1, 1]
and a seeded numpy Generator, and returns `(inputs, targets)` as the task network takes them.
Autoencoding needs nothing here (input = target = the image).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable

import numpy as np
from skimage import color

from taskonomy_jax import tasks

# Denoising: the original added Gaussian noise to the input (std in [-1, 1] units).
DENOISE_STD = 0.2
# Inpainting ("impainting_whole"): the central square of this fraction of the side is blanked
# in the input; the target is the whole image.
INPAINT_FRACTION = 0.5
JIGSAW_GRID = 3
# Class counts come from the task registry (one place): 100 permutations, 313 colour bins.
NUM_PERMUTATIONS = tasks.get("jigsaw").channels
NUM_COLOR_BINS = tasks.get("colorization").channels
COLOR_BIN_STEP = 10.0  # ab units, as the 313 bins of Zhang et al. used by the original

SelfSupFn = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def denoising(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """(H, W, 3) -> noisy input (H, W, 3) clipped to [-1, 1], clean target (H, W, 3)."""
  noisy = rgb + rng.normal(0.0, DENOISE_STD, rgb.shape).astype(np.float32)
  return np.clip(noisy, -1.0, 1.0), rgb


def inpainting_mask(side: int) -> np.ndarray:
  """(side, side) bool, True inside the blanked central square."""
  hole = round(side * INPAINT_FRACTION)
  lo = (side - hole) // 2
  mask = np.zeros((side, side), bool)
  mask[lo:lo + hole, lo:lo + hole] = True
  return mask


def inpainting(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """(H, W, 3) -> input with the centre set to 0 (mid grey), whole image as target."""
  del rng
  x = rgb.copy()
  x[inpainting_mask(rgb.shape[0])] = 0.0
  return x, rgb


@functools.cache
def color_bins() -> np.ndarray:
  """(313, 2) ab centres of the colorization classes.

  The original used the 313 in-gamut bins of a 10-unit ab grid (Zhang et al.'s `pts_in_hull`);
  that table is not in this repository, so we take the 313 grid centres closest to neutral grey
  (a disc of radius ~100 covering the sRGB gamut's bulk). Deviation noted in BUILD_NOTES.md.
  """
  r = np.arange(-12, 13) * COLOR_BIN_STEP
  grid = np.stack(np.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2)
  order = np.lexsort((grid[:, 1], grid[:, 0], np.round(np.hypot(grid[:, 0], grid[:, 1]), 6)))
  return grid[order[:NUM_COLOR_BINS]].astype(np.float32)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
  """(..., 3) in [-1, 1] -> CIE Lab (..., 3) (L in [0, 100])."""
  return color.rgb2lab(np.clip((rgb + 1.0) / 2.0, 0.0, 1.0)).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
  """CIE Lab (..., 3) -> (..., 3) in [-1, 1] (out-of-gamut colours clipped); inverse of
  `rgb_to_lab`."""
  return (np.clip(color.lab2rgb(np.asarray(lab, np.float64)), 0.0, 1.0) * 2.0 - 1.0).astype(
      np.float32)


# Zhang et al. (2016, Sec. 2.3) decode the bin distribution by its "annealed mean": the mean ab
# under the distribution sharpened to temperature 0.38, between the mean (1: desaturated) and
# the mode (-> 0: vivid but patchy).
ANNEALED_MEAN_TEMPERATURE = 0.38


def ab_from_bin_logits(logits: np.ndarray,
                       temperature: float = ANNEALED_MEAN_TEMPERATURE) -> np.ndarray:
  """Colour-bin logits (..., 313) -> ab (..., 2): the mean of `color_bins()` under
  softmax(logits / temperature) (1: the expected ab; towards 0: the arg-max bin's ab)."""
  if temperature <= 0:
    raise ValueError(f"temperature must be positive, got {temperature}")
  z = np.asarray(logits, np.float64) / temperature
  z -= z.max(-1, keepdims=True)
  p = np.exp(z)
  p /= p.sum(-1, keepdims=True)
  return (p @ color_bins().astype(np.float64)).astype(np.float32)


def colorization(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """(H, W, 3) -> grey input (H, W, 3) (L replicated, in [-1, 1]), (H/4, W/4) int32 bin labels.

  Labels are the nearest of `color_bins()` to each 4x4 block's mean ab (output stride 4).
  """
  del rng
  lab = rgb_to_lab(rgb)
  grey = np.repeat(lab[..., :1] / 50.0 - 1.0, 3, axis=-1)
  h, w = rgb.shape[:2]
  ab = lab[..., 1:].reshape(h // 4, 4, w // 4, 4, 2).mean(axis=(1, 3))
  d = np.sum((ab[..., None, :] - color_bins()) ** 2, axis=-1)
  return grey.astype(np.float32), np.argmin(d, axis=-1).astype(np.int32)


def _hamming_to(perm: np.ndarray, all_perms: np.ndarray) -> np.ndarray:
  """Hamming distance (tiles out of place) from one permutation (9,) to each of (N, 9): (N,)."""
  return np.count_nonzero(all_perms != perm, axis=1)


@functools.cache
def permutations(num: int = NUM_PERMUTATIONS, seed: int = 1000) -> np.ndarray:
  """(num, 9) the jigsaw classes: the maximal-Hamming-distance permutation set, identity first.

  The greedy algorithm of Noroozi & Favaro (2016, Sec. 3.3 / Algorithm 1), which the original's
  `jigsaw_max_hamming_set` came from: start from one permutation; repeatedly add the permutation
  of the 9! whose summed Hamming distance to those chosen so far is largest. Far-apart classes
  make the task about the tiles' content rather than about telling near-identical shuffles
  apart. The 9! candidates are visited in a seeded random order, so ties (there are many) are
  broken reproducibly by `seed`; we start from the identity, so class 0 is "in order".
  """
  n = JIGSAW_GRID ** 2
  rng = np.random.default_rng(seed)
  all_perms = np.fromiter(itertools.chain.from_iterable(itertools.permutations(range(n))),
                          np.int8, count=math.factorial(n) * n).reshape(-1, n)
  all_perms = all_perms[rng.permutation(len(all_perms))]
  chosen = [np.arange(n, dtype=np.int8)]
  total = _hamming_to(chosen[0], all_perms).astype(np.int64)
  taken = total == 0  # the identity itself; Algorithm 1 removes chosen ones from the candidates
  while len(chosen) < num:
    j = int(np.argmax(np.where(taken, -1, total)))
    chosen.append(all_perms[j])
    taken[j] = True
    total += _hamming_to(all_perms[j], all_perms)
  return np.array(chosen, np.int32)


def tile_side(resolution: int) -> int:
  """Side of one jigsaw tile: a third of the image, rounded down to the encoder's multiple of 16
  (at least 16; small images then get overlapping tiles)."""
  return max(16, (resolution // JIGSAW_GRID) // 16 * 16)


def tiles(rgb: np.ndarray) -> np.ndarray:
  """(R, R, 3) -> (9, t, t, 3) tiles in row-major order, origins spread evenly over the image."""
  side = rgb.shape[0]
  t = tile_side(side)
  origins = np.linspace(0, side - t, JIGSAW_GRID).round().astype(int)
  return np.stack([rgb[i:i + t, j:j + t] for i in origins for j in origins])


def jigsaw(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """(R, R, 3) -> shuffled tiles (9, t, t, 3), int32 class of the permutation used."""
  label = int(rng.integers(NUM_PERMUTATIONS))
  return tiles(rgb)[permutations()[label]], np.int32(label)


SELF_SUPERVISED: dict[str, SelfSupFn] = {
    "denoising": denoising,
    "inpainting": inpainting,
    "colorization": colorization,
    "jigsaw": jigsaw,
}
# The tasks whose sample is drawn at random from a view (noise, permutation): a fresh draw per
# pass over the data shows them new samples (`data.draws_per_anchor`).
RANDOM_SAMPLES = frozenset({"denoising", "jigsaw"})


def network_input(task: str, rgb: np.ndarray) -> np.ndarray:
  """What the trained network sees for a plain image at prediction time (no batch axis).

  Denoising sees the image as is (it is asked to clean it), inpainting the image with its centre
  blanked, colorization its grey version, jigsaw its tiles in order.
  """
  if task == "denoising":
    return rgb
  if task == "jigsaw":
    return tiles(rgb)
  fn = SELF_SUPERVISED.get(task)
  return fn(rgb, np.random.default_rng(0))[0] if fn else rgb
