"""The FastAPI application: pages (`/transfer`, `/demo`) and the JSON API (`/api/...`).

Status codes: 400 bad input (unknown task, bad budget/order/field, malformed affinity table),
413 body or image over the limit, 415 not an image, 422 infeasible request (the budget cannot
serve every target), 503 the server lacks the data or task bank, or its prediction queue is full
(with `Retry-After`). Pages show the same message in an error box, with the same status.

Predictions (`/api/predict`, `/demo`) await the service's batcher without holding a thread of the
pool that runs solver requests, so neither waits for the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from taskonomy_jax import tasks
from taskonomy_jax.taskbank import predict
from taskonomy_jax.web import pages
from taskonomy_jax.web.errors import WebError, from_library
from taskonomy_jax.web.limits import BodyLimitMiddleware, BodyTooLarge, too_large_body
from taskonomy_jax.web.service import DATA_CHOICES, Service, parse_json_body, parse_solve_request


async def _form(request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
  """Text fields and file contents of a multipart or urlencoded form (files read in memory;
  Starlette may spool large parts to its temporary files, never elsewhere)."""
  try:
    form = await request.form()
  except BodyTooLarge:  # the middleware answers 413
    raise
  except Exception as e:  # malformed multipart bodies
    raise WebError(400, "bad_request", f"the form could not be read ({e})") from None
  fields, files = {}, {}
  for key, value in form.multi_items():
    if isinstance(value, UploadFile):
      data = await value.read()
      if data:
        files[key] = data
    else:
      fields[key] = value
  await form.close()
  return fields, files


def create_app(service: Service) -> BodyLimitMiddleware:
  """The web app around a `Service` (data, task bank, limits): the FastAPI app inside the
  body-limit middleware, an ASGI application for uvicorn or httpx."""
  app = FastAPI(title="taskonomy-jax", docs_url="/api/docs", redoc_url=None,
                openapi_url="/api/openapi.json")
  limits = service.limits

  @app.exception_handler(WebError)
  async def _web_error(request: Request, e: WebError) -> Response:
    return JSONResponse(e.to_json(), status_code=e.status, headers=e.headers)

  @app.exception_handler(BodyTooLarge)
  async def _too_large(request: Request, e: BodyTooLarge) -> Response:
    body, ctype = too_large_body(request.url.path, request.headers.get("accept", ""),
                                 limits.max_body_bytes)
    return Response(body, status_code=413, media_type=ctype, headers={"connection": "close"})

  @app.get("/", include_in_schema=False)
  def index() -> Response:
    return RedirectResponse("/transfer")

  @app.get("/transfer", response_class=HTMLResponse)
  def transfer_form() -> HTMLResponse:
    return HTMLResponse(pages.transfer_page({}, DATA_CHOICES))

  @app.post("/transfer", response_class=HTMLResponse)
  async def transfer_submit(request: Request) -> HTMLResponse:
    fields: dict[str, str] = {}
    try:
      fields, files = await _form(request)
      req = parse_solve_request(fields, files.get("affinities"), limits)
      tax, png = await _in_thread(service.solve, req)
    except Exception as e:  # every bad input becomes the page's error box
      err = from_library(e)
      return HTMLResponse(pages.transfer_page(fields, DATA_CHOICES, err), status_code=err.status)
    return HTMLResponse(pages.transfer_page(fields, DATA_CHOICES, None, tax, png))

  @app.post("/api/solve")
  async def api_solve(request: Request) -> JSONResponse:
    """JSON in: {targets, sources?, budget, order?, data?: default|1k|16k, affinities?: {...}}.
    JSON out: the taxonomy (`Taxonomy.to_json`), plus `graph_png` (base64) if `graph` is true."""
    body = parse_json_body(await request.body())
    try:
      req = parse_solve_request(body, None, limits)
      tax, png = await _in_thread(service.solve, req, req.graph)
    except Exception as e:
      raise from_library(e) from None
    return JSONResponse({**tax, "graph_png": png} if req.graph else tax)

  @app.get("/api/tasks")
  def api_tasks() -> JSONResponse:
    return JSONResponse([{"name": t.name, "code_name": t.code_name, "title": t.title,
                          "display": t.display, "source_only": t.source_only,
                          "output_shape_256": list(t.output_shape(256))}
                         for t in tasks.all_tasks()])

  @app.get("/api/status")
  def api_status() -> JSONResponse:
    """Whether a task bank is loaded, and its prediction queue: warm (every batch size run
    once), requests admitted, forward passes and images so far, the batching settings."""
    batcher = service.batcher
    return JSONResponse({"task_bank": batcher is not None,
                         "predictions": None if batcher is None else batcher.status()})

  @app.get("/demo", response_class=HTMLResponse)
  def demo_form() -> HTMLResponse:
    return HTMLResponse(pages.demo_page(sorted(service.examples), note=_demo_note(service)))

  @app.post("/demo", response_class=HTMLResponse)
  async def demo_submit(request: Request) -> HTMLResponse:
    try:
      inp, panels = await service.run_demo_async(await _demo_image(request, service))
    except Exception as e:
      err = from_library(e)
      return HTMLResponse(pages.demo_page(sorted(service.examples), err,
                                          note=_demo_note(service)), status_code=err.status,
                          headers=err.headers)
    return HTMLResponse(pages.demo_page(sorted(service.examples), None, inp, panels,
                                        note=_demo_note(service)))

  @app.post("/api/predict")
  async def api_predict(request: Request) -> JSONResponse:
    """Multipart `image` (or `example`) in; every task's picture (base64 PNG) out."""
    try:
      inp, panels = await service.run_demo_async(await _demo_image(request, service))
    except Exception as e:
      raise from_library(e) from None
    return JSONResponse({"input_png": inp, "outputs": panels})

  return BodyLimitMiddleware(app, limits.max_body_bytes)


def _demo_note(service: Service) -> str:
  if service.predictor is None:
    return "No task bank is loaded on this server" + (
        f": {service.predictor_note}" if service.predictor_note else ".")
  return service.predictor_note


async def _demo_image(request: Request, service: Service) -> Callable[[], Any]:
  """What loads the request's image: decoding an upload is left to the service's pool (a large
  image would block the event loop for every other request)."""
  fields, files = await _form(request)
  if "image" in files:
    data, limits = files["image"], service.limits
    return lambda: predict.decode_image(data, limits.max_image_bytes, limits.max_image_pixels)
  example = fields.get("example", "")
  if example:
    if example not in service.examples:
      raise WebError(400, "bad_request", f"example {example[:40]!r} does not exist; choose one "
                     f"of {', '.join(sorted(service.examples)) or '(none on this server)'}")
    picture = np.asarray(service.examples[example])
    return lambda: picture
  raise WebError(400, "bad_request", "choose an image file to upload"
                 + (" or a rendered example" if service.examples else ""))


async def _in_thread(fn, *args):
  return await run_in_threadpool(fn, *args)
