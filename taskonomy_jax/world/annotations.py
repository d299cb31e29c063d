"""Image-space annotations derived from the rendered buffers, by the paper's definitions.

Pure functions on (H, W, ...) arrays; every output is finite.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage
from skimage.segmentation import felzenszwalb

from taskonomy_jax.world import categories as cats


def luminance(rgb: np.ndarray) -> np.ndarray:
  """(H, W, 3) -> (H, W) Rec. 709 luma."""
  return rgb @ np.array([0.2126, 0.7152, 0.0722])


def _scale(image: np.ndarray) -> float:
  """Filter scales are set for 64x64 and grow with the image, so every resolution shows the
  same structures (the dataset's annotations were made at 512x512 and resized)."""
  return image.shape[0] / 64.0


def edge_texture(rgb: np.ndarray, sigma: float = 1.0) -> np.ndarray:
  """2D (texture) edges: Sobel gradient magnitude of the blurred luma, in [0, 1]. (H, W).

  The paper's 2D edges are Canny's gradient stage without non-maximum suppression.
  """
  g = ndimage.gaussian_filter(luminance(rgb), sigma * _scale(rgb), mode="nearest")
  mag = np.hypot(ndimage.sobel(g, 0, mode="nearest"), ndimage.sobel(g, 1, mode="nearest"))
  # A blurred step's gradient peak falls as 1/sigma: rescale so resolutions agree.
  return np.clip(mag * 1.2 * _scale(rgb), 0.0, 1.0)


def edge_occlusion(points_cam: np.ndarray, normals_cam: np.ndarray, valid: np.ndarray,
                   focal_px: float) -> np.ndarray:
  """Occlusion edges: how far each 4-neighbour's 3D point lies off this pixel's tangent plane.

  Measured in pixel footprints (depth / focal), so a surface seen at any distance or slant
  scores ~0 and a crease scores ~1, while a depth discontinuity scores its jump. A neighbour
  with no depth (void) counts as a jump of 8 footprints. Output: log1p(max(0, s - 2)) >= 0.

  Args:
    points_cam: (H, W, 3) camera-frame hit points; normals_cam: (H, W, 3); valid: (H, W).
  """
  z = np.maximum(-points_cam[..., 2], 1e-6)
  s = np.zeros(valid.shape)
  for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
    q = np.roll(points_cam, (dy, dx), axis=(0, 1))
    qv = np.roll(valid, (dy, dx), axis=(0, 1))
    off = np.abs(np.sum(normals_cam * (q - points_cam), axis=-1)) / (z / focal_px)
    off = np.where(qv, off, 8.0)
    # np.roll wraps around: the image border has no neighbour there.
    if dy == 1:
      off[0, :] = 0
    if dy == -1:
      off[-1, :] = 0
    if dx == 1:
      off[:, 0] = 0
    if dx == -1:
      off[:, -1] = 0
    s = np.maximum(s, off)
  return np.where(valid, np.log1p(np.maximum(s - 2.0, 0.0)), 0.0)


def harris(channels: np.ndarray, sigma: float = 1.5, k: float = 0.05) -> np.ndarray:
  """Harris corner response of a multi-channel image (H, W, C), structure tensor summed over C.

  Filters run once on the stacked channels (sigma 0 along C): per-call overhead, not
  arithmetic, dominates at 64x64.
  """
  gy = ndimage.sobel(channels, 0, mode="nearest")
  gx = ndimage.sobel(channels, 1, mode="nearest")
  tensor = np.stack([np.sum(gx * gx, -1), np.sum(gy * gy, -1), np.sum(gx * gy, -1)], axis=-1)
  sxx, syy, sxy = np.moveaxis(
      ndimage.gaussian_filter(tensor, (sigma, sigma, 0), mode="nearest"), -1, 0)
  return sxx * syy - sxy * sxy - k * (sxx + syy) ** 2


def keypoints2d(rgb: np.ndarray) -> np.ndarray:
  """2D keypoint heat map in [0, 1]: Harris response of the luma (the paper used SURF)."""
  s = _scale(rgb)
  r = harris(luminance(rgb)[..., None], sigma=1.5 * s)
  # Scale factors measured on one view rendered at 64 and 256 (the response falls as the
  # window grows); 20 puts the 99th percentile of a typical 64x64 view near 0.8.
  return np.tanh(np.maximum(r, 0.0) * s / 20.0)


def keypoints3d(normals_cam: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """3D keypoint heat map in [0, 1]: Harris response of the normal map.

  The paper used NARF on the depth map; both respond where surfaces of different orientation
  meet in a corner, and neither responds to texture or to a plane seen at a slant.
  """
  s = _scale(normals_cam)
  r = harris(np.where(valid[..., None], normals_cam, 0.0), sigma=1.5 * s)
  return np.where(valid, np.tanh(np.maximum(r, 0.0) * s ** 1.5 / 3000.0), 0.0)


def felzenszwalb_segments(features: np.ndarray) -> np.ndarray:
  """Felzenszwalb-Huttenlocher graph segmentation of (H, W, C) features -> int32 ids 0..n-1.

  Above 32x32 the graph is built at half resolution and the labels upsampled (nearest): the
  segmentation is the slowest annotation (8 ms at 64x64 vs 2 ms at 32x32, BUILD_NOTES.md).
  """
  h = features.shape[0]
  step = 2 if h > 32 else 1
  small = features[::step, ::step]
  hs = small.shape[0]
  with warnings.catch_warnings():   # skimage warns about > 4 channels; they are intended
    warnings.simplefilter("ignore", RuntimeWarning)
    seg = felzenszwalb(small.astype(np.float64), scale=hs * 6, sigma=0.5,
                       min_size=max(4, hs * hs // 200), channel_axis=-1)
  seg = np.repeat(np.repeat(seg, step, 0), step, 1)[:h, :h]
  _, ids = np.unique(seg, return_inverse=True)
  return ids.reshape(h, h).astype(np.int32)


def segment_unsup2d(rgb: np.ndarray) -> np.ndarray:
  """Graph-based segmentation of RGB (the paper's 2D segmentation). int32 (H, W)."""
  return felzenszwalb_segments(rgb)


def segment_unsup25d(rgb: np.ndarray, depth: np.ndarray, normals_cam: np.ndarray,
                     valid: np.ndarray) -> np.ndarray:
  """Graph segmentation on RGB + log depth + normals (the paper's 2.5D segmentation). (H, W)."""
  logd = np.where(valid, np.log(np.maximum(depth, 1e-3)), 0.0)
  return felzenszwalb_segments(
      np.concatenate([0.5 * rgb, logd[..., None], normals_cam], axis=-1))


def _imagenet_table() -> np.ndarray:
  table = np.zeros((len(cats.CATEGORIES), cats.NUM_IMAGENET))
  for i, c in enumerate(cats.CATEGORIES):
    for idx, w in c.imagenet.items():
      table[i, idx] = w
  return table


_IMAGENET = _imagenet_table()


def class_object(category: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """ImageNet-1k distribution (1000,): visible area of each category spread over its classes.

  95% of the mass follows the visible objects, 5% is uniform (like a distilled softmax);
  a view that shows no object with an ImageNet class gets the uniform distribution.
  """
  counts = np.bincount(category[valid].ravel(), minlength=len(cats.CATEGORIES))
  mass = counts @ _IMAGENET
  uniform = np.full(cats.NUM_IMAGENET, 1.0 / cats.NUM_IMAGENET)
  if mass.sum() <= 0:
    return uniform
  return 0.95 * mass / mass.sum() + 0.05 * uniform


def class_scene(room_type_px: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """Places365 distribution (365,): 90% on the room types in view by visible area, 10% spread
  over the 63 workspace-and-home classes the original scene task keeps."""
  out = np.zeros(cats.NUM_PLACES)
  kept = np.array(cats.PLACES_WORKSPACE_AND_HOME)
  out[kept] = 0.1 / len(kept)
  counts = np.bincount(room_type_px[valid].ravel(), minlength=len(cats.ROOM_TYPES))
  if counts.sum() == 0:
    return out / out.sum()
  for t, n in enumerate(counts):
    out[cats.ROOM_TYPES[t].places] += 0.9 * n / counts.sum()
  return out
