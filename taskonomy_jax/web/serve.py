"""`taskonomy serve`: runs the web app with uvicorn, on 127.0.0.1 unless told otherwise.

    taskonomy serve --port 8000                # transfer-API page on the published results
    taskonomy serve --taskbank random          # + the live demo with randomly initialised networks
    taskonomy serve --bank runs/taskbank       # + the live demo with a trained task bank
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

import numpy as np

from taskonomy_jax.web.service import Limits, Service

# Task banks by name: name -> (description, builder(resolution) -> predictor).
TASKBANKS = {
    "none": "no live demo",
    "random": "randomly initialised networks from taskonomy_jax.models (no weights needed; "
              "outputs have the right shapes but no meaning)",
}


def world_examples(count: int, resolution: int, seed: int = 0) -> dict[str, np.ndarray]:
  """Rendered RGB views of one procedural building, `(R, R, 3)` uint8 each, by name."""
  from taskonomy_jax import world

  cfg = world.WorldConfig(resolution=resolution)
  building = world.generate_building(seed, cfg)
  out = {}
  for k, view in enumerate(world.render_views(building, cfg)):
    if k >= count:
      break
    out[f"building {seed}, view {k}"] = np.round(np.clip(view.domains["rgb"], 0, 1) * 255).astype(
        np.uint8)
  return out


def build_service(args: argparse.Namespace) -> Service:
  predictor, note, examples = None, "", {}
  resolution = args.resolution
  if args.bank is not None:
    if args.taskbank != "none":
      raise ValueError("give either --bank DIR (trained networks) or --taskbank random, not both")
    from taskonomy_jax.taskbank import bank

    predictor = bank.TaskBank.load(args.bank)  # FileNotFoundError names what is missing
    resolution = predictor.resolution  # the bank's networks were trained at this size
    note = f"Task bank: trained networks from {args.bank} ({', '.join(predictor.task_names)})."
  elif args.taskbank == "random":
    if importlib.util.find_spec("taskonomy_jax.models") is None:
      raise ValueError("--taskbank random needs taskonomy_jax.models, which this checkout "
                       "does not have")
    from taskonomy_jax import tasks
    from taskonomy_jax.taskbank import predict

    print(f"building {len(tasks.trainable())} randomly initialised task networks ...",
          file=sys.stderr)
    # Not jitted: compiling 25 networks would make the first request take minutes.
    predictor = predict.random_init_predictor(resolution=resolution, seed=args.seed,
                                              jit=False)
    note = ("Task bank: randomly initialised networks (no trained weights): the pictures show "
            "what each task outputs and how it is drawn, not good predictions.")
  if args.examples > 0 and importlib.util.find_spec("taskonomy_jax.world") is not None:
    examples = world_examples(args.examples, resolution, args.seed)
  limits = Limits(max_body_bytes=args.max_body_mb * 2**20,
                  max_image_bytes=min(args.max_body_mb * 2**20, Limits.max_image_bytes),
                  max_image_pixels=args.max_image_pixels)
  return Service(args.results_dir, predictor, resolution, limits, examples,
                 predictor_note=note)


def add_subcommand(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser(
      "serve", help="the web app: transfer-API page, live demo, JSON API",
      description="Serve the transfer-API page (/transfer), the live demo (/demo) and the JSON "
                  "API (/api/solve, /api/predict, /api/tasks) with uvicorn. Binds 127.0.0.1 by "
                  "default: pass --host 0.0.0.0 only on a network you trust.")
  p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
  p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
  p.add_argument("--results-dir", default=None,
                 help="where the published sets (default, 1k, 16k) are read from (default "
                      "$TASKONOMY_PAPER_RESULTS, then ../shared/paper_results)")
  p.add_argument("--taskbank", choices=sorted(TASKBANKS), default="none",
                 help="; ".join(f"{k}: {v}" for k, v in TASKBANKS.items()))
  p.add_argument("--bank", default=None, metavar="DIR",
                 help="a trained task bank (`taskonomy taskbank train --workdir DIR`): the demo "
                      "runs its finished networks, at the resolution they were trained at")
  p.add_argument("--resolution", type=int, default=64,
                 help="input resolution of the random task bank (default 64)")
  p.add_argument("--examples", type=int, default=4,
                 help="rendered example views offered on the demo page (default 4; needs the "
                      "procedural world)")
  p.add_argument("--seed", type=int, default=0, help="seed of the networks and examples")
  p.add_argument("--max-body-mb", type=int, default=8, help="request body limit in MiB (8)")
  p.add_argument("--max-image-pixels", type=int, default=4096 * 4096,
                 help="largest accepted image, in pixels (default 4096*4096)")
  p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
  import uvicorn

  from taskonomy_jax.web.app import create_app

  if not 0 < args.port < 65536:
    raise ValueError(f"--port {args.port} is not a port number (1-65535)")
  app = create_app(build_service(args))
  print(f"serving on http://{args.host}:{args.port}/transfer and /demo (Ctrl-C stops)",
        file=sys.stderr)
  uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
  return 0
