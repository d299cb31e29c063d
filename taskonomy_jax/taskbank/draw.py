"""Pictures of task-bank outputs: one pure function per `TaskSpec.display` kind.

Every drawer maps one example's network output (the shape `spec.output_shape(H)`, no batch axis)
and the input image to an RGB picture, `(H', W', 3)` uint8. Drawers are chosen by the registry's
`display` name through `DRAWERS` (no per-task branches), so a new task only needs a display kind.

Output conventions follow the task networks (`taskonomy_jax.models`): pixel regressions end in
tanh, so values are in [-1, 1]; classification heads (`softmax_xent`, `weighted_softmax_xent`,
`soft_xent` losses) give logits.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable, Mapping, Sequence

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

from taskonomy_jax import tasks
from taskonomy_jax.data import encodings
from taskonomy_jax.taskbank import selfsup
from taskonomy_jax.world import camera as cam
from taskonomy_jax.world import layout

# Callable(output, image, spec) -> (H', W', 3) uint8; image is (H, W, 3) in [-1, 1].
Drawer = Callable[[np.ndarray, np.ndarray, tasks.TaskSpec], np.ndarray]


def to_uint8(x: np.ndarray) -> np.ndarray:
  """[0, 1] floats (any shape) -> uint8, clipped."""
  return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def image_to_unit(image: np.ndarray) -> np.ndarray:
  """An input image in [-1, 1], (H, W, 3) -> [0, 1]."""
  return 0.5 * (np.asarray(image, np.float32) + 1.0)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
  z = logits - logits.max(axis=axis, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=axis, keepdims=True)


def palette(n: int, seed: int = 5) -> np.ndarray:
  """(n, 3) distinct-looking colours in [0.15, 1] (fixed seed: the same class, the same colour)."""
  return np.random.default_rng(seed).uniform(0.15, 1.0, (max(n, 1), 3))


def _check_pixel(out: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  out = np.asarray(out, np.float32)
  if out.ndim != 3 or out.shape[-1] != spec.channels:
    raise ValueError(f"{spec.name}: expected an (H, W, {spec.channels}) output, got {out.shape}")
  return out


def _check_vector(out: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  out = np.asarray(out, np.float32)
  if out.shape != (spec.channels,):
    raise ValueError(f"{spec.name}: expected a ({spec.channels},) output, got {out.shape}")
  return out


def draw_rgb(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """(H, W, 3) in [-1, 1] shown as it is."""
  return to_uint8(0.5 * (_check_pixel(out, spec) + 1.0))


def draw_gray(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """(H, W, 1) in [-1, 1] as grey levels (-1 black, 1 white)."""
  g = 0.5 * (_check_pixel(out, spec)[..., 0] + 1.0)
  return to_uint8(np.repeat(g[..., None], 3, -1))


def _stretch(x: np.ndarray) -> np.ndarray:
  """Min-max to [0, 1] (a constant map becomes 0.5)."""
  lo, hi = float(x.min()), float(x.max())
  return np.full_like(x, 0.5) if hi - lo < 1e-8 else (x - lo) / (hi - lo)


def draw_depth(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """(H, W, 1) depth, stretched to its own range, through the viridis colour map (near: dark)."""
  d = _stretch(_check_pixel(out, spec)[..., 0])
  return to_uint8(matplotlib.colormaps["viridis"](d)[..., :3])


def draw_normal(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """(H, W, 3) unit-ish xyz in [-1, 1] as rgb = (xyz + 1) / 2, the dataset's own encoding."""
  return to_uint8(0.5 * (_check_pixel(out, spec) + 1.0))


def draw_curvature(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """(H, W, 2) principal curvatures in [-1, 1]: the first in red, the second in green."""
  c = 0.5 * (_check_pixel(out, spec) + 1.0)
  return to_uint8(np.concatenate([c, np.full((*c.shape[:2], 1), 0.5, np.float32)], -1))


def draw_embedding(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """(H, W, C) per-pixel embedding: its first 3 principal components, each stretched, as rgb."""
  e = _check_pixel(out, spec)
  flat = e.reshape(-1, e.shape[-1])
  flat = flat - flat.mean(0, keepdims=True)
  # Principal axes = eigenvectors of the C x C scatter matrix, largest first: the same axes as
  # the SVD of the (H*W, C) pixels at a fraction of the cost (0.2 s -> 1 ms at 64x64x64; the
  # live demo draws two embeddings per request). Fewer than 3 non-zero ones leave a channel at
  # 0.5. Each axis's sign is fixed (its largest entry positive) so a picture is reproducible.
  flat64 = flat.astype(np.float64)
  _, vecs = np.linalg.eigh(flat64.T @ flat64)
  axes = vecs[:, ::-1][:, :3]
  axes = axes * np.where(axes[np.abs(axes).argmax(0), np.arange(axes.shape[1])] < 0, -1.0, 1.0)
  proj = flat64 @ axes
  if proj.shape[1] < 3:
    proj = np.pad(proj, ((0, 0), (0, 3 - proj.shape[1])))
  rgb = np.stack([_stretch(proj[:, k]) for k in range(3)], -1)
  return to_uint8(rgb.reshape((*e.shape[:2], 3)))


def draw_labels(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """(H, W, K) class logits: the arg-max class of each pixel in a fixed palette (class 0 black,
  the dataset's 'no label')."""
  pal = palette(spec.channels, seed=11)
  pal[0] = 0.0
  return to_uint8(pal[np.argmax(_check_pixel(out, spec), -1)])


def draw_color_bins(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """(H/4, W/4, 313) colour-bin logits drawn as the colourised image: each cell's annealed-mean
  ab (`selfsup.ab_from_bin_logits`) upsampled to the input's size, with the input's own
  lightness L (the network sees only L, paper Sec. 4 / Zhang et al. 2016), converted Lab -> RGB.
  """
  ab = selfsup.ab_from_bin_logits(_check_pixel(out, spec))
  h, w = image.shape[:2]
  if h % ab.shape[0] or w % ab.shape[1]:
    raise ValueError(f"{spec.name}: an output of {ab.shape[:2]} cells does not tile a {h}x{w} "
                     "input")
  ab = ab.repeat(h // ab.shape[0], axis=0).repeat(w // ab.shape[1], axis=1)
  lab = np.concatenate([selfsup.rgb_to_lab(image)[..., :1], ab], axis=-1)
  return to_uint8(image_to_unit(selfsup.lab_to_rgb(lab)))


# Panels drawn from scratch (text, camera poses) are at least this many pixels wide, so text stays
# readable when the network input is small.
MIN_PANEL = 160


def text_panel(lines: Sequence[str], size: int, bars: Sequence[float] | None = None) -> np.ndarray:
  """A white square panel (side `max(size, MIN_PANEL)`) with one line of text per entry and
  optional [0, 1] bars."""
  size = max(size, MIN_PANEL)
  img = Image.new("RGB", (size, size), (255, 255, 255))
  d = ImageDraw.Draw(img)
  row = max(12, size // max(len(lines), 1))
  for k, line in enumerate(lines):
    y = k * row + 2
    if bars is not None:
      d.rectangle([2, y, 2 + int((size - 4) * float(np.clip(bars[k], 0, 1))), y + row - 3],
                  fill=(160, 200, 240))
    d.text((4, y), line, fill=(0, 0, 0))
  return np.asarray(img)


def _read_names(filename: str) -> tuple[str, ...]:
  """A class-name list shipped in `taskonomy_jax/taskbank/class_names/` (one name a line,
  `#` comments naming the list's source)."""
  text = importlib.resources.files("taskonomy_jax.taskbank").joinpath("class_names", filename)
  lines = text.read_text(encoding="utf-8").splitlines()
  return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


@functools.cache
def _class_name_table(task: str) -> dict[int, str]:
  if task == "class_object":  # output k = ImageNet-1k class k (world.categories)
    return dict(enumerate(_read_names("imagenet_classes.txt")))
  if task == "class_scene":  # output k = Places365 class PLACES_WORKSPACE_AND_HOME[k]
    places = _read_names("places365_classes.txt")
    return {k: places[i] for k, i in enumerate(encodings.PLACES_WORKSPACE_AND_HOME)}
  return {}


def class_names(spec: tasks.TaskSpec) -> Mapping[int, str]:
  """Names of a class task's outputs where known (ImageNet-1k for `class_object`, the 63 kept
  Places365 classes for `class_scene`); unknown indices show as `#k`."""
  return _class_name_table(spec.name)


def class_topk(out: np.ndarray, spec: tasks.TaskSpec, k: int = 5) -> list[tuple[str, float]]:
  """(K,) class logits -> the top-k (name, probability), most probable first."""
  p = softmax(_check_vector(out, spec))
  names = class_names(spec)
  return [(names.get(int(i), f"#{int(i)}"), float(p[i])) for i in np.argsort(-p, kind="stable")[:k]]


def draw_class_topk(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec,
                    k: int = 5) -> np.ndarray:
  """(K,) class logits: the top-k class names with their probabilities, as bars."""
  top = class_topk(out, spec, k)
  return text_panel([f"{name}  {p:.2f}" for name, p in top], image.shape[0],
                    bars=[p / max(top[0][1], 1e-12) for _, p in top])


# The world renderer's mean field of view is about 60 degrees; predictions carry no intrinsics.
DEFAULT_FOV = np.pi / 3


def project_camera_points(points_cam: np.ndarray, size: int,
                          fov_rads: float = DEFAULT_FOV) -> tuple[np.ndarray, np.ndarray]:
  """Camera-frame points (N, 3) -> pixel (u, v) (N, 2) and depth along the axis (N,), in the
  world's camera conventions (`taskonomy_jax.world.camera`: x right, y up, looking down -z)."""
  return cam.project(points_cam, np.zeros(3), np.eye(3), fov_rads, size)


def box_corners(layout9: np.ndarray) -> np.ndarray:
  """The 9-d room layout (the world's encoding, `world.layout.room_layout`) -> (8, 3) box
  corners in the camera frame; corner k has sign `2 * bit - 1` of bits (2, 1, 0) of k along the
  box axes, so corners differing in one bit share an edge."""
  centre, axes, half = layout.layout_box_in_camera(np.asarray(layout9, np.float64))
  signs = np.array([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)]) * 2.0 - 1.0
  return centre + (signs * np.abs(half)) @ axes


def draw_room_layout(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """9-d room layout drawn as the box's 12 edges (red) over the input (edges behind the camera
  are left out)."""
  corners = box_corners(_check_vector(out, spec).astype(np.float64))
  img = Image.fromarray(to_uint8(image_to_unit(image)))
  d = ImageDraw.Draw(img)
  uv, depth = project_camera_points(corners, image.shape[0])
  for i in range(8):
    for j in range(i + 1, 8):
      if bin(i ^ j).count("1") == 1 and depth[i] > 1e-3 and depth[j] > 1e-3:
        d.line([tuple(uv[i]), tuple(uv[j])], fill=(230, 30, 30), width=2)
  return np.asarray(img)


def draw_vanishing_points(out: np.ndarray, image: np.ndarray,
                          spec: tasks.TaskSpec) -> np.ndarray:
  """9-d: three vanishing directions (camera frame), each drawn from the image centre towards
  where it projects (red, green, blue for the room's x, y, z axes)."""
  vps = _check_vector(out, spec).reshape(3, 3).astype(np.float64)
  img = Image.fromarray(to_uint8(image_to_unit(image)))
  d = ImageDraw.Draw(img)
  h, w = image.shape[:2]
  for vp, col in zip(vps, ((230, 30, 30), (30, 200, 30), (30, 30, 230)), strict=True):
    direction = vp if vp[2] < 0 else -vp  # a direction and its opposite meet at the same point
    if abs(direction[2]) < 1e-6:  # parallel to the image plane: draw it as a long line
      uv = np.array([w / 2 + direction[0] * 4 * w, h / 2 - direction[1] * 4 * h])
    else:
      uv = project_camera_points(direction[None], image.shape[0])[0][0]
    d.line([(w / 2, h / 2), tuple(uv)], fill=col, width=2)
  return np.asarray(img)


def draw_pose(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """6-d relative poses (3 rotation angles, 3 translation) per view pair, drawn from above:
  the first camera at the centre looking up, each other camera at its (x, z) translation,
  turned by its yaw (the rotation about y)."""
  poses = _check_vector(out, spec).reshape(-1, 6)
  size = max(image.shape[0], MIN_PANEL)
  img = Image.new("RGB", (size, size), (255, 255, 255))
  d = ImageDraw.Draw(img)
  scale = 0.35 * size / max(1.0, float(np.abs(poses[:, 3:]).max()))
  cols = [(230, 30, 30), (30, 150, 30), (30, 30, 230)]

  def camera(x: float, z: float, yaw: float, col: tuple[int, int, int]) -> None:
    cx, cy = size / 2 + x * scale, size / 2 + z * scale
    tri = np.array([[0, 0], [-0.06, -0.1], [0.06, -0.1]]) * size
    rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    pts = tri @ rot.T + [cx, cy]
    d.polygon([tuple(p) for p in pts], outline=col, width=2)

  camera(0.0, 0.0, 0.0, (0, 0, 0))
  for k, p in enumerate(poses):
    camera(float(p[3]), float(p[5]), float(p[1]), cols[k % 3])
  return np.asarray(img)


def draw_match(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """2 logits (different, same): the verdict and its probability as a bar."""
  p = softmax(_check_vector(out, spec))
  return text_panel([f"same point  {p[1]:.2f}", f"different  {p[0]:.2f}"], image.shape[0],
                    bars=p[::-1])


def reassemble_tiles(tiles: np.ndarray, permutation: np.ndarray, gap: int = 1) -> np.ndarray:
  """Undo a jigsaw shuffle: tiles (9, t, t, 3) in the network's input order, where input slot k
  holds original tile `permutation[k]` (`selfsup.jigsaw`), -> the 3x3 grid with input tile k
  put back at position `permutation[k]`, `gap` white pixels between tiles: (3t + 2 gap, ...).
  """
  g = selfsup.JIGSAW_GRID
  t = tiles.shape[1]
  side = g * t + (g - 1) * gap
  grid = np.ones((side, side, tiles.shape[-1]), tiles.dtype) * (255 if tiles.dtype == np.uint8
                                                                else 1.0)
  for k, pos in enumerate(np.asarray(permutation)):
    r, c = divmod(int(pos), g)
    grid[r * (t + gap):r * (t + gap) + t, c * (t + gap):c * (t + gap) + t] = tiles[k]
  return grid


def draw_permutation(out: np.ndarray, image: np.ndarray, spec: tasks.TaskSpec) -> np.ndarray:
  """Jigsaw logits over `selfsup.permutations()`: the image's tiles, in the order the network
  saw them, reassembled by the most probable permutation (the identity when it judges them in
  place), titled with that class and its probability."""
  p = softmax(_check_vector(out, spec))
  best = int(np.argmax(p))
  tiles = to_uint8(image_to_unit(selfsup.tiles(np.asarray(image, np.float32))))
  grid = reassemble_tiles(tiles, selfsup.permutations()[best])
  size = max(image.shape[0], MIN_PANEL)
  img = Image.new("RGB", (size, size), (255, 255, 255))
  side = size - 18  # below the title line
  img.paste(Image.fromarray(grid).resize((side, side), Image.NEAREST), ((size - side) // 2, 16))
  ImageDraw.Draw(img).text((4, 2), f"permutation #{best}  {p[best]:.2f}", fill=(0, 0, 0))
  return np.asarray(img)


DRAWERS: dict[str, Drawer] = {
    "rgb": draw_rgb, "gray": draw_gray, "depth": draw_depth, "normal": draw_normal,
    "curvature": draw_curvature, "embedding": draw_embedding, "labels": draw_labels,
    "color_bins": draw_color_bins, "class_topk": draw_class_topk,
    "room_layout": draw_room_layout, "vanishing_points": draw_vanishing_points,
    "pose": draw_pose, "match": draw_match, "permutation": draw_permutation,
}


def draw(task: str | tasks.TaskSpec, output: np.ndarray, image: np.ndarray) -> np.ndarray:
  """One task's output as an (H', W', 3) uint8 picture, as its registry `display` says.

  Raises:
    ValueError: the task has nothing to draw (`display == 'none'`) or the output has the wrong
      shape for the task.
  """
  spec = task if isinstance(task, tasks.TaskSpec) else tasks.get(task)
  if spec.display not in DRAWERS:
    raise ValueError(f"{spec.name} has display {spec.display!r}, which draws nothing; drawable "
                     f"kinds: {', '.join(DRAWERS)}")
  return DRAWERS[spec.display](np.asarray(output), np.asarray(image, np.float32), spec)
