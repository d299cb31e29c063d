"""Bad requests as one exception type carrying the HTTP status, so pages and the JSON API report
them the same way."""

from __future__ import annotations

import dataclasses

from taskonomy_jax import tasks
from taskonomy_jax.taskbank import predict
from taskonomy_jax.taxonomy import bip
from taskonomy_jax.taxonomy.affinities import AffinityDataError
from taskonomy_jax.web.batching import Overloaded


@dataclasses.dataclass
class WebError(Exception):
  """A request the server refuses: `status` (4xx, or 503), a short `kind`, a message for
  people, and response headers (a 503's `Retry-After`)."""

  status: int
  kind: str
  message: str
  suggestions: tuple[str, ...] = ()
  headers: dict[str, str] = dataclasses.field(default_factory=dict)

  def __str__(self) -> str:
    return self.message

  def to_json(self) -> dict:
    out = {"error": self.kind, "message": self.message}
    if self.suggestions:
      out["suggestions"] = list(self.suggestions)
    return out


# Library exception -> (status, kind). Checked in order: subclasses before their bases.
_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (bip.InfeasibleBudgetError, 422, "infeasible"),
    (bip.BadProblemError, 400, "bad_request"),
    (AffinityDataError, 400, "bad_affinities"),
    (predict.ImageTooLargeError, 413, "image_too_large"),
    (predict.ImageError, 415, "not_an_image"),
)


def from_library(e: Exception) -> WebError:
  """Maps the library's bad-input errors to a `WebError`; re-raises anything else."""
  if isinstance(e, WebError):
    return e
  if isinstance(e, Overloaded):
    return WebError(503, "busy", str(e), headers={"Retry-After": str(e.retry_after)})
  if isinstance(e, tasks.UnknownTaskError):
    return WebError(400, "unknown_task", str(e), tuple(e.suggestions))
  for cls, status, kind in _STATUS:
    if isinstance(e, cls):
      return WebError(status, kind, str(e))
  raise e
