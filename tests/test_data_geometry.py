"""Camera geometry of point_info targets: rotations, poses, room layout, vanishing points."""

import math

import numpy as np
import pytest

from taskonomy_jax.data import geometry, targets


def _axis_rotation(axis: int, angle: float) -> np.ndarray:
  c, s = math.cos(angle), math.sin(angle)
  i, j = [k for k in range(3) if k != axis]
  m = np.eye(3)
  m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
  if axis == 1:  # right-handed rotation about y
    m[0, 2], m[2, 0] = s, -s
  return m


def test_euler_sxyz_is_rz_ry_rx_and_inverts():
  rng = np.random.default_rng(0)
  for _ in range(50):
    a, b, c = rng.uniform(-math.pi, math.pi), rng.uniform(-1.5, 1.5), rng.uniform(-3, 3)
    m = geometry.euler_sxyz_to_matrix((a, b, c))
    want = _axis_rotation(2, c) @ _axis_rotation(1, b) @ _axis_rotation(0, a)
    np.testing.assert_allclose(m, want, atol=1e-12)
    np.testing.assert_allclose(geometry.matrix_to_euler_sxyz(m), (a, b, c), atol=1e-9)


def _info(loc, rot):
  return {"camera_location": list(loc), "camera_rotation_final": list(rot),
          "field_of_view_rads": 1.0}


def test_relative_pose_known_answers():
  origin = _info((0, 0, 0), (0, 0, 0))
  moved = _info((1.0, 2.0, 3.0), (0, 0, 0))
  np.testing.assert_allclose(geometry.relative_pose(moved, origin), [0, 0, 0, 1, 2, 3],
                             atol=1e-12)
  # Camera 2 turned a quarter about z: camera 1's offset seen in camera 2's frame.
  turned = _info((0, 0, 0), (0, 0, math.pi / 2))
  np.testing.assert_allclose(geometry.relative_pose(moved, turned),
                             [0, 0, -math.pi / 2, 2, -1, 3], atol=1e-12)
  # Relative poses compose: pose(1 wrt 3) from pose(1 wrt 2) and pose(2 wrt 3).
  rng = np.random.default_rng(1)
  cams = [_info(rng.normal(size=3), rng.uniform(-1, 1, 3)) for _ in range(3)]
  p12, p23, p13 = (geometry.relative_pose(cams[i], cams[j]) for i, j in ((0, 1), (1, 2), (0, 2)))
  r12, r23 = (geometry.euler_sxyz_to_matrix(p[:3]) for p in (p12, p23))
  np.testing.assert_allclose(geometry.euler_sxyz_to_matrix(p13[:3]), r23 @ r12, atol=1e-5)
  np.testing.assert_allclose(p13[3:], r23 @ p12[3:] + p23[3:], atol=1e-5)
  ego = geometry.egomotion(cams)
  np.testing.assert_allclose(ego, np.concatenate([p12, p13, p23]), atol=1e-6)
  with pytest.raises(ValueError, match="3 views"):
    geometry.egomotion(cams[:2])


def test_room_layout_extents_are_the_box_and_invariant_to_the_quarter_turns():
  box = {"x": [-2.0, 3.0], "y": [-1.0, 1.5], "z": [0.0, 2.7]}
  rng = np.random.default_rng(2)
  for _ in range(20):
    info = {**_info(rng.uniform(-1, 1, 3), (rng.uniform(1.2, 1.9), 0.0,
                                            rng.uniform(-math.pi, math.pi))),
            "bounding_box_ranges": box}
    layout = geometry.room_layout(info)
    # The extents are the box's sides, in the order of the quarter-turned world axes.
    assert sorted(layout[6:].tolist()) == pytest.approx(sorted([5.0, 2.5, 2.7]))
    assert layout[8] == pytest.approx(2.7)  # z (up) is never swapped
    # Euler angles of the camera are those of a valid rotation, and the quarter turn keeps the
    # camera looking within 45 degrees of the (turned) world x axis, as the original requires.
    forward = geometry.euler_sxyz_to_matrix(layout[3:6]) @ np.array([0.0, 0.0, -1.0])
    assert forward[0] >= math.cos(math.pi / 4) * np.linalg.norm(forward[:2]) - 1e-5
  with pytest.raises(KeyError, match="bounding_box_ranges"):
    geometry.room_layout(_info((0, 0, 0), (0, 0, 0)))


def test_vanishing_points_are_an_orthonormal_frame():
  rng = np.random.default_rng(3)
  for _ in range(20):
    info = _info(rng.normal(size=3), (rng.uniform(1.2, 1.9), 0.0, rng.uniform(-3, 3)))
    vp = geometry.vanishing_points(info).reshape(3, 3)
    np.testing.assert_allclose(vp @ vp.T, np.eye(3), atol=1e-5)
    # Turning the camera by a quarter about the world's up axis picks another well-defined
    # frame: the target is unchanged.
    turned = dict(info, camera_rotation_final=[info["camera_rotation_final"][0], 0.0,
                                               info["camera_rotation_final"][2] + math.pi / 2])
    np.testing.assert_allclose(geometry.vanishing_points(turned), vp.reshape(-1), atol=1e-5)


def test_point_matching_label():
  a = {"building": "x", "point_uuid": "p1"}
  b = {"building": "x", "point_uuid": "p2"}
  assert int(targets.multi_view_target("point_matching", [a, a])[0]) == 1
  assert int(targets.multi_view_target("point_matching", [a, b])[0]) == 0
  with pytest.raises(ValueError, match="takes 3 views"):
    targets.multi_view_target("egomotion", [a, b])
