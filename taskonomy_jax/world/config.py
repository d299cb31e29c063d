"""`WorldConfig`: every knob of the procedural world, with the defaults used for CPU work."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class WorldConfig:
  """Parameters of building generation and rendering.

  Attributes:
    resolution: image side in pixels (64 for CPU work, 256 as in the paper).
    min_rooms, max_rooms: rooms per building (a grid of 1-3 x 1-2 rooms joined by doors).
    furniture_per_room: (min, max) furniture items per room.
    cameras_per_room: camera positions per room (shared by the points they see, as the real
      dataset's scan positions are).
    points_per_building: fixated 3D points per building.
    views_per_point: (min, max) views (cameras looking at the point) per point.
    fov_deg: (min, max) field of view in degrees, sampled per view (the real mean is 61 deg).
    point_distance: (min, max) camera-to-point distance in metres.
    max_obliqueness_deg: largest angle between the point's surface normal and the view ray.
    max_depth: depth beyond this range (metres) is invalid (the dataset's 16-bit cap is 128 m).
    window_probability: chance that an outer wall segment has a window onto the void.
    albedo_drift: contrast of each material's slow albedo variation (stains, fading, dirt;
      periods of 1.5-6 m), each colour channel scaled by 1 + albedo_drift * its own plane wave,
      so hue and brightness drift over a surface. Without it a cell's colour names its surface
      and shading far more plainly than in real scans, and an untrained encoder, which keeps
      the colour, rivals trained networks as a source of 3D tasks (docs/random_projection.md).
      0: each material is its two pattern colours alone (synthetic dataset 1.0.0).
  """

  resolution: int = 64
  min_rooms: int = 2
  max_rooms: int = 4
  furniture_per_room: tuple[int, int] = (4, 7)
  cameras_per_room: int = 4
  points_per_building: int = 8
  views_per_point: tuple[int, int] = (2, 4)
  fov_deg: tuple[float, float] = (45.0, 75.0)
  point_distance: tuple[float, float] = (1.0, 6.0)
  max_obliqueness_deg: float = 75.0
  max_depth: float = 128.0
  window_probability: float = 0.6
  albedo_drift: float = 0.85

  def __post_init__(self):
    if not isinstance(self.resolution, int) or self.resolution < 8:
      raise ValueError(f"resolution must be an int >= 8, got {self.resolution!r}")
    if not 1 <= self.min_rooms <= self.max_rooms <= 6:
      raise ValueError(f"need 1 <= min_rooms <= max_rooms <= 6, got {self.min_rooms}, "
                       f"{self.max_rooms}")
    if self.views_per_point[0] < 1 or self.views_per_point[0] > self.views_per_point[1]:
      raise ValueError(f"views_per_point must be (min >= 1, max >= min), got "
                       f"{self.views_per_point}")
    if self.points_per_building < 1:
      raise ValueError(f"points_per_building must be >= 1, got {self.points_per_building}")
    if not 10.0 <= self.fov_deg[0] <= self.fov_deg[1] < 150.0:
      raise ValueError(f"fov_deg must be (min, max) within [10, 150), got {self.fov_deg}")
    if not 0.0 <= self.albedo_drift < 1.0:  # >= 1 would turn albedo negative (then clipped)
      raise ValueError(f"albedo_drift must be in [0, 1), got {self.albedo_drift}")
