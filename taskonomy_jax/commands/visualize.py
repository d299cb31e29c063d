"""`taskonomy visualize`: task outputs over a video, a folder of images or a rendered walk."""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Iterable, Iterator

import numpy as np

from taskonomy_jax import tasks
from taskonomy_jax.taskbank import bank as bank_lib
from taskonomy_jax.taskbank import predict, video
from taskonomy_jax.transfer import predictor as transfer_predictor


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
  if args.out.suffix.lower() not in video.VIDEO_SUFFIXES:
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
    config = transfer_predictor.load_run_config(args.transfers, args.config, args.set)
    predictor = transfer_predictor.TransferPredictor.load(
        args.transfers, args.transfer or None, config)
    names, titles, resolution = predictor.task_names, predictor.titles, predictor.resolution
  elif args.bank is not None:
    predictor = bank_lib.TaskBank.load(args.bank, names)
    resolution = predictor.resolution
  else:
    predictor = predict.random_init_predictor(names, resolution=resolution, seed=args.seed)
  if args.walk is not None:
    frames: Iterable[np.ndarray] = video.render_walk(args.walk, args.frames, resolution)
  else:
    frames = _take(video.read_frames(args.input), args.frames)
  n = video.visualize(frames, predictor, resolution, args.out, args.fps, args.panel,
                      total=args.frames, titles=titles)
  print(f"wrote {args.out} ({n} frames, {len(names)} tasks)")
  return 0


def _take(frames: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
  for k, f in enumerate(frames):
    if k >= n:
      return
    yield f
