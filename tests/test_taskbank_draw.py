"""Pictures of task outputs: known answers per display kind, a cross-check of the room box
against the world's own projection, and every task of the task bank drawable."""

from __future__ import annotations

import typing

import matplotlib
import numpy as np
import pytest

from taskonomy_jax import tasks
from taskonomy_jax.data import encodings
from taskonomy_jax.taskbank import draw, selfsup
from taskonomy_jax.world import camera as cam
from taskonomy_jax.world import categories, layout

R = 32
IMAGE = np.zeros((R, R, 3), np.float32)


def test_every_display_kind_has_a_drawer():
  kinds = set(typing.get_args(tasks.DisplayKind)) - {"none"}
  assert kinds == set(draw.DRAWERS)


@pytest.mark.parametrize("spec", list(tasks.trainable()), ids=lambda s: s.name)
def test_every_task_bank_output_draws(spec):
  out = np.random.default_rng(0).uniform(-1, 1, spec.output_shape(R)).astype(np.float32)
  pic = draw.draw(spec, out, IMAGE)
  assert pic.dtype == np.uint8 and pic.ndim == 3 and pic.shape[-1] == 3
  if spec.display == "color_bins":  # the colourised input, at the input's size
    assert pic.shape[:2] == (R, R)
  elif spec.pixel_output:
    assert pic.shape[:2] == spec.output_shape(R)[:2]
  elif spec.display in ("class_topk", "match", "permutation", "pose"):
    assert pic.shape[:2] == (draw.MIN_PANEL, draw.MIN_PANEL)  # readable text at any input size
  else:  # drawn over the input
    assert pic.shape[:2] == (R, R)


def test_wrong_shape_and_random_projection_are_refused():
  with pytest.raises(ValueError, match=r"normal: expected an \(H, W, 3\) output"):
    draw.draw("normal", np.zeros((R, R, 1)), IMAGE)
  with pytest.raises(ValueError, match=r"room_layout: expected a \(9,\) output"):
    draw.draw("room_layout", np.zeros(6), IMAGE)
  with pytest.raises(ValueError, match="draws nothing"):
    draw.draw("random", np.zeros(3), IMAGE)


def test_gray_rgb_normal_curvature_known_values():
  g = draw.draw("edge_texture", np.array([[[-1.0], [1.0]]]), IMAGE)
  assert g.tolist() == [[[0, 0, 0], [255, 255, 255]]]
  n = draw.draw("normal", np.array([[[0.0, 0.0, 1.0]]]), IMAGE)
  assert n.tolist() == [[[128, 128, 255]]]
  c = draw.draw("curvature", np.array([[[1.0, -1.0]]]), IMAGE)
  assert c.tolist() == [[[255, 0, 128]]]
  a = draw.draw("autoencoding", np.full((1, 1, 3), 0.0), IMAGE)
  assert a.tolist() == [[[128, 128, 128]]]


def test_depth_uses_viridis_from_near_to_far():
  d = np.array([[[0.2], [0.7], [-0.3]]], np.float32)
  pic = draw.draw("depth_zbuffer", d, IMAGE)
  vir = matplotlib.colormaps["viridis"]
  assert pic[0, 2].tolist() == draw.to_uint8(np.array(vir(0.0)[:3])).tolist()  # nearest
  assert pic[0, 1].tolist() == draw.to_uint8(np.array(vir(1.0)[:3])).tolist()  # farthest


def test_labels_are_argmax_with_black_background():
  logits = np.zeros((2, 2, 17), np.float32)
  logits[0, 0, 0] = logits[0, 1, 5] = logits[1, :, 9] = 3.0
  pic = draw.draw("segment_semantic", logits, IMAGE)
  assert pic[0, 0].tolist() == [0, 0, 0]
  assert pic[1, 0].tolist() == pic[1, 1].tolist() != pic[0, 1].tolist()


def test_embedding_clusters_get_one_colour_each():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(3, 64))
  ids = rng.integers(0, 3, (8, 8))
  pic = draw.draw("segment_unsup2d", centres[ids].astype(np.float32), IMAGE)
  colours = {k: {tuple(pic[i, j]) for i, j in zip(*np.nonzero(ids == k), strict=True)}
             for k in range(3)}
  assert all(len(c) == 1 for c in colours.values())
  assert len({next(iter(c)) for c in colours.values()}) == 3


def test_class_topk_and_match_show_probabilities():
  logits = np.full(63, -10.0, np.float32)
  logits[7] = 10.0
  pic = draw.draw("class_scene", logits, IMAGE)
  side = draw.MIN_PANEL
  assert pic.shape == (side, side, 3)
  # The top bar (probability ~1) spans nearly the whole width in the bar colour; the second
  # (probability ~0) does not reach the middle.
  row = side // 5
  assert (pic[2:row, side - 4] == [160, 200, 240]).all(axis=-1).any()
  assert not (pic[row + 2:2 * row, side // 2] == [160, 200, 240]).all(axis=-1).any()
  assert draw.softmax(np.array([0.0, np.log(3.0)]))[1] == pytest.approx(0.75)


def test_room_box_matches_the_world_projection():
  """The layout vector of a camera in a room, drawn back: the box corners equal the room's
  corners seen from that camera (the world's own encoding and camera, brute force)."""
  lo, hi = np.array([0.0, 0.0, 0.0]), np.array([5.0, 4.0, 2.8])
  location = np.array([1.2, 1.5, 1.4])
  rot = cam.look_at(location, np.array([4.0, 3.0, 1.0]))
  vec = layout.room_layout(location, rot, lo, hi)
  corners_world = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])])
  corners_cam = cam.world_to_camera(corners_world, location, rot)
  got = draw.box_corners(vec)
  # Same set of 8 points (the order follows the turned axes).
  dist = np.linalg.norm(got[:, None] - corners_cam[None], axis=-1)
  assert np.allclose(dist.min(axis=1), 0, atol=1e-9)
  uv, _ = draw.project_camera_points(got, 64, fov_rads=1.0)
  uv_world, _ = cam.project(corners_world, location, rot, 1.0, 64)
  assert np.allclose(np.sort(uv[:, 0]), np.sort(uv_world[:, 0]), atol=1e-6)


def test_vanishing_point_line_reaches_its_projection():
  vps = np.array([[0.3, 0.2, -1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
  pic = draw.draw("vanishing_point", vps.reshape(-1), np.zeros((64, 64, 3), np.float32))
  uv, _ = draw.project_camera_points(vps[:1].astype(np.float64), 64)
  u, v = np.floor(uv[0]).astype(int)
  patch = pic[v - 1:v + 2, u - 1:u + 2].reshape(-1, 3)
  assert any(p[0] > 200 and p[1] < 60 for p in patch)  # the red line ends there


# --- colorization, jigsaw, class names -------------------------------------------------------

def _bin(ab: tuple[float, float]) -> int:
  return int(np.flatnonzero((selfsup.color_bins() == ab).all(-1))[0])


def test_colorization_one_hot_bin_draws_that_bins_colour_with_the_input_lightness():
  grey = np.full((R, R, 3), 0.1, np.float32)  # L ~ 59: every bin below is in the sRGB gamut
  b1, b2 = _bin((20.0, -30.0)), _bin((-30.0, 40.0))
  logits = np.zeros((R // 4, R // 4, 313), np.float32)
  logits[..., b2] = 30.0
  logits[0, 0, b2], logits[0, 0, b1] = 0.0, 30.0  # one cell (the top-left 4x4 block) differs
  pic = draw.draw("colorization", logits, grey)
  lab = selfsup.rgb_to_lab(pic.astype(np.float32) / 127.5 - 1.0)
  np.testing.assert_allclose(lab[:4, :4, 1:], np.broadcast_to([20.0, -30.0], (4, 4, 2)), atol=1.5)
  np.testing.assert_allclose(lab[4:, 4:, 1:], np.broadcast_to([-30.0, 40.0], (R - 4, R - 4, 2)),
                             atol=1.5)
  np.testing.assert_allclose(lab[..., 0], selfsup.rgb_to_lab(grey)[..., 0], atol=1.0)


def test_colour_bin_decoding_is_the_mean_of_the_likely_bins():
  b1, b2 = _bin((20.0, -30.0)), _bin((-30.0, 40.0))
  logits = np.full(313, -1e4, np.float32)
  logits[[b1, b2]] = 5.0  # two equally likely bins: their midpoint at any temperature
  for t in (1.0, selfsup.ANNEALED_MEAN_TEMPERATURE):
    np.testing.assert_allclose(selfsup.ab_from_bin_logits(logits, t), [-5.0, 5.0], atol=1e-4)
  # uniform logits: the mean of all bins (the grid is symmetric about neutral, up to the
  # 313th bin's tie-break) -- and a cooler temperature cannot change a uniform distribution
  uniform = selfsup.ab_from_bin_logits(np.zeros(313), 0.1)
  np.testing.assert_allclose(uniform, selfsup.color_bins().mean(0), atol=1e-4)
  with pytest.raises(ValueError, match="temperature must be positive"):
    selfsup.ab_from_bin_logits(logits, 0.0)


def _block_image(side: int = 48) -> tuple[np.ndarray, np.ndarray]:
  """An image of 3x3 constant blocks of 9 different colours (tiles = the blocks at 48 px)."""
  colours = np.random.default_rng(2).uniform(-0.9, 0.9, (9, 3)).astype(np.float32)
  t = side // 3
  img = np.zeros((side, side, 3), np.float32)
  for k in range(9):
    r, c = divmod(k, 3)
    img[r * t:(r + 1) * t, c * t:(c + 1) * t] = colours[k]
  return img, colours


def test_jigsaw_reassembly_undoes_the_shuffle():
  img, _ = _block_image(64)  # 16-px tiles spread over 64 px: overlapping-free, not the blocks
  shuffled, label = selfsup.jigsaw(img, np.random.default_rng(7))
  assert label != 0
  back = draw.reassemble_tiles(shuffled, selfsup.permutations()[label], gap=0)
  in_order = draw.reassemble_tiles(selfsup.tiles(img), selfsup.permutations()[0], gap=0)
  np.testing.assert_array_equal(back, in_order)
  t = selfsup.tile_side(64)
  np.testing.assert_array_equal(in_order[t:2 * t, 2 * t:3 * t], selfsup.tiles(img)[5])


def test_jigsaw_draws_tile_k_at_position_of_the_predicted_permutation():
  img, colours = _block_image(48)
  label = 17
  perm = selfsup.permutations()[label]
  logits = np.zeros(100, np.float32)
  logits[label] = 20.0
  pic = draw.draw("jigsaw", logits, img)
  side = draw.MIN_PANEL - 18  # the drawer's grid below its title line
  grid = 3 * 16 + 2  # three 16-px tiles and two 1-px gaps
  for k in range(9):
    r, c = divmod(int(perm[k]), 3)
    y = 16 + int((r * 17 + 8) * side / grid)
    x = (draw.MIN_PANEL - side) // 2 + int((c * 17 + 8) * side / grid)
    np.testing.assert_allclose(pic[y, x], draw.to_uint8(draw.image_to_unit(colours[k])), atol=1)


def test_class_names_agree_with_the_worlds_label_maps():
  obj, scene = draw.class_names(tasks.get("class_object")), draw.class_names(tasks.get("class_scene"))
  assert len(obj) == 1000 and len(scene) == 63
  # world/categories.py names its ImageNet indices in comments; the shipped list must agree
  for idx, name in {532: "dining table", 651: "microwave", 760: "refrigerator",
                    851: "television", 859: "toaster", 892: "wall clock"}.items():
    assert obj[idx] == name
  # every room type of the world: its Places365 index, as a class_scene output, has its name
  for room in categories.ROOM_TYPES:
    assert scene[encodings.PLACES_WORKSPACE_AND_HOME.index(room.places)] == room.name
  assert draw.class_names(tasks.get("normal")) == {}


def test_class_topk_names_the_most_probable_classes():
  logits = np.zeros(1000, np.float32)
  logits[851], logits[760] = 6.0, 5.0
  top = draw.class_topk(logits, tasks.get("class_object"), k=3)
  assert [n for n, _ in top[:2]] == ["television", "refrigerator"]
  assert top[0][1] == pytest.approx(np.exp(6) / (np.exp(6) + np.exp(5) + 998))
