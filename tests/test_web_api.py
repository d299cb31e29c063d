"""The web app's HTTP API and pages: answers equal the library's, every bad input gets its 4xx
with a message, limits hold, and a burst of concurrent requests on loopback loses nothing."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from taskonomy_jax.taxonomy import api, published
from taskonomy_jax.web.app import create_app
from taskonomy_jax.web.service import Limits, Service
from tests.web_support import live_server

TARGETS = ["normal", "reshading", "depth_zbuffer", "edge_occlusion"]


@pytest.fixture(scope="module")
def service(paper_results_dir) -> Service:
  limits = Limits(max_body_bytes=300_000, max_image_bytes=200_000, max_image_pixels=256 * 256)
  return Service(str(paper_results_dir), limits=limits)


@pytest.fixture(scope="module")
def client(service) -> httpx.Client:
  return _AsgiClient(create_app(service))


class _AsgiClient:
  """Synchronous calls into the ASGI app (httpx's ASGI transport, no network)."""

  def __init__(self, app):
    self.app = app

  def request(self, method: str, url: str, **kw) -> httpx.Response:
    async def go():
      async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                   base_url="http://testserver") as c:
        return await c.request(method, url, **kw)
    return asyncio.run(go())

  def post(self, url: str, **kw) -> httpx.Response:
    return self.request("POST", url, **kw)

  def get(self, url: str, **kw) -> httpx.Response:
    return self.request("GET", url, **kw)


def _png(w: int, h: int, noise: bool = True) -> bytes:
  """A PNG of random pixels (incompressible: about 3 bytes a pixel) or of one colour (tiny)."""
  pixels = (np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8) if noise
            else np.full((h, w, 3), 90, np.uint8))
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format="PNG")
  return buf.getvalue()


# --- answers ----------------------------------------------------------------------------------


def test_api_solve_equals_library_call(client, paper_results_dir):
  r = client.post("/api/solve", json={"targets": TARGETS, "budget": 2, "order": 2})
  assert r.status_code == 200, r.text
  got = r.json()
  want = api.solve_taxonomy(TARGETS, 2, order=2, root=paper_results_dir).to_json()
  assert [s["task"] for s in got["supervised"]] == [s["task"] for s in want["supervised"]]
  assert [(s["target"], s["sources"], s["order"]) for s in got["served"]] == \
      [(s["target"], s["sources"], s["order"]) for s in want["served"]]
  assert got["objective"] == pytest.approx(want["objective"], abs=1e-9)
  assert got["mean_quality"] == pytest.approx(want["mean_quality"])
  assert got["data"] == "default" and got["cost"] <= 2


def test_the_computed_synthetic_table_is_offered_beside_the_published_ones(client):
  """The page lists `synthetic` (docs/taxonomy_cpu_full, shipped with the package) and both the
  page and the JSON API answer on it as the library does."""
  page = client.get("/transfer").text
  assert "value='synthetic'" in page and "value='16k'" in page
  r = client.post("/api/solve", json={"targets": TARGETS, "budget": 2, "order": 2,
                                      "data": "synthetic"})
  assert r.status_code == 200, r.text
  want = api.solve_taxonomy(TARGETS, 2, order=2, data="synthetic").to_json()
  assert r.json()["served"] == want["served"] and r.json()["supervised"] == want["supervised"]
  assert r.json()["data"] == want["data"] != "default"
  form = client.post("/transfer", data={"targets": ",".join(TARGETS), "budget": "2",
                                        "order": "2", "data": "synthetic"})
  assert form.status_code == 200 and "<option value='synthetic' selected>" in form.text


def test_api_solve_accepts_code_names_and_a_comma_string(client):
  a = client.post("/api/solve", json={"targets": "rgb2sfnorm, reshade", "budget": 1}).json()
  b = client.post("/api/solve", json={"targets": ["normal", "reshading"], "budget": 1}).json()
  assert a["served"] == b["served"] and a["targets"] == ["normal", "reshading"]


def test_api_solve_graph_is_a_png(client):
  import base64

  r = client.post("/api/solve", json={"targets": TARGETS, "budget": 2, "graph": True})
  img = Image.open(io.BytesIO(base64.b64decode(r.json()["graph_png"])))
  assert img.format == "PNG" and img.size[0] > 200


def test_uploaded_affinity_table_round_trips(client, paper_results_dir, tmp_path):
  """A table saved by `AffinityTable.save` and sent by the user gives the published answer."""
  path = published.load_published("default", paper_results_dir).save(tmp_path / "mine.json")
  want = client.post("/api/solve", json={"targets": TARGETS, "budget": 2, "order": 2}).json()
  inline = client.post("/api/solve", json={"targets": TARGETS, "budget": 2, "order": 2,
                                           "affinities": json.loads(path.read_text())}).json()
  assert inline["served"] == want["served"] and inline["supervised"] == want["supervised"]
  page = client.post("/transfer", data={"targets": ",".join(TARGETS), "budget": "2",
                                        "order": "2", "data": "upload"},
                     files={"affinities": ("mine.json", path.read_bytes(), "application/json")})
  # The body limit of this fixture (300 kB) is above the table's size; check that premise.
  assert path.stat().st_size < 300_000
  assert page.status_code == 200, page.text[:500]
  for s in want["served"]:
    assert f"<td>{s['affinity']:.4f}</td>" in page.text


def test_transfer_page_shows_graph_table_and_json(client):
  r = client.post("/transfer", data={"targets": ", ".join(TARGETS), "budget": "2",
                                     "order": "1", "data": "1k"})
  assert r.status_code == 200
  assert "id=graph" in r.text and "data:image/png;base64," in r.text
  assert r.text.count("<tr><td>") == len(TARGETS)
  j = r.text[r.text.index("<pre id=json>") + len("<pre id=json>"):r.text.index("</pre>")]
  import html
  assert json.loads(html.unescape(j))["data"] == "1k"


# --- bad input --------------------------------------------------------------------------------


def test_unknown_task_is_400_with_suggestion(client):
  r = client.post("/api/solve", json={"targets": ["normals", "reshading"], "budget": 2})
  assert r.status_code == 400
  assert r.json()["error"] == "unknown_task" and r.json()["suggestions"][0] == "normal"
  page = client.post("/transfer", data={"targets": "normals", "budget": "2"})
  assert page.status_code == 400
  assert "Unknown task &#x27;normals&#x27;" in page.text and "<code>normal</code>" in page.text
  assert "value='normals'" in page.text  # the form keeps what the user typed


@pytest.mark.parametrize("budget,words", [("-1", "budget"), ("abc", "not a number"),
                                          ("nan", "not finite"), ("", "missing")])
def test_bad_budget_is_400(client, budget, words):
  r = client.post("/transfer", data={"targets": "normal", "budget": budget})
  assert r.status_code == 400 and words in r.text and "id=error" in r.text
  j = client.post("/api/solve", json={"targets": ["normal"], "budget": budget or None})
  assert j.status_code == 400 and "budget" in j.json()["message"]


@pytest.mark.parametrize("order", ["0", "5", "x", 1.5, True])
def test_bad_order_is_400(client, order):
  r = client.post("/api/solve", json={"targets": ["normal"], "budget": 1, "order": order})
  assert r.status_code == 400 and "order" in r.json()["message"]


def test_infeasible_is_422_and_names_the_minimum_budget(client):
  r = client.post("/api/solve", json={"targets": TARGETS, "budget": 0.5})
  assert r.status_code == 422 and r.json()["error"] == "infeasible"
  assert "at least 1" in r.json()["message"]
  page = client.post("/transfer", data={"targets": "normal", "sources": "jigsaw", "budget": "0"})
  assert page.status_code == 422 and "budget 0 is too small" in page.text


@pytest.mark.parametrize("data", ["../../etc/passwd", "/work/shared/paper_results", "4k"])
def test_data_is_never_a_server_path(client, data):
  r = client.post("/api/solve", json={"targets": ["normal"], "budget": 1, "data": data})
  assert r.status_code == 400 and "default, 1k, 16k, synthetic, upload" in r.json()["message"]


def test_bad_affinity_uploads_are_400(client):
  page = client.post("/transfer", data={"targets": "normal", "budget": "1", "data": "upload"},
                     files={"affinities": ("a.json", b"{not json", "application/json")})
  assert page.status_code == 400 and "not valid JSON" in page.text
  page = client.post("/transfer", data={"targets": "normal", "budget": "1", "data": "upload"})
  assert page.status_code == 400 and "needs an affinity-table JSON file" in page.text
  r = client.post("/api/solve", json={"targets": ["normal"], "budget": 1,
                                      "affinities": {"format": "something else"}})
  assert r.status_code == 400 and r.json()["error"] == "bad_affinities"


def test_bad_json_body_is_400(client):
  r = client.post("/api/solve", content=b"budget=2", headers={"content-type": "application/json"})
  assert r.status_code == 400 and r.json()["error"] == "bad_json"
  r = client.post("/api/solve", json=["normal"])
  assert r.status_code == 400


def _table(**changes) -> dict:
  """A valid inline affinity table for `reshading`, with `changes` made to its first row
  (`baseline_quality=...` sets the table's baseline instead)."""
  table = {"format": "taskonomy-jax/affinities-v1", "transfers": [
      {"sources": ["normal"], "target": "reshading", "affinity": 0.5},
      {"sources": ["self"], "target": "reshading", "affinity": 0.6}]}
  if "baseline_quality" in changes:
    table["baseline_quality"] = changes.pop("baseline_quality")
  table["transfers"][0].update(changes)
  return table


def test_deeply_nested_json_is_400_not_500(client):
  """100,000 levels exhaust Python's JSON parser (RecursionError); 40 parse but are refused."""
  for body in (b"[" * 100_000 + b"]" * 100_000,
               b'{"targets": ' + b"[" * 100_000 + b"]" * 100_000 + b', "budget": 1}',
               json.dumps({"targets": ["normal"], "budget": 1,
                           "affinities": json.loads("[" * 40 + "]" * 40)}).encode()):
    r = client.post("/api/solve", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"] == "bad_json" and "nested too deeply" in r.json()["message"]
  # The same in an uploaded file on the page.
  page = client.post("/transfer", data={"targets": "normal", "budget": "1", "data": "upload"},
                     files={"affinities": ("a.json", b"[" * 100_000, "application/json")})
  assert page.status_code == 400 and "nested too deeply" in page.text


@pytest.mark.parametrize("value,words", [
    ("abc", "got 'abc' (a string, not a number)"), ("0.9", "got '0.9' (a string"),
    (-0.5, "got -0.5"), (True, "got true (a boolean, not a number)"),
    (None, "got null"), ([0.5], "got [0.5] (a list"), (float("nan"), "got nan"),
])
def test_bad_inline_affinities_are_400_naming_the_row(client, value, words):
  body = json.dumps({"targets": ["reshading"], "budget": 1, "affinities": _table(affinity=value)})
  r = client.post("/api/solve", content=body.encode(),  # json.dumps writes NaN, httpx would not
                  headers={"content-type": "application/json"})
  assert r.status_code == 400, r.text[:300]
  msg = r.json()["message"]
  assert r.json()["error"] == "bad_affinities"
  assert "transfer #0 (normal -> reshading): affinity must be a finite number >= 0" in msg
  assert words in msg


def test_a_negative_affinity_in_an_uploaded_file_is_400(client):
  """A negative affinity used to be accepted and to change the answer."""
  body = json.dumps(_table(affinity=-5)).encode()
  page = client.post("/transfer", data={"targets": "reshading", "budget": "1", "data": "upload"},
                     files={"affinities": ("mine.json", body, "application/json")})
  assert page.status_code == 400 and "id=error" in page.text
  assert "transfer #0 (normal -&gt; reshading): affinity must be a finite number &gt;= 0" in \
      page.text


@pytest.mark.parametrize("changes,words", [
    ({"baseline_quality": {"normal": "abc"}}, "baseline_quality of 'normal' must be a win rate"),
    ({"baseline_quality": [1, 2]}, '"baseline_quality" must be an object of task name'),
    ({"quality": 1.5}, "transfer #0 (normal -> reshading): quality must be a win rate from 0"),
    ({"target": "reshadinq"}, "transfer #0 (normal -> reshadinq): Unknown task 'reshadinq'"),
    ({"sources": "normal"}, '"sources" must be a non-empty list of task names'),
    ({"weight": 2}, "transfer #0 has unknown field 'weight'"),
])
def test_malformed_inline_tables_are_400(client, changes, words):
  r = client.post("/api/solve", json={"targets": ["reshading"], "budget": 1,
                                      "affinities": _table(**changes)})
  assert r.status_code == 400 and r.json()["error"] == "bad_affinities", r.text[:300]
  assert words in r.json()["message"]


@pytest.mark.parametrize("affinities", ["zzz", 5, [], True])
def test_affinities_that_are_not_a_table_are_400(client, affinities):
  """`"affinities": "zzz"` used to be ignored: the answer came from the published data."""
  r = client.post("/api/solve", json={"targets": ["normal"], "budget": 1,
                                      "affinities": affinities})
  assert r.status_code == 400 and r.json()["error"] == "bad_affinities"
  assert r.json()["message"].startswith("affinities: expected an affinity table")


def test_data_and_affinities_together_are_400(client):
  r = client.post("/api/solve", json={"targets": ["reshading"], "budget": 1, "data": "1k",
                                      "affinities": _table()})
  assert r.status_code == 400 and "not both" in r.json()["message"]
  ok = client.post("/api/solve", json={"targets": ["reshading"], "budget": 1, "data": "upload",
                                       "affinities": _table()})
  assert ok.status_code == 200 and ok.json()["objective"] == 0.6


@pytest.mark.parametrize("field", ["costs", "solver", "importance", "budgett"])
def test_unknown_fields_are_400_and_list_the_accepted_ones(client, field):
  r = client.post("/api/solve", json={"targets": ["normal"], "budget": 1, field: {"normal": 2}})
  assert r.status_code == 400
  msg = r.json()["message"]
  assert f"unknown field '{field}'" in msg
  assert "accepted fields: targets, sources, budget, order, data, affinities, graph" in msg


@pytest.mark.parametrize("field,value,words", [
    ("budget", True, "budget: true is a boolean, not a number"),
    ("budget", False, "budget: false is a boolean, not a number"),
    ("budget", [1], "budget: expected a number >= 0"),
    ("order", {"n": 1}, "order: expected an integer from 1 to 4"),
    ("graph", "yes", 'graph: expected true or false, got "yes"'),
    ("data", ["default"], "data: expected one of default, 1k, 16k, synthetic, upload"),
])
def test_wrongly_typed_fields_are_400(client, field, value, words):
  r = client.post("/api/solve", json={"targets": ["normal"], "budget": 1, field: value})
  assert r.status_code == 400 and words in r.json()["message"], r.text[:300]


def test_user_text_is_escaped_not_executed(client):
  page = client.post("/transfer", data={"targets": "<script>alert(1)</script>", "budget": "1"})
  assert page.status_code == 400
  assert "<script>" not in page.text and "&lt;script&gt;" in page.text


def test_not_an_image_is_415(client):
  for path in ("/api/predict", "/demo"):
    r = client.post(path, files={"image": ("x.png", b"GIF89a but not really", "image/png")})
    assert r.status_code == 415 and "not an image" in r.text


def test_image_over_the_pixel_limit_is_413(client):
  r = client.post("/api/predict", files={"image": ("big.png", _png(300, 300, noise=False), "image/png")})
  assert r.status_code == 413 and r.json()["error"] == "image_too_large"
  assert "90,000 pixels" in r.json()["message"] and "65,536" in r.json()["message"]


def test_image_over_the_byte_limit_is_413(client):
  data = _png(255, 255)  # 65,025 pixels (under the pixel limit), about 195 kB
  data += b"\0" * (210_000 - len(data))  # bytes after the PNG's end: still a readable PNG
  r = client.post("/demo", files={"image": ("big.png", data, "image/png")})
  assert r.status_code == 413 and "the limit is 200,000 bytes" in r.text and "id=error" in r.text


def test_body_over_the_limit_is_413_declared_or_streamed(client):
  r = client.post("/api/solve", content=b"x" * 400_000,
                  headers={"content-type": "application/json"})
  assert r.status_code == 413 and r.json()["error"] == "body_too_large"

  async def chunks():  # no Content-Length: counted while it streams
    yield (b'--zzz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
           b"Content-Type: image/png\r\n\r\n")
    for _ in range(40):
      yield b"y" * 10_000

  r = client.post("/demo", content=chunks(), headers={"content-type": "multipart/form-data; "
                                                      "boundary=zzz", "accept": "text/html"})
  assert r.status_code == 413 and "over the limit of 300,000 bytes" in r.text


def test_missing_image_and_unknown_example_are_400(client):
  assert client.post("/demo", data={"example": ""}).status_code == 400
  r = client.post("/api/predict", data={"example": "nope"})
  assert r.status_code == 400 and "does not exist" in r.json()["message"]


def test_demo_without_a_task_bank_is_503(client):
  r = client.post("/api/predict", files={"image": ("ok.png", _png(64, 64), "image/png")})
  assert r.status_code == 503 and r.json()["error"] == "no_task_bank"


# --- a burst on loopback ----------------------------------------------------------------------


def test_burst_of_200_requests_20_at_a_time(service, paper_results_dir):
  """200 requests, at most 20 in flight, against uvicorn on 127.0.0.1: every one answered,
  each with the answer to its own request."""
  variants = [(TARGETS[: 1 + k % 4], 1 + k % 3, 1 + k % 2) for k in range(8)]
  want = {}
  for targets, budget, order in variants:
    tax = api.solve_taxonomy(targets, budget, order=order, root=paper_results_dir)
    want[(tuple(targets), budget, order)] = [(s.target, s.transfer.sources) for s in tax.served]

  async def burst(base: str) -> list[tuple[int, object, httpx.Response]]:
    sem = asyncio.Semaphore(20)
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as c:
      async def one(i: int):
        async with sem:
          if i % 10 == 9:
            return i, None, await c.get("/api/tasks")
          targets, budget, order = variants[i % len(variants)]
          r = await c.post("/api/solve", json={"targets": targets, "budget": budget,
                                               "order": order})
          return i, (tuple(targets), budget, order), r
      return await asyncio.gather(*(one(i) for i in range(200)))

  with live_server(create_app(service)) as base:
    assert base.startswith("http://127.0.0.1:")
    results = asyncio.run(burst(base))
  assert sorted(i for i, _, _ in results) == list(range(200))
  for _, key, r in results:
    assert r.status_code == 200, r.text[:300]
    if key is None:
      assert len(r.json()) == 26
    else:
      got = r.json()
      assert (tuple(got["targets"]), got["budget"], got["order"]) == key
      assert [(s["target"], tuple(s["sources"]) if s["served_by"] == "transfer" else ("self",))
              for s in got["served"]] == want[key]
