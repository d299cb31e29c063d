"""Consistency tests of the procedural world (issue 3): each checks rendered data against an
independent computation (geometry, intrinsics, poses from point_info, brute-force casts)."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
from PIL import Image

from taskonomy_jax import cli, world
from taskonomy_jax.world import camera as cam
from taskonomy_jax.world import categories as cats
from taskonomy_jax.world import layout, raycast, shading

CFG = world.WorldConfig(resolution=48, points_per_building=4, views_per_point=(2, 3),
                        window_probability=1.0)
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def rendered():
  out = []
  for seed in SEEDS:
    b = world.generate_building(seed, CFG)
    out.append((b, list(world.render_views(b, CFG))))
  return out


def _pose(info: dict) -> tuple[np.ndarray, np.ndarray]:
  return np.array(info["camera_location"]), cam.euler_to_matrix(info["camera_rotation_final"])


def _backproject(view: world.View) -> np.ndarray:
  """World points (H, W, 3) from depth_zbuffer, K and the pose in point_info."""
  info = view.point_info
  k = np.array(info["camera_k_matrix"])
  res = info["resolution"]
  c = np.arange(res) + 0.5
  u, v = np.meshgrid(c, c, indexing="xy")
  z = view.domains["depth_zbuffer"].astype(np.float64)
  p_cam = np.stack([(u - k[0, 2]) / k[0, 0] * z, -(v - k[1, 2]) / k[1, 1] * z, -z], -1)
  loc, rot = _pose(info)
  return cam.camera_to_world(p_cam, loc, rot)


def test_raycast_known_answers():
  none6, none4 = np.zeros((0, 6)), np.zeros((0, 4))
  h = raycast.cast(np.array([0, 0, 5.0]), np.array([[0, 0, -1.0], [0, 0.6, -0.8]]), none6, none6,
                   np.array([[0, 0, 0, 1.0]]))
  assert h.t[0] == pytest.approx(4.0) and np.allclose(h.normal[0], [0, 0, 1])
  # Second ray: |o + t d| = 1 -> t^2 - 8t + 24 = 0 has no root: a miss.
  assert h.kind[1] == -1 and np.isinf(h.t[1]) and np.all(h.normal[1] == 0)
  cyl = np.array([[0, 0, -1, 1, 0.5, 0]])       # axis x, radius 0.5
  h = raycast.cast(np.array([0, 0, 5.0]), np.array([[0, 0, -1.0]]), none6, cyl, none4)
  assert h.t[0] == pytest.approx(4.5) and np.allclose(h.normal[0], [0, 0, 1]) and not h.cap[0]
  h = raycast.cast(np.array([5.0, 0, 0]), np.array([[-1.0, 0, 0]]), none6, cyl, none4)
  assert h.t[0] == pytest.approx(4.0) and np.allclose(h.normal[0], [1, 0, 0]) and h.cap[0]
  box = np.array([[-1, -2, -3, 1, 2, 3.0]])
  h = raycast.cast(np.array([0, 5.0, 0]), np.array([[0, -1.0, 0]]), box, none6, none4)
  assert h.t[0] == pytest.approx(3.0) and np.allclose(h.normal[0], [0, 1, 0])


def test_camera_conventions():
  rot = cam.look_at(np.array([0, 0, 1.5]), np.array([3.0, 0, 1.5]))   # level, looking along +x
  assert np.allclose(rot @ [0, 0, -1], [1, 0, 0])                     # -z_cam is forward
  assert np.allclose(rot @ [0, 1, 0], [0, 0, 1])                      # y_cam is up
  euler = cam.matrix_to_euler(rot)
  assert euler[0] == pytest.approx(np.pi / 2) and euler[1] == pytest.approx(0, abs=1e-12)
  assert np.allclose(cam.euler_to_matrix(euler), rot)
  uv, z = cam.project(np.array([3.0, 0, 1.5]), np.array([0, 0, 1.5]), rot, 1.0, 64)
  assert np.allclose(uv, [32, 32]) and z == pytest.approx(3.0)
  assert np.allclose(cam.relative_pose([1, 2, 3], rot, [1, 2, 3], rot), 0, atol=1e-12)


def test_same_seed_gives_identical_bytes(rendered):
  _b, views = rendered[0]
  again = list(world.render_views(world.generate_building(SEEDS[0], CFG), CFG))
  assert len(again) == len(views)
  for a, c in zip(views, again, strict=True):
    assert (a.point, a.view) == (c.point, c.view)
    for name in world.DOMAINS:
      assert a.domains[name].tobytes() == c.domains[name].tobytes(), name
    assert json.dumps(a.point_info, sort_keys=True) == json.dumps(c.point_info, sort_keys=True)
  other = rendered[1][1][0].domains["rgb"]
  assert other.tobytes() != views[0].domains["rgb"].tobytes()


def test_domains_forms_finite_and_ranges(rendered):
  res = CFG.resolution
  for _, views in rendered:
    for v in views:
      assert set(v.domains) == set(world.DOMAINS)
      for name, info in world.DOMAINS.items():
        x = v.domains[name]
        assert x.dtype == np.dtype(info.dtype), name
        if x.dtype.kind == "f":
          assert np.all(np.isfinite(x)), name
      d = v.domains
      assert d["rgb"].shape == (res, res, 3) and d["rgb"].min() >= 0 and d["rgb"].max() <= 1
      for name in ("reshading", "edge_texture", "keypoints2d", "keypoints3d"):
        assert d[name].shape == (res, res) and d[name].min() >= 0 and d[name].max() <= 1, name
      assert d["edge_occlusion"].min() >= 0
      assert d["principal_curvature"].shape == (res, res, 2)
      assert np.all(d["principal_curvature"][..., 0] >= d["principal_curvature"][..., 1])
      for name in ("segment_unsup2d", "segment_unsup25d"):
        ids = np.unique(d[name])
        assert ids[0] == 0 and np.array_equal(ids, np.arange(len(ids))), name
      assert d["segment_semantic"].min() >= 0 and d["segment_semantic"].max() < 17
      for name, n in (("class_object", 1000), ("class_scene", 365)):
        assert d[name].shape == (n,) and d[name].min() >= 0
        assert d[name].sum() == pytest.approx(1.0, abs=1e-5)
      json.dumps(v.point_info)   # JSON-serialisable


def test_mask_valid_matches_brute_force_cast(rendered):
  """No culling, every pixel: valid exactly where a surface is hit within max_depth; depth and
  normals are zero elsewhere; and windows onto the void make some pixels invalid."""
  invalid_seen = 0
  for b, views in rendered:
    for v in views[:3]:
      loc, rot = _pose(v.point_info)
      d = cam.pixel_rays_camera(v.point_info["field_of_view_rads"], CFG.resolution)
      d = d.reshape(-1, 3) / np.linalg.norm(d.reshape(-1, 3), axis=1, keepdims=True)
      hits = b.cast(loc, d @ rot.T)
      expect = (hits.kind >= 0) & (hits.t <= CFG.max_depth)
      valid = v.domains["mask_valid"].ravel()
      assert np.array_equal(valid, expect)
      np.testing.assert_allclose(v.domains["depth_euclidean"].ravel()[valid], hits.t[valid],
                                 rtol=1e-5)
      for name in ("depth_zbuffer", "depth_euclidean", "reshading"):
        assert np.all(v.domains[name].ravel()[~valid] == 0), name
      assert np.all(v.domains["normal"].reshape(-1, 3)[~valid] == 0)
      invalid_seen += int((~valid).sum())
  assert invalid_seen > 0


def test_zbuffer_and_euclidean_depth_agree_through_intrinsics(rendered):
  for _, views in rendered:
    for v in views:
      k = np.array(v.point_info["camera_k_matrix"])
      c = np.arange(CFG.resolution) + 0.5
      u, w = np.meshgrid(c, c, indexing="xy")
      scale = np.sqrt(1 + ((u - k[0, 2]) / k[0, 0]) ** 2 + ((w - k[1, 2]) / k[1, 1]) ** 2)
      np.testing.assert_allclose(v.domains["depth_zbuffer"] * scale,
                                 v.domains["depth_euclidean"], rtol=1e-5, atol=1e-6)


def test_normals_agree_with_depth_derived_normals_on_planes(rendered):
  checked = 0
  for _, views in rendered:
    for v in views:
      loc, rot = _pose(v.point_info)
      p = cam.world_to_camera(_backproject(v), loc, rot)          # camera-frame points
      n = v.domains["normal"].astype(np.float64)
      valid = v.domains["mask_valid"]
      obj = v.aux["primitive"]
      flat = v.domains["principal_curvature"][..., 0] == 0
      # Interior of a plane: the pixel and its right/down neighbours share primitive and normal.
      same = valid[:-1, :-1] & valid[1:, :-1] & valid[:-1, 1:] & flat[:-1, :-1]
      same &= (obj[:-1, :-1] == obj[1:, :-1]) & (obj[:-1, :-1] == obj[:-1, 1:])
      same &= np.all(n[:-1, :-1] == n[1:, :-1], -1) & np.all(n[:-1, :-1] == n[:-1, 1:], -1)
      dx = p[:-1, 1:] - p[:-1, :-1]
      dy = p[1:, :-1] - p[:-1, :-1]
      derived = np.cross(dy, dx)                 # down x right points toward the camera
      derived /= np.maximum(np.linalg.norm(derived, axis=-1, keepdims=True), 1e-12)
      cosang = np.sum(derived * n[:-1, :-1], -1)[same]
      assert np.all(cosang > np.cos(np.deg2rad(1.0))), cosang.min()
      # Unit length where valid.
      np.testing.assert_allclose(np.linalg.norm(n[valid], axis=-1), 1.0, atol=1e-5)
      checked += same.sum()
  assert checked > 1000


def test_fixated_point_lands_at_image_centre(rendered):
  res = CFG.resolution
  for _, views in rendered:
    for v in views:
      info = v.point_info
      loc, rot = _pose(info)
      uv, z = cam.project(np.array(info["point_location"]), loc, rot,
                          info["field_of_view_rads"], res)
      np.testing.assert_allclose(uv, [res / 2, res / 2], atol=1e-6)
      assert z == pytest.approx(info["camera_distance"], rel=1e-9)
      # The point is a visible surface point: the four central pixels see (almost) its depth.
      centre = v.domains["depth_euclidean"][res // 2 - 1:res // 2 + 1, res // 2 - 1:res // 2 + 1]
      assert np.min(np.abs(centre - info["camera_distance"])) < 0.05 * info["camera_distance"]


def test_backprojected_pixels_reproject_onto_same_surface_point_and_labels(rendered):
  """Pixels of one view, back-projected with depth and pose, projected into another view of the
  same point: an exact ray from the other camera hits the same 3D point and the same object;
  and the other view's pixel there carries the same object and semantic label."""
  res = CFG.resolution
  exact, agree_obj, agree_sem, total = 0, 0, 0, 0
  for b, views in rendered:
    by_point = {}
    for v in views:
      by_point.setdefault(v.point, []).append(v)
    for group in by_point.values():
      for a, c in itertools.pairwise(group):
        x = _backproject(a)[a.domains["mask_valid"]][::7]
        ids = a.aux["object_id"][a.domains["mask_valid"]][::7]
        sem = a.domains["segment_semantic"][a.domains["mask_valid"]][::7]
        np.testing.assert_allclose(x, a.aux["hit_world"][a.domains["mask_valid"]][::7],
                                   atol=1e-4)
        loc, rot = _pose(c.point_info)
        uv, z = cam.project(x, loc, rot, c.point_info["field_of_view_rads"], res)
        inside = (z > 0.1) & np.all((uv >= 1) & (uv < res - 1), axis=1)
        to = x[inside] - loc
        dist = np.linalg.norm(to, axis=1)
        hits = b.cast(loc, to / dist[:, None])
        visible = np.abs(hits.t - dist) < 2e-3 * dist
        hit_obj = b.prim_object[b.global_index(hits.kind, hits.index)]
        assert np.all(hit_obj[visible] == ids[inside][visible])
        exact += visible.sum()
        # Nearest pixel of the other view: same object / semantic label away from boundaries.
        px = np.floor(uv[inside][visible]).astype(int)
        agree_obj += np.sum(c.aux["object_id"][px[:, 1], px[:, 0]] == ids[inside][visible])
        agree_sem += np.sum(c.domains["segment_semantic"][px[:, 1], px[:, 0]] ==
                            sem[inside][visible])
        total += visible.sum()
  assert exact > 200
  assert agree_obj / total > 0.93 and agree_sem / total > 0.97


def test_vanishing_points_agree_with_rendered_walls(rendered):
  floor_i, wall_i, ceil_i = (cats.CATEGORY_INDEX[n] for n in ("floor", "wall", "ceiling"))
  counted = 0
  for _, views in rendered:
    for v in views:
      vps = np.array(v.point_info["vanishing_point"]).reshape(3, 3)
      np.testing.assert_allclose(vps @ vps.T, np.eye(3), atol=1e-9)
      n = v.domains["normal"].astype(np.float64)
      catg = v.aux["category"]
      walls = n[catg == wall_i]    # wall faces, and the tops of the wall below a window
      assert np.all(np.max(np.abs(walls @ vps.T), axis=-1) > 0.9999)
      vertical = np.abs(walls @ vps[2]) < 1e-6
      assert np.all(np.max(np.abs(walls[vertical] @ vps[:2].T), axis=-1) > 0.9999)
      assert np.all(n[catg == floor_i] @ vps[2] > 0.9999)
      assert np.all(n[catg == ceil_i] @ vps[2] < -0.9999)
      counted += len(walls)
  assert counted > 1000


def test_room_layout_agrees_with_rendered_walls(rendered):
  structural = [cats.CATEGORY_INDEX[n] for n in ("floor", "wall", "ceiling")]
  checked = 0
  for b, views in rendered:
    for v in views:
      info = v.point_info
      centre, axes, half = layout.layout_box_in_camera(np.array(info["room_layout"]))
      d = cam.pixel_rays_camera(info["field_of_view_rads"], CFG.resolution)
      d = d / np.linalg.norm(d, axis=-1, keepdims=True)
      # Exit distance of each ray from inside the layout box (camera at the origin).
      o_box = axes @ (-centre)                      # camera centre in box coordinates
      d_box = d @ axes.T
      with np.errstate(divide="ignore"):
        t_exit = np.min(np.maximum((half - o_box) / d_box, (-half - o_box) / d_box), axis=-1)
      loc, rot = _pose(info)
      own_room = int(np.argmin(np.linalg.norm(0.5 * (b.room_lo + b.room_hi) - loc, axis=1)))
      hit = v.aux["hit_world"] + 0.05 * (v.domains["normal"].astype(np.float64) @ rot.T)
      inside = np.all((v.aux["hit_world"] >= b.room_lo[own_room] - 1e-4)
                      & (v.aux["hit_world"] <= b.room_hi[own_room] + 1e-4), axis=-1)
      # The room shell's surfaces on the interior box (not window reveals inside the walls).
      sel = np.isin(v.aux["category"], structural) & (b.room_of(hit) == own_room) & inside
      assert b.room_of(loc) == own_room
      np.testing.assert_allclose(v.domains["depth_euclidean"][sel], t_exit[sel], rtol=1e-4)
      checked += sel.sum()
  assert checked > 1000


def test_semantic_labels_follow_the_coco_map(rendered):
  assert len(cats.COCO_17) == 17 and cats.COCO_17[0] == "background"
  coco = np.array(cats.coco_of_category())
  assert coco[cats.CATEGORY_INDEX["chair"]] == cats.COCO_17.index("chair")
  assert coco[cats.CATEGORY_INDEX["wall"]] == 0
  for _, views in rendered:
    for v in views:
      catg, valid = v.aux["category"], v.domains["mask_valid"]
      assert np.array_equal(v.domains["segment_semantic"][valid], coco[catg[valid]])


def test_class_scene_follows_visible_rooms(rendered):
  for b, views in rendered:
    for v in views:
      scene = v.domains["class_scene"]
      kept = np.zeros(365, bool)
      kept[list(cats.PLACES_WORKSPACE_AND_HOME)] = True
      assert scene[~kept].sum() == 0
      places = {cats.ROOM_TYPES[t].places for t in b.room_type}
      assert int(np.argmax(scene)) in places


def test_point_info_keys_and_nonfixated_points(rendered):
  for b, views in rendered:
    for v in views:
      info = v.point_info
      for key in ("camera_location", "camera_rotation_final", "field_of_view_rads", "point_uuid",
                  "view_id", "point_location", "nonfixated_points_in_view", "room", "building",
                  "resolution", "vanishing_points_gaussian_sphere", "camera_uuid", "model_id",
                  "bounding_box_ranges", "room_layout", "vanishing_point"):
        assert key in info, key
      assert info["view_id"] == v.view and info["building"] == v.building == b.name
      loc, rot = _pose(info)
      r_orig = cam.euler_to_matrix(info["camera_rotation_original"])
      r_delta = cam.euler_to_matrix(info["camera_rotation_from_original_to_final"])
      np.testing.assert_allclose(r_delta @ r_orig, rot, atol=1e-9)
      for q in info["nonfixated_points_in_view"]:
        assert q != v.point
        uv, z = cam.project(b.points[q].location, loc, rot, info["field_of_view_rads"],
                            CFG.resolution)
        assert z > 0 and np.all((uv >= 0) & (uv < CFG.resolution))


def test_bad_input_is_rejected():
  with pytest.raises(ValueError, match="resolution"):
    world.WorldConfig(resolution=4)
  with pytest.raises(ValueError, match=r"albedo_drift must be in \[0, 1\)"):
    world.WorldConfig(albedo_drift=1.0)
  with pytest.raises(ValueError, match="albedo_drift"):
    world.WorldConfig(albedo_drift=-0.1)
  with pytest.raises(ValueError, match="seed"):
    world.generate_building(-1, CFG)


def test_preview_cli_writes_a_png(tmp_path):
  out = tmp_path / "sheet.png"
  assert cli.main(["world", "preview", "--seed", "2", "--views", "2", "--resolution", "32",
                   "--out", str(out)]) == 0
  with Image.open(out) as im:
    assert im.size[0] > 500 and im.size[1] > 100
  assert cli.main(["world", "preview", "--views", "0", "--out", str(out)]) == 2


def test_occlusion_edges_sit_on_depth_discontinuities(rendered):
  """Zero inside planes; present at (at least one side of) big depth jumps between neighbours."""
  jumps = flagged = 0
  for _, views in rendered:
    for v in views:
      e = v.domains["edge_occlusion"]
      prim = v.aux["primitive"]
      n = v.domains["normal"]
      flat = v.domains["principal_curvature"][..., 0] == 0
      interior = flat[1:-1, 1:-1].copy()
      for sl in ((slice(0, -2), slice(1, -1)), (slice(2, None), slice(1, -1)),
                 (slice(1, -1), slice(0, -2)), (slice(1, -1), slice(2, None))):
        interior &= prim[sl] == prim[1:-1, 1:-1]           # same face of the same primitive
        interior &= np.all(n[sl] == n[1:-1, 1:-1], axis=-1)
      interior &= prim[1:-1, 1:-1] >= 0
      assert np.all(e[1:-1, 1:-1][interior] == 0)
      d, valid = v.domains["depth_euclidean"], v.domains["mask_valid"]
      both = valid[:, :-1] & valid[:, 1:]
      jump = both & (np.abs(d[:, :-1] - d[:, 1:]) > 0.3 * np.minimum(d[:, :-1], d[:, 1:]))
      jumps += jump.sum()
      flagged += np.sum(jump & ((e[:, :-1] > 0) | (e[:, 1:] > 0)))
  assert jumps > 20 and flagged / jumps > 0.95


def test_cameras_are_shared_between_points(rendered):
  """Scan positions serve several points (non-fixated pose pairs need the same camera)."""
  for b, views in rendered:
    points_of_camera: dict[str, set[int]] = {}
    for v in views:
      points_of_camera.setdefault(v.point_info["camera_uuid"], set()).add(v.point)
      k = b.points[v.point].cameras[v.view]
      np.testing.assert_allclose(v.point_info["camera_location"], b.camera_location[k])
    assert max(len(p) for p in points_of_camera.values()) >= 2


# The domains computed from the image itself (render.py); every other one is geometry.
FROM_RGB = {"rgb", "edge_texture", "keypoints2d", "segment_unsup2d", "segment_unsup25d"}


def test_albedo_drift_changes_the_image_alone(rendered):
  """The drift multiplies albedo only: without it the geometric domains are byte-identical and
  the image (and what is computed from it) differs; its multipliers stay within
  1 -+ drift and average to ~1."""
  bld, views = rendered[0]
  plain_cfg = dataclasses.replace(CFG, albedo_drift=0.0)
  plain = list(world.render_views(world.generate_building(SEEDS[0], plain_cfg), plain_cfg))
  for worn, bare in zip(views, plain, strict=True):
    for name, value in worn.domains.items():
      same = np.array_equal(np.asarray(value), np.asarray(bare.domains[name]))
      assert same == (name not in FROM_RGB), name
  drift = CFG.albedo_drift
  assert drift > 0
  rng = np.random.default_rng(0)
  waves = bld.materials.noise[rng.integers(len(bld.materials.noise), size=20_000)]
  factor = shading.drift_factor(waves, rng.uniform(-20, 20, (20_000, 3)), drift)
  assert factor.min() >= 1 - drift - 1e-9 and factor.max() <= 1 + drift + 1e-9
  assert abs(factor.mean() - 1) < 0.05
  np.testing.assert_array_equal(shading.drift_factor(waves, rng.normal(size=(20_000, 3)), 0),
                                1.0)
