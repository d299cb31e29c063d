"""One run per workdir: a second run is refused naming the first; a killed holder frees it."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from taskonomy_jax import cli, workdir_lock

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Takes the lock, says so, then sleeps until killed.
_HOLD = """
import sys, time
from taskonomy_jax import workdir_lock
with workdir_lock.hold(sys.argv[1]):
  print("held", flush=True)
  time.sleep(120)
"""
# Tries the lock once: prints the refusal and exits 2, or exits 0 having held it.
_TRY = """
import sys
from taskonomy_jax import workdir_lock
try:
  with workdir_lock.hold(sys.argv[1]):
    pass
except workdir_lock.WorkdirBusyError as e:
  print(e)
  sys.exit(2)
"""


def _python(snippet: str, *args: str, **kwargs) -> subprocess.Popen:
  env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
  return subprocess.Popen([sys.executable, "-c", snippet, *args], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


@pytest.fixture
def holder(tmp_path):
  """A subprocess holding the lock on `tmp_path / 'run'`; killed at the end if still alive."""
  workdir = tmp_path / "run"
  proc = _python(_HOLD, str(workdir))
  try:
    assert proc.stdout.readline().strip() == "held", proc.communicate(timeout=30)[0]
    yield proc, workdir
  finally:
    proc.kill()
    proc.wait(timeout=30)


def test_second_process_is_refused_until_the_holder_is_killed(holder):
  proc, workdir = holder
  note = json.loads((workdir / ".lock").read_text())
  assert note["pid"] == proc.pid and "-c" in note["command"]
  second = _python(_TRY, str(workdir))
  out = second.communicate(timeout=60)[0]
  assert second.returncode == 2, out
  assert f"workdir {workdir} is in use by another run: pid {proc.pid}" in out
  assert f"started {note['started']}" in out and "Traceback" not in out
  # SIGKILL: no cleanup runs, but the kernel drops the flock with the process.
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=30)
  third = _python(_TRY, str(workdir))
  assert third.communicate(timeout=60)[0] == "" and third.returncode == 0


def test_in_process_refusal_names_the_holder_and_nesting_is_allowed(holder, tmp_path):
  proc, workdir = holder
  start = time.monotonic()
  with (pytest.raises(workdir_lock.WorkdirBusyError, match=rf"pid {proc.pid} \(.*\), started "),
        workdir_lock.hold(workdir)):
    pass
  assert time.monotonic() - start < 5
  # Our own lock may be taken again by a nested call; released by the outermost.
  other = tmp_path / "other"
  with workdir_lock.hold(other), workdir_lock.hold(other):
    pass
  with workdir_lock.hold(other):
    assert json.loads((other / ".lock").read_text())["pid"] == os.getpid()


def test_cli_refuses_a_second_run_with_exit_code_2(holder, capsys):
  proc, workdir = holder
  taskbank = ["taskbank", "train", "taskbank:cpu",
              "--workdir", str(workdir)]
  taxonomy = ["taxonomy", "--config", "taxonomy:tiny",
              "--workdir", str(workdir)]
  for argv in (taskbank, taxonomy):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: workdir {workdir} is in use by another run: pid {proc.pid}" in err, argv
    assert "Traceback" not in err
  assert sorted(p.name for p in workdir.iterdir()) == [".lock"]  # nothing written


def test_a_refused_bad_input_leaves_no_folder(tmp_path):
  workdir = tmp_path / "new" / "run"

  @workdir_lock.locked
  def run(config: str, workdir: pathlib.Path) -> None:
    assert (workdir / ".lock").is_file()
    raise ValueError(f"bad config {config}")

  with pytest.raises(ValueError, match="bad config x"):
    run("x", workdir=workdir)
  assert not (tmp_path / "new").exists()
  # A workdir that existed, or that the run wrote into, stays.
  workdir.mkdir(parents=True)
  with pytest.raises(ValueError):
    run("x", workdir)
  assert workdir.is_dir()
