"""The live demo's prediction queue through the real app (uvicorn on 127.0.0.1): a full queue is
answered 503 with Retry-After, concurrent requests share one forward pass, `/api/solve` does not
wait for predictions, and a decompression bomb is refused as too large (413)."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import threading
import time
import warnings
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from taskonomy_jax.taskbank import predict
from taskonomy_jax.web.app import create_app
from taskonomy_jax.web.batching import Batcher, BatchSettings
from taskonomy_jax.web.service import Limits, Service
from tests.web_support import live_server

RES = 16


class FakeBank:
  """A batched predictor without networks: `reshading` is the image's red channel, so each
  answer shows which image it was computed from. Counts forward passes and their batch sizes;
  with `gate` set, every pass waits for it (a forward pass held "in flight")."""

  def __init__(self, gate: threading.Event | None = None):
    self.gate = gate
    self.entered = threading.Event()
    self.batch_sizes: list[int] = []

  def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[0] for k, v in self.predict_batch(image[None]).items()}

  def predict_batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
    self.batch_sizes.append(len(images))
    self.entered.set()
    if self.gate is not None:
      assert self.gate.wait(30), "the test never released the forward pass"
    return {"reshading": np.asarray(images[..., :1])}


def _png(value: int, side: int = 24) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(buf, format="PNG")
  return buf.getvalue()


def _service(bank: FakeBank, paper_results_dir=None, **settings) -> Service:
  return Service(str(paper_results_dir) if paper_results_dir else None, predictor=bank,
                 resolution=RES, batching=BatchSettings(**settings))


async def _predict(c: httpx.AsyncClient, value: int = 100, path: str = "/api/predict"
                   ) -> httpx.Response:
  return await c.post(path, files={"image": ("x.png", _png(value), "image/png")})


async def _until(condition, timeout: float = 20) -> None:
  deadline = time.monotonic() + timeout
  while not condition():
    assert time.monotonic() < deadline, "timed out waiting for the server"
    await asyncio.sleep(0.01)


def test_batcher_stacks_waiting_images_into_one_padded_pass():
  """Five images submitted together: one forward pass, padded to 8 (the next of 1, 2, 4, 8),
  and each future gets its own image's outputs."""
  bank = FakeBank()
  batcher = Batcher(bank, BatchSettings(max_batch=8, max_wait_ms=300))
  images = [np.full((RES, RES, 3), k / 10, np.float32) for k in range(5)]
  futures = [batcher.submit(im) for im in images]
  results = [f.result(timeout=10) for f in futures]
  batcher.close()
  assert bank.batch_sizes == [8] and batcher.calls == 1 and list(batcher.batch_counts) == [5]
  for im, out in zip(images, results, strict=True):
    np.testing.assert_array_equal(out["reshading"], im[..., :1])


def test_batch_settings_pad_to_a_fixed_set_of_sizes():
  s = BatchSettings(max_batch=12)
  assert s.sizes == (1, 2, 4, 8, 12)
  assert [s.padded(n) for n in (1, 3, 5, 9, 12)] == [1, 4, 8, 12, 12]
  assert BatchSettings(max_batch=1).sizes == (1,)
  with pytest.raises(ValueError, match="end at max_batch"):
    BatchSettings(max_batch=8, batch_sizes=(1, 4))


def test_concurrent_predictions_share_one_forward_pass():
  """Eight requests sent together through uvicorn: far fewer forward passes than requests, all
  answered 200 with their own input."""
  bank = FakeBank()
  service = _service(bank, max_batch=8, max_wait_ms=400)

  values = [30 * k for k in range(8)]

  async def burst(base: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
      return await asyncio.gather(*(_predict(c, v) for v in values))

  with live_server(create_app(service)) as base:
    responses = asyncio.run(burst(base))
  service.close()
  assert [r.status_code for r in responses] == [200] * 8
  assert sum(service.batcher.batch_counts) == 8
  # A loaded machine may split the burst; eight separate passes would mean no batching at all.
  assert service.batcher.calls <= 2 and max(service.batcher.batch_counts) >= 4, \
      list(service.batcher.batch_counts)
  assert all(size in (1, 2, 4, 8) for size in bank.batch_sizes)
  for value, r in zip(values, responses, strict=True):
    (panel,) = r.json()["outputs"]
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(panel["png"]))))
    # The fake's reshading is the red channel, drawn as grey: each answer is its own image's.
    assert panel["task"] == "reshading" and pixels.shape == (RES, RES, 3)
    assert np.abs(pixels.astype(int) - value).max() <= 1


def test_full_queue_is_503_with_retry_after():
  """With room for two predictions (one running, held; one waiting), the third is refused at
  once with 503 and a Retry-After in seconds, on the API and the page; the two admitted finish
  once the pass is released."""
  gate = threading.Event()
  bank = FakeBank(gate)
  service = _service(bank, max_batch=1, max_queue=2)

  async def go(base: str):
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
      admitted = [asyncio.create_task(_predict(c, v)) for v in (10, 20)]
      await _until(lambda: service.batcher.admitted == 2 and bank.entered.is_set())
      start = time.monotonic()
      refused = await _predict(c, 30)
      page = await c.post("/demo", files={"image": ("x.png", _png(30), "image/png")},
                          headers={"accept": "text/html"})
      status = (await c.get("/api/status")).json()
      refused_in = time.monotonic() - start
      gate.set()
      return refused, page, status, refused_in, await asyncio.gather(*admitted)

  with live_server(create_app(service)) as base:
    refused, page, status, refused_in, done = asyncio.run(go(base))
  service.close()
  assert refused.status_code == 503 and refused.json()["error"] == "busy"
  assert int(refused.headers["retry-after"]) >= 1
  assert "busy" in refused.json()["message"] and "retry" in refused.json()["message"]
  assert page.status_code == 503 and "retry-after" in page.headers and "id=error" in page.text
  assert refused_in < 5  # refused at once, not after waiting its turn
  assert status["predictions"]["admitted"] == 2 and status["predictions"]["max_queue"] == 2
  assert [r.status_code for r in done] == [200, 200]
  assert service.batcher.admitted == 0  # places are given back


def test_solve_does_not_wait_for_predictions_in_flight(paper_results_dir):
  """A forward pass held in flight with more predictions queued behind it: `/api/solve` (and
  the page) are answered meanwhile."""
  gate = threading.Event()
  bank = FakeBank(gate)
  service = _service(bank, paper_results_dir, max_batch=2, max_queue=16)

  async def go(base: str):
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
      predictions = [asyncio.create_task(_predict(c, v)) for v in range(0, 250, 50)]
      await _until(lambda: bank.entered.is_set() and service.batcher.admitted == 5)
      start = time.monotonic()
      solved = await c.post("/api/solve", json={"targets": ["normal", "reshading"],
                                                "budget": 1, "order": 1})
      page = await c.post("/transfer", data={"targets": "normal", "budget": "1"})
      took = time.monotonic() - start
      pending = sum(not t.done() for t in predictions)
      gate.set()
      return solved, page, took, pending, await asyncio.gather(*predictions)

  with live_server(create_app(service)) as base:
    solved, page, took, pending, done = asyncio.run(go(base))
  service.close()
  assert solved.status_code == 200 and solved.json()["targets"] == ["normal", "reshading"]
  assert page.status_code == 200 and "id=graph" in page.text
  assert pending == 5 and took < 15  # answered while every prediction still waited
  assert [r.status_code for r in done] == [200] * 5


def _png_header_only(width: int, height: int) -> bytes:
  """A PNG whose header declares width x height RGB pixels, with a tiny (truncated) image
  stream: what a decompression bomb looks like before it is decoded."""
  def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
          + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b""))


def test_png_bomb_is_413_not_415():
  """30000x30000 declared: Pillow's own guard refuses it when opening (DecompressionBombError);
  that is an image over the limit (413), never "not an image" (415)."""
  bomb = _png_header_only(30000, 30000)
  with pytest.raises(predict.ImageTooLargeError, match="900,000,000 pixels"):
    predict.decode_image(bomb, 8 << 20, 4096 * 4096)
  # Over our limit and Pillow's warning threshold, under its error: refused from the header,
  # whether the warning is only a warning or (-W error) raised.
  for action in ("ignore", "error"):
    with warnings.catch_warnings():
      warnings.simplefilter(action, Image.DecompressionBombWarning)
      with pytest.raises(predict.ImageTooLargeError, match="100,000,000 pixels"):
        predict.decode_image(_png_header_only(10000, 10000), 8 << 20, 4096 * 4096)

  service = Service(None, limits=Limits())  # no task bank: the image is checked first anyway

  async def go(base: str):
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
      api = await c.post("/api/predict", files={"image": ("bomb.png", bomb, "image/png")})
      page = await c.post("/demo", files={"image": ("bomb.png", bomb, "image/png")})
      return api, page

  with live_server(create_app(service)) as base:
    api, page = asyncio.run(go(base))
  assert api.status_code == 413 and api.json()["error"] == "image_too_large", api.text
  assert "900,000,000 pixels" in api.json()["message"]
  assert page.status_code == 413 and "id=error" in page.text


def test_random_bank_batch_equals_one_image_at_a_time():
  """`predict_batch` (one forward pass) gives each image what `predictor(image)` gives it, for a
  pixel task, a tiled one (jigsaw) and a multi-view one (egomotion); so does the fallback for a
  predictor without `predict_batch`."""
  pytest.importorskip("taskonomy_jax.models", reason="the task networks are not on this branch")
  bank = predict.random_init_predictor(["edge_texture", "jigsaw", "egomotion"], resolution=32)
  images = np.random.default_rng(3).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
  batched = predict.predict_batch(bank, images)
  unbatched = predict.predict_batch(lambda image: bank(image), images)
  for k, image in enumerate(images):
    for name, out in bank(image).items():
      np.testing.assert_allclose(batched[name][k], out, rtol=1e-4, atol=1e-5)
      np.testing.assert_array_equal(unbatched[name][k], out)
