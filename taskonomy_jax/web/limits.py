"""A hard limit on request bodies, enforced before any route reads them (ASGI middleware).

A declared `Content-Length` over the limit is refused at once; a body without one (chunked) is
counted while it streams and refused as soon as it passes the limit, so nothing over the limit
is ever buffered or spooled.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from taskonomy_jax.web import pages

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
  """Raised from `receive` when a streamed body passes the limit; the app answers 413."""


def _message(limit: int) -> str:
  return (f"the request body is over the limit of {limit:,} bytes; send a smaller image or "
          "affinity file")


class BodyLimitMiddleware:
  """Answers 413 to any HTTP request whose body is over `max_bytes`."""

  def __init__(self, app: ASGIApp, max_bytes: int):
    self.app = app
    self.max_bytes = max_bytes

  async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
      await self.app(scope, receive, send)
      return
    headers = dict(scope.get("headers") or [])
    declared = headers.get(b"content-length")
    if declared is not None:
      try:
        too_big = int(declared) > self.max_bytes
      except ValueError:
        too_big = False
      if too_big:
        await self._refuse(scope, send)
        return
    seen = 0
    started = False

    async def counting_receive() -> Message:
      nonlocal seen
      message = await receive()
      if message["type"] == "http.request":
        seen += len(message.get("body", b""))
        if seen > self.max_bytes:
          raise BodyTooLarge
      return message

    async def tracking_send(message: Message) -> None:
      nonlocal started
      if message["type"] == "http.response.start":
        started = True
      await send(message)

    try:
      await self.app(scope, counting_receive, tracking_send)
    except BodyTooLarge:  # an app without a handler for it (`create_app` has one)
      if not started:
        await self._refuse(scope, send)

  async def _refuse(self, scope: Scope, send: Send) -> None:
    accept = dict(scope.get("headers") or []).get(b"accept", b"").decode("latin-1")
    body, ctype = too_large_body(scope.get("path", ""), accept, self.max_bytes)
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", ctype.encode()),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def too_large_body(path: str, accept: str, limit: int) -> tuple[bytes, str]:
  """The 413 answer: JSON for the API and non-browser clients, the error page for browsers."""
  msg = _message(limit)
  if path.startswith("/api/") or "text/html" not in accept:
    return json.dumps({"error": "body_too_large", "message": msg}).encode(), "application/json"
  return pages.error_page("Request too large", msg).encode(), "text/html; charset=utf-8"
