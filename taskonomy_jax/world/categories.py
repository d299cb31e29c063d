"""The world's semantic vocabulary and its maps onto the real dataset's label spaces.

* `segment_semantic` uses the 17 training classes of the original `segmentsemantic_rb` task:
  the dataset's PNGs hold 0 = "uncertain", 1 = background and 2..17 = 16 MS-COCO classes
  (`taskbank/assets/web_assets/pseudosemantics/coco_selected_classes.txt` of
  StanfordVL/taskonomy); the original loader (`semantic_segment_rebalanced`) maps uncertain to
  background and subtracts one, giving classes 0..16 below. The world never produces
  "uncertain" pixels; an exporter to the real on-disk format writes `label + 1`.
* `class_object` puts each world category on a plausible ImageNet-1k index (standard ILSVRC-2012
  class order); `class_scene` puts each room type on its Places365 index
  (`places_class_names.txt` order of the original code). All room types are among the 63
  "workspace and home" classes the original scene task keeps (`PLACES_WORKSPACE_AND_HOME`).
"""

from __future__ import annotations

import dataclasses

# The 17 classes of `segmentsemantic_rb` (index = training label).
COCO_17 = ("background", "bottle", "chair", "couch", "potted plant", "bed", "dining table",
           "toilet", "tv", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
           "clock", "vase")
COCO_INDEX = {name: i for i, name in enumerate(COCO_17)}


@dataclasses.dataclass(frozen=True)
class Category:
  """A world category: what it is, its COCO-17 label and its ImageNet classes (index: weight)."""

  name: str
  coco: str
  imagenet: dict[int, float]
  structural: bool = False  # floor / wall / ceiling / door frame: part of the room box


# ImageNet-1k indices (ILSVRC-2012 order) with their names, for readability:
# 453 bookcase, 495 china cabinet, 526 desk, 532 dining table, 559 folding chair,
# 564 four-poster, 619 lampshade, 651 microwave, 664 monitor, 721 pillow, 738 pot (flowerpot),
# 760 refrigerator, 765 rocking chair, 766 rotisserie, 799 sliding door, 827 stove,
# 831 studio couch, 846 table lamp, 851 television, 859 toaster, 861 toilet seat,
# 883 vase, 892 wall clock, 894 wardrobe, 896 washbasin, 898 water bottle, 904 window screen,
# 905 window shade, 907 wine bottle, 750 quilt, 553 file cabinet, 548 entertainment center,
# 624 library, 440 beer bottle, 737 pop bottle.
CATEGORIES: tuple[Category, ...] = (
    Category("floor", "background", {}, structural=True),
    Category("wall", "background", {}, structural=True),
    Category("ceiling", "background", {}, structural=True),
    Category("door_frame", "background", {799: 1.0}, structural=True),
    Category("window_frame", "background", {904: 0.6, 905: 0.4}, structural=True),
    Category("table", "dining table", {532: 0.8, 526: 0.2}),
    Category("chair", "chair", {559: 0.6, 765: 0.4}),
    Category("couch", "couch", {831: 1.0}),
    Category("bed", "bed", {564: 0.7, 750: 0.2, 721: 0.1}),
    Category("shelf", "background", {453: 0.7, 624: 0.3}),
    Category("book", "book", {453: 0.5, 624: 0.5}),
    Category("lamp", "background", {846: 0.7, 619: 0.3}),
    Category("potted_plant", "potted plant", {738: 1.0}),
    Category("tv", "tv", {851: 0.7, 664: 0.2, 548: 0.1}),
    Category("bottle", "bottle", {898: 0.5, 907: 0.3, 440: 0.1, 737: 0.1}),
    Category("vase", "vase", {883: 1.0}),
    Category("clock", "clock", {892: 1.0}),
    Category("refrigerator", "refrigerator", {760: 1.0}),
    Category("oven", "oven", {827: 0.8, 766: 0.2}),
    Category("microwave", "microwave", {651: 1.0}),
    Category("toaster", "toaster", {859: 1.0}),
    Category("sink", "sink", {896: 1.0}),
    Category("toilet", "toilet", {861: 1.0}),
    Category("cabinet", "background", {495: 0.4, 894: 0.3, 553: 0.3}),
)
CATEGORY_INDEX = {c.name: i for i, c in enumerate(CATEGORIES)}
STRUCTURAL = tuple(i for i, c in enumerate(CATEGORIES) if c.structural)


@dataclasses.dataclass(frozen=True)
class RoomType:
  """A room type: its Places365 class and the furniture it is furnished with (name: weight)."""

  name: str
  places: int
  furniture: dict[str, float]


# Places365 indices (0-based line numbers of the original `places_class_names.txt`).
ROOM_TYPES: tuple[RoomType, ...] = (
    RoomType("bedroom", 52, {"bed": 3, "lamp": 2, "shelf": 1, "potted_plant": 1, "clock": 1,
                             "chair": 1, "cabinet": 1}),
    RoomType("living_room", 215, {"couch": 3, "table": 2, "tv": 2, "lamp": 2,
                                  "potted_plant": 1, "shelf": 1, "vase": 1, "clock": 1}),
    RoomType("kitchen", 203, {"counter": 3, "refrigerator": 2, "oven": 2, "table": 1,
                              "chair": 2, "bottle": 1, "potted_plant": 1}),
    RoomType("bathroom", 45, {"toilet": 3, "vanity": 3, "bottle": 1, "potted_plant": 1,
                              "cabinet": 1}),
    RoomType("office", 244, {"desk": 3, "chair": 2, "shelf": 2, "lamp": 1, "potted_plant": 1,
                             "clock": 1, "cabinet": 1}),
    RoomType("dining_room", 121, {"table": 3, "chair": 3, "vase": 1, "bottle": 1, "clock": 1,
                                  "potted_plant": 1, "cabinet": 1}),
    RoomType("home_office", 176, {"desk": 3, "chair": 1, "shelf": 2, "couch": 1, "lamp": 1,
                                  "potted_plant": 1}),
    RoomType("playroom", 269, {"table": 2, "chair": 2, "shelf": 2, "couch": 1, "clock": 1,
                               "potted_plant": 1}),
)
ROOM_TYPE_INDEX = {r.name: i for i, r in enumerate(ROOM_TYPES)}

NUM_IMAGENET = 1000
NUM_PLACES = 365

# The 63 "workspace and home" Places365 classes the original scene task keeps
# (`class_places_workspace_and_home` in the original loader), as Places365 indices.
PLACES_WORKSPACE_AND_HOME = (
    3, 23, 25, 26, 28, 37, 43, 45, 51, 52, 56, 61, 63, 88, 89, 93, 95, 100, 102, 106, 121, 124,
    126, 129, 131, 133, 135, 156, 165, 176, 177, 179, 182, 203, 208, 215, 217, 228, 240, 241,
    244, 246, 248, 253, 255, 264, 269, 280, 281, 282, 285, 298, 303, 311, 317, 318, 328, 332,
    343, 346, 352, 358, 363)


def coco_of_category() -> tuple[int, ...]:
  """Per world category index, its `segment_semantic` label in [0, 17)."""
  return tuple(COCO_INDEX[c.coco] for c in CATEGORIES)
