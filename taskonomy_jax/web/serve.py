"""What serving the web app needs besides the app: the task banks it can demo, example views,
a taxonomy run's bank folder and a bound port (`taskonomy serve`, taskonomy_jax/commands/serve.py).
"""

from __future__ import annotations

import errno
import os
import pathlib
import re
import socket

import ml_collections
import numpy as np

from taskonomy_jax import files, world
from taskonomy_jax.taskbank import train as train_lib
from taskonomy_jax.transfer import pipeline

# Task banks by name: name -> (description, builder(resolution) -> predictor).
TASKBANKS = {
    "none": "no live demo",
    "random": "randomly initialised networks from taskonomy_jax.models (no weights needed; "
              "outputs have the right shapes but no meaning)",
}


def world_examples(count: int, resolution: int, seed: int = 0) -> dict[str, np.ndarray]:
  """Rendered RGB views of one procedural building, `(R, R, 3)` uint8 each, by name."""
  cfg = world.WorldConfig(resolution=resolution)
  building = world.generate_building(seed, cfg)
  out = {}
  for k, view in enumerate(world.render_views(building, cfg)):
    if k >= count:
      break
    out[f"building {seed}, view {k}"] = np.round(np.clip(view.domains["rgb"], 0, 1) * 255).astype(
        np.uint8)
  return out


# A `taskonomy taxonomy` workdir's stage folders: 01_dataset, 02_views, 03_taskbank, ...
_STAGE_DIR = re.compile(r"^\d\d_[a-z0-9_]+$")


def bank_folder(path: str) -> str:
  """`path` itself, or, when it is a taxonomy run's workdir, the task bank that run trained or
  read (`pipeline.Run.bank_dir`).

  Raises:
    ValueError: a taxonomy run whose task bank is not trained yet.
  """
  if not os.path.isdir(path) or os.path.isfile(os.path.join(path, train_lib.BANK_FILE)):
    return path
  stages = sorted(d for d in os.listdir(path)
                  if _STAGE_DIR.match(d) and os.path.isdir(os.path.join(path, d)))
  if not stages:
    return path
  config = ml_collections.ConfigDict(files.read_json(os.path.join(path, "config.json")) or
                                     {"taskbank": {}})
  bank = pipeline.Run(config, pathlib.Path(path)).bank_dir
  if not (bank / train_lib.BANK_FILE).is_file():
    raise ValueError(f"{path} is a taxonomy run (made by `taskonomy taxonomy`) whose task bank "
                     f"is not trained yet ({bank} has no {train_lib.BANK_FILE}); run "
                     f"`taskonomy taxonomy --workdir {path} --until taskbank` first")
  return str(bank)


def bind_port(host: str, port: int) -> socket.socket:
  """A socket bound to (host, port), for uvicorn to listen on.

  Raises:
    ValueError: the port is taken or cannot be bound, said plainly (the CLI exits 2).
  """
  try:
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
  except socket.gaierror as e:
    raise ValueError(f"--host {host!r} is not an address this machine has ({e.strerror})"
                     ) from None
  sock = socket.socket(family, kind, proto)
  # As uvicorn does: rebinding over connections in TIME_WAIT is fine; a live listener on the
  # port still makes bind fail (Linux).
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  try:
    sock.bind(addr)
  except OSError as e:
    sock.close()
    if e.errno == errno.EADDRINUSE:
      raise ValueError(f"port {port} on {host} is already in use (another server is listening "
                       "there): stop it, or choose another port with --port") from None
    raise ValueError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
  return sock
