"""The pages in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
selenium): submit the transfer form and see the graph and table, upload an image and see every
task's output, and see the error messages for bad input.

Screenshots go to `$TASKONOMY_SCREENSHOTS` if set (the README's come from
`TASKONOMY_SCREENSHOTS=docs/screenshots`), else to the test's temporary folder.
Without Chromium these tests skip locally and fail when `CI=true` (`tools/install_browser.sh`
installs it; `make test` runs that script).
"""

from __future__ import annotations

import io
import os
import pathlib
import shutil
import tempfile

import numpy as np
import pytest
from PIL import Image

from taskonomy_jax import tasks
from taskonomy_jax.web.app import create_app
from taskonomy_jax.web.service import Limits, Service
from tests.web_support import live_server

CHROMIUM = os.environ.get("TASKONOMY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TASKONOMY_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1100")


def _browser_missing() -> str | None:
  for path in (CHROMIUM, CHROMEDRIVER):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
      return f"{path} is not installed (run tools/install_browser.sh)"
  return None


@pytest.fixture(scope="module")
def driver():
  missing = _browser_missing()
  if missing:
    if os.environ.get("CI", "").lower() == "true":
      pytest.fail(f"browser tests need Chromium in CI: {missing}")
    pytest.skip(missing)
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service as DriverService

  profile = tempfile.mkdtemp(prefix="taskonomy-chromium-")
  opts = webdriver.ChromeOptions()
  opts.binary_location = CHROMIUM
  for flag in FLAGS:
    opts.add_argument(flag)
  opts.add_argument(f"--user-data-dir={profile}")
  drv = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=opts)
  drv.set_page_load_timeout(120)
  try:
    yield drv
  finally:
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> pathlib.Path:
  out = os.environ.get("TASKONOMY_SCREENSHOTS")
  path = pathlib.Path(out) if out else tmp_path_factory.mktemp("screenshots")
  path.mkdir(parents=True, exist_ok=True)
  return path


def _predictor():
  """Randomly initialised task networks (real `taskonomy_jax.models` networks, small width)."""
  pytest.importorskip("taskonomy_jax.models", reason="the task networks are not on this branch")
  from taskonomy_jax.taskbank import predict

  return predict.random_init_predictor(resolution=32, jit=False)


@pytest.fixture(scope="module")
def transfer_url(paper_results_dir):
  service = Service(str(paper_results_dir))
  with live_server(create_app(service)) as base:
    yield base


def _shoot(driver, path: pathlib.Path) -> None:
  """A screenshot of the whole page (beyond the window, through the DevTools protocol), shrunk
  and quantised to keep the committed PNGs small."""
  import base64

  size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
  shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
      "format": "png", "captureBeyondViewport": True,
      "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 4000),
               "scale": 1}})
  img = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
  img.thumbnail((1000, 3200))
  img.quantize(colors=128).save(path, optimize=True)


def _submit_transfer(driver, base: str, targets: str, budget: str, order: str = "1",
                     data: str = "default") -> None:
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import Select

  driver.get(base + "/transfer")
  for field, value in (("targets", targets), ("budget", budget)):
    box = driver.find_element(By.ID, field)
    box.clear()
    box.send_keys(value)
  Select(driver.find_element(By.ID, "order")).select_by_visible_text(order)
  Select(driver.find_element(By.ID, "data")).select_by_value(data)
  _click_and_wait(driver, "solve", "#graph, #error")


def _click_and_wait(driver, button: str, result_css: str) -> None:
  """Submits a form and waits until the answer page replaced it and shows `result_css`."""
  from selenium.common.exceptions import WebDriverException
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import expected_conditions as ec
  from selenium.webdriver.support.ui import WebDriverWait

  old = driver.find_element(By.TAG_NAME, "form")
  driver.find_element(By.ID, button).click()
  wait = WebDriverWait(driver, 120)

  def replaced(_) -> bool:
    # `ec.staleness_of` only knows StaleElementReferenceException; while the old document is
    # being torn down Chromium may instead answer "Node with given id does not belong to the
    # document" (a plain WebDriverException, seen once under load): the form is gone either way.
    try:
      old.is_enabled()
      return False
    except WebDriverException:
      return True

  wait.until(replaced)
  wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, result_css)))


def test_transfer_form_shows_graph_and_table(driver, transfer_url, shots):
  from selenium.webdriver.common.by import By

  targets = ["normal", "reshading", "depth_zbuffer", "edge_occlusion", "keypoints3d",
             "curvature"]
  _submit_transfer(driver, transfer_url, ", ".join(targets), "2", order="2")
  graph = driver.find_element(By.ID, "graph")
  # The browser decoded the PNG: a real picture, not a broken image.
  assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                               graph) > 300
  rows = driver.find_elements(By.CSS_SELECTOR, "#transfers tr")[1:]
  assert len(rows) == len(targets)
  titles = [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows]
  assert titles == [tasks.get(t).title for t in targets]
  for r in rows:  # affinity, Quality and Gain are numbers in [0, 1]
    for cell in r.find_elements(By.TAG_NAME, "td")[4:7]:
      assert 0.0 <= float(cell.text) <= 1.0
  assert "Supervise" in driver.find_element(By.ID, "summary").text
  assert '"served"' in driver.find_element(By.ID, "json").text
  _shoot(driver, shots / "transfer_page.png")


@pytest.mark.parametrize("targets,budget,order,expect,shot", [
    ("normals, reshading", "2", "1", "Did you mean 'normal'", "transfer_error_unknown_task.png"),
    ("normal", "-3", "1", "budget", None),
    ("normal", "two", "1", "is not a number", None),
    ("normal, reshading, curvature, room_layout", "0", "2", "too small", "transfer_error_budget.png"),
])
def test_transfer_form_errors(driver, transfer_url, shots, targets, budget, order, expect, shot):
  from selenium.webdriver.common.by import By

  _submit_transfer(driver, transfer_url, targets, budget, order)
  err = driver.find_element(By.ID, "error")
  assert err.is_displayed() and expect in err.text
  assert not driver.find_elements(By.ID, "graph")
  # The form keeps what the user typed, so the mistake can be fixed in place.
  assert driver.find_element(By.ID, "targets").get_attribute("value") == targets
  if shot:
    _shoot(driver, shots / shot)


def _image_file(tmp_path: pathlib.Path, name: str, data: bytes) -> str:
  path = tmp_path / name
  path.write_bytes(data)
  return str(path)


def test_demo_errors_for_bad_uploads(driver, paper_results_dir, tmp_path, shots):
  from selenium.webdriver.common.by import By

  service = Service(str(paper_results_dir), limits=Limits(max_image_pixels=128 * 128))
  buf = io.BytesIO()
  Image.new("RGB", (300, 200), (40, 90, 160)).save(buf, format="PNG")
  with live_server(create_app(service)) as base:
    driver.get(base + "/demo")
    driver.find_element(By.ID, "image").send_keys(
        _image_file(tmp_path, "notes.png", b"this is a text file, not an image"))
    _click_and_wait(driver, "run", "#outputs, #error")
    assert "not an image" in driver.find_element(By.ID, "error").text
    _shoot(driver, shots / "demo_error_not_an_image.png")
    driver.find_element(By.ID, "image").send_keys(_image_file(tmp_path, "big.png",
                                                              buf.getvalue()))
    _click_and_wait(driver, "run", "#outputs, #error")
    assert "60,000 pixels; the limit is 16,384" in driver.find_element(By.ID, "error").text


def test_demo_shows_every_task(driver, paper_results_dir, tmp_path, shots):
  from selenium.webdriver.common.by import By

  predictor = _predictor()
  service = Service(str(paper_results_dir), predictor=predictor, resolution=32,
                    predictor_note="randomly initialised networks")
  rng = np.random.default_rng(1)
  photo = np.clip(np.linspace(0, 255, 96)[None, :, None] + rng.normal(0, 20, (80, 96, 3)), 0,
                  255).astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(photo).save(buf, format="JPEG")
  with live_server(create_app(service)) as base:
    driver.get(base + "/demo")
    driver.find_element(By.ID, "image").send_keys(_image_file(tmp_path, "photo.jpg",
                                                              buf.getvalue()))
    _click_and_wait(driver, "run", "#outputs, #error")
    panels = driver.find_elements(By.CSS_SELECTOR, "#outputs .panel")
    shown = [p.get_attribute("data-task") for p in panels]
    assert shown == ["input", *[t.name for t in tasks.trainable()]]
    for p in panels:  # every picture decoded by the browser
      img = p.find_element(By.TAG_NAME, "img")
      assert driver.execute_script("return arguments[0].naturalWidth", img) > 0
    _shoot(driver, shots / "demo_page.png")


@pytest.mark.slow
def test_demo_on_a_served_trained_bank(driver, shots):
  """`taskonomy serve --bank DIR` as a user starts it (a subprocess on a free loopback port),
  on a trained bank: pick a rendered example, see every network of the bank. The bank is
  `$TASKONOMY_DEMO_BANK` (e.g. a `taskonomy taxonomy` run's `03_taskbank/bank`);
  skipped without it. Its screenshot is the README's `demo_page_trained.png`."""
  import json
  import socket
  import subprocess
  import sys
  import time
  import urllib.request

  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import Select

  bank_dir = os.environ.get("TASKONOMY_DEMO_BANK")
  if not bank_dir:
    pytest.skip("set TASKONOMY_DEMO_BANK to a trained (or exported) task bank")
  names = json.loads((pathlib.Path(bank_dir) / "bank.json").read_text()).get("tasks") or [
      p.parent.name for p in pathlib.Path(bank_dir).glob("*/done.json")]
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  proc = subprocess.Popen([sys.executable, "-m", "taskonomy_jax.cli", "serve", "--bank", bank_dir,
                           "--port", str(port), "--examples", "3", "--seed", "4"],
                          cwd=pathlib.Path(__file__).resolve().parents[1])
  base = f"http://127.0.0.1:{port}"
  try:
    deadline = time.monotonic() + 300
    while True:
      try:
        urllib.request.urlopen(base + "/api/tasks", timeout=5).read()
        break
      except OSError:
        if proc.poll() is not None or time.monotonic() > deadline:
          raise AssertionError(f"`taskonomy serve` did not come up (exit {proc.poll()})") from None
        time.sleep(1)
    driver.get(base + "/demo")
    Select(driver.find_element(By.ID, "example")).select_by_index(2)
    _click_and_wait(driver, "run", "#outputs, #error")
    shown = [p.get_attribute("data-task")
             for p in driver.find_elements(By.CSS_SELECTOR, "#outputs .panel")]
    drawable = [t.name for t in tasks.all_tasks() if t.name in names and t.display != "none"]
    assert shown == ["input", *drawable]
    _shoot(driver, shots / "demo_page_trained.png")
  finally:
    proc.terminate()
    proc.wait(timeout=30)
