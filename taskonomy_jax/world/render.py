"""Rendering a building's views: every domain of the real dataset plus `point_info`.

`render_views(building, cfg)` yields one `View` per (point, view) in a fixed order
(points in order, then their views in order). Camera conventions: see `camera`.

`point_info` keys (JSON-serialisable; the real dataset's keys first, in their conventions):

* `building`, `model_id`: the building name (`synth_0003`); the real files carry both.
* `point_uuid`: hex id of the fixated point (deterministic from building and point index);
  `point_index`: its index in the building (ours, for convenience).
* `view_id`: index of this view among the point's views.
* `camera_uuid`: hex id of the camera position; views of different points taken from the same
  position share it (the real dataset's scan locations), as non-fixated pose needs.
* `camera_location`: camera centre (world, metres, z up).
* `camera_rotation_original`: `sxyz` Euler angles of the camera's level original orientation
  (heading `camera_yaw`, no pitch or roll), like the scanner's orientation.
* `camera_rotation_from_original_to_final`: `sxyz` Euler angles of `R_final @ R_original.T`
  (the rotation that, applied in the world frame, aims the camera at the point).
* `camera_rotation_final`: `sxyz` Euler angles of the camera-to-world rotation of this view
  (looks at the point, no roll); `camera_rotation_final_quaternion`: same, (w, x, y, z).
* `field_of_view_rads`: full horizontal (= vertical) field of view; `resolution`: image side;
  `camera_k_matrix`: 3x3 intrinsics (pixels, u right, v down, centre at (W/2, H/2)).
* `point_location`: the fixated point (world); `point_normal`: outward normal of its surface
  (world); `point_pitch`: elevation of the point seen from the camera (radians, + up);
  `camera_distance`: camera-to-point distance (m); `obliqueness_angle`: angle between the
  point's normal and the direction from the point to the camera (radians).
* `nonfixated_points_in_view`: indices of the building's *other* points that project inside
  this image and are visible from this camera (line of sight).
* `room`: `"{room_type}_{room_index}_0"` of the room the point lies in (the real format is
  roomType_roomNum_areaNum); `room_type`, `scene_class` (its Places365 index): ours.
* `bounding_box_ranges`: `{"x": [lo, hi], "y": [...], "z": [...]}`, the interior box of the
  camera's room (world), from which the original computes room layout.
* `vanishing_points_gaussian_sphere`: `{"x": [3], "y": [3], "z": [3]}` the vanishing
  directions (`layout.vanishing_points`) in the camera frame.
* `room_layout` (9,) and `vanishing_point` (9,): the unnormalised targets (`layout` module).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import numpy as np

from taskonomy_jax.world import annotations as ann
from taskonomy_jax.world import camera as cam
from taskonomy_jax.world import categories as cats
from taskonomy_jax.world import layout, raycast, shading
from taskonomy_jax.world.config import WorldConfig
from taskonomy_jax.world.scene import Building, view_rotation

VOID_RGB = np.array([0.85, 0.9, 1.0])   # what a window onto the void looks like
_NAMESPACE = uuid.UUID("5d1f3c2e-7a4b-4c1e-9f0a-3b2c1d0e9f8a")
_COCO = np.array(cats.coco_of_category())


@dataclasses.dataclass(frozen=True)
class DomainInfo:
  """One per-view domain: numpy dtype, shape (H = W = resolution) and meaning."""

  dtype: str
  shape: str
  meaning: str


DOMAINS: dict[str, DomainInfo] = {
    "rgb": DomainInfo("float32", "(H, W, 3)", "colour image in [0, 1]"),
    "depth_zbuffer": DomainInfo("float32", "(H, W)", "metres along the optical axis; 0 where "
                                "invalid"),
    "depth_euclidean": DomainInfo("float32", "(H, W)", "metres along the pixel's ray; 0 where "
                                  "invalid"),
    "mask_valid": DomainInfo("bool", "(H, W)", "True where depth is defined (a surface within "
                             "max_depth; False through windows onto the void)"),
    "normal": DomainInfo("float32", "(H, W, 3)", "unit surface normals, camera frame (x right, y "
                         "up, z toward the camera); zeros where invalid"),
    "reshading": DomainInfo("float32", "(H, W)", "albedo-free Lambert shading with one point "
                            "light at the camera, in [0, 1]"),
    "principal_curvature": DomainInfo("float32", "(H, W, 2)", "principal curvatures k1 >= k2 in "
                                      "1/m, positive where the surface is convex"),
    "edge_occlusion": DomainInfo("float32", "(H, W)", "depth-discontinuity strength >= 0"),
    "edge_texture": DomainInfo("float32", "(H, W)", "RGB edge strength in [0, 1]"),
    "keypoints2d": DomainInfo("float32", "(H, W)", "2D (RGB corner) keypoint response in [0, 1]"),
    "keypoints3d": DomainInfo("float32", "(H, W)", "3D (geometric corner) keypoint response in "
                              "[0, 1]"),
    "segment_unsup2d": DomainInfo("int32", "(H, W)", "graph-based segment ids 0..n-1 on RGB"),
    "segment_unsup25d": DomainInfo("int32", "(H, W)", "graph-based segment ids 0..n-1 on RGB, "
                                   "depth and normals"),
    "segment_semantic": DomainInfo("int32", "(H, W)", "class in [0, 17) of segmentsemantic_rb "
                                   "(categories.COCO_17; 0 = background)"),
    "class_object": DomainInfo("float32", "(1000,)", "distribution over ImageNet-1k classes"),
    "class_scene": DomainInfo("float32", "(365,)", "distribution over Places365 classes"),
}


@dataclasses.dataclass
class View:
  """One rendered view. `aux` holds extra per-pixel buffers (not dataset domains):
  `primitive` (int32 global primitive index, -1 where invalid), `object_id` (int32, -1 where invalid), `category` (int32 world category, -1 where invalid),
  `hit_world` (float64 (H, W, 3) world hit points, 0 where invalid)."""

  building: str
  point: int
  view: int
  domains: dict[str, np.ndarray]
  point_info: dict
  aux: dict[str, np.ndarray]


def _uuid(*parts) -> str:
  return uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)).hex


def _bounding_spheres(bld: Building) -> tuple[np.ndarray, ...]:
  b = bld.boxes
  box_c, box_r = 0.5 * (b[:, :3] + b[:, 3:]), 0.5 * np.linalg.norm(b[:, 3:] - b[:, :3], axis=1)
  c = bld.cylinders
  axis = c[:, 5].astype(int)
  cyl_c = np.zeros((len(c), 3))
  rows = np.arange(len(c))
  e1 = np.where(axis == 0, 1, 0)
  e2 = np.where(axis == 2, 1, 2)
  cyl_c[rows, axis] = 0.5 * (c[:, 2] + c[:, 3])
  cyl_c[rows, e1] = c[:, 0]
  cyl_c[rows, e2] = c[:, 1]
  cyl_r = np.hypot(c[:, 4], 0.5 * (c[:, 3] - c[:, 2]))
  s = bld.spheres
  return box_c, box_r, cyl_c, cyl_r, s[:, :3], s[:, 3]


def _in_frustum(centres: np.ndarray, radii: np.ndarray, location: np.ndarray, rot: np.ndarray,
                fov: float) -> np.ndarray:
  """Conservative test: bounding spheres that may intersect the view frustum."""
  p = cam.world_to_camera(centres, location, rot)
  t = np.tan(0.5 * fov)
  norm = np.sqrt(1 + t * t)
  ok = p[:, 2] < radii                                     # not entirely behind the camera
  for a, sgn in ((0, 1), (0, -1), (1, 1), (1, -1)):
    ok &= (sgn * p[:, a] + t * p[:, 2]) / norm <= radii
  return ok


def cast_view(bld: Building, location: np.ndarray, rot: np.ndarray, fov: float,
              dirs_world: np.ndarray, spheres_cache=None,
              cull: bool = True) -> tuple[raycast.Hits, np.ndarray]:
  """Casts unit world rays from one camera, with frustum culling unless `cull` is False.

  Returns:
    hits (indices refer to the culled arrays) and the (N,) global primitive index (-1 if none).
  """
  bs = spheres_cache or _bounding_spheres(bld)
  keep = [np.flatnonzero(_in_frustum(bs[2 * i], bs[2 * i + 1], location, rot, fov) | (not cull))
          for i in range(3)]
  hits = raycast.cast(location, dirs_world, bld.boxes[keep[0]], bld.cylinders[keep[1]],
                      bld.spheres[keep[2]])
  offsets = bld.prim_offset
  glob = np.full(len(hits.t), -1)
  for kind in range(3):
    sel = hits.kind == kind
    glob[sel] = offsets[kind] + keep[kind][hits.index[sel]]
  return hits, glob


def _curvature(bld: Building, glob: np.ndarray, cap: np.ndarray) -> np.ndarray:
  """Analytic principal curvatures (N, 2): planes 0, cylinder sides (1/r, 0), spheres 1/r."""
  k = np.zeros((len(glob), 2))
  _, c0, s0 = bld.prim_offset
  cyl = (glob >= c0) & (glob < s0) & ~cap
  k[cyl, 0] = 1.0 / bld.cylinders[glob[cyl] - c0, 4]
  sph = glob >= s0
  k[sph, :] = (1.0 / bld.spheres[glob[sph] - s0, 3])[:, None]
  return k


def _points_in_frame(bld: Building, location: np.ndarray, rot: np.ndarray, fov: float,
                     resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The building's points projecting inside the image: (indices, unit directions, distances)."""
  locs = np.array([p.location for p in bld.points])
  uv, z = cam.project(locs, location, rot, fov, resolution)
  inside = np.flatnonzero((z > 0) & np.all((uv >= 0) & (uv < resolution), axis=1))
  to = locs[inside] - location
  dist = np.linalg.norm(to, axis=1)
  return inside, to / dist[:, None], dist


def _seen(t: np.ndarray, dist: np.ndarray) -> np.ndarray:
  """Line of sight: the ray towards a point hits nothing before it."""
  return np.abs(t - dist) < 1e-3 * np.maximum(dist, 1.0)


def visible_points(bld: Building, location: np.ndarray, rot: np.ndarray, fov: float,
                   resolution: int, spheres_cache=None) -> np.ndarray:
  """Indices of the building's points inside this image and in line of sight of the camera."""
  inside, dirs, dist = _points_in_frame(bld, location, rot, fov, resolution)
  if not len(inside):
    return inside
  hits, _ = cast_view(bld, location, rot, fov, dirs, spheres_cache)
  return inside[_seen(hits.t, dist)]


def _point_info(bld: Building, cfg: WorldConfig, p: int, v: int, rot: np.ndarray, fov: float,
                in_view: np.ndarray) -> dict:
  point = bld.points[p]
  k = point.cameras[v]
  loc = bld.camera_location[k]
  yaw = bld.camera_yaw[k]
  rot_orig = cam.euler_to_matrix([np.pi / 2, 0.0, yaw])
  to = point.location - loc
  dist = float(np.linalg.norm(to))
  room = int(bld.camera_room[k])
  rtype = cats.ROOM_TYPES[bld.room_type[point.room]]
  vps = layout.vanishing_points(rot)
  lo, hi = bld.room_lo[room], bld.room_hi[room]

  def fl(a):
    return [float(x) for x in np.ravel(a)]

  return {
      "building": bld.name,
      "model_id": bld.name,
      "point_uuid": _uuid(bld.name, "point", p),
      "point_index": p,
      "view_id": v,
      "camera_uuid": _uuid(bld.name, "camera", k),
      "camera_location": fl(loc),
      "camera_rotation_original": fl([np.pi / 2, 0.0, yaw]),
      "camera_rotation_from_original_to_final": fl(cam.matrix_to_euler(rot @ rot_orig.T)),
      "camera_rotation_final": fl(cam.matrix_to_euler(rot)),
      "camera_rotation_final_quaternion": fl(cam.matrix_to_quaternion_wxyz(rot)),
      "field_of_view_rads": float(fov),
      "resolution": int(cfg.resolution),
      "camera_k_matrix": cam.intrinsics(fov, cfg.resolution).tolist(),
      "point_location": fl(point.location),
      "point_normal": fl(point.normal),
      "point_pitch": float(np.arcsin(np.clip(to[2] / dist, -1, 1))),
      "camera_distance": dist,
      "obliqueness_angle": float(np.arccos(np.clip(np.dot(point.normal, -to / dist), -1, 1))),
      "nonfixated_points_in_view": [int(i) for i in in_view if i != p],
      "room": f"{rtype.name}_{point.room}_0",
      "room_type": rtype.name,
      "scene_class": int(rtype.places),
      "bounding_box_ranges": {"x": fl([lo[0], hi[0]]), "y": fl([lo[1], hi[1]]),
                              "z": fl([lo[2], hi[2]])},
      "vanishing_points_gaussian_sphere": {"x": fl(vps[0]), "y": fl(vps[1]), "z": fl(vps[2])},
      "room_layout": fl(layout.room_layout(loc, rot, lo, hi)),
      "vanishing_point": fl(vps),
  }


def shade_rgb(bld: Building, cfg: WorldConfig, p_world: np.ndarray, n_world: np.ndarray,
              prim: np.ndarray, rooms: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """Tone-mapped colour of N ray hits: (N, 3) in [0, 1], `VOID_RGB` where `valid` is False.

  Args:
    p_world, n_world: (N, 3) hit points and unit normals in the world frame.
    prim: (N,) global primitive index of each hit (any index where not valid).
    rooms: (N,) room of each hit; valid: (N,) bool.
  """
  alb = shading.albedo(bld, p_world, n_world, bld.prim_material[prim], cfg.albedo_drift)
  rgb = shading.tone_map(alb * shading.irradiance(bld, p_world, n_world, rooms))
  return np.where(valid[:, None], rgb, VOID_RGB)


def render_view(bld: Building, cfg: WorldConfig, p: int, v: int, _cache=None,
                cull: bool = True) -> View:
  """Renders view `v` of point `p` of `bld` with every domain (`cull=False`: no frustum
  culling, the benchmark's baseline; the output is identical)."""
  res = cfg.resolution
  point = bld.points[p]
  loc = bld.camera_location[point.cameras[v]]
  rot = view_rotation(bld, point, v)
  fov = point.fovs[v]
  d_cam = cam.pixel_rays_camera(fov, res).reshape(-1, 3)
  length = np.linalg.norm(d_cam, axis=1)
  d_cam_unit = d_cam / length[:, None]
  d_world = d_cam_unit @ rot.T
  # The rays towards the building's other points ride along with the pixel rays (one cast):
  # they lie inside the frustum, so culling keeps everything that could block them.
  inside, p_dirs, p_dist = _points_in_frame(bld, loc, rot, fov, res)
  all_hits, all_glob = cast_view(bld, loc, rot, fov, np.concatenate([d_world, p_dirs]), _cache,
                                 cull)
  n_px = res * res
  in_view = inside[_seen(all_hits.t[n_px:], p_dist)]
  hits = raycast.Hits(t=all_hits.t[:n_px], kind=all_hits.kind[:n_px],
                      index=all_hits.index[:n_px], normal=all_hits.normal[:n_px],
                      cap=all_hits.cap[:n_px])
  glob = all_glob[:n_px]
  valid = (glob >= 0) & (hits.t <= cfg.max_depth)
  t = np.where(valid, hits.t, 0.0)
  gsafe = np.maximum(glob, 0)
  obj = np.where(valid, bld.prim_object[gsafe], -1)
  category = np.where(valid, bld.object_category[np.maximum(obj, 0)], -1)
  n_world = hits.normal / np.maximum(np.linalg.norm(hits.normal, axis=1, keepdims=True), 1e-12)
  n_world = np.where(valid[:, None], n_world, 0.0)   # re-normalised: the cast is float32
  n_cam = n_world @ rot
  p_world = np.where(valid[:, None], loc + t[:, None] * d_world, 0.0)
  p_cam = d_cam_unit * t[:, None]
  rooms = bld.room_of(p_world + 0.05 * n_world)
  rgb = shade_rgb(bld, cfg, p_world, n_world, gsafe, rooms, valid)
  shape2, shape3 = (res, res), (res, res, 3)
  rgb_img = rgb.reshape(shape3)
  valid_img = valid.reshape(shape2)
  depth_e = t.reshape(shape2)
  depth_z = (t / length).reshape(shape2)
  normal = n_cam.reshape(shape3)
  reshade = np.clip(np.sum(n_cam * -d_cam_unit, axis=1), 0.0, 1.0) * valid
  curv = _curvature(bld, gsafe, hits.cap) * valid[:, None]
  focal = cam.focal_length_px(fov, res)
  pcam_img = p_cam.reshape(shape3)
  semantic = np.where(valid, _COCO[np.maximum(category, 0)], 0)
  room_types = bld.room_type[rooms]
  domains = {
      "rgb": rgb_img,
      "depth_zbuffer": depth_z,
      "depth_euclidean": depth_e,
      "mask_valid": valid_img,
      "normal": normal,
      "reshading": reshade.reshape(shape2),
      "principal_curvature": curv.reshape(res, res, 2),
      "edge_occlusion": ann.edge_occlusion(pcam_img, normal, valid_img, focal),
      "edge_texture": ann.edge_texture(rgb_img),
      "keypoints2d": ann.keypoints2d(rgb_img),
      "keypoints3d": ann.keypoints3d(normal, valid_img),
      "segment_unsup2d": ann.segment_unsup2d(rgb_img),
      "segment_unsup25d": ann.segment_unsup25d(rgb_img, depth_z, normal, valid_img),
      "segment_semantic": semantic.reshape(shape2),
      "class_object": ann.class_object(category, valid),
      "class_scene": ann.class_scene(room_types, valid),
  }
  for name, info in DOMAINS.items():
    domains[name] = np.ascontiguousarray(domains[name], dtype=info.dtype)
  aux = {"primitive": np.where(valid, glob, -1).reshape(shape2).astype(np.int32),
         "object_id": obj.reshape(shape2).astype(np.int32),
         "category": category.reshape(shape2).astype(np.int32),
         "hit_world": p_world.reshape(shape3)}
  return View(building=bld.name, point=p, view=v, domains=domains,
              point_info=_point_info(bld, cfg, p, v, rot, fov, in_view), aux=aux)


def render_views(bld: Building, cfg: WorldConfig | None = None,
                 cull: bool = True) -> Iterator[View]:
  """Yields every view of every point of `bld`, points in order, then views in order."""
  cfg = cfg or WorldConfig()
  cache = _bounding_spheres(bld)
  for p, point in enumerate(bld.points):
    for v in range(len(point.cameras)):
      yield render_view(bld, cfg, p, v, cache, cull)
