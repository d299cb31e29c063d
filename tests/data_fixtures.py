"""Small random views in the world's physical forms, for data tests that must not need the world.

`random_view` draws every domain of `taskonomy_jax.world`'s contract (shapes, dtypes, ranges) from a
seeded generator; `write_dataset` writes a few buildings of them in a real on-disk layout.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from taskonomy_jax.data import encodings as enc
from taskonomy_jax.data import layout


def random_view(building: str, point: int, view: int, resolution: int = 16,
                seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """(physical domains, point_info) of one made-up view; the point's location is shared."""
  rng = np.random.default_rng([seed, point, view, sum(map(ord, building))])
  h = w = resolution
  valid = rng.random((h, w)) > 0.05
  depth = rng.uniform(0.5, 12.0, (h, w)).astype(np.float32) * valid
  normal = rng.normal(size=(h, w, 3)).astype(np.float32)
  normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
  k = np.sort(rng.uniform(-5, 5, (h, w, 2)), axis=-1)[..., ::-1].astype(np.float32)
  probs = rng.dirichlet(np.ones(1000)).astype(np.float32)
  scene = rng.dirichlet(np.ones(365)).astype(np.float32)
  domains = {
      "rgb": rng.random((h, w, 3), np.float32),
      "depth_zbuffer": depth, "depth_euclidean": depth * 1.1, "mask_valid": valid,
      "normal": normal, "reshading": rng.random((h, w), np.float32),
      "principal_curvature": k, "edge_occlusion": rng.uniform(0, 3, (h, w)).astype(np.float32),
      "edge_texture": rng.random((h, w), np.float32),
      "keypoints2d": rng.random((h, w), np.float32),
      "keypoints3d": rng.random((h, w), np.float32),
      "segment_unsup2d": rng.integers(0, 300, (h, w)).astype(np.int32),
      "segment_unsup25d": rng.integers(0, 40, (h, w)).astype(np.int32),
      "segment_semantic": rng.integers(0, 17, (h, w)).astype(np.int32),
      "class_object": probs, "class_scene": scene,
  }
  prng = np.random.default_rng([seed, point, sum(map(ord, building))])
  point_location = prng.uniform(-3, 3, 3)
  cam = point_location + rng.uniform(-2, 2, 3)
  info = {
      "building": building, "model_id": building, "point_uuid": f"{building}_p{point}",
      "view_id": view, "point_location": point_location.tolist(),
      "camera_location": cam.tolist(),
      "camera_rotation_final": [float(rng.uniform(1.2, 1.9)), 0.0,
                                float(rng.uniform(-np.pi, np.pi))],
      "field_of_view_rads": 1.0, "resolution": resolution,
      "bounding_box_ranges": {"x": [-4.0, 4.0], "y": [-3.0, 3.5], "z": [-1.5, 1.3]},
      "nonfixated_points_in_view": [],
  }
  return domains, info


def views_of(buildings: dict[str, tuple[int, int]]) -> list[layout.ViewKey]:
  """{building: (points, views per point)} -> every ViewKey."""
  return [layout.ViewKey(b, p, v) for b, (n_p, n_v) in buildings.items()
          for p in range(n_p) for v in range(n_v)]


def write_dataset(root: pathlib.Path, layout_name: layout.Layout,
                  buildings: dict[str, tuple[int, int]], resolution: int = 16,
                  domains: tuple[str, ...] | None = None, seed: int = 0
                  ) -> dict[layout.ViewKey, dict[str, Any]]:
  """Writes the views of `buildings` under `root`; returns view -> stored domains written."""
  written = {}
  for key in views_of(buildings):
    phys, info = random_view(key.building, key.point, key.view, resolution, seed)
    names = domains or (*phys, "point_info")
    stored = enc.encode_view(phys, info, names=tuple(names))
    layout.write_view(root, layout_name, key, stored)
    written[key] = stored
  return written
