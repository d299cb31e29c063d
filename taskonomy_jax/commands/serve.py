"""`taskonomy serve`: runs the web app with uvicorn, on 127.0.0.1 unless told otherwise.

    taskonomy serve --port 8000                # transfer-API page on the published results
    taskonomy serve --taskbank random          # + the live demo with randomly initialised networks
    taskonomy serve --bank runs/taskbank       # + the live demo with a trained task bank

The port is bound before anything slow (building or loading the task bank), so a busy port fails
at once, with exit code 2 and no traceback; "serving on" is printed once uvicorn listens.
Predictions are micro-batched (`--max-batch`, `--batch-wait-ms`) behind a bounded queue
(`--predict-queue`; 503 + Retry-After when full); `--max-batch 1` runs them one at a time.
"""

from __future__ import annotations

import argparse
import sys

from taskonomy_jax import tasks
from taskonomy_jax.taskbank import bank as bank_lib
from taskonomy_jax.taskbank import predict
from taskonomy_jax.web import serve
from taskonomy_jax.web.batching import BatchSettings
from taskonomy_jax.web.service import Limits, Service


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
                      "$TASKONOMY_PAPER_RESULTS, then the copy shipped with the package)")
  p.add_argument("--taskbank", choices=sorted(serve.TASKBANKS), default="none",
                 help="; ".join(f"{k}: {v}" for k, v in serve.TASKBANKS.items()))
  p.add_argument("--bank", default=None, metavar="DIR",
                 help="a trained task bank (`taskonomy taskbank train --workdir DIR`): the demo "
                      "runs its finished networks, at the resolution they were trained at")
  p.add_argument("--resolution", type=int, default=64,
                 help="input resolution of the random task bank (default 64)")
  p.add_argument("--jit", action="store_true",
                 help="compile the random task bank's networks (once per batch size, in the "
                      "warm-up): slower to start, much faster forward passes")
  p.add_argument("--examples", type=int, default=4,
                 help="rendered example views offered on the demo page (default 4; needs the "
                      "procedural world)")
  p.add_argument("--seed", type=int, default=0, help="seed of the networks and examples")
  p.add_argument("--max-body-mb", type=int, default=8, help="request body limit in MiB (8)")
  p.add_argument("--max-image-pixels", type=int, default=4096 * 4096,
                 help="largest accepted image, in pixels (default 4096*4096)")
  d = BatchSettings()
  p.add_argument("--max-batch", type=int, default=d.max_batch,
                 help=f"predictions run together in one forward pass (default {d.max_batch}; "
                      "1 runs them one at a time); batches are padded to 1, 2, 4, ... this")
  p.add_argument("--batch-wait-ms", type=float, default=d.max_wait_ms,
                 help="how long a batch waits for more requests to join (default "
                      f"{d.max_wait_ms:g} ms)")
  p.add_argument("--predict-workers", type=int, default=d.workers,
                 help=f"forward passes at once (default {d.workers})")
  p.add_argument("--predict-queue", type=int, default=d.max_queue,
                 help="predictions waiting or running before new ones are answered 503 with "
                      f"Retry-After (default {d.max_queue})")
  p.add_argument("--no-warmup", dest="warmup", action="store_false",
                 help="skip running every batch size once at start (requests then pay for "
                      "compiling them)")
  p.set_defaults(run=_run_serve)


def batch_settings(args: argparse.Namespace) -> BatchSettings:
  """The prediction queue's settings from the command line (defaults where a caller's
  namespace lacks them)."""
  default = BatchSettings()
  return BatchSettings(max_batch=getattr(args, "max_batch", default.max_batch),
                       max_wait_ms=getattr(args, "batch_wait_ms", default.max_wait_ms),
                       workers=getattr(args, "predict_workers", default.workers),
                       max_queue=getattr(args, "predict_queue", default.max_queue))


def build_service(args: argparse.Namespace) -> Service:
  predictor, note, examples = None, "", {}
  resolution = args.resolution
  settings = batch_settings(args)
  if args.bank is not None:
    if args.taskbank != "none":
      raise ValueError("give either --bank DIR (trained networks) or --taskbank random, not both")
    predictor = bank_lib.TaskBank.load(serve.bank_folder(args.bank))  # FileNotFoundError names what is missing
    resolution = predictor.resolution  # the bank's networks were trained at this size
    note = f"Task bank: trained networks from {args.bank} ({', '.join(predictor.task_names)})."
  elif args.taskbank == "random":
    print(f"building {len(tasks.trainable())} randomly initialised task networks ...",
          file=sys.stderr)
    # Not jitted by default: compiling 25 networks takes about as long per batch size as the
    # first op-by-op pass (the warm-up pays either at start), but costs memory and minutes more
    # on a laptop; --jit makes every later forward pass much faster.
    predictor = predict.random_init_predictor(resolution=resolution, seed=args.seed,
                                              jit=getattr(args, "jit", False))
    note = ("Task bank: randomly initialised networks (no trained weights): the pictures show "
            "what each task outputs and how it is drawn, not good predictions.")
  if args.examples > 0:
    examples = serve.world_examples(args.examples, resolution, args.seed)
  limits = Limits(max_body_bytes=args.max_body_mb * 2**20,
                  max_image_bytes=min(args.max_body_mb * 2**20, Limits.max_image_bytes),
                  max_image_pixels=args.max_image_pixels)
  return Service(args.results_dir, predictor, resolution, limits, examples,
                 predictor_note=note, batching=settings,
                 warmup=predictor is not None and getattr(args, "warmup", False))


def _run_serve(args: argparse.Namespace) -> int:
  import uvicorn  # the `web` extra

  # The app imports fastapi, of the optional `web` extra: only `taskonomy serve` needs it.
  from taskonomy_jax.web.app import create_app

  if not 0 < args.port < 65536:
    raise ValueError(f"--port {args.port} is not a port number (1-65535)")
  if args.bank is not None:
    serve.bank_folder(args.bank)  # a run without a trained bank: said before anything starts
  sock = serve.bind_port(args.host, args.port)  # before minutes of building the task bank
  try:
    service = build_service(args)
    if service.batcher is not None and getattr(args, "warmup", False):
      print(f"warming up batch sizes {', '.join(map(str, service.batching.sizes))} in the "
            "background (predictions queue until it is done)", file=sys.stderr)
      service.batcher.start()
    server = _server(uvicorn.Config(create_app(service), log_level="warning"),
                     f"serving on http://{args.host}:{args.port}/transfer and /demo (Ctrl-C "
                     "stops)")
    server.run(sockets=[sock])
    service.close()
  finally:
    sock.close()
  return 0


def _server(config, message: str):
  """uvicorn's server, printing `message` once it listens (not before: a failed start prints
  no "serving on")."""
  import uvicorn  # the `web` extra

  class Server(uvicorn.Server):
    async def startup(self, sockets=None) -> None:
      await super().startup(sockets=sockets)
      if self.started:
        print(message, file=sys.stderr, flush=True)

  return Server(config)
