"""What the pages and the JSON API share: request checking, the solver call, the demo run.

The solver is `taxonomy.api.solve_taxonomy` (the same call as `taskonomy solve`); this module only
turns untrusted strings into its arguments, caches published tables and answers, and serialises
solver and matplotlib calls (neither is thread-safe; requests run in a thread pool).

Predictions never take the solver's lock: they go through `batching.Batcher` (bounded admission,
micro-batched forward passes on its own threads) and decode and draw on a small pool of their
own, so a burst of `/api/predict` cannot hold up `/api/solve`.

Security: `data` is a published set name or an affinity table sent in the request, parsed in
memory. It is never a path on the server, nothing sent is written anywhere (uploads spool, if at
all, into Starlette's temporary files) and nothing sent is executed.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import dataclasses
import io
import json
import math
import tempfile
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from PIL import Image

from taskonomy_jax import files, tasks
from taskonomy_jax.taskbank import draw as taskbank_draw
from taskonomy_jax.taskbank import predict
from taskonomy_jax.taxonomy import api, bip, draw, published
from taskonomy_jax.taxonomy.affinities import AffinityTable
from taskonomy_jax.web.batching import Batcher, BatchSettings
from taskonomy_jax.web.errors import WebError

UPLOAD = "upload"
DATA_CHOICES = (*published.SETS, *published.COMPUTED, UPLOAD)


@dataclasses.dataclass(frozen=True)
class Limits:
  """Request limits (bytes and pixels)."""

  max_body_bytes: int = 8 * 2**20
  max_image_bytes: int = 6 * 2**20
  max_image_pixels: int = 4096 * 4096
  max_targets: int = 40


@dataclasses.dataclass(frozen=True)
class SolveRequest:
  """A checked transfer-API request (task names resolved later, by the solver)."""

  targets: tuple[str, ...]
  sources: tuple[str, ...] | None
  budget: float
  order: int
  data: str
  table_json: str | None = None  # the uploaded affinity table, when data == "upload"
  graph: bool = False  # JSON API: add the graph as base64 PNG (the page always draws it)
  table_source: str = "uploaded affinity table"  # how messages (and the answer's `data`) name it

  def cache_key(self) -> tuple:
    return (self.targets, self.sources, self.budget, self.order, self.data, self.table_json,
            self.table_source)


def names_list(value: Any, field: str, required: bool) -> tuple[str, ...] | None:
  """`"a, b"` or `["a", "b"]` -> `("a", "b")`; empty -> None (or an error if required)."""
  if value is None or (isinstance(value, str) and not value.strip()):
    if required:
      raise WebError(400, "bad_request", f"{field}: give at least one task name (comma-separated)")
    return None
  if isinstance(value, str):
    items = value.split(",")
  elif isinstance(value, list) and all(isinstance(v, str) for v in value):
    items = value
  else:
    raise WebError(400, "bad_request",
                   f"{field}: expected a comma-separated string or a list of task names")
  names = tuple(dict.fromkeys(n.strip() for n in items if n.strip()))
  if not names and required:
    raise WebError(400, "bad_request", f"{field}: give at least one task name (comma-separated)")
  return names or None


def number(value: Any, field: str, kind: type, accepted: str) -> Any:
  """Parses an int/float from a form string or JSON number, with a message naming `field`."""
  if value is None or (isinstance(value, str) and not value.strip()):
    raise WebError(400, "bad_request", f"{field}: missing; expected {accepted}")
  if isinstance(value, bool):  # a bool is an int in Python, but `true` is not a budget
    raise WebError(400, "bad_request", f"{field}: {json.dumps(value)} is a boolean, not a "
                   f"number; expected {accepted}")
  if not isinstance(value, (str, int, float)):
    raise WebError(400, "bad_request", f"{field}: expected {accepted}, got a JSON "
                   f"{'object' if isinstance(value, dict) else 'array'}")
  try:
    x = kind(value) if not isinstance(value, str) else kind(value.strip())
  except (TypeError, ValueError):
    raise WebError(400, "bad_request",
                   f"{field}: {str(value)[:40]!r} is not a number; expected {accepted}") from None
  if kind is float and not math.isfinite(x):
    raise WebError(400, "bad_request", f"{field}: {value!r} is not finite; expected {accepted}")
  if kind is int and isinstance(value, float) and value != x:
    raise WebError(400, "bad_request", f"{field}: {value!r} is not a whole number; "
                   f"expected {accepted}")
  return x


# The fields of a solve request (JSON body or form); anything else is refused, so that a field
# the server does not support (`costs`, `importance`, `solver`: the command line and Python API
# have them) is never silently ignored.
SOLVE_FIELDS = ("targets", "sources", "budget", "order", "data", "affinities", "graph")


def parse_json_body(body: bytes) -> dict:
  """The JSON object of a request body; raises `WebError` (400 `bad_json`) for anything else:
  not JSON, not UTF-8, nested too deeply (which would exhaust the parser's stack), not an
  object."""
  example = '{"targets": ["normal"], "budget": 2, "order": 1}'
  try:
    obj = files.loads_json(body, "the body")
  except files.JsonInputError as e:
    raise WebError(400, "bad_json", f"{e}; send an object like {example}") from None
  if not isinstance(obj, dict):
    raise WebError(400, "bad_json", f"the body must be a JSON object, like {example}")
  return obj


def parse_solve_request(fields: Mapping[str, Any], upload: bytes | None,
                        limits: Limits) -> SolveRequest:
  """Checks a request's fields (form strings or JSON values); raises `WebError` (400).

  The one place a web request is checked: the page and the JSON API both call it, and the
  affinity table it carries is checked by `AffinityTable.from_text` (as `--data FILE` is).
  """
  unknown = [k for k in fields if k not in SOLVE_FIELDS]
  if unknown:
    raise WebError(400, "bad_request", f"unknown field {str(unknown[0])[:40]!r}; accepted "
                   f"fields: {', '.join(SOLVE_FIELDS)} (costs, importance and the solver are "
                   "set on the command line or in Python, not over the web)")
  targets = names_list(fields.get("targets"), "targets", required=True)
  if len(targets) > limits.max_targets:
    raise WebError(400, "bad_request", f"targets: {len(targets)} given, at most "
                   f"{limits.max_targets} accepted")
  sources = names_list(fields.get("sources"), "sources", required=False)
  budget = number(fields.get("budget"), "budget", float, "a number >= 0 (tasks to supervise)")
  order = number(fields.get("order", 1), "order", int, "an integer from 1 to 4")
  try:
    bip.check_budget(budget)
    bip.check_order(order)
  except bip.BadProblemError as e:
    raise WebError(400, "bad_request", str(e)) from None
  graph = fields.get("graph", False)
  if graph is None:
    graph = False
  if not isinstance(graph, bool):
    raise WebError(400, "bad_request",
                   f"graph: expected true or false, got {json.dumps(graph)[:40]}")
  data = fields.get("data")
  if data is not None and not isinstance(data, str):
    raise WebError(400, "bad_request", f"data: expected one of {', '.join(DATA_CHOICES)} (a "
                   f"string), got {json.dumps(data)[:40]}")
  data = data or "default"
  if data not in DATA_CHOICES:
    raise WebError(400, "bad_request", f"data: {data[:40]!r} is not accepted; choose one of "
                   f"{', '.join(DATA_CHOICES)} (upload = your own affinity-table JSON)")
  table_json = None
  inline = fields.get("affinities")
  # JSON API: the table inline. (An empty form field means no table: a form's empty file input
  # may arrive as one.)
  if inline is not None and inline != "":
    if not isinstance(inline, Mapping):
      kind = "a string" if isinstance(inline, str) else f"JSON {json.dumps(inline)[:20]}"
      raise WebError(400, "bad_affinities", f"affinities: expected an affinity table, a JSON "
                     f"object as written by AffinityTable.save, got {kind}")
    if fields.get("data") not in (None, "", UPLOAD):
      raise WebError(400, "bad_request", f"give either data ({', '.join(published.SETS)}) or "
                     "affinities (your own table), not both")
    table_json, data = json.dumps(inline, sort_keys=True), UPLOAD
    return SolveRequest(targets, sources, budget, order, data, table_json, graph,
                        table_source="affinities (inline table)")
  if data == UPLOAD:
    if not upload:
      raise WebError(400, "bad_request", "data: 'upload' needs an affinity-table JSON file "
                     "(written by AffinityTable.save) in the form, or an \"affinities\" object "
                     "in a JSON request")
    table_json = upload.decode("utf-8", errors="replace")
  return SolveRequest(targets, sources, budget, order, data, table_json, graph)


def parse_table(text: str, source: str = "uploaded affinity table") -> AffinityTable:
  """The request's affinity table, checked entry by entry (`AffinityTable.from_text`)."""
  return AffinityTable.from_text(text, source=source)


class Service:
  """Solves transfer-API requests and runs the task bank, with caches and one solver lock;
  predictions go through a `Batcher` (queue, micro-batches) of their own."""

  def __init__(self, results_root: str | None = None, predictor: predict.Predictor | None = None,
               resolution: int = 64, limits: Limits = Limits(), examples: Mapping[str, np.ndarray]
               | None = None, cache_size: int = 256, predictor_note: str = "",
               batching: BatchSettings | None = None, warmup: bool = False):
    """`batching`: the prediction queue's settings (`BatchSettings()` by default); `warmup`:
    run every padded batch size once in the background when the batcher starts, so the first
    requests do not pay for compiling them."""
    batching = batching or BatchSettings()
    self.results_root = results_root
    self.predictor = predictor
    self.predictor_note = predictor_note
    self.resolution = resolution
    self.limits = limits
    self.examples = dict(examples or {})
    self.batching = batching
    self.batcher = None if predictor is None else Batcher(
        predictor, batching,
        warmup=np.zeros((resolution, resolution, 3), np.float32) if warmup else None,
        after_warmup=self._panels)
    # Decoding uploads and drawing outputs: CPU work kept off the event loop and off the thread
    # pool the solver's requests use.
    self._post = concurrent.futures.ThreadPoolExecutor(batching.post_workers,
                                                       thread_name_prefix="predict-post")
    self._lock = threading.Lock()  # the solver's and matplotlib's; predictions never take it
    self._tables: dict[str, AffinityTable] = {}
    self._answers: collections.OrderedDict[tuple, tuple[dict, str]] = collections.OrderedDict()
    self._cache_size = cache_size

  def table(self, req: SolveRequest) -> AffinityTable:
    if req.data == UPLOAD:
      return parse_table(req.table_json or "", req.table_source)
    if req.data not in self._tables:
      try:
        self._tables[req.data] = published.load_published(req.data, self.results_root)
      except published.PublishedDataError as e:
        raise WebError(503, "data_unavailable", f"the server cannot read the published set "
                       f"{req.data!r}: {e}") from None
    return self._tables[req.data]

  def solve(self, req: SolveRequest, with_graph: bool = True) -> tuple[dict, str]:
    """(taxonomy JSON, graph PNG as base64 or '') for a checked request."""
    key = req.cache_key()
    with self._lock:
      if key in self._answers:
        self._answers.move_to_end(key)
        tax_json, png = self._answers[key]
        if png or not with_graph:
          return tax_json, png
      table = self.table(req)
      tax = api.solve_taxonomy(req.targets, req.budget, req.sources, req.order, table)
      tax_json = tax.to_json()
      if req.data != UPLOAD:
        tax_json["data"] = req.data
      png = draw_graph(tax) if with_graph else ""
      self._answers[key] = (tax_json, png)
      while len(self._answers) > self._cache_size:
        self._answers.popitem(last=False)
      return tax_json, png

  def _no_task_bank(self) -> WebError:
    return WebError(503, "no_task_bank", "this server has no task bank loaded"
                    + (f": {self.predictor_note}" if self.predictor_note else ""))

  def run_demo(self, image: Image.Image | np.ndarray) -> tuple[str, list[dict]]:
    """The input (as base64 PNG) and one entry per task: name, title, display, PNG (base64).

    Blocking (for scripts and threads); the web app uses `run_demo_async`.

    Raises:
      WebError: 503 without a task bank.
      batching.Overloaded: the prediction queue is full.
    """
    if self.batcher is None:
      raise self._no_task_bank()
    with self.batcher.admit():
      x = predict.prepare_image(image, self.resolution)
      return self._panels(x, self.batcher.submit(x).result())

  async def run_demo_async(self, load: Callable[[], Image.Image | np.ndarray]
                           ) -> tuple[str, list[dict]]:
    """`run_demo` on the image `load()` returns (decoding an upload, say), awaiting the batch
    without holding a thread: admission first (a full queue is refused before any decoding),
    then `load` and the drawing on the service's own pool.

    Raises:
      WebError: 503 without a task bank (after `load`, so a bad upload still gets its 4xx).
      batching.Overloaded: the prediction queue is full.
    """
    loop = asyncio.get_running_loop()
    if self.batcher is None:
      await loop.run_in_executor(self._post, load)
      raise self._no_task_bank()
    with self.batcher.admit():
      x = await loop.run_in_executor(
          self._post, lambda: predict.prepare_image(load(), self.resolution))
      outputs = await asyncio.wrap_future(self.batcher.submit(x))
      return await loop.run_in_executor(self._post, self._panels, x, outputs)

  def close(self) -> None:
    """Stops the prediction threads (queued predictions finish first)."""
    if self.batcher is not None:
      self.batcher.close()
    self._post.shutdown(wait=False)

  def _panels(self, x: np.ndarray, outputs: Mapping[str, np.ndarray]) -> tuple[str, list[dict]]:
    panels = []
    for name, out in outputs.items():
      spec = tasks.get(name)
      if spec.display == "none":  # random projection: a representation, nothing to draw
        continue
      pic = taskbank_draw.draw(spec, out, x)
      panels.append({"task": spec.name, "title": spec.title, "display": spec.display,
                     "shape": list(np.shape(out)), "png": png_base64(pic)})
    return png_base64(taskbank_draw.to_uint8(taskbank_draw.image_to_unit(x))), panels


def png_base64(pic: np.ndarray) -> str:
  buf = io.BytesIO()
  Image.fromarray(np.asarray(pic, np.uint8)).save(buf, format="PNG")
  return base64.b64encode(buf.getvalue()).decode("ascii")


def draw_graph(tax: api.Taxonomy) -> str:
  """The taxonomy drawn by `taxonomy.draw` (written in a temporary folder), as base64 PNG."""
  with tempfile.TemporaryDirectory(prefix="taskonomy-web-") as tmp:
    path = f"{tmp}/taxonomy.png"
    draw.draw_taxonomy(tax, path)
    with open(path, "rb") as f:
      return base64.b64encode(f.read()).decode("ascii")
