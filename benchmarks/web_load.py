"""The web server under load: `/api/solve` and `/api/predict` at once, batched vs one at a time.

    .venv/bin/python benchmarks/web_load.py [--solves 200] [--predicts 50]
        [--out docs/benchmarks/web_load.json]

For each configuration, starts `taskonomy serve --taskbank random` (randomly initialised task
networks, as the demo uses without weights) in a process of its own on 127.0.0.1 (loopback only,
a free port), waits until it listens and its warm-up (every padded batch size run once) is done,
then sends at the same moment `--predicts` `/api/predict` requests (distinct random 128x128 PNGs)
and `--solves` `/api/solve` requests (8 variants, paced at `--solve-rate` per second so they land
while the predictions run). Reports, per endpoint, status counts, timeouts and p50/p99/max
latency, and predictions per second (answered 200 / time from the burst's start to the last
prediction's answer).

Configurations: `batched` (the defaults: `--max-batch 8`, batches padded to 1, 2, 4, 8) and
`one_at_a_time` (`--max-batch 1 --predict-workers 1`: every request its own forward pass, one at
a time, as the server ran them before micro-batching). Goals (batched): no 5xx, no request over
the client timeout (30 s), `/api/solve` p99 under 1 s during the predict burst, predictions/s at
least 3x one-at-a-time's. The one-at-a-time run gets `--baseline-timeout` (longer) so that its
throughput is measured rather than cut off; its answers over 30 s are counted.

Bounded: every request has a client timeout, every server a start-up deadline, and the servers
are stopped at the end (or on error).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]

CONFIGS = {
    "batched": [],  # the server's defaults
    "one_at_a_time": ["--max-batch", "1", "--predict-workers", "1"],
}

SOLVE_VARIANTS = [
    {"targets": ["normal", "reshading", "depth_zbuffer", "edge_occlusion"][: 1 + k % 4],
     "budget": 1 + k % 3, "order": 1 + k % 2} for k in range(8)]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_server(extra: list[str], resolution: int, queue: int, deadline_s: float
                 ) -> tuple[subprocess.Popen, str]:
  """`taskonomy serve --taskbank random` on 127.0.0.1; returns once it listens and is warm."""
  port = _free_port()
  cmd = [sys.executable, "-m", "taskonomy_jax.cli", "serve", "--host", "127.0.0.1", "--port",
         str(port), "--taskbank", "random", "--resolution", str(resolution), "--examples", "0",
         "--predict-queue", str(queue), *extra]
  env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
  base = f"http://127.0.0.1:{port}"
  end = time.monotonic() + deadline_s
  try:
    line = ""
    while "serving on" not in line:
      if proc.poll() is not None or time.monotonic() > end:
        raise RuntimeError(f"the server did not start ({' '.join(cmd)}): {line}")
      line = proc.stderr.readline()
      print(f"  server: {line.rstrip()}", file=sys.stderr)
    while True:  # predictions queue behind the warm-up: wait for it to be done
      status = httpx.get(f"{base}/api/status", timeout=10).json()
      if status["predictions"]["warm"]:
        return proc, base
      if time.monotonic() > end:
        raise RuntimeError("the server's warm-up did not finish in time")
      time.sleep(0.5)
  except BaseException:
    stop_server(proc)
    raise


def stop_server(proc: subprocess.Popen) -> None:
  proc.terminate()
  try:
    proc.wait(timeout=30)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait(timeout=30)


def _png(seed: int, side: int = 128) -> bytes:
  pixels = np.random.default_rng(seed).integers(0, 255, (side, side, 3), np.uint8)
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format="PNG")
  return buf.getvalue()


async def _timed(kind: str, send, t0: float, timeout: float) -> dict[str, Any]:
  start = time.monotonic()
  try:
    r = await send()
    status: int | str = r.status_code
  except httpx.TimeoutException:
    status = "timeout"
  except httpx.HTTPError as e:
    status = f"error: {type(e).__name__}"
  end = time.monotonic()
  return {"kind": kind, "status": status, "latency": end - start, "done_at": end - t0}


async def burst(base: str, solves: int, predicts: int, solve_rate: float,
                timeout: float) -> tuple[list[dict[str, Any]], float]:
  """Every prediction sent at t=0; solves paced at `solve_rate` per second from t=0."""
  images = [_png(k) for k in range(predicts)]
  limits = httpx.Limits(max_connections=predicts + 64, max_keepalive_connections=predicts + 64)
  async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as c:
    t0 = time.monotonic()

    async def predict(k: int):
      return await _timed("predict", lambda: c.post(
          "/api/predict", files={"image": (f"{k}.png", images[k], "image/png")}), t0, timeout)

    async def solve(k: int):
      await asyncio.sleep(k / solve_rate)
      return await _timed("solve", lambda: c.post(
          "/api/solve", json={**SOLVE_VARIANTS[k % len(SOLVE_VARIANTS)], "request_id": k}),
          t0, timeout)

    results = await asyncio.gather(*(predict(k) for k in range(predicts)),
                                   *(solve(k) for k in range(solves)))
  return list(results), t0


def summarise(results: list[dict[str, Any]], kind: str, limit_s: float) -> dict[str, Any]:
  rows = [r for r in results if r["kind"] == kind]
  lat = np.array([r["latency"] for r in rows if r["status"] == 200])
  counts: dict[str, int] = {}
  for r in rows:
    counts[str(r["status"])] = counts.get(str(r["status"]), 0) + 1
  out = {"requests": len(rows), "status_counts": dict(sorted(counts.items())),
         "server_errors_5xx": sum(isinstance(r["status"], int) and r["status"] >= 500
                                  for r in rows),
         "timeouts": counts.get("timeout", 0),
         f"over_{limit_s:g}s": sum(r["latency"] > limit_s for r in rows)}
  if len(lat):
    out.update({"p50_s": round(float(np.percentile(lat, 50)), 4),
                "p99_s": round(float(np.percentile(lat, 99)), 4),
                "max_s": round(float(lat.max()), 4)})
  return out


def run_config(name: str, args: argparse.Namespace) -> dict[str, Any]:
  timeout = args.timeout if name == "batched" else args.baseline_timeout
  print(f"[{name}] starting the server ...", file=sys.stderr)
  start = time.monotonic()
  proc, base = start_server([*CONFIGS[name], *args.server_flag], args.resolution, args.queue,
                            args.start_deadline)
  start_s = time.monotonic() - start
  try:
    print(f"[{name}] burst: {args.predicts} predict + {args.solves} solve", file=sys.stderr)
    results, _ = asyncio.run(burst(base, args.solves, args.predicts, args.solve_rate, timeout))
    status = httpx.get(f"{base}/api/status", timeout=10).json()["predictions"]
  finally:
    stop_server(proc)
  ok = [r for r in results if r["kind"] == "predict" and r["status"] == 200]
  span = max((r["done_at"] for r in ok), default=float("nan"))
  return {"server_flags": [*CONFIGS[name], *args.server_flag] or ["(defaults)"],
          "client_timeout_s": timeout,
          "start_and_warmup_s": round(start_s, 1),
          "predict": summarise(results, "predict", args.timeout),
          "solve": summarise(results, "solve", args.timeout),
          "predictions_per_s": round(len(ok) / span, 4) if ok else 0.0,
          "predict_burst_s": round(span, 3),
          "forward_passes": status["forward_passes"], "images": status["images"],
          "batch_sizes": status["batch_sizes"]}


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--solves", type=int, default=200)
  p.add_argument("--predicts", type=int, default=50)
  p.add_argument("--solve-rate", type=float, default=20.0,
                 help="solves sent per second from the burst's start (default 20)")
  p.add_argument("--resolution", type=int, default=64, help="the random task bank's (64)")
  p.add_argument("--queue", type=int, default=64,
                 help="--predict-queue of both servers (default 64: room for the burst)")
  p.add_argument("--timeout", type=float, default=30.0, help="client timeout, batched (30 s)")
  p.add_argument("--baseline-timeout", type=float, default=600.0,
                 help="client timeout, one at a time (600 s: its throughput is measured, "
                      "not cut off)")
  p.add_argument("--start-deadline", type=float, default=900.0,
                 help="seconds a server may take to start and warm up (900)")
  p.add_argument("--only", choices=sorted(CONFIGS), action="append",
                 help="run only this configuration (repeatable)")
  p.add_argument("--server-flag", action="append", default=[], metavar="FLAG",
                 help="an extra flag for both servers, e.g. --server-flag=--jit (repeatable)")
  p.add_argument("--out", default="docs/benchmarks/web_load.json")
  args = p.parse_args(argv)

  names = args.only or list(CONFIGS)
  report: dict[str, Any] = {
      "benchmark": "benchmarks/web_load.py",
      "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                  "python": platform.python_version(),
                  "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
      "burst": {"solves": args.solves, "predicts": args.predicts,
                "solve_rate_per_s": args.solve_rate, "resolution": args.resolution,
                "predict_queue": args.queue},
      "configs": {name: run_config(name, args) for name in names}}
  cfg = report["configs"]
  if {"batched", "one_at_a_time"} <= set(cfg):
    b, o = cfg["batched"], cfg["one_at_a_time"]
    ratio = b["predictions_per_s"] / o["predictions_per_s"] if o["predictions_per_s"] else None
    report["ratio_predictions_per_s"] = round(ratio, 3) if ratio else None
    report["goals"] = {
        "no_5xx": b["predict"]["server_errors_5xx"] + b["solve"]["server_errors_5xx"] == 0,
        "no_timeout_at_30s": (b["predict"]["timeouts"] + b["solve"]["timeouts"] == 0
                              and b["predict"][f"over_{args.timeout:g}s"] == 0
                              and b["solve"][f"over_{args.timeout:g}s"] == 0),
        "solve_p99_under_1s": b["solve"].get("p99_s", float("inf")) < 1.0,
        "predictions_per_s_at_least_3x": bool(ratio and ratio >= 3.0)}
  text = json.dumps(report, indent=1)
  print(text)
  if args.out:
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
