"""A real uvicorn server on 127.0.0.1 (a free port) for the HTTP burst and browser tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
  """Runs `app` with uvicorn on 127.0.0.1 in a thread; yields its base URL."""
  config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                          backlog=256)
  server = uvicorn.Server(config)
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  deadline = time.monotonic() + 30
  while not server.started:
    if not thread.is_alive() or time.monotonic() > deadline:
      raise RuntimeError("uvicorn did not start")
    time.sleep(0.02)
  host, port = server.servers[0].sockets[0].getsockname()[:2]
  assert host == "127.0.0.1"
  try:
    yield f"http://127.0.0.1:{port}"
  finally:
    server.should_exit = True
    thread.join(timeout=10)
