"""Procedural buildings: rooms, walls with doors and windows, furniture, materials, lights,
cameras and fixated points, in the real dataset's structure (building -> points -> views).

Everything is drawn from `numpy.random.default_rng(seed)`, so a seed always gives the same
building. Geometry is a set of solid primitives (see `raycast`): axis-aligned boxes, capped
cylinders along a world axis, and spheres; each primitive belongs to one object (a furniture
item or a piece of the room shell) with a world category (`categories.CATEGORIES`) and a
material.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from taskonomy_jax.world import camera as cam
from taskonomy_jax.world import categories as cats
from taskonomy_jax.world import raycast
from taskonomy_jax.world.config import WorldConfig

WALL = 0.12          # wall thickness (m)
DOOR_W, DOOR_H = 0.9, 2.1
CAMERA_CLEARANCE = 0.35


@dataclasses.dataclass
class Materials:
  """Procedural materials, M of them.

  Attributes:
    color1, color2: (M, 3) linear RGB albedos in [0, 1] the pattern mixes.
    pattern: (M,) int: 0 plain noise, 1 stripes, 2 checker tiles, 3 planks, 4 bricks,
      5 blobs, 6 dots (see `shading.albedo`).
    scale: (M,) pattern frequency (cycles per metre).
    angle: (M,) pattern rotation in radians.
    noise: (M, 3, 4) three random 3D plane waves (direction xyz * frequency, phase) for grain.
  """

  color1: np.ndarray
  color2: np.ndarray
  pattern: np.ndarray
  scale: np.ndarray
  angle: np.ndarray
  noise: np.ndarray


@dataclasses.dataclass
class Point:
  """A fixated 3D point and the cameras (views) that look at it."""

  location: np.ndarray     # (3,) world
  normal: np.ndarray       # (3,) world, outward normal of the surface it lies on
  room: int
  cameras: list[int]       # camera index per view
  fovs: list[float]        # field of view (radians) per view


@dataclasses.dataclass
class Building:
  """A generated building: geometry, materials, lights, cameras and points; no pixels.

  Primitive arrays use the `raycast` layouts. Per-primitive attributes are indexed by the global
  primitive index: boxes first, then cylinders, then spheres (`prim_offset`).
  """

  name: str
  seed: int
  boxes: np.ndarray            # (B, 6)
  cylinders: np.ndarray        # (C, 6)
  spheres: np.ndarray          # (S, 4)
  prim_object: np.ndarray      # (P,) object index
  prim_material: np.ndarray    # (P,) material index
  object_category: np.ndarray  # (O,) category index into categories.CATEGORIES
  object_room: np.ndarray      # (O,) room index
  materials: Materials
  room_lo: np.ndarray          # (R, 3) interior box of each room
  room_hi: np.ndarray          # (R, 3)
  room_type: np.ndarray        # (R,) index into categories.ROOM_TYPES
  light_pos: np.ndarray        # (L, 3)
  light_power: np.ndarray      # (L, 3) RGB intensity
  light_room: np.ndarray       # (L,)
  camera_location: np.ndarray  # (K, 3)
  camera_room: np.ndarray      # (K,)
  camera_yaw: np.ndarray       # (K,) heading of the camera's original (level) rotation
  points: list[Point]

  @property
  def prim_offset(self) -> tuple[int, int, int]:
    """Global index of the first box, cylinder and sphere."""
    nb, nc = len(self.boxes), len(self.cylinders)
    return 0, nb, nb + nc

  def global_index(self, kind: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(kind, index within kind) from `raycast.Hits` -> global primitive index (-1 if none)."""
    offsets = np.array(self.prim_offset)
    return np.where(kind >= 0, offsets[np.maximum(kind, 0)] + index, -1)

  def cast(self, origins: np.ndarray, dirs: np.ndarray) -> raycast.Hits:
    return raycast.cast(origins, dirs, self.boxes, self.cylinders, self.spheres)

  def room_of(self, points: np.ndarray) -> np.ndarray:
    """Room index of world points (..., 3): the room whose interior box is nearest."""
    p = np.asarray(points)[..., None, :]
    gap = np.maximum(self.room_lo - p, 0) + np.maximum(p - self.room_hi, 0)
    return np.argmin(np.sum(gap * gap, axis=-1), axis=-1)


class _Builder:
  """Accumulates primitives, objects and materials while a building is generated."""

  def __init__(self, rng: np.random.Generator):
    self.rng = rng
    self.boxes: list[list[float]] = []
    self.box_attr: list[tuple[int, int]] = []
    self.cyls: list[list[float]] = []
    self.cyl_attr: list[tuple[int, int]] = []
    self.sphs: list[list[float]] = []
    self.sph_attr: list[tuple[int, int]] = []
    self.obj_cat: list[int] = []
    self.obj_room: list[int] = []
    self.mats: list[tuple] = []
    self.lights: list[tuple[np.ndarray, np.ndarray, int]] = []

  def obj(self, category: str, room: int) -> int:
    self.obj_cat.append(cats.CATEGORY_INDEX[category])
    self.obj_room.append(room)
    return len(self.obj_cat) - 1

  def material(self, kind: str) -> int:
    r = self.rng
    palettes = {
        "paint": ((0.55, 0.95), 0.15, (0, 1, 4, 6)),
        "floor": ((0.25, 0.7), 0.35, (2, 3, 3, 5)),
        "ceiling": ((0.8, 0.95), 0.05, (0, 0)),
        "wood": ((0.25, 0.6), 0.3, (1, 3)),
        "fabric": ((0.2, 0.85), 0.6, (0, 1, 2, 5, 6)),
        "metal": ((0.45, 0.8), 0.05, (0, 1)),
        "plastic": ((0.2, 0.95), 0.7, (0, 5)),
        "ceramic": ((0.85, 0.98), 0.05, (0, 2)),
        "plant": ((0.15, 0.45), 0.2, (5, 6)),
        "screen": ((0.03, 0.1), 0.05, (0,)),
        "book": ((0.2, 0.8), 0.8, (0, 1)),
    }
    (lo, hi), sat, patterns = palettes[kind]
    if kind == "plant":
      base = np.array([0.15, 0.45, 0.12]) * r.uniform(0.6, 1.4)
    elif kind == "wood":
      base = np.array([0.55, 0.36, 0.2]) * r.uniform(0.5, 1.3)
    else:
      grey = r.uniform(lo, hi)
      base = grey * (1 - sat + sat * r.uniform(0.2, 1.0, 3))
    contrast = r.uniform(0.5, 0.85)
    other = np.clip(base * contrast + r.normal(0, 0.08, 3) * sat, 0, 1)
    pattern = int(r.choice(patterns))
    scale = {0: 1.0, 1: r.uniform(3, 9), 2: r.uniform(1.5, 4), 3: r.uniform(3, 7),
             4: r.uniform(3, 5), 5: r.uniform(1.5, 5), 6: r.uniform(4, 10)}[pattern]
    angle = float(r.choice([0.0, np.pi / 2, r.uniform(0, np.pi)]))
    noise = np.concatenate([r.normal(0, 1, (3, 3)) * r.uniform(4, 20, (3, 1)),
                            r.uniform(0, 2 * np.pi, (3, 1))], axis=1)
    self.mats.append((np.clip(base, 0, 1), other, pattern, scale, angle, noise))
    return len(self.mats) - 1

  def box(self, lo, hi, obj: int, mat: int) -> None:
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    self.boxes.append([*lo, *hi])
    self.box_attr.append((obj, mat))

  def cylinder(self, c0: float, c1: float, a0: float, a1: float, r: float, axis: int, obj: int,
               mat: int) -> None:
    self.cyls.append([c0, c1, min(a0, a1), max(a0, a1), r, axis])
    self.cyl_attr.append((obj, mat))

  def sphere(self, centre, r: float, obj: int, mat: int) -> None:
    self.sphs.append([*centre, r])
    self.sph_attr.append((obj, mat))


class _Placer:
  """Maps an item's local frame (back towards +y) into the world: a rotation by `k` quarter
  turns about z, then a shift to `origin`; quarter turns keep boxes axis-aligned."""

  def __init__(self, b: _Builder, origin: np.ndarray, k: int):
    self.b, self.origin, self.k = b, origin, k % 4

  def _xy(self, x: float, y: float) -> tuple[float, float]:
    for _ in range(self.k):
      x, y = -y, x
    return x + self.origin[0], y + self.origin[1]

  def box(self, lo, hi, obj: int, mat: int) -> None:
    x0, y0 = self._xy(lo[0], lo[1])
    x1, y1 = self._xy(hi[0], hi[1])
    self.b.box([x0, y0, lo[2]], [x1, y1, hi[2]], obj, mat)

  def vcyl(self, x: float, y: float, z0: float, z1: float, r: float, obj: int, mat: int) -> None:
    wx, wy = self._xy(x, y)
    self.b.cylinder(wx, wy, z0, z1, r, 2, obj, mat)

  def hcyl_y(self, x: float, y0: float, y1: float, z: float, r: float, obj: int,
             mat: int) -> None:
    """A cylinder whose axis is the local y axis."""
    wx0, wy0 = self._xy(x, y0)
    wx1, wy1 = self._xy(x, y1)
    if self.k % 2 == 0:   # local y is world y: other axes (x, z)
      self.b.cylinder(wx0, z, wy0, wy1, r, 1, obj, mat)
    else:                 # local y is world x: other axes (y, z)
      self.b.cylinder(wy0, z, wx0, wx1, r, 0, obj, mat)

  def sphere(self, x: float, y: float, z: float, r: float, obj: int, mat: int) -> None:
    wx, wy = self._xy(x, y)
    self.b.sphere([wx, wy, z], r, obj, mat)


# ---- furniture: each item is built in a local frame, footprint [-w/2, w/2] x [-d/2, d/2],
# back at +y (against the wall when placed at a wall), floor at z = 0. Returns its footprint.

def _legs(p: _Placer, w: float, d: float, h: float, inset: float, r: float, obj: int,
          mat: int, round_legs: bool) -> None:
  for sx in (-1, 1):
    for sy in (-1, 1):
      x, y = sx * (w / 2 - inset), sy * (d / 2 - inset)
      if round_legs:
        p.vcyl(x, y, 0.0, h, r, obj, mat)
      else:
        p.box([x - r, y - r, 0.0], [x + r, y + r, h], obj, mat)


def _small_item(b: _Builder, p: _Placer, room: int, x: float, y: float, z: float) -> None:
  """A bottle or a vase standing at local (x, y) on a surface at height z."""
  r = b.rng
  if r.random() < 0.5:
    o = b.obj("bottle", room)
    m = b.material(r.choice(["plastic", "ceramic"]))
    rad, h = r.uniform(0.03, 0.045), r.uniform(0.18, 0.3)
    p.vcyl(x, y, z, z + h, rad, o, m)
    p.vcyl(x, y, z + h, z + h + 0.08, rad * 0.35, o, m)
  else:
    o = b.obj("vase", room)
    m = b.material(r.choice(["ceramic", "plastic"]))
    rad = r.uniform(0.06, 0.1)
    p.sphere(x, y, z + rad, rad, o, m)
    p.vcyl(x, y, z + rad, z + 2.6 * rad, rad * 0.45, o, m)


def _table(b, p, room, desk=False):
  r = b.rng
  w, d = (r.uniform(1.1, 1.6), r.uniform(0.6, 0.75)) if desk else (r.uniform(0.9, 1.8),
                                                                   r.uniform(0.7, 1.0))
  h = r.uniform(0.72, 0.78)
  o = b.obj("table", room)
  m = b.material("wood" if r.random() < 0.7 else "plastic")
  p.box([-w / 2, -d / 2, h - 0.04], [w / 2, d / 2, h], o, m)
  _legs(p, w, d, h - 0.04, 0.06, r.uniform(0.02, 0.035), o, m, round_legs=r.random() < 0.5)
  if desk and r.random() < 0.7:
    to = b.obj("tv", room)
    sm = b.material("screen")
    tw = r.uniform(0.45, 0.65)
    p.box([-tw / 2, d / 2 - 0.2, h + 0.12], [tw / 2, d / 2 - 0.16, h + 0.12 + tw * 0.6], to, sm)
    p.box([-0.04, d / 2 - 0.18, h], [0.04, d / 2 - 0.12, h + 0.14], to, b.material("metal"))
  elif r.random() < 0.6:
    _small_item(b, p, room, r.uniform(-w / 4, w / 4), r.uniform(-d / 4, d / 4), h)
  return w, d


def _chair(b, p, room):
  r = b.rng
  w = r.uniform(0.42, 0.5)
  o = b.obj("chair", room)
  m = b.material(r.choice(["wood", "plastic", "fabric"]))
  sh = r.uniform(0.43, 0.48)
  p.box([-w / 2, -w / 2, sh - 0.05], [w / 2, w / 2, sh], o, m)
  p.box([-w / 2, w / 2 - 0.05, sh], [w / 2, w / 2, sh + r.uniform(0.35, 0.5)], o, m)
  _legs(p, w, w, sh - 0.05, 0.03, 0.02, o, m, round_legs=r.random() < 0.5)
  return w, w


def _couch(b, p, room):
  r = b.rng
  w, d = r.uniform(1.6, 2.3), r.uniform(0.8, 0.95)
  o = b.obj("couch", room)
  m = b.material("fabric")
  p.box([-w / 2, -d / 2, 0.08], [w / 2, d / 2, 0.42], o, m)
  p.box([-w / 2, d / 2 - 0.22, 0.42], [w / 2, d / 2, 0.82], o, m)
  for sx in (-1, 1):
    x0 = sx * w / 2
    p.box([x0 - sx * 0.18, -d / 2, 0.42], [x0, d / 2 - 0.22, 0.62], o, m)
  for sx in (-1, 1):
    for sy in (-1, 1):
      p.vcyl(sx * (w / 2 - 0.06), sy * (d / 2 - 0.06), 0.0, 0.08, 0.03, o, b.material("wood"))
  return w, d


def _bed(b, p, room):
  r = b.rng
  w, d = r.uniform(1.0, 1.8), r.uniform(1.95, 2.1)
  o = b.obj("bed", room)
  wood, cloth = b.material("wood"), b.material("fabric")
  p.box([-w / 2, -d / 2, 0.0], [w / 2, d / 2, 0.3], o, wood)
  p.box([-w / 2 + 0.03, -d / 2 + 0.03, 0.3], [w / 2 - 0.03, d / 2 - 0.05, 0.52], o, cloth)
  p.box([-w / 2, d / 2 - 0.05, 0.0], [w / 2, d / 2, r.uniform(0.9, 1.2)], o, wood)
  pillow = b.material("fabric")
  for x0 in ((-w / 2 + 0.1, w / 2 - 0.1) if w < 1.3 else (-w / 2 + 0.1, 0.05)):
    x1 = x0 + (w - 0.2 if w < 1.3 else w / 2 - 0.15)
    p.box([x0, d / 2 - 0.5, 0.52], [x1, d / 2 - 0.1, 0.64], o, pillow)
  return w, d


def _shelf(b, p, room):
  r = b.rng
  w, d, h = r.uniform(0.8, 1.3), r.uniform(0.3, 0.4), r.uniform(1.4, 2.0)
  o = b.obj("shelf", room)
  m = b.material("wood")
  p.box([-w / 2, -d / 2, 0], [-w / 2 + 0.03, d / 2, h], o, m)
  p.box([w / 2 - 0.03, -d / 2, 0], [w / 2, d / 2, h], o, m)
  p.box([-w / 2, d / 2 - 0.02, 0], [w / 2, d / 2, h], o, m)
  n = int(h // 0.38)
  for i in range(n + 1):
    z = min(i * 0.38, h - 0.03)
    p.box([-w / 2, -d / 2, z], [w / 2, d / 2, z + 0.03], o, m)
    if i < n and r.random() < 0.8:
      bo = b.obj("book", room)
      x = -w / 2 + 0.03
      while x < w / 2 - 0.12:
        bw = r.uniform(0.08, 0.25)
        bh = r.uniform(0.18, 0.32)
        if r.random() < 0.8:
          p.box([x, -d / 2 + r.uniform(0.03, 0.08), z + 0.03], [min(x + bw, w / 2 - 0.03),
                d / 2 - 0.02, z + 0.03 + bh], bo, b.material("book"))
        x += bw + r.uniform(0.0, 0.06)
  return w, d


def _lamp(b, p, room):
  r = b.rng
  o = b.obj("lamp", room)
  metal, shade = b.material("metal"), b.material(r.choice(["fabric", "plastic"]))
  h = r.uniform(1.3, 1.7)
  p.vcyl(0, 0, 0, 0.03, 0.15, o, metal)
  p.vcyl(0, 0, 0.03, h, 0.015, o, metal)
  if r.random() < 0.5:
    p.vcyl(0, 0, h, h + 0.3, r.uniform(0.16, 0.22), o, shade)
  else:
    p.sphere(0, 0, h + 0.15, r.uniform(0.15, 0.2), o, shade)
  x, y = p._xy(0.0, 0.0)
  b.lights.append((np.array([x, y, h - 0.1]), np.array([1.0, 0.85, 0.6]) * r.uniform(0.8, 1.5),
                   room))
  return 0.36, 0.36


def _plant(b, p, room):
  r = b.rng
  o = b.obj("potted_plant", room)
  pr, ph = r.uniform(0.12, 0.22), r.uniform(0.25, 0.5)
  p.vcyl(0, 0, 0, ph, pr, o, b.material(r.choice(["ceramic", "plastic"])))
  leaf = b.material("plant")
  for _ in range(int(r.integers(1, 4))):
    fr = r.uniform(0.2, 0.35)
    p.sphere(r.uniform(-0.08, 0.08), r.uniform(-0.08, 0.08), ph + fr * r.uniform(0.6, 1.4),
             fr, o, leaf)
  s = 2 * max(pr, 0.3)
  return s, s


def _tv_stand(b, p, room):
  r = b.rng
  w, d = r.uniform(1.2, 1.8), r.uniform(0.4, 0.5)
  co = b.obj("cabinet", room)
  p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, 0.5], co, b.material("wood"))
  to = b.obj("tv", room)
  tw = r.uniform(0.8, min(1.3, w))
  p.box([-0.15, -0.1, 0.5], [0.15, 0.1, 0.55], to, b.material("metal"))
  p.box([-tw / 2, -0.04, 0.6], [tw / 2, 0.02, 0.6 + tw * 0.58], to, b.material("screen"))
  p.box([-0.03, -0.02, 0.55], [0.03, 0.02, 0.6], to, b.material("metal"))
  return w, d


def _cabinet(b, p, room):
  r = b.rng
  w, d, h = r.uniform(0.6, 1.2), r.uniform(0.4, 0.6), r.uniform(0.8, 1.9)
  o = b.obj("cabinet", room)
  p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, h], o, b.material(r.choice(["wood", "plastic"])))
  hm = b.material("metal")
  for sx in (-1, 1):
    p.box([sx * 0.06 - 0.01, -d / 2 - 0.02, h * 0.45], [sx * 0.06 + 0.01, -d / 2, h * 0.6], o, hm)
  if h < 1.1 and r.random() < 0.6:
    _small_item(b, p, room, r.uniform(-w / 4, w / 4), 0.0, h)
  return w, d


def _counter(b, p, room):
  r = b.rng
  w, d, h = r.uniform(1.6, 2.6), 0.6, 0.9
  o = b.obj("cabinet", room)
  p.box([-w / 2, -d / 2 + 0.05, 0], [w / 2, d / 2, h - 0.04], o, b.material("wood"))
  p.box([-w / 2, -d / 2, h - 0.04], [w / 2, d / 2, h], o, b.material("ceramic"))
  x = -w / 2 + 0.1
  for item in r.permutation(["microwave", "toaster", "sink", "bottle"]):
    if x > w / 2 - 0.5:
      break
    if item == "microwave":
      mo = b.obj("microwave", room)
      p.box([x, -0.15, h], [x + 0.48, 0.28, h + 0.3], mo, b.material(r.choice(["metal",
                                                                              "plastic"])))
      p.box([x + 0.05, -0.16, h + 0.05], [x + 0.33, -0.15, h + 0.25], mo, b.material("screen"))
      x += 0.6
    elif item == "toaster":
      to = b.obj("toaster", room)
      p.box([x, -0.05, h], [x + 0.27, 0.13, h + 0.2], to, b.material("metal"))
      x += 0.4
    elif item == "sink":
      so = b.obj("sink", room)
      p.box([x, -0.22, h], [x + 0.5, 0.2, h + 0.04], so, b.material("metal"))
      p.vcyl(x + 0.25, 0.17, h, h + 0.3, 0.015, so, b.material("metal"))
      x += 0.65
    else:
      _small_item(b, p, room, x + 0.05, 0.0, h)
      x += 0.2
  return w, d


def _vanity(b, p, room):
  r = b.rng
  w, d, h = r.uniform(0.7, 1.0), 0.5, 0.8
  o = b.obj("cabinet", room)
  p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, h], o, b.material("wood"))
  so = b.obj("sink", room)
  white = b.material("ceramic")
  p.box([-0.25, -0.2, h], [0.25, 0.18, h + 0.14], so, white)
  p.vcyl(0, 0.21, h, h + 0.28, 0.015, so, b.material("metal"))
  return w, d


def _toilet(b, p, room):
  o = b.obj("toilet", room)
  white = b.material("ceramic")
  p.vcyl(0, -0.08, 0, 0.4, 0.19, o, white)
  p.vcyl(0, -0.08, 0.4, 0.43, 0.21, o, white)
  p.box([-0.2, 0.12, 0], [0.2, 0.3, 0.8], o, white)
  return 0.45, 0.7


def _fridge(b, p, room):
  r = b.rng
  o = b.obj("refrigerator", room)
  w, h = r.uniform(0.6, 0.8), r.uniform(1.6, 1.9)
  p.box([-w / 2, -0.32, 0], [w / 2, 0.35, h], o, b.material(r.choice(["metal", "ceramic"])))
  hm = b.material("metal")
  p.box([w / 2 - 0.1, -0.36, h * 0.5], [w / 2 - 0.07, -0.32, h * 0.8], o, hm)
  return w, 0.7


def _oven(b, p, room):
  o = b.obj("oven", room)
  p.box([-0.3, -0.3, 0], [0.3, 0.3, 0.9], o, b.material(b.rng.choice(["metal", "ceramic"])))
  p.box([-0.22, -0.31, 0.2], [0.22, -0.3, 0.55], o, b.material("screen"))
  return 0.6, 0.6


def _side_table(b, p, room):
  """A small round or square table with a bottle or a vase on it."""
  r = b.rng
  o = b.obj("table", room)
  m = b.material(r.choice(["wood", "plastic"]))
  h, w = r.uniform(0.5, 0.7), r.uniform(0.4, 0.55)
  if r.random() < 0.5:
    p.vcyl(0, 0, h - 0.03, h, w / 2, o, m)
    p.vcyl(0, 0, 0, h - 0.03, 0.03, o, m)
    p.vcyl(0, 0, 0, 0.02, w / 3, o, m)
  else:
    p.box([-w / 2, -w / 2, h - 0.03], [w / 2, w / 2, h], o, m)
    _legs(p, w, w, h - 0.03, 0.03, 0.02, o, m, round_legs=False)
  _small_item(b, p, room, 0.0, 0.0, h)
  return w, w


_ITEMS = {"table": _table, "vase": _side_table, "bottle": _side_table, "desk": lambda b, p, room: _table(b, p, room, desk=True),
          "chair": _chair, "couch": _couch, "bed": _bed, "shelf": _shelf, "lamp": _lamp,
          "potted_plant": _plant, "tv": _tv_stand, "cabinet": _cabinet, "counter": _counter,
          "vanity": _vanity, "toilet": _toilet, "refrigerator": _fridge, "oven": _oven}
# Rough footprints (w, d) used to place an item before it is built.
_FOOTPRINT = {"table": (1.8, 1.0), "desk": (1.6, 0.75), "chair": (0.5, 0.5), "couch": (2.3, 0.95),
              "bed": (1.8, 2.1), "shelf": (1.3, 0.4), "lamp": (0.4, 0.4),
              "potted_plant": (0.7, 0.7), "tv": (1.8, 0.5), "cabinet": (1.2, 0.6),
              "counter": (2.6, 0.6), "vanity": (1.0, 0.5), "toilet": (0.45, 0.7),
              "refrigerator": (0.8, 0.7), "oven": (0.6, 0.6), "vase": (0.55, 0.55),
              "bottle": (0.55, 0.55)}
_AGAINST_WALL = {"couch", "bed", "shelf", "tv", "cabinet", "counter", "vanity", "toilet",
                 "refrigerator", "oven", "desk"}


def _furnish(b: _Builder, room: int, lo: np.ndarray, hi: np.ndarray, rtype: cats.RoomType,
             n_items: int) -> list[tuple[float, float, float, float]]:
  """Places up to `n_items` items without overlap; returns their world xy rectangles."""
  r = b.rng
  names = [n for n in rtype.furniture if n in _ITEMS]   # the clock hangs on a wall (below)
  weights = np.array([rtype.furniture[n] for n in names], float)
  placed: list[tuple[float, float, float, float]] = []
  for _ in range(n_items):
    name = names[r.choice(len(names), p=weights / weights.sum())]
    fw, fd = _FOOTPRINT[name]
    for _attempt in range(12):
      if name in _AGAINST_WALL or r.random() < 0.3:
        side = int(r.integers(4))   # 0: wall at +y, 1: -x, 2: -y, 3: +x (heading k)
        span = (hi[0] - lo[0]) if side % 2 == 0 else (hi[1] - lo[1])
        if span < fw + 0.1:
          continue
        t = r.uniform()
        along = (lo[0] if side % 2 == 0 else lo[1]) + fw / 2 + 0.05 + t * (span - fw - 0.1)
        if side == 0:
          origin = np.array([along, hi[1] - fd / 2 - 0.01])
        elif side == 1:
          origin = np.array([lo[0] + fd / 2 + 0.01, along])
        elif side == 2:
          origin = np.array([along, lo[1] + fd / 2 + 0.01])
        else:
          origin = np.array([hi[0] - fd / 2 - 0.01, along])
        k = side
      else:
        k = int(r.integers(4))
        m = max(fw, fd) / 2 + 0.3
        if hi[0] - lo[0] < 2 * m or hi[1] - lo[1] < 2 * m:
          continue
        origin = np.array([r.uniform(lo[0] + m, hi[0] - m), r.uniform(lo[1] + m, hi[1] - m)])
      ex, ey = (fw / 2, fd / 2) if k % 2 == 0 else (fd / 2, fw / 2)
      rect = (origin[0] - ex, origin[1] - ey, origin[0] + ex, origin[1] + ey)
      if any(rect[0] < q[2] and q[0] < rect[2] and rect[1] < q[3] and q[1] < rect[3]
             for q in placed):
        continue
      placed.append(rect)
      _ITEMS[name](b, _Placer(b, origin, k), room)
      break
  # A wall clock on a random wall, above the furniture.
  if "clock" in rtype.furniture and r.random() < 0.8:
    o = b.obj("clock", room)
    rad, z = r.uniform(0.13, 0.2), r.uniform(1.9, 2.2)
    side = int(r.integers(4))
    if side % 2 == 0:
      x = r.uniform(lo[0] + 0.4, hi[0] - 0.4)
      y0 = hi[1] if side == 0 else lo[1]
      b.cylinder(x, z, y0, y0 + (-0.04 if side == 0 else 0.04), rad, 1, o, b.material("plastic"))
    else:
      y = r.uniform(lo[1] + 0.4, hi[1] - 0.4)
      x0 = lo[0] if side == 1 else hi[0]
      b.cylinder(y, z, x0, x0 + (0.04 if side == 1 else -0.04), rad, 0, o, b.material("plastic"))
  return placed


def _walls(b: _Builder, xs: np.ndarray, ys: np.ndarray, height: float, room_at, room_mats,
           window_p: float) -> None:
  """Walls on the grid lines, centred on them, with doors inside and windows outside."""
  r = b.rng
  t2 = WALL / 2
  frame_mat = b.material("wood")
  for axis, lines, cross in ((0, xs, ys), (1, ys, xs)):
    for i, c in enumerate(lines):
      outer = i in (0, len(lines) - 1)
      for j in range(len(cross) - 1):
        s0, s1 = cross[j] - t2, cross[j + 1] + t2
        # The room on the inner side of this segment owns its material.
        ri = room_at(min(i, len(lines) - 2), j) if axis == 0 else room_at(j, min(i, len(lines) - 2))
        wall_obj = b.obj("wall", ri)
        mat = room_mats[ri]
        pieces: list[tuple[float, float, float, float]] = []  # (s0, s1, z0, z1)
        if not outer:
          d0 = r.uniform(s0 + 0.3, s1 - 0.3 - DOOR_W)
          pieces += [(s0, d0, 0, height), (d0 + DOOR_W, s1, 0, height)]
          lintel = (d0, d0 + DOOR_W, DOOR_H, height)
          fo = b.obj("door_frame", ri)
        elif r.random() < window_p and s1 - s0 > 2.2:
          ww = r.uniform(0.8, min(1.8, s1 - s0 - 1.0))
          w0 = r.uniform(s0 + 0.4, s1 - 0.4 - ww)
          sill, top = r.uniform(0.8, 1.0), r.uniform(1.9, 2.2)
          pieces += [(s0, w0, 0, height), (w0 + ww, s1, 0, height), (w0, w0 + ww, 0, sill),
                     (w0, w0 + ww, top, height)]
          lintel = None
          fo = b.obj("window_frame", ri)
          # A thin frame around the opening (inside faces), so the window reads as a window.
          for (a0, a1, z0, z1) in ((w0, w0 + 0.05, sill, top), (w0 + ww - 0.05, w0 + ww, sill, top),
                                   (w0, w0 + ww, sill, sill + 0.05)):
            lo3, hi3 = [0.0, 0.0, z0], [0.0, 0.0, z1]
            lo3[axis], hi3[axis] = c - t2, c + t2
            lo3[1 - axis], hi3[1 - axis] = a0, a1
            b.box(lo3, hi3, fo, frame_mat)
        else:
          pieces.append((s0, s1, 0, height))
          lintel = None
        for (a0, a1, z0, z1) in pieces:
          lo3, hi3 = [0.0, 0.0, z0], [0.0, 0.0, z1]
          lo3[axis], hi3[axis] = c - t2, c + t2
          lo3[1 - axis], hi3[1 - axis] = a0, a1
          b.box(lo3, hi3, wall_obj, mat)
        if lintel is not None:
          a0, a1, z0, z1 = lintel
          lo3, hi3 = [0.0, 0.0, z0], [0.0, 0.0, z1]
          lo3[axis], hi3[axis] = c - t2, c + t2
          lo3[1 - axis], hi3[1 - axis] = a0, a1
          b.box(lo3, hi3, fo, frame_mat)


def _grid(rng: np.random.Generator, n_rooms: int) -> tuple[int, int]:
  options = [(nx, ny) for nx in (1, 2, 3) for ny in (1, 2) if nx * ny == n_rooms]
  if not options:
    options = [(n_rooms, 1)] if n_rooms <= 3 else [(3, 2)]
  return options[int(rng.integers(len(options)))]


def _sample_points(bld: Building, rng: np.random.Generator, cfg: WorldConfig) -> list[Point]:
  """Fixated points: surface points seen by at least `views_per_point[0]` cameras."""
  points: list[Point] = []
  n_cam = len(bld.camera_location)
  dmin, dmax = cfg.point_distance
  max_obl = np.deg2rad(cfg.max_obliqueness_deg)
  for _attempt in range(cfg.points_per_building * 40):
    if len(points) == cfg.points_per_building:
      break
    k = int(rng.integers(n_cam))
    yaw = rng.uniform(-np.pi, np.pi)
    pitch = rng.uniform(np.deg2rad(-35), np.deg2rad(12))
    ray = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    h = bld.cast(bld.camera_location[k], ray[None])
    if h.kind[0] < 0 or not dmin <= h.t[0] <= dmax:
      continue
    # Most points on furniture, some on the room shell, so views are not mostly bare walls.
    obj = bld.prim_object[bld.global_index(h.kind, h.index)[0]]
    if bld.object_category[obj] in cats.STRUCTURAL and rng.random() < 0.75:
      continue
    target = bld.camera_location[k] + h.t[0] * ray
    normal = h.normal[0]
    # Which cameras see the target? Cast from every camera towards it.
    to = target[None] - bld.camera_location
    dist = np.linalg.norm(to, axis=1)
    dirs = to / dist[:, None]
    hits = bld.cast(bld.camera_location, dirs)
    visible = np.abs(hits.t - dist) < 1e-3 * np.maximum(dist, 1.0)
    oblique = np.arccos(np.clip(-(dirs @ normal), -1, 1))
    ok = visible & (dist >= dmin) & (dist <= dmax) & (oblique < max_obl)
    ok &= np.abs(dirs[:, 2]) < 0.95   # look-at is undefined straight up or down
    cands = np.flatnonzero(ok)
    if len(cands) < cfg.views_per_point[0]:
      continue
    n_views = int(rng.integers(cfg.views_per_point[0],
                               min(cfg.views_per_point[1], len(cands)) + 1))
    chosen = sorted(rng.choice(cands, n_views, replace=False).tolist())
    fovs = np.deg2rad(rng.uniform(*cfg.fov_deg, n_views)).tolist()
    points.append(Point(location=target, normal=normal,
                        room=int(bld.room_of(target + 0.05 * normal)), cameras=chosen,
                        fovs=fovs))
  if not points:
    raise RuntimeError(f"building {bld.name}: no point is seen by {cfg.views_per_point[0]} "
                       "cameras; loosen point_distance / views_per_point")
  return points


def generate_building(seed: int, cfg: WorldConfig | None = None) -> Building:
  """Generates building number `seed`: geometry, materials, lights, cameras and points.

  Args:
    seed: any non-negative int; the same seed and config always give the same building.
    cfg: world parameters (`WorldConfig()` if None).

  Returns:
    A `Building` (no pixels; render it with `render_views`).
  """
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
  cfg = cfg or WorldConfig()
  rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7A5C]))
  b = _Builder(rng)
  n_rooms = int(rng.integers(cfg.min_rooms, cfg.max_rooms + 1))
  nx, ny = _grid(rng, n_rooms)
  xs = np.concatenate([[0.0], np.cumsum(rng.uniform(3.2, 6.0, nx))])
  ys = np.concatenate([[0.0], np.cumsum(rng.uniform(3.2, 5.5, ny))])
  height = float(rng.uniform(2.6, 3.2))
  room_lo, room_hi, room_type = [], [], []
  idx = {}
  for i in range(nx):
    for j in range(ny):
      idx[i, j] = len(room_lo)
      room_lo.append([xs[i] + WALL / 2, ys[j] + WALL / 2, 0.0])
      room_hi.append([xs[i + 1] - WALL / 2, ys[j + 1] - WALL / 2, height])
      room_type.append(int(rng.integers(len(cats.ROOM_TYPES))))
  room_lo, room_hi = np.array(room_lo), np.array(room_hi)
  room_mats = [b.material("paint") for _ in room_lo]
  _walls(b, xs, ys, height, lambda i, j: idx[i, j], room_mats, cfg.window_probability)
  footprints = []
  for ri, (lo, hi) in enumerate(zip(room_lo, room_hi, strict=True)):
    fo, co = b.obj("floor", ri), b.obj("ceiling", ri)
    b.box([lo[0] - WALL / 2, lo[1] - WALL / 2, -0.1], [hi[0] + WALL / 2, hi[1] + WALL / 2, 0.0],
          fo, b.material("floor"))
    b.box([lo[0] - WALL / 2, lo[1] - WALL / 2, height],
          [hi[0] + WALL / 2, hi[1] + WALL / 2, height + 0.1], co, b.material("ceiling"))
    # Ceiling lights (one or two per room).
    for _ in range(int(rng.integers(1, 3))):
      pos = np.array([rng.uniform(lo[0] + 0.5, hi[0] - 0.5), rng.uniform(lo[1] + 0.5, hi[1] - 0.5),
                      height - 0.15])
      b.lights.append((pos, np.array([1.0, 0.95, 0.85]) * rng.uniform(1.5, 3.0), ri))
    n_items = int(rng.integers(cfg.furniture_per_room[0], cfg.furniture_per_room[1] + 1))
    footprints.append(_furnish(b, ri, lo, hi, cats.ROOM_TYPES[room_type[ri]], n_items))
  # Cameras: free floor positions at tripod height, away from furniture and walls.
  cam_loc, cam_room = [], []
  for ri, (lo, hi) in enumerate(zip(room_lo, room_hi, strict=True)):
    got = 0
    for _attempt in range(200):
      if got == cfg.cameras_per_room:
        break
      c = CAMERA_CLEARANCE
      x, y = rng.uniform(lo[0] + c, hi[0] - c), rng.uniform(lo[1] + c, hi[1] - c)
      if any(q[0] - c < x < q[2] + c and q[1] - c < y < q[3] + c for q in footprints[ri]):
        continue
      cam_loc.append([x, y, rng.uniform(1.2, 1.7)])
      cam_room.append(ri)
      got += 1

  def arr(rows, width):
    return np.array(rows, np.float64).reshape(-1, width)

  attrs = np.array(b.box_attr + b.cyl_attr + b.sph_attr, np.int64).reshape(-1, 2)
  m = b.mats
  bld = Building(
      name=f"synth_{seed:04d}", seed=int(seed), boxes=arr(b.boxes, 6),
      cylinders=arr(b.cyls, 6), spheres=arr(b.sphs, 4), prim_object=attrs[:, 0],
      prim_material=attrs[:, 1], object_category=np.array(b.obj_cat),
      object_room=np.array(b.obj_room),
      materials=Materials(color1=np.array([x[0] for x in m]), color2=np.array([x[1] for x in m]),
                          pattern=np.array([x[2] for x in m]), scale=np.array([x[3] for x in m]),
                          angle=np.array([x[4] for x in m]),
                          noise=np.array([x[5] for x in m])),
      room_lo=room_lo, room_hi=room_hi, room_type=np.array(room_type),
      light_pos=arr([x[0] for x in b.lights], 3), light_power=arr([x[1] for x in b.lights], 3),
      light_room=np.array([x[2] for x in b.lights]), camera_location=arr(cam_loc, 3),
      camera_room=np.array(cam_room), camera_yaw=rng.uniform(-np.pi, np.pi, len(cam_loc)),
      points=[])
  bld.points = _sample_points(bld, rng, cfg)
  return bld


def view_rotation(bld: Building, point: Point, view: int) -> np.ndarray:
  """Camera-to-world rotation of `view` of `point`: looking at the point, no roll."""
  return cam.look_at(bld.camera_location[point.cameras[view]], point.location)
