"""Camera geometry of the real point_info files: poses, room layout and vanishing points.

The released point_info JSON gives each camera as `camera_location` (metres, world frame) and
`camera_rotation_final`: Euler angles in radians, *static* axes x then y then z ("sxyz" in
transforms3d's naming), so the camera-to-world rotation is `R = Rz(c) @ Ry(b) @ Rx(a)`. These
functions compute the low-dimensional targets from them by the same definitions as the original
`code/lib/data/load_ops.py` (StanfordVL/taskonomy), without the original's dataset-specific
standardisation (its means/stds were measured on the real buildings and would skew synthetic
targets; the training code may standardise with statistics of its own split).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_EPS = np.finfo(np.float64).eps * 4.0


def euler_sxyz_to_matrix(angles: Sequence[float]) -> np.ndarray:
  """(3,) static-xyz Euler angles (radians) -> (3, 3) rotation `Rz(c) Ry(b) Rx(a)`."""
  a, b, c = (float(x) for x in angles)
  ca, sa, cb, sb, cc, sc = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(c), \
      math.sin(c)
  rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
  ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
  rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
  return rz @ ry @ rx


def matrix_to_euler_sxyz(m: np.ndarray) -> np.ndarray:
  """(3, 3) rotation -> (3,) static-xyz Euler angles, the inverse of `euler_sxyz_to_matrix`."""
  m = np.asarray(m, np.float64)
  cy = math.hypot(m[0, 0], m[1, 0])
  if cy > _EPS:
    return np.array([math.atan2(m[2, 1], m[2, 2]), math.atan2(-m[2, 0], cy),
                     math.atan2(m[1, 0], m[0, 0])])
  return np.array([math.atan2(-m[1, 2], m[1, 1]), math.atan2(-m[2, 0], cy), 0.0])


def camera_matrix(info: Mapping[str, Any], flip_xy: bool = False) -> np.ndarray:
  """(4, 4) camera-to-world transform of a point_info dict.

  `flip_xy` applies the original code's row swap (x' = y, y' = -x) that its room-layout and
  vanishing-point targets use.
  """
  m = np.eye(4)
  m[:3, :3] = euler_sxyz_to_matrix(info["camera_rotation_final"])
  m[:3, 3] = np.asarray(info["camera_location"], np.float64)
  if flip_xy:
    m[[0, 1]] = np.stack([m[1], -m[0]])
  return m


def relative_pose(info1: Mapping[str, Any], info2: Mapping[str, Any]) -> np.ndarray:
  """(6,) pose of camera 1 relative to camera 2: Euler sxyz of `R2^T R1`, then `R2^T (t1 - t2)`.

  This is the fixated / non-fixated camera-pose target (`calculate_relative_camera_pose`).
  """
  r1 = euler_sxyz_to_matrix(info1["camera_rotation_final"])
  r2 = euler_sxyz_to_matrix(info2["camera_rotation_final"])
  t = r2.T @ (np.asarray(info1["camera_location"], np.float64)
              - np.asarray(info2["camera_location"], np.float64))
  return np.concatenate([matrix_to_euler_sxyz(r2.T @ r1), t]).astype(np.float32)


def egomotion(infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
  """(18,) triplet egomotion: the relative poses of the pairs (0,1), (0,2), (1,2) of 3 views."""
  if len(infos) != 3:
    raise ValueError(f"egomotion needs 3 views, got {len(infos)}")
  return np.concatenate([relative_pose(infos[i], infos[j])
                         for i, j in ((0, 1), (0, 2), (1, 2))]).astype(np.float32)


def _z_rotations() -> list[np.ndarray]:
  return [euler_sxyz_to_matrix((0.0, 0.0, k * math.pi / 2)) for k in range(4)]


def _world_to_cam_dirs(dirs: np.ndarray, info: Mapping[str, Any]) -> np.ndarray:
  rot = camera_matrix(info, flip_xy=True)[:3, :3]
  return dirs @ rot  # (N, 3): rot^T applied to each row


def _degrees_from_forward(v: np.ndarray) -> float:
  return math.degrees(math.acos(float(np.clip(np.dot(v, [0.0, 0.0, -1.0]), -1.0, 1.0))))


def vanishing_points(info: Mapping[str, Any]) -> np.ndarray:
  """(9,) the three world axes seen from the camera, after the quarter turn about z that makes
  them best defined (`vanishing_point_well_defined` of the original)."""
  best: tuple[float, int, np.ndarray] | None = None
  for k, rot in enumerate(_z_rotations()):
    x_cam, y_cam = _world_to_cam_dirs(np.stack([rot[:, 0], rot[:, 1]]), info)
    score = abs(_degrees_from_forward(x_cam)) + abs(_degrees_from_forward(y_cam))
    if best is None or score < best[0] - 1e-9:
      best = (score, k, np.linalg.inv(rot))
  assert best is not None
  r = best[2] @ camera_matrix(info, flip_xy=True)[:3, :3]
  return np.linalg.inv(r).T.reshape(-1).astype(np.float32)  # rows: R^-1 e_x, R^-1 e_y, R^-1 e_z


def room_layout(info: Mapping[str, Any]) -> np.ndarray:
  """(9,) room box in the camera frame: centre (3), camera Euler angles (3), extents (3).

  Needs `bounding_box_ranges` ({'x': [min, max], 'y': ..., 'z': ...}, metres, world frame) in the
  point_info; follows `room_layout` of the original, with the world turned by the quarter turn
  that brings the camera's viewing direction nearest the world x axis.
  """
  if "bounding_box_ranges" not in info:
    raise KeyError("point_info has no 'bounding_box_ranges': room_layout needs the room box")
  bb = info["bounding_box_ranges"]
  ranges = np.array([bb["x"], -np.asarray(bb["y"], np.float64)[::-1], bb["z"]], np.float64)
  cam = camera_matrix(info, flip_xy=True)
  best: tuple[float, int, np.ndarray] | None = None
  for k, rot in enumerate(_z_rotations()):
    x_cam = _world_to_cam_dirs(rot[:, :1].T, info)[0]
    score = _degrees_from_forward(x_cam)
    if best is None or score < best[0] - 1e-9:
      best = (score, k, np.linalg.inv(rot))
  assert best is not None
  world_rot = np.eye(4)
  world_rot[:3, :3] = best[2]
  new_ranges = world_rot[:3, :3] @ ranges
  new_ranges = np.sort(new_ranges, axis=1)
  cam = world_rot @ cam
  vertices = np.array(list(itertools.product(*new_ranges)))  # (8, 3)
  homog = np.concatenate([vertices, np.ones((8, 1))], 1)
  in_cam = (homog @ np.linalg.inv(cam).T)[:, :3]
  extents = new_ranges[:, 1] - new_ranges[:, 0]
  return np.concatenate([in_cam.mean(0), matrix_to_euler_sxyz(cam[:3, :3]), extents]).astype(
      np.float32)
