"""The task dictionary: the 26 tasks of Taskonomy (Zamir et al., CVPR 2018), one registry.

Every other module looks tasks up here, by the registry name (the names used by the released
PyTorch task bank, `visualpriors`, and by omnidata), by the original code name used in the paper's
published results (`rgb2sfnorm`, `segmentsemantic_rb`, ...), or by the task-bank folder name of the
original TensorFlow code (`segmentsemantic`, `inpainting_whole`, ...).

Facts (output sizes, losses, which tasks are source-only) follow the paper's supplementary
material and the original task-bank configs (`taskbank/experiments/final/*/config.py`);
BUILD_NOTES.md ("Deviations from the paper") lists where we deviate and why.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator
from typing import Literal

DecoderKind = Literal["pixel", "vector", "siamese", "none"]
LossName = Literal[
    "l1",  # mean absolute error over valid pixels / dimensions
    "l2",  # mean squared error
    "softmax_xent",  # cross entropy against integer labels
    "weighted_softmax_xent",  # class-rebalanced cross entropy (semantic seg., colorization)
    "soft_xent",  # cross entropy against a soft target distribution (distillation)
    "metric_embedding",  # pixel-pair metric learning on segment ids (unsup. segmentation)
    "none",
]
MetricName = Literal[
    "mae",  # mean absolute error
    "mse",  # mean squared error
    "angular_error_deg",  # mean angle between predicted and true normals
    "accuracy",  # top-1 accuracy
    "xent",  # cross entropy of the true class (mean negative log-likelihood)
    "miou",  # mean intersection over union
    "kl",  # KL(target || prediction) for soft targets
    "pair_accuracy",  # same/different segment accuracy of sampled pixel pairs
    "none",
]
DisplayKind = Literal[
    "rgb",  # 3 channels in [-1, 1]
    "gray",  # 1 channel in [-1, 1]
    "depth",  # 1 channel, colour-mapped
    "normal",  # xyz in [-1, 1] shown as rgb
    "curvature",  # 2 principal curvatures shown as red/green
    "embedding",  # per-pixel embedding, first 3 principal components as rgb
    "labels",  # per-pixel class ids with a palette
    "color_bins",  # per-pixel distribution over quantised ab colour bins
    "class_topk",  # class distribution, drawn as the top-k names
    "room_layout",  # 3D box drawn over the input
    "vanishing_points",  # 3 vanishing directions drawn over the input
    "pose",  # relative camera pose(s), drawn as camera frusta
    "match",  # same / different point, drawn as a verdict
    "permutation",  # jigsaw permutation, drawn as the reassembled tiles
    "none",
]
ValidMask = Literal["none", "depth", "labels"]
Dtype = Literal["float32", "int32"]


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """One task of the dictionary.

  Attributes:
    name: registry name (the `visualpriors` / omnidata name, e.g. `normal`).
    code_name: the original code name used in the paper's published results (e.g. `rgb2sfnorm`).
    title: human-readable name as in the paper's figures.
    domains: dataset domains that supervise the task (`point_info` for camera-derived targets).
    num_views: how many images the network sees (1, 2 or 3).
    channels: per-pixel output channels (pixel tasks) or vector length (other tasks).
    pixel_output: True if the output is a (H / output_stride, W / output_stride, channels) map.
    output_stride: pixel tasks only: input resolution / output resolution (4 for colorization).
    dtype: dtype of the *target* (float regression targets or int32 labels).
    loss: training loss name.
    metric: evaluation metric name.
    decoder: decoder kind: `pixel` (15-layer conv/deconv), `vector` (FC head),
      `siamese` (shared-weight towers, concatenated representations, FC head), `none`.
    source_only: True for the tasks the paper uses only as transfer sources.
    valid_mask: which pixels/examples count in the loss: `depth` (pixels with valid depth),
      `labels` (pixels with a label), `none`.
    display: how a prediction is drawn as a picture.
    num_tiles: jigsaw only: the number of tiles of one image fed to the siamese towers.
    aliases: other accepted names (task-bank folder names, published-result variants).
  """

  name: str
  code_name: str
  title: str
  domains: tuple[str, ...]
  num_views: int
  channels: int
  pixel_output: bool
  dtype: Dtype
  loss: LossName
  metric: MetricName
  decoder: DecoderKind
  display: DisplayKind
  source_only: bool = False
  valid_mask: ValidMask = "none"
  output_stride: int = 1
  num_tiles: int = 1
  aliases: tuple[str, ...] = ()

  def output_shape(self, resolution: int) -> tuple[int, ...]:
    """Shape of one example's network output for a square input of `resolution` pixels.

    Returns `(H, W, C)` for pixel tasks (H = W = resolution // output_stride), `(C,)` otherwise,
    and `()` for random projection, which has no output.
    """
    if self.decoder == "none":
      return ()
    if self.pixel_output:
      if resolution % self.output_stride:
        raise ValueError(
            f"resolution {resolution} is not divisible by {self.name}'s output stride "
            f"{self.output_stride}")
      side = resolution // self.output_stride
      return (side, side, self.channels)
    return (self.channels,)

  @property
  def is_target(self) -> bool:
    """Whether the paper trains transfers *to* this task."""
    return not self.source_only

  @property
  def all_names(self) -> tuple[str, ...]:
    return (self.name, self.code_name, *self.aliases)


def _pixel(name: str, code_name: str, title: str, domain: str, channels: int, *,
           loss: LossName = "l1", metric: MetricName = "mae", display: DisplayKind,
           valid_mask: ValidMask = "none", dtype: Dtype = "float32", output_stride: int = 1,
           source_only: bool = False, domains: tuple[str, ...] | None = None,
           aliases: tuple[str, ...] = ()) -> TaskSpec:
  return TaskSpec(
      name=name, code_name=code_name, title=title, domains=domains or (domain,), num_views=1,
      channels=channels, pixel_output=True, dtype=dtype, loss=loss, metric=metric,
      decoder="pixel", display=display, source_only=source_only, valid_mask=valid_mask,
      output_stride=output_stride, aliases=aliases)


def _vector(name: str, code_name: str, title: str, domain: str, channels: int, *,
            loss: LossName, metric: MetricName, display: DisplayKind, num_views: int = 1,
            dtype: Dtype = "float32", num_tiles: int = 1, source_only: bool = False,
            aliases: tuple[str, ...] = ()) -> TaskSpec:
  siamese = num_views > 1 or num_tiles > 1
  return TaskSpec(
      name=name, code_name=code_name, title=title, domains=(domain,), num_views=num_views,
      channels=channels, pixel_output=False, dtype=dtype, loss=loss, metric=metric,
      decoder="siamese" if siamese else "vector", display=display, source_only=source_only,
      num_tiles=num_tiles, aliases=aliases)


# Pixel-to-pixel tasks were trained with L1 (L2 for curvature) plus a small cGAN term in the
# original code (`l_norm_weight_prop` 0.996); we train the norm loss only (BUILD_NOTES.md).
_TASKS: tuple[TaskSpec, ...] = (
    # --- self-supervised, from RGB ---
    _pixel("autoencoding", "autoencoder", "Autoencoding", "rgb", 3, display="rgb"),
    _pixel("denoising", "denoise", "Denoising", "rgb", 3, display="rgb"),
    _pixel("colorization", "colorization", "Colorization", "rgb", 313, source_only=True,
           loss="weighted_softmax_xent", metric="xent", display="color_bins",
           output_stride=4, dtype="int32"),
    _pixel("inpainting", "impainting_whole", "Inpainting", "rgb", 3, source_only=True,
           display="rgb", aliases=("inpainting_whole",)),
    _vector("jigsaw", "jigsaw", "Jigsaw puzzle", "rgb", 100, num_tiles=9, source_only=True,
            loss="softmax_xent", metric="accuracy", display="permutation", dtype="int32"),
    # --- 2D ---
    _pixel("edge_texture", "edge2d", "2D edges", "edge_texture", 1, display="gray"),
    _pixel("keypoints2d", "keypoint2d", "2D keypoints", "keypoints2d", 1, display="gray"),
    _pixel("segment_unsup2d", "segment2d", "2D segmentation", "segment_unsup2d", 64,
           loss="metric_embedding", metric="pair_accuracy", display="embedding",
           dtype="int32"),
    # --- 3D ---
    _pixel("edge_occlusion", "edge3d", "Occlusion edges", "edge_occlusion", 1, display="gray",
           valid_mask="depth", domains=("edge_occlusion", "depth_zbuffer")),
    _pixel("keypoints3d", "keypoint3d", "3D keypoints", "keypoints3d", 1, display="gray",
           valid_mask="depth", domains=("keypoints3d", "depth_zbuffer")),
    _pixel("reshading", "reshade", "Reshading", "reshading", 1, display="gray",
           valid_mask="depth", domains=("reshading", "depth_zbuffer")),
    _pixel("depth_zbuffer", "rgb2depth", "Z-buffer depth", "depth_zbuffer", 1, display="depth",
           valid_mask="depth"),
    _pixel("depth_euclidean", "rgb2mist", "Euclidean distance", "depth_euclidean", 1,
           display="depth", valid_mask="depth", domains=("depth_euclidean", "depth_zbuffer")),
    _pixel("normal", "rgb2sfnorm", "Surface normals", "normal", 3, metric="angular_error_deg",
           display="normal", valid_mask="depth", domains=("normal", "depth_zbuffer")),
    _pixel("curvature", "curvature", "Curvatures", "principal_curvature", 2, loss="l2",
           metric="mse", display="curvature", valid_mask="depth",
           domains=("principal_curvature", "depth_zbuffer")),
    _pixel("segment_unsup25d", "segment25d", "2.5D segmentation", "segment_unsup25d", 64,
           loss="metric_embedding", metric="pair_accuracy", display="embedding",
           dtype="int32"),
    # --- geometry of the room and of the camera ---
    _vector("room_layout", "room_layout", "Room layout", "point_info", 9, loss="l2",
            metric="mse", display="room_layout"),
    _vector("vanishing_point", "vanishing_point_well_defined", "Vanishing points",
            "point_info", 9, loss="l2", metric="mse", display="vanishing_points"),
    _vector("fixated_pose", "fix_pose", "Camera pose (fixated)", "point_info", 6, num_views=2,
            loss="l2", metric="mse", display="pose"),
    _vector("nonfixated_pose", "non_fixated_pose", "Camera pose (non-fixated)", "point_info", 6,
            num_views=2, loss="l2", metric="mse", display="pose"),
    _vector("egomotion", "ego_motion", "Triplet egomotion", "point_info", 18, num_views=3,
            loss="l2", metric="mse", display="pose"),
    _vector("point_matching", "point_match", "Point matching", "point_info", 2, num_views=2,
            loss="softmax_xent", metric="accuracy", display="match", dtype="int32"),
    # --- semantic ---
    _pixel("segment_semantic", "segmentsemantic_rb", "Semantic segmentation",
           "segment_semantic", 17, loss="weighted_softmax_xent", metric="miou",
           display="labels", valid_mask="labels", dtype="int32",
           aliases=("segmentsemantic",)),
    # `class_selected` in the published results is object classification restricted to 100
    # selected ImageNet classes (the original `class_selected_softmax`): a variant, not a task.
    _vector("class_object", "class_1000", "Object classification", "class_object", 1000,
            loss="soft_xent", metric="kl", display="class_topk",
            aliases=("class_selected",)),
    # The original scene task keeps the 63 "workspace and home" Places365 classes.
    _vector("class_scene", "class_places", "Scene classification", "class_scene", 63,
            loss="soft_xent", metric="kl", display="class_topk"),
    # --- random projection: an untrained encoder, a source-only baseline ---
    TaskSpec(name="random", code_name="random", title="Random projection", domains=(),
             num_views=1, channels=0, pixel_output=False, dtype="float32", loss="none",
             metric="none", decoder="none", display="none", source_only=True,
             aliases=("random_projection",)),
)

TASKS: dict[str, TaskSpec] = {t.name: t for t in _TASKS}
_BY_ANY_NAME: dict[str, TaskSpec] = {n: t for t in _TASKS for n in t.all_names}

# Names that stand for something other than a task in published results.
SPECIAL_SOURCES = {
    "self": "the target's own fully supervised network",
    "pixels": "a network trained from scratch on the transfer budget",
}


class UnknownTaskError(KeyError):
  """A task name that is not in the registry; the message lists the accepted names."""

  def __init__(self, name: str, suggestions: list[str]):
    self.name = name
    self.suggestions = suggestions
    hint = f" Did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    super().__init__(
        f"Unknown task {name!r}.{hint} Accepted names: {', '.join(sorted(TASKS))} "
        "(the original code names, e.g. 'rgb2sfnorm', are accepted too).")

  def __str__(self) -> str:  # KeyError would repr() the message.
    return self.args[0]


def get(name: str) -> TaskSpec:
  """Returns the task named `name` (registry name, original code name or alias).

  Raises:
    UnknownTaskError: the name is unknown; the message suggests the closest names.
  """
  if not isinstance(name, str):
    raise TypeError(f"task name must be a string, got {type(name).__name__}")
  key = name.strip()
  if key in _BY_ANY_NAME:
    return _BY_ANY_NAME[key]
  lowered = key.lower().replace("-", "_").replace(" ", "_")
  if lowered in _BY_ANY_NAME:
    return _BY_ANY_NAME[lowered]
  close = difflib.get_close_matches(lowered, list(_BY_ANY_NAME), n=3, cutoff=0.5)
  # Suggest registry names, even when the closest spelling is a code name or alias.
  suggestions = list(dict.fromkeys(_BY_ANY_NAME[c].name for c in close))
  raise UnknownTaskError(name, suggestions)


def names() -> list[str]:
  """All registry names, in registry order."""
  return list(TASKS)


def all_tasks() -> Iterator[TaskSpec]:
  return iter(_TASKS)


def targets() -> list[TaskSpec]:
  """The tasks the paper trains transfers to (all but the source-only ones)."""
  return [t for t in _TASKS if t.is_target]


def trainable() -> list[TaskSpec]:
  """The task bank: every task with a trained network (all but random projection)."""
  return [t for t in _TASKS if t.decoder != "none"]


def domains() -> list[str]:
  """Every dataset domain some task is supervised by, sorted."""
  return sorted({d for t in _TASKS for d in t.domains})
