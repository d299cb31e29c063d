"""Room layout (9-d) and vanishing points (9-d) from the room box and the camera.

Both follow the original loaders (`room_layout`, `vanishing_point_well_defined` in the original
`load_ops.py`), written in this package's camera conventions (`camera` module):

* The world is first turned about +z by a multiple of 90 degrees so that its axes are "well
  defined" relative to the camera (the original picks the turn whose x axis is closest to the
  viewing direction for the layout, and whose x and y axes are jointly closest for vanishing
  points). Walls are axis-aligned, so the turned axes are still the room's axes.
* `vanishing_point` = the turned world's x, y and z axes expressed in the camera frame
  (3 unit vectors, 9 numbers): the three vanishing directions on the Gaussian sphere.
* `room_layout` = room box centre in the camera frame (3, metres), the `sxyz` Euler angles of
  the camera rotation relative to the turned world (3, radians), the box extents along the turned
  axes (3, metres). Unnormalised: the original standardises with dataset mean/std in the loader.
"""

from __future__ import annotations

import numpy as np

from taskonomy_jax.world import camera as cam


def _turn(k: int) -> np.ndarray:
  """Rotation about +z by k quarter turns; its columns are the turned world axes."""
  c, s = np.round(np.cos(k * np.pi / 2)), np.round(np.sin(k * np.pi / 2))
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _angle(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0)))


def layout_turn(rot: np.ndarray) -> np.ndarray:
  """Quarter turn whose x axis is closest to the camera's viewing direction (3, 3)."""
  forward = -rot[:, 2]
  return _turn(min(range(4), key=lambda k: _angle(_turn(k)[:, 0], forward)))


def vanishing_turn(rot: np.ndarray) -> np.ndarray:
  """Quarter turn whose x and y axes are jointly closest to the viewing direction (3, 3)."""
  forward = -rot[:, 2]
  k = min(range(4), key=lambda k: _angle(_turn(k)[:, 0], forward)
          + _angle(_turn(k)[:, 1], forward))
  return _turn(k)


def vanishing_points(rot: np.ndarray) -> np.ndarray:
  """(3, 3): rows are the turned world x, y, z axes in the camera frame (unit vectors)."""
  w = vanishing_turn(rot)
  return (rot.T @ w).T


def room_layout(location: np.ndarray, rot: np.ndarray, room_lo: np.ndarray,
                room_hi: np.ndarray) -> np.ndarray:
  """The 9-d room layout of a camera (location, R cam->world) in the room box [lo, hi]."""
  w = layout_turn(rot)
  centre = cam.world_to_camera(0.5 * (room_lo + room_hi), location, rot)
  rel = w.T @ rot
  extents = np.abs(w.T @ (room_hi - room_lo))
  return np.concatenate([centre, cam.matrix_to_euler(rel), extents])


def layout_box_in_camera(layout: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Inverts `room_layout`: (centre (3,), axes (3, 3) rows = box axes in camera frame,
  half extents (3,)), all in the camera frame."""
  centre, euler, extents = layout[:3], layout[3:6], layout[6:9]
  rel = cam.euler_to_matrix(euler)       # camera -> turned world
  axes = rel                              # row i: turned world axis i in camera coordinates
  return centre, axes, 0.5 * extents
