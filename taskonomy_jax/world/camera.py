"""Camera conventions of the world, written down once and used everywhere.

Pose, egomotion and point-matching targets are computed from these later, so every other module
of `taskonomy_jax.world` (and the input pipeline) goes through the functions here.

Conventions (those of the real Taskonomy `point_info` files, which come from Blender):

* **World frame**: right-handed, metres, **+z up** (floor at z = 0).
* **Camera frame**: OpenGL / Blender camera: **x right, y up, z backward**; the camera looks
  along **-z**. Normals in the `normal` domain are expressed in this frame, so a wall facing the
  camera has normal (0, 0, 1).
* **Rotation**: `camera_rotation_final = (rx, ry, rz)` are Euler angles in radians about the
  *static* world axes applied in the order x, y, z (transforms3d's `'sxyz'`, Blender's `'XYZ'`):
  `R = Rz(rz) @ Ry(ry) @ Rx(rx)`. `R` maps camera coordinates to world coordinates:
  `p_world = R @ p_cam + camera_location`. The identity looks straight down; a level camera has
  `rx = pi/2`; cameras never roll (`ry = 0` for look-at cameras), as in the real dataset.
* **Relative pose** (the original `calculate_relative_camera_pose`): for views 1 and 2,
  `R_rel = R2.T @ R1` as `'sxyz'` Euler angles and `t_rel = R2.T @ (c1 - c2)`.
* **Intrinsics**: square pixels, principal point at the image centre; `field_of_view_rads` is
  the full horizontal (= vertical, images are square) field of view;
  `f = (W / 2) / tan(fov / 2)` pixels. Pixel (row i, column j) has its centre at image
  coordinates `(u, v) = (j + 0.5, i + 0.5)`, u to the right and v down, so the optical axis
  passes through `(W / 2, H / 2)`, the corner shared by the four central pixels.
* **Depth**: `depth_euclidean` is the distance along the pixel's ray; `depth_zbuffer` is the
  distance along the optical axis, `-z_cam`.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

# scipy's lower-case axis strings are extrinsic (static) rotations: 'xyz' == transforms3d 'sxyz'.
_EULER_AXES = "xyz"
WORLD_UP = np.array([0.0, 0.0, 1.0])


def euler_to_matrix(euler: np.ndarray) -> np.ndarray:
  """Static-axes XYZ Euler angles (3,) -> camera-to-world rotation matrix (3, 3)."""
  return Rotation.from_euler(_EULER_AXES, np.asarray(euler, np.float64)).as_matrix()


def matrix_to_euler(rot: np.ndarray) -> np.ndarray:
  """Rotation matrix (3, 3) -> static-axes XYZ Euler angles (3,) in radians."""
  return Rotation.from_matrix(np.asarray(rot, np.float64)).as_euler(_EULER_AXES)


def matrix_to_quaternion_wxyz(rot: np.ndarray) -> np.ndarray:
  """Rotation matrix (3, 3) -> unit quaternion (w, x, y, z) (Blender's order)."""
  x, y, z, w = Rotation.from_matrix(np.asarray(rot, np.float64)).as_quat()
  return np.array([w, x, y, z])


def look_at(location: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Camera-to-world rotation (3, 3) of a roll-free camera at `location` looking at `target`.

  The camera's -z axis points at the target and its x axis is horizontal (no roll), like
  Blender's track-to constraint used to aim the real dataset's cameras at their point.
  """
  forward = np.asarray(target, np.float64) - np.asarray(location, np.float64)
  forward /= np.linalg.norm(forward)
  right = np.cross(forward, WORLD_UP)
  norm = np.linalg.norm(right)
  if norm < 1e-6:
    raise ValueError("look_at: the camera looks straight up or down; its roll is undefined")
  right /= norm
  up = np.cross(right, forward)
  return np.stack([right, up, -forward], axis=1)


def focal_length_px(fov_rads: float, resolution: int) -> float:
  """Focal length in pixels of a square image of `resolution` pixels and full FOV `fov_rads`."""
  return 0.5 * resolution / np.tan(0.5 * fov_rads)


def intrinsics(fov_rads: float, resolution: int) -> np.ndarray:
  """The 3x3 pinhole matrix K (pixel coordinates u right, v down, centre at (W/2, H/2))."""
  f = focal_length_px(fov_rads, resolution)
  c = 0.5 * resolution
  return np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])


def pixel_rays_camera(fov_rads: float, resolution: int,
                      uv: np.ndarray | None = None) -> np.ndarray:
  """Unnormalised ray directions in the camera frame, with z = -1.

  Args:
    fov_rads: full field of view.
    resolution: image side H = W.
    uv: optional (..., 2) image coordinates (u right, v down); default every pixel centre.

  Returns:
    (..., 3) directions (x, y, -1); for the default, (H, W, 3).
  """
  if uv is None:
    c = np.arange(resolution, dtype=np.float64) + 0.5
    u, v = np.meshgrid(c, c, indexing="xy")
  else:
    uv = np.asarray(uv, np.float64)
    u, v = uv[..., 0], uv[..., 1]
  f = focal_length_px(fov_rads, resolution)
  half = 0.5 * resolution
  x = (u - half) / f
  y = -(v - half) / f
  return np.stack([x, y, -np.ones_like(x)], axis=-1)


def world_to_camera(points: np.ndarray, location: np.ndarray, rot: np.ndarray) -> np.ndarray:
  """World points (..., 3) -> camera-frame points (..., 3) for pose (location, R cam->world)."""
  return (np.asarray(points, np.float64) - location) @ rot


def camera_to_world(points: np.ndarray, location: np.ndarray, rot: np.ndarray) -> np.ndarray:
  """Camera-frame points (..., 3) -> world points (..., 3)."""
  return np.asarray(points, np.float64) @ rot.T + location


def project(points_world: np.ndarray, location: np.ndarray, rot: np.ndarray, fov_rads: float,
            resolution: int) -> tuple[np.ndarray, np.ndarray]:
  """Projects world points (..., 3) into the image.

  Returns:
    uv: (..., 2) image coordinates (u right, v down; pixel (i, j) covers [j, j+1) x [i, i+1)).
    z_depth: (...,) distance along the optical axis (positive in front of the camera).
  """
  p = world_to_camera(points_world, location, rot)
  z_depth = -p[..., 2]
  f = focal_length_px(fov_rads, resolution)
  half = 0.5 * resolution
  with np.errstate(divide="ignore", invalid="ignore"):
    u = f * p[..., 0] / z_depth + half
    v = -f * p[..., 1] / z_depth + half
  return np.stack([u, v], axis=-1), z_depth


def relative_pose(loc1: np.ndarray, rot1: np.ndarray, loc2: np.ndarray,
                  rot2: np.ndarray) -> np.ndarray:
  """The 6-d relative pose of view 1 w.r.t. view 2 as the original code defines it (unnormalised).

  Returns:
    (6,): `sxyz` Euler angles of `R2.T @ R1`, then `R2.T @ (c1 - c2)` in metres.
  """
  rel_rot = rot2.T @ rot1
  trans = rot2.T @ (np.asarray(loc1) - np.asarray(loc2))
  return np.concatenate([matrix_to_euler(rel_rot), trans])
