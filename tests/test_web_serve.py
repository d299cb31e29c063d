"""`taskonomy serve` start-up: a busy port fails at once with a message and exit code 2 (and no
"serving on"); "serving on" is printed once the server answers; `--bank` given a taxonomy run
serves that run's task bank."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from taskonomy_jax import cli
from tests.conftest import REPO_ROOT


def test_busy_port_fails_at_once_with_exit_code_2(capsys):
  """Before building the task bank (minutes on a CPU), not after."""
  with socket.socket() as taken:
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    start = time.monotonic()
    code = cli.main(["serve", "--port", str(port), "--taskbank", "random", "--examples", "0"])
    took = time.monotonic() - start
  err = capsys.readouterr().err
  assert code == 2
  assert f"port {port} on 127.0.0.1 is already in use" in err and "--port" in err
  assert "serving on" not in err and "building" not in err and "Traceback" not in err
  assert took < 5


def test_serve_on_a_taxonomy_run_reads_its_bank(tmp_path, capsys):
  from taskonomy_jax.taskbank import train as train_lib
  from taskonomy_jax.web import serve

  run = tmp_path / "taxonomy"
  for stage in ("01_dataset", "02_views", "03_taskbank"):
    (run / stage).mkdir(parents=True)
  (run / "config.json").write_text('{"taskbank": {}}')
  assert cli.main(["serve", "--bank", str(run), "--port", "1"]) == 2
  err = capsys.readouterr().err
  assert f"{run} is a taxonomy run" in err and "not trained yet" in err
  assert f"taskonomy taxonomy --workdir {run} --until taskbank" in err
  bank = run / "03_taskbank" / "bank"
  bank.mkdir()
  (bank / train_lib.BANK_FILE).write_text("{}")
  assert serve.bank_folder(str(run)) == str(bank)
  # A run that read a bank given with --bank serves that bank.
  elsewhere = tmp_path / "elsewhere"
  (run / "config.json").write_text(f'{{"taskbank": {{"bank": "{elsewhere}"}}}}')
  elsewhere.mkdir()
  (elsewhere / train_lib.BANK_FILE).write_text("{}")
  assert serve.bank_folder(str(run)) == str(elsewhere)
  assert serve.bank_folder(str(elsewhere)) == str(elsewhere)


def test_serving_on_is_printed_once_it_listens():
  """The real command in a process of its own: once it prints "serving on", it answers."""
  with socket.socket() as probe:  # a free port (closed again before the server binds it)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
  proc = subprocess.Popen([sys.executable, "-m", "taskonomy_jax.cli", "serve", "--port",
                           str(port), "--examples", "0"], cwd=REPO_ROOT, env=env,
                          stderr=subprocess.PIPE, text=True)
  try:
    line = ""
    deadline = time.monotonic() + 60
    while "serving on" not in line:
      assert time.monotonic() < deadline and proc.poll() is None, line
      line = proc.stderr.readline()
    assert f"http://127.0.0.1:{port}/transfer" in line
    r = httpx.get(f"http://127.0.0.1:{port}/api/tasks", timeout=10)
    assert r.status_code == 200 and len(r.json()) == 26
    status = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=10).json()
    assert status == {"task_bank": False, "predictions": None}
  finally:
    proc.terminate()
    proc.wait(timeout=20)
