"""`taskonomy visualize`: task outputs over a video or image sequence, side by side.

Each output frame is `input | task 1 | task 2 | ...`, each panel drawn by `taskbank.draw` as the
registry's `display` says and titled with the task's name, as in the Taskonomy website's transfer
videos. Inputs: a video file (anything ffmpeg reads), a folder of images (sorted by name), or a
camera walk rendered through a procedural building (`--walk SEED`).

Videos are written with imageio + imageio-ffmpeg (`.mp4`, H.264) or as animated GIF (`.gif`,
Pillow, no ffmpeg), to a temporary file beside the output, then moved in place.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from taskonomy_jax import tasks
from taskonomy_jax.taskbank import draw, predict

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
  from taskonomy_jax.world import camera as cam

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
  from taskonomy_jax import world
  from taskonomy_jax.world import camera as cam
  from taskonomy_jax.world import render

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
    rgb = render.shade_rgb(bld, p, n, gsafe, bld.room_of(p + 0.05 * n), valid)
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
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=f".{path.stem}-", dir=path.parent)
  os.close(fd)
  count = 0
  try:
    if suffix == ".gif":
      pics = [Image.fromarray(f) for f in frames]
      count = len(pics)
      if not pics:
        raise ValueError("no frames to write")
      pics[0].save(tmp, save_all=True, append_images=pics[1:], duration=int(1000 / fps), loop=0)
    else:
      import imageio.v2 as imageio

      # Even sizes for yuv420p; macro_block_size=2 pads at most one pixel instead of 16.
      with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264",
                              macro_block_size=2, pixelformat="yuv420p",
                              ffmpeg_log_level="error") as w:
        for f in frames:
          w.append_data(f)
          count += 1
      if not count:
        raise ValueError("no frames to write")
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
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


# --- command line ----------------------------------------------------------------------------


def add_subcommand(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser(
      "visualize", help="task outputs over a video or image sequence, as a side-by-side video",
      description="Run task networks on every frame of a video, a folder of images or a camera "
                  "walk rendered through a procedural building, and write input | outputs side "
                  "by side as .mp4 (ffmpeg) or .gif. Exit code 2 on bad input.")
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--input", help="a video file or a folder of images (sorted by name)")
  src.add_argument("--walk", type=int, metavar="SEED",
                   help="render a camera walk through procedural building SEED as the input")
  p.add_argument("--frames", type=int, default=24,
                 help="frames of the walk, or the most frames read from --input (default 24)")
  p.add_argument("--tasks", default="normal,depth_zbuffer,reshading,edge_occlusion,"
                 "segment_semantic", help="comma-separated tasks to show (default: five)")
  p.add_argument("--taskbank", choices=["random"], default="random",
                 help="random: randomly initialised networks (used when --bank is not given)")
  p.add_argument("--bank", default=None, metavar="DIR",
                 help="a trained task bank (`taskonomy taskbank train --workdir DIR`); its "
                      "resolution replaces --resolution")
  p.add_argument("--transfers", default=None, metavar="WORKDIR",
                 help="a finished `taskonomy taxonomy` run: show its transfer readouts instead "
                      "of task networks (--tasks is then unused); its resolution replaces "
                      "--resolution")
  p.add_argument("--transfer", action="append", default=[], metavar="TARGET<-SRC[+SRC]",
                 help="with --transfers: a transfer to show instead of the taxonomy's chosen "
                      "ones (repeatable; one per target), e.g. normal<-depth_zbuffer+reshading")
  p.add_argument("--config", default=None, metavar="FILE[:ARG]",
                 help="with --transfers: the run's config, when its workdir has no "
                      "config.json (as given to `taskonomy taxonomy --config`)")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="with --transfers and --config: the run's --set overrides")
  p.add_argument("--resolution", type=int, default=64, help="network input size (default 64)")
  p.add_argument("--panel", type=int, default=128, help="panel size in the video (default 128)")
  p.add_argument("--fps", type=float, default=8.0, help="frames per second (default 8)")
  p.add_argument("--seed", type=int, default=0, help="seed of the random networks")
  p.add_argument("--out", type=pathlib.Path, required=True, help="output .mp4 or .gif")
  p.set_defaults(run=_run_visualize)


def _run_visualize(args: argparse.Namespace) -> int:
  names = [tasks.get(n.strip()).name for n in args.tasks.split(",") if n.strip()]
  if not names:
    raise ValueError("--tasks: give at least one task name")
  for n in names:
    if tasks.get(n).display == "none":
      raise ValueError(f"--tasks: {n} has no output to show")
  if args.out.suffix.lower() not in VIDEO_SUFFIXES:
    raise ValueError(f"--out {args.out}: use a .mp4 or .gif name")
  if args.frames < 1 or args.fps <= 0 or args.resolution < 16 or args.resolution % 16:
    raise ValueError("--frames must be >= 1, --fps > 0, --resolution a multiple of 16")
  if args.input is not None and not pathlib.Path(args.input).exists():
    raise ValueError(f"--input {args.input} is neither a video file nor a folder of images")
  resolution = args.resolution
  titles = None
  predictor: predict.Predictor
  if args.transfers is None and (args.transfer or args.config or args.set):
    raise ValueError("--transfer, --config and --set go with --transfers WORKDIR")
  if args.transfers is not None:
    if args.bank is not None:
      raise ValueError("--transfers and --bank exclude each other: show a run's transfers or a "
                       "task bank's networks")
    from taskonomy_jax.transfer import predictor as transfer_predictor

    config = transfer_predictor.load_run_config(args.transfers, args.config, args.set)
    predictor = transfer_predictor.TransferPredictor.load(
        args.transfers, args.transfer or None, config)
    names, titles, resolution = predictor.task_names, predictor.titles, predictor.resolution
  elif args.bank is not None:
    from taskonomy_jax.taskbank import bank

    predictor = bank.TaskBank.load(args.bank, names)
    resolution = predictor.resolution
  else:
    predictor = predict.random_init_predictor(names, resolution=resolution, seed=args.seed)
  if args.walk is not None:
    frames: Iterable[np.ndarray] = render_walk(args.walk, args.frames, resolution)
  else:
    frames = _take(read_frames(args.input), args.frames)
  n = visualize(frames, predictor, resolution, args.out, args.fps, args.panel,
                total=args.frames, titles=titles)
  print(f"wrote {args.out} ({n} frames, {len(names)} tasks)")
  return 0


def _take(frames: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
  for k, f in enumerate(frames):
    if k >= n:
      return
    yield f
