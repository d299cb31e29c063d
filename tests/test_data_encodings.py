"""The real dataset's encodings: known answers and lossless round trips through files."""

import json

import numpy as np
import pytest
from PIL import Image

from taskonomy_jax.data import encodings as enc
from taskonomy_jax.data import targets
from tests import data_fixtures


def test_depth_known_answers():
  metres = np.array([[0.0, 1.0, 2.5], [127.0, 200.0, 3.0]])
  valid = np.array([[True, True, True], [True, True, False]])
  stored = enc.encode_depth(metres, valid)
  # 1/512 m units; saturate below 65535; 65535 marks invalid.
  assert stored.tolist() == [[0, 512, 1280], [65024, 65534, 65535]]
  back = enc.decode_depth(stored)
  assert back[0, 1] == 1.0 and back[1, 2] == 0.0
  assert enc.depth_valid(stored).tolist() == [[True, True, True], [False, False, False]]


def test_normal_and_semantic_known_answers():
  # A wall facing the camera, and a floor (normal up, OpenGL y) seen from a level camera: the
  # dataset's green channel grows *downwards* (2D-3D-S / NYU convention), so "up" is green 0.
  facing = np.array([[[0.0, 0.0, 1.0], [-1.0, 1.0, 0.0]]])
  stored = enc.encode_normal(facing)
  assert stored.tolist() == [[[128, 128, 255], [0, 0, 128]]]
  np.testing.assert_allclose(enc.decode_normal(stored), facing, atol=1 / 127.5)
  labels = np.array([[0, 1, 16]])
  raw = enc.encode_semantic(labels, labelled=np.array([[True, True, False]]))
  assert raw.tolist() == [[1, 2, 0]]  # 0 = uncertain, 1 = background, 2.. = classes
  assert enc.decode_semantic(raw).tolist() == [[0, 1, 0]]
  assert enc.semantic_labelled(raw).tolist() == [[True, True, False]]
  with pytest.raises(enc.EncodingError, match=r"\[0, 17\)"):
    enc.encode_semantic(np.array([[17]]))


def test_curvature_zero_is_128_and_invalid_is_black():
  k = np.array([[[0.0, 0.0], [2.0, -1.0]]])
  stored = enc.encode_curvature(k, valid=np.array([[True, False]]))
  assert stored[0, 0].tolist() == [128, 128, 128]
  assert stored[0, 1].tolist() == [0, 0, 0]
  assert enc.curvature_valid(stored).tolist() == [[True, False]]
  k2 = np.array([[[2.0, -1.0]]])
  np.testing.assert_allclose(enc.decode_curvature(enc.encode_curvature(k2)), k2)


def test_class_vectors_round_trip():
  rng = np.random.default_rng(0)
  p = rng.dirichlet(np.ones(1000))
  np.testing.assert_allclose(enc.decode_class_object(enc.encode_class_object(p)), p, atol=1e-6)
  scene = np.zeros(365)
  scene[3], scene[23], scene[0] = 0.2, 0.6, 0.2  # index 0 is not a kept class
  s63 = enc.scene_63(scene)
  assert s63.shape == (63,)
  np.testing.assert_allclose(s63[:2], [0.25, 0.75])
  assert len(set(enc.PLACES_WORKSPACE_AND_HOME)) == 63


@pytest.mark.parametrize("domain", sorted(set(enc.ENCODINGS) - {"point_info"}))
def test_every_domain_round_trips_through_its_file(domain):
  phys, info = data_fixtures.random_view("b", 0, 0, resolution=12)
  stored = enc.encode_view(phys, info, names=(domain,))[domain]
  data = enc.file_bytes(domain, stored)
  back = enc.read_stored(domain, data)
  np.testing.assert_array_equal(back, stored)
  assert back.dtype == np.dtype(enc.get(domain).stored_dtype)
  decoded = enc.get(domain).decode(back)
  # The decoded value is the physical one up to the quantisation step of the encoding.
  tol = {"rgb": 0.5 / 255, "normal": 0.5 / 127.5, "reshading": 0.5 / 255,
         "edge_texture": 0.5 / enc.EDGE_TEXTURE_CODES_PER_UNIT,
         "keypoints2d": 0.5 / enc.KEYPOINT_CODES_PER_UNIT,
         "keypoints3d": 0.5 / enc.KEYPOINT_CODES_PER_UNIT,
         "edge_occlusion": 0.5 / enc.EDGE_OCCLUSION_CODES_PER_UNIT,
         "principal_curvature": 0.5 / enc.CURVATURE_CODES_PER_INV_METRE,
         "depth_zbuffer": 0.5 / 512, "depth_euclidean": 0.5 / 512}.get(domain, 1e-6)
  want = phys[domain]
  if domain in ("depth_zbuffer", "depth_euclidean", "principal_curvature"):
    mask = phys["mask_valid"] if want.ndim == 2 else phys["mask_valid"][..., None]
    want = np.where(mask, want, 0)
  np.testing.assert_allclose(np.asarray(decoded, np.float64), np.asarray(want, np.float64),
                             atol=tol + 1e-7)


def test_png_files_have_the_real_bit_depths(tmp_path):
  phys, info = data_fixtures.random_view("b", 0, 0, resolution=8)
  stored = enc.encode_view(phys, info)
  for domain, mode in [("depth_zbuffer", ("I;16", "I;16L", "I")), ("rgb", ("RGB",)),
                       ("normal", ("RGB",)), ("segment_semantic", ("L",)),
                       ("segment_unsup2d", ("I;16", "I;16L", "I"))]:
    path = tmp_path / enc.filename(0, 0, domain)
    path.write_bytes(enc.file_bytes(domain, stored[domain]))
    with Image.open(path) as im:
      assert im.mode in mode, (domain, im.mode)
  info_bytes = enc.file_bytes("point_info", stored["point_info"])
  assert json.loads(info_bytes)["camera_location"] == info["camera_location"]


def test_filenames_and_bad_input():
  assert enc.filename(3, 1, "rgb") == "point_3_view_1_domain_rgb.png"
  assert enc.filename(3, 1, "class_object") == "point_3_view_1_domain_class_object.npy"
  assert enc.parse_filename("point_12_view_4_domain_depth_zbuffer.png") == (12, 4,
                                                                           "depth_zbuffer")
  with pytest.raises(enc.EncodingError, match="not a Taskonomy file name"):
    enc.parse_filename("rgb_0001.png")
  with pytest.raises(enc.EncodingError, match="known domains"):
    enc.get("depth")
  good = enc.png_bytes(np.zeros((4, 4), np.uint16))
  with pytest.raises(enc.EncodingError, match="corrupt PNG"):
    enc.decode_png(good[: len(good) // 2], "depth_zbuffer")
  with pytest.raises(enc.EncodingError, match="16-bit"):
    enc.decode_png(enc.png_bytes(np.zeros((4, 4), np.uint8)), "depth_zbuffer")
  with pytest.raises(enc.EncodingError, match="not valid JSON"):
    enc.decode_point_info(b"{camera_location: [")


def test_targets_follow_the_original_definitions():
  phys, info = data_fixtures.random_view("b", 0, 0, resolution=8)
  stored = enc.encode_view(phys, info)
  depth_t, depth_m = targets.single_view_target("rgb2depth", stored)
  raw = stored["depth_zbuffer"]
  assert depth_t.shape == (8, 8, 1) and depth_m.shape == (8, 8)
  i, j = np.argwhere(raw < 64500)[0]
  assert depth_t[i, j, 0] == pytest.approx(np.log(1 + raw[i, j]) / np.log(65536.0), rel=1e-6)
  np.testing.assert_array_equal(depth_m, raw < 64500)
  n_t, n_m = targets.single_view_target("normal", stored)
  np.testing.assert_allclose(n_t, stored["normal"] / 127.5 - 1, atol=1e-6)
  np.testing.assert_array_equal(n_m, depth_m)
  sem, sem_m = targets.single_view_target("segment_semantic", stored)
  assert sem.dtype == np.int32 and sem.max() < 17
  np.testing.assert_array_equal(sem_m, stored["segment_semantic"] > 0)
  cls, _ = targets.single_view_target("class_scene", stored)
  assert cls.shape == (63,) and cls.sum() == pytest.approx(1.0, abs=1e-5)
  obj, _ = targets.single_view_target("class_object", stored)
  np.testing.assert_allclose(obj, phys["class_object"], atol=1e-6)
  for t in ("room_layout", "vanishing_point"):
    v, m = targets.single_view_target(t, stored)
    assert v.shape == (9,) and bool(m)
  with pytest.raises(ValueError, match="multi_view_target"):
    targets.single_view_target("egomotion", stored)
  with pytest.raises(ValueError, match="no dataset target"):
    targets.single_view_target("colorization", stored)
  with pytest.raises(KeyError, match="depth_zbuffer"):
    targets.single_view_target("normal", {"normal": stored["normal"]})


@pytest.mark.parametrize("side", [64, 256])
def test_occlusion_edges_are_blurred_as_the_original_at_4_pixels_of_256(side):
  """A one-pixel edge becomes the original's Gaussian band (sigma 4 * side / 256), the edge's
  mass kept; a batch blurs each view on its own."""
  full = enc.FULL_SCALE_CODE["edge_occlusion"]
  raw = np.zeros((2, side, side), np.uint16)
  raw[0, side // 2, :] = full  # a horizontal edge in view 0, none in view 1
  depth = np.full((2, side, side), 1000, np.uint16)
  t, m = targets.single_view_target("edge_occlusion",
                                    {"edge_occlusion": raw, "depth_zbuffer": depth})
  assert t.shape == (2, side, side, 1) and t.dtype == np.float32 and m.all()
  sigma = 4 * side / 256
  column = t[0, :, side // 3, 0] + 1  # height above the background (-1); the edge's is 2
  rows = np.arange(side) - side // 2
  expected = 2 * np.exp(-rows ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
  np.testing.assert_allclose(column, expected, atol=0.01)
  assert column.sum() == pytest.approx(2.0, rel=1e-3)
  np.testing.assert_array_equal(t[1], -1.0)  # nothing leaks across the batch
  single, _ = targets.single_view_target("edge_occlusion",
                                         {"edge_occlusion": raw[0], "depth_zbuffer": depth[0]})
  np.testing.assert_array_equal(single, t[0])


def test_16bit_responses_stay_below_the_int16_wrap_of_omnidata():
  # torchvision (under omnidata's loader) reads 16-bit PNGs as int16: codes >= 32768 turn
  # negative. Saturated inputs must stay at or below 32767.
  big = np.full((2, 2), 1e6)
  for domain in ("edge_texture", "keypoints2d", "keypoints3d", "edge_occlusion"):
    assert enc.get(domain).encode(big).max() == enc.INT16_SAFE_MAX
  assert enc.encode_edge_texture(np.ones((1, 1)))[0, 0] == 16384  # 0.25 * 65535, rounded
  assert enc.encode_keypoints(np.ones((1, 1)))[0, 0] == 32767
