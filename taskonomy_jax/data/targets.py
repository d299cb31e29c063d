"""Training targets and valid masks of each task, from the stored domains of its view(s).

`single_view_target(task, stored)` reads the stored forms (see `encodings.py`) of one view and
returns `(target, mask)`; `multi_view_target(task, infos, ...)` does the same for the pose,
egomotion and point-matching tasks from the views' point_info dicts. The target transform of each
task is a registry entry (`TARGETS`), following the original task-bank configs
(`taskbank/experiments/final/*/config.py`):

- depth (z-buffer and euclidean): `log(1 + raw) / log(2^16)` of the 1/512 m values, in [0, 1];
  pixels with raw >= 64500 are masked (`resize_and_rescale_image_log`, `mask_if_channel_ge`).
- normal, reshading, edges, keypoints, rgb tasks: the stored image rescaled from [0, the
  encoding's full-scale code] to [-1, 1] (`resize_rescale_image` with `new_scale=[-1, 1]`);
  normals thus stay in the dataset's camera frame (x right, y down, z to the camera), the frame
  of the released Taskonomy networks.
- edge_occlusion: then blurred with a Gaussian of 4 pixels at 256x256, scaled with the view
  (`resize_rescale_image_gaussian_blur`, blur_strength 4): 1 pixel at 64x64.
- curvature: the first two stored channels standardised with the original's constants
  (`curvature_preprocess`).
- unsupervised segmentations: int32 segment ids (the metric-embedding loss samples pixel pairs).
- semantic segmentation: int32 labels in [0, 17) and the mask of labelled pixels.
- class_object: softmax of the stored logits (1000); class_scene: the 63 kept Places classes,
  renormalised.
- room layout, vanishing points, poses, egomotion: `geometry.py`, unstandardised.
- point matching: int32 1 if both views fixate the same point, else 0.

Pixel targets are (H, W, C) float32 or (H, W) int32; pixel masks (H, W) bool; vector targets (C,)
float32 with a scalar bool mask. Every function also takes a batch (a leading axis B on every
array, point_info an array of JSON texts) and returns the batched target and mask, so pipelines
decode whole batches with vectorised numpy. Colorization (Lab bins) and jigsaw (tile permutations) are made
from RGB by the model's preprocessing, not here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from taskonomy_jax import tasks
from taskonomy_jax.data import encodings as enc
from taskonomy_jax.data import geometry

Stored = Mapping[str, Any]
Target = tuple[np.ndarray, np.ndarray]

_LOG_DEPTH_NORMALISER = math.log(2.0 ** 16)
# Mean and std of the two stored curvature channels over the real dataset (`curvature_preprocess`).
_CURVATURE_MEAN = np.array([123.572, 120.1], np.float32)
_CURVATURE_STD = np.array([31.922, 21.658], np.float32)


def _lookup_table(dtype: type, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
  """float32 table of `fn` over every code of an integer dtype."""
  codes = np.arange(np.iinfo(dtype).max + 1, dtype=np.float64)
  return fn(codes).astype(np.float32)


# log1p per pixel measured slower than this gather; for the affine rescalings below it is not.
_LOG_DEPTH = _lookup_table(np.uint16, lambda c: np.log1p(c) / _LOG_DEPTH_NORMALISER)


def _rescale(stored: np.ndarray, domain: str) -> np.ndarray:
  """Stored codes ([B,] H, W[, C]) -> float32 ([B,] H, W, C), [0, full-scale] -> [-1, 1]."""
  x = np.asarray(stored).astype(np.float32) * (2.0 / enc.FULL_SCALE_CODE[domain]) - 1.0
  return x[..., None] if enc.get(domain).stored_channels == 1 else x


def _ones(stored: np.ndarray, domain: str) -> np.ndarray:
  """All-valid pixel mask ([B,] H, W) of a stored image."""
  shape = np.shape(stored)
  return np.ones(shape if enc.get(domain).stored_channels == 1 else shape[:-1], bool)


def _depth_mask(s: Stored) -> np.ndarray:
  return enc.depth_valid(s["depth_zbuffer"])


def _image(domain: str, mask: str = "none") -> Callable[[Stored], Target]:
  def fn(s: Stored) -> Target:
    return _rescale(s[domain], domain), (_depth_mask(s) if mask == "depth"
                                         else _ones(s[domain], domain))
  return fn


# The original's occlusion-edge blur, in pixels of a 256x256 target.
_OCCLUSION_BLUR_AT_256 = 4.0


def _blurred_occlusion_edges(s: Stored) -> Target:
  """Occlusion edges in [-1, 1], blurred as the original task bank's targets: a thin edge
  becomes a band that an L1 regressor can place (unblurred, the zero image is nearly the best
  L1 prediction: 93% of pixels are background)."""
  x, mask = _image("edge_occlusion", mask="depth")(s)
  side = x.shape[-2]
  sigma = _OCCLUSION_BLUR_AT_256 * side / 256
  # Blur each view's rows and columns only: not across the batch or channel axes.
  sigmas = (0.0,) * (x.ndim - 3) + (sigma, sigma, 0.0)
  return ndimage.gaussian_filter(x, sigmas).astype(np.float32), mask


def _depth(domain: str) -> Callable[[Stored], Target]:
  def fn(s: Stored) -> Target:
    raw = np.asarray(s[domain])
    valid = enc.depth_valid(raw) & _depth_mask(s)
    return np.where(valid, _LOG_DEPTH[raw], np.float32(0.0))[..., None], valid
  return fn


def _curvature(s: Stored) -> Target:
  raw = np.asarray(s["principal_curvature"])
  target = (raw[..., :2].astype(np.float32) - _CURVATURE_MEAN) / _CURVATURE_STD
  return target, _depth_mask(s) & enc.curvature_valid(raw)


def _segments(domain: str) -> Callable[[Stored], Target]:
  def fn(s: Stored) -> Target:
    return enc.decode_segment_ids(s[domain]), _ones(s[domain], domain)
  return fn


def _semantic(s: Stored) -> Target:
  raw = s["segment_semantic"]
  return enc.decode_semantic(raw), enc.semantic_labelled(raw)


def _vector(fn: Callable[[Stored], np.ndarray]) -> Callable[[Stored], Target]:
  def wrapped(s: Stored) -> Target:
    v = np.asarray(fn(s), np.float32)
    return v, np.ones(v.shape[:-1], bool)
  return wrapped


def _from_info(fn: Callable[[dict[str, Any]], np.ndarray]) -> Callable[[Stored], np.ndarray]:
  """A point_info function, applied per example when the examples are batched."""
  def wrapped(s: Stored) -> np.ndarray:
    info = s["point_info"]
    if isinstance(info, np.ndarray) and info.ndim:  # a batch of JSON texts
      return np.stack([fn(enc.decode_point_info(i)) for i in info])
    return fn(enc.decode_point_info(info.item() if isinstance(info, np.ndarray) else info))
  return wrapped


TARGETS: dict[str, Callable[[Stored], Target]] = {
    "autoencoding": _image("rgb"),
    "denoising": _image("rgb"),
    "inpainting": _image("rgb"),
    "edge_texture": _image("edge_texture"),
    "keypoints2d": _image("keypoints2d"),
    "segment_unsup2d": _segments("segment_unsup2d"),
    "edge_occlusion": _blurred_occlusion_edges,
    "keypoints3d": _image("keypoints3d", mask="depth"),
    "reshading": _image("reshading", mask="depth"),
    "depth_zbuffer": _depth("depth_zbuffer"),
    "depth_euclidean": _depth("depth_euclidean"),
    "normal": _image("normal", mask="depth"),
    "curvature": _curvature,
    "segment_unsup25d": _segments("segment_unsup25d"),
    "room_layout": _vector(_from_info(geometry.room_layout)),
    "vanishing_point": _vector(_from_info(geometry.vanishing_points)),
    "segment_semantic": _semantic,
    "class_object": _vector(lambda s: enc.decode_class_object(s["class_object"])),
    "class_scene": _vector(lambda s: enc.scene_63(s["class_scene"])),
}

MULTI_VIEW = ("fixated_pose", "nonfixated_pose", "egomotion", "point_matching")


def single_view_target(task: str, stored: Stored) -> Target:
  """`(target, mask)` of a one-view task from the stored domains of that view.

  Raises:
    ValueError: the task takes several views, or has no dataset target (colorization, jigsaw,
      random); KeyError naming the domain if `stored` lacks a domain the task needs.
  """
  spec = tasks.get(task)
  if spec.num_views > 1:
    raise ValueError(f"{spec.name} takes {spec.num_views} views: use multi_view_target")
  if spec.name not in TARGETS:
    raise ValueError(f"{spec.name} has no dataset target (made from RGB by the model's "
                     f"preprocessing); tasks with one: {', '.join(TARGETS)}")
  missing = [d for d in spec.domains if d not in stored]
  if spec.valid_mask == "depth" and "depth_zbuffer" not in stored:
    missing.append("depth_zbuffer")
  if missing:
    raise KeyError(f"{spec.name} needs domains {sorted(set(missing))}; the view has "
                   f"{sorted(stored)}")
  return TARGETS[spec.name](stored)


def multi_view_target(task: str, infos: Sequence[Mapping[str, Any]]) -> Target:
  """`(target, mask)` of a multi-view task from its views' point_info dicts (in view order)."""
  spec = tasks.get(task)
  if spec.name not in MULTI_VIEW:
    raise ValueError(f"{spec.name} is not a multi-view task; those are {', '.join(MULTI_VIEW)}")
  if len(infos) != spec.num_views:
    raise ValueError(f"{spec.name} takes {spec.num_views} views, got {len(infos)}")
  infos = [enc.decode_point_info(i) for i in infos]
  if spec.name in ("fixated_pose", "nonfixated_pose"):
    return geometry.relative_pose(infos[0], infos[1]), np.array(True)
  if spec.name == "egomotion":
    return geometry.egomotion(infos), np.array(True)
  same = _point_key(infos[0]) == _point_key(infos[1])
  return np.array(int(same), np.int32), np.array(True)


def _point_key(info: Mapping[str, Any]) -> tuple[Any, Any]:
  building = info.get("building", info.get("model_id"))
  return building, info.get("point_uuid", info.get("point"))
