"""A PNG contact sheet of every domain for a few views (`taskonomy world preview`).

    taskonomy world preview --seed 0 --views 4 --resolution 128 --out world_preview.png
"""

from __future__ import annotations

import io
import itertools
import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from taskonomy_jax import files
from taskonomy_jax.world import camera as cam
from taskonomy_jax.world import categories as cats
from taskonomy_jax.world import layout
from taskonomy_jax.world.config import WorldConfig
from taskonomy_jax.world.render import View, render_views
from taskonomy_jax.world.scene import generate_building

_PIXEL_DOMAINS = ("rgb", "depth_zbuffer", "depth_euclidean", "mask_valid", "normal", "reshading",
                  "principal_curvature", "edge_occlusion", "edge_texture", "keypoints2d",
                  "keypoints3d", "segment_unsup2d", "segment_unsup25d", "segment_semantic")


def _palette(n: int, seed: int = 7) -> np.ndarray:
  return np.random.default_rng(seed).uniform(0.15, 1.0, (max(n, 1), 3))


def _depth_image(d: np.ndarray, valid: np.ndarray) -> np.ndarray:
  lo, hi = (d[valid].min(), d[valid].max()) if valid.any() else (0.0, 1.0)
  x = np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1)
  img = matplotlib.colormaps["viridis"](x)[..., :3]
  return np.where(valid[..., None], img, 0.0)


def domain_image(view: View, name: str) -> np.ndarray:
  """A (H, W, 3) picture in [0, 1] of one pixel domain of a view."""
  x = view.domains[name]
  valid = view.domains["mask_valid"]
  if name == "rgb":
    return x
  if name.startswith("depth"):
    return _depth_image(x, valid)
  if name == "mask_valid":
    return np.repeat(x[..., None].astype(float), 3, -1)
  if name == "normal":
    return np.where(valid[..., None], 0.5 * (x + 1), 0.0)
  if name == "principal_curvature":
    c = np.tanh(x / 4.0)
    return np.stack([0.5 + 0.5 * c[..., 0], 0.5 + 0.5 * c[..., 1], np.full(c.shape[:2], 0.5)], -1)
  if name == "edge_occlusion":
    return np.repeat(np.clip(x / 2.0, 0, 1)[..., None], 3, -1)
  if name.startswith("segment_unsup"):
    return _palette(int(x.max()) + 1, 3)[x]
  if name == "segment_semantic":
    pal = _palette(17, 11)
    pal[0] = 0.0
    return pal[x]
  return np.repeat(np.clip(x, 0, 1)[..., None], 3, -1)


def layout_overlay(view: View) -> np.ndarray:
  """RGB with the room box (from `room_layout`) and the vanishing directions drawn on it."""
  info = view.point_info
  res = info["resolution"]
  img = view.domains["rgb"].copy()
  centre, axes, half = layout.layout_box_in_camera(np.array(info["room_layout"]))
  corners = np.array([centre + axes.T @ (np.array(s) * half)
                      for s in itertools.product((-1, 1), repeat=3)])
  f = cam.focal_length_px(info["field_of_view_rads"], res)
  for i, j in itertools.combinations(range(8), 2):
    if np.sum(np.abs(np.array(list(itertools.product((-1, 1), repeat=3))[i]) -
                     np.array(list(itertools.product((-1, 1), repeat=3))[j]))) != 2:
      continue
    for s in np.linspace(0, 1, 4 * res):
      p = corners[i] * (1 - s) + corners[j] * s
      if p[2] > -0.05:
        continue
      u, v = f * p[0] / -p[2] + res / 2, -f * p[1] / -p[2] + res / 2
      if 0 <= u < res and 0 <= v < res:
        img[int(v), int(u)] = (1.0, 0.1, 0.1)
  vps = np.array(info["vanishing_point"]).reshape(3, 3)
  for vp, col in zip(vps, ((1, 0, 0), (0, 1, 0), (0, 0, 1)), strict=True):
    for sign in (1, -1):
      d = sign * vp
      if d[2] < -0.05:
        u, v = f * d[0] / -d[2] + res / 2, -f * d[1] / -d[2] + res / 2
        for a in np.linspace(0, 1, res):
          uu, vv = res / 2 + a * (u - res / 2), res / 2 + a * (v - res / 2)
          if 0 <= uu < res and 0 <= vv < res:
            img[int(vv), int(uu)] = col
  return img


def _top(dist: np.ndarray, names: dict[int, str], k: int = 2) -> str:
  idx = np.argsort(dist)[::-1][:k]
  return "\n".join(f"{names.get(int(i), str(int(i)))} {dist[i]:.2f}" for i in idx)


def write_contact_sheet(views: list[View], out: str | os.PathLike) -> pathlib.Path:
  """Draws every domain of `views` (rows) into one PNG, written atomically."""
  obj_names = {i: c.name for c in cats.CATEGORIES for i in c.imagenet}
  scene_names = {r.places: r.name for r in cats.ROOM_TYPES}
  cols = [*_PIXEL_DOMAINS, "room_layout + vanishing_point", "class_object / class_scene"]
  fig, axes = plt.subplots(len(views), len(cols), figsize=(1.6 * len(cols), 1.8 * len(views)),
                           squeeze=False)
  for r, view in enumerate(views):
    for c, name in enumerate(cols):
      ax = axes[r, c]
      ax.set_xticks([])
      ax.set_yticks([])
      if name in _PIXEL_DOMAINS:
        ax.imshow(domain_image(view, name), interpolation="nearest")
      elif name.startswith("room_layout"):
        ax.imshow(layout_overlay(view), interpolation="nearest")
      else:
        ax.axis("off")
        ax.text(0, 0.5, "obj: " + _top(view.domains["class_object"], obj_names) + "\nscene: " +
                _top(view.domains["class_scene"], scene_names, 1), fontsize=6, va="center")
      if r == 0:
        ax.set_title(name.replace("_", "\n", 1), fontsize=6)
    axes[r, 0].set_ylabel(f"{view.building}\np{view.point} v{view.view}", fontsize=6)
  fig.tight_layout()
  out = pathlib.Path(out)
  buf = io.BytesIO()
  try:
    fig.savefig(buf, format="png", dpi=110)
  finally:
    plt.close(fig)
  files.write_atomic(out, buf.getvalue())
  return out


def preview(seed: int, num_views: int, out: str | os.PathLike,
            resolution: int = 128) -> pathlib.Path:
  """Renders the first `num_views` views of building `seed` and writes the contact sheet."""
  if num_views < 1:
    raise ValueError(f"--views must be >= 1, got {num_views}")
  cfg = WorldConfig(resolution=resolution)
  views = list(itertools.islice(render_views(generate_building(seed, cfg), cfg), num_views))
  return write_contact_sheet(views, out)
