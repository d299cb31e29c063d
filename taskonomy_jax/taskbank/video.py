"""Task outputs side by side: over a video or image sequence (`taskonomy visualize`), and as
one image's contact sheet (`taskonomy taskbank predict`).

Each output frame is `input | task 1 | task 2 | ...`, each panel drawn by `taskbank.draw` as the
registry's `display` says and titled with the task's name, as in the Taskonomy website's transfer
videos. Inputs: a video file (anything ffmpeg reads), a folder of images (sorted by name), or a
camera walk rendered through a procedural building (`--walk SEED`).

Videos are written with imageio + imageio-ffmpeg (`.mp4`, H.264) or as animated GIF (`.gif`,
Pillow, no ffmpeg), to a temporary file beside the output, then moved in place.
"""

from __future__ import annotations

import io
import os
import pathlib
import sys
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from taskonomy_jax import files, tasks, world
from taskonomy_jax.taskbank import bank as bank_lib
from taskonomy_jax.taskbank import draw, predict
from taskonomy_jax.world import camera as cam
from taskonomy_jax.world import render

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
VIDEO_SUFFIXES = (".mp4", ".gif")
LABEL_HEIGHT = 14


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
  """Frames of a video file or of a folder of images, as (H, W, 3) uint8.

  Raises:
    ValueError: the path does not exist, or the folder holds no images.
  """
  path = pathlib.Path(path)
  if path.is_dir():
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
      raise ValueError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    for f in files:
      with Image.open(f) as img:
        yield np.asarray(img.convert("RGB"))
    return
  if not path.is_file():
    raise ValueError(f"--input {path} is neither a video file nor a folder of images")
  import imageio.v3 as iio

  for frame in iio.imiter(path):
    yield np.asarray(frame)[..., :3]


def walk_cameras(building, frames: int, height: float = 1.4) -> Iterator[tuple[np.ndarray,
                                                                               np.ndarray]]:
  """A camera walk through room 0 of a building: (location, camera-to-world rotation) per frame.

  The camera moves on an ellipse around the room's centre at eye height while its heading turns
  a full circle, looking at the walls (level, no roll; the world's conventions).
  """
  lo, hi = building.room_lo[0], building.room_hi[0]
  centre = 0.5 * (lo + hi)
  radius = 0.2 * (hi - lo)[:2]
  for k in range(frames):
    a = 2 * np.pi * k / frames
    location = np.array([centre[0] + radius[0] * np.cos(a), centre[1] + radius[1] * np.sin(a),
                         lo[2] + height])
    target = location + np.array([np.cos(a + np.pi / 2), np.sin(a + np.pi / 2), -0.15])
    yield location, cam.look_at(location, target)


def render_walk(seed: int, frames: int, resolution: int,
                fov_rads: float = np.pi / 3) -> Iterator[np.ndarray]:
  """RGB frames (R, R, 3) uint8 of a camera walk through procedural building `seed`, shaded
  by the world's own `render.shade_rgb`."""
  cfg = world.WorldConfig(resolution=resolution)
  bld = world.generate_building(seed, cfg)
  d_cam = cam.pixel_rays_camera(fov_rads, resolution).reshape(-1, 3)
  d_cam /= np.linalg.norm(d_cam, axis=1, keepdims=True)
  for location, rot in walk_cameras(bld, frames):
    d_world = d_cam @ rot.T
    hits, glob = render.cast_view(bld, location, rot, fov_rads, d_world)
    valid = (glob >= 0) & (hits.t <= cfg.max_depth)
    t = np.where(valid, hits.t, 0.0)
    gsafe = np.maximum(glob, 0)
    n = hits.normal / np.maximum(np.linalg.norm(hits.normal, axis=1, keepdims=True), 1e-12)
    p = location + t[:, None] * d_world
    rgb = render.shade_rgb(bld, cfg, p, n, gsafe, bld.room_of(p + 0.05 * n), valid)
    yield draw.to_uint8(rgb.reshape(resolution, resolution, 3))


def _title_lines(title: str, size: int) -> list[str]:
  """A panel title in lines of at most `size // 6` characters (~6 px a character), broken at
  spaces only (a single long name is cut, as before)."""
  width = max(1, size // 6)
  return [line[:width] for line in textwrap.wrap(title, width, break_long_words=False)] or [""]


def _titled(pic: np.ndarray, lines: Sequence[str], size: int, label_lines: int) -> np.ndarray:
  label = LABEL_HEIGHT * label_lines
  img = Image.new("RGB", (size, size + label), (255, 255, 255))
  img.paste(Image.fromarray(pic).resize((size, size), Image.NEAREST), (0, label))
  d = ImageDraw.Draw(img)
  for k, line in enumerate(lines):
    d.text((2, 1 + k * LABEL_HEIGHT), line, fill=(0, 0, 0))
  return np.asarray(img)


def side_by_side(frame: np.ndarray, outputs: dict[str, np.ndarray], image: np.ndarray,
                 size: int, titles: Mapping[str, str] | None = None) -> np.ndarray:
  """`input | output 1 | ...`: (size + L * LABEL_HEIGHT, size * (1 + len(outputs)), 3) uint8,
  L the most lines a title needs (1 for task names; 2 for e.g. 'normal <- depth_zbuffer').

  `image` is the network input ((R, R, 3) in [-1, 1]) the outputs were computed from; `frame` is
  what is shown as the input panel; `titles` replaces the task name above a panel.
  """
  titles = titles or {}
  lines = [_title_lines("input", size)] + [
      _title_lines(titles.get(name, tasks.get(name).name), size) for name in outputs]
  n = max(len(x) for x in lines)
  pics = [frame] + [draw.draw(name, out, image) for name, out in outputs.items()]
  return np.concatenate([_titled(p, t, size, n) for p, t in zip(pics, lines, strict=True)],
                        axis=1)


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float) -> int:
  """Writes (H, W, 3) uint8 frames to `.mp4` (H.264 via ffmpeg) or `.gif`; returns the count.

  Written to a temporary file in the same folder, then moved in place: no half-written video.
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix not in VIDEO_SUFFIXES:
    raise ValueError(f"--out {path}: the video format is chosen by the suffix; accepted: "
                     f"{', '.join(VIDEO_SUFFIXES)}")
  count = 0
  with files.atomic_path(path) as tmp:
    if suffix == ".gif":
      pics = [Image.fromarray(f) for f in frames]
      count = len(pics)
      if not pics:
        raise ValueError("no frames to write")
      pics[0].save(tmp, save_all=True, append_images=pics[1:], duration=int(1000 / fps), loop=0)
    else:
      import imageio.v2 as imageio  # the optional `video` extra

      # Even sizes for yuv420p; macro_block_size=2 pads at most one pixel instead of 16.
      with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264",
                              macro_block_size=2, pixelformat="yuv420p",
                              ffmpeg_log_level="error") as w:
        for f in frames:
          w.append_data(f)
          count += 1
      if not count:
        raise ValueError("no frames to write")
  return count


def visualize(frames: Iterable[np.ndarray], predictor: predict.Predictor, resolution: int,
              out: str | os.PathLike, fps: float = 8.0, panel: int = 128,
              total: int | None = None, titles: Mapping[str, str] | None = None) -> int:
  """Runs `predictor` on every frame and writes the side-by-side video; returns frames written.
  `titles`: panel titles by output name (default the task names)."""

  def rendered() -> Iterator[np.ndarray]:
    for frame in tqdm(frames, total=total, desc="frames", unit="frame", file=sys.stderr):
      image = predict.prepare_image(frame, resolution)
      shown = draw.to_uint8(draw.image_to_unit(image))
      yield side_by_side(shown, predictor(image), image, panel, titles)

  return write_video(rendered(), out, fps)


def contact_sheet(image: np.ndarray, outputs: dict[str, np.ndarray], size: int,
                  per_row: int = 7) -> np.ndarray:
  """The input and every drawable output, `per_row` panels a row: (H, W, 3) uint8."""
  drawable = {n: o for n, o in outputs.items() if tasks.get(n).display in draw.DRAWERS}
  names = list(drawable)
  frame = draw.to_uint8(draw.image_to_unit(image))
  rows = [side_by_side(frame, {n: drawable[n] for n in names[i:i + per_row]}, image, size)
          for i in range(0, len(names), per_row)]
  width = max(r.shape[1] for r in rows)
  rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
          for r in rows]
  return np.concatenate(rows, axis=0)


def predict_to_png(image_path: str, workdir: str, out: str, size: int = 128) -> np.ndarray:
  """Runs every task of the bank on an image file and writes the contact sheet (atomically)."""
  bank = bank_lib.TaskBank.load(workdir)
  with open(image_path, "rb") as f:
    img = predict.decode_image(f.read(), max_bytes=64 << 20, max_pixels=64 << 20)
  image = predict.prepare_image(img, bank.resolution)
  sheet = contact_sheet(image, bank(image), size)
  buf = io.BytesIO()
  Image.fromarray(sheet).save(buf, format="PNG")
  files.write_atomic(out, buf.getvalue())
  return sheet
