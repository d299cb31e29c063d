"""`multihost=True`: two processes on this machine divide the task bank and the transfers of
one taxonomy run (train/workers.py) and reach what one process reaches; a process SIGKILLed
mid-run is rerun with the other and the run resumes.

Every run is a CLI subprocess with the same XLA flags, so the numbers compared come from the
same compiled programs.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from taskonomy_jax.configs import taxonomy as taxonomy_config
from taskonomy_jax.taxonomy.affinities import AffinityTable
from taskonomy_jax.train import checkpoint, workers
from taskonomy_jax.transfer import pipeline, stages

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROCESSES = 2


def _cmd(workdir: pathlib.Path, *extra: str) -> list[str]:
  return [sys.executable, "-m", "taskonomy_jax.cli", "taxonomy", "--config", "taxonomy:tiny",
          "--workdir", str(workdir), *extra]


def _env(index: int | None = None) -> dict[str, str]:
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  if index is not None:
    env.update(JAX_PROCESS_ID=str(index), JAX_NUM_PROCESSES=str(PROCESSES))
  return env


def _run_single(workdir: pathlib.Path, *extra: str) -> None:
  out = subprocess.run(_cmd(workdir, *extra), env=_env(), capture_output=True, text=True,
                       timeout=1800)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


def _start_group(workdir: pathlib.Path, *extra: str) -> list[subprocess.Popen]:
  return [subprocess.Popen(_cmd(workdir, "--set", "multihost=True", *extra), env=_env(i),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True) for i in range(PROCESSES)]


def _run_group(workdir: pathlib.Path, *extra: str) -> None:
  procs = _start_group(workdir, *extra)
  outs = [p.communicate(timeout=1800)[0] for p in procs]
  for p, out in zip(procs, outs, strict=True):
    assert p.returncode == 0, out[-4000:]


def _weights(bank: pathlib.Path, task: str) -> list[np.ndarray]:
  return [np.asarray(x) for x in jax.tree.leaves(checkpoint.load_variables(str(bank / task)))]


def _assert_same_bank(a: pathlib.Path, b: pathlib.Path) -> None:
  bank_a, bank_b = (w / "03_taskbank" / pipeline.BANK for w in (a, b))
  for task in pipeline.Run(taxonomy_config.get_config("tiny"), a).bank:
    for x, y in zip(_weights(bank_a, task), _weights(bank_b, task), strict=True):
      np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-7, err_msg=task)


def _assert_same_affinities(a: pathlib.Path, b: pathlib.Path) -> None:
  runs = [pipeline.Run(taxonomy_config.get_config("tiny"), w) for w in (a, b)]
  ta, tb = (AffinityTable.load(pipeline.affinities_path(r)) for r in runs)
  for field in ("affinity", "quality", "gain"):
    x, y = getattr(ta, field), getattr(tb, field)
    assert x.keys() == y.keys()
    for k in x:  # a sub-stack's matmuls may round differently from the whole group's
      np.testing.assert_allclose(np.asarray(y[k], float), np.asarray(x[k], float),
                                 rtol=1e-4, atol=1e-6, err_msg=f"{field} {k}")
  la, lb = (pipeline.target_losses_of_run(r) for r in runs)
  for t in la:
    assert la[t].candidates == lb[t].candidates
    np.testing.assert_allclose(lb[t].losses, la[t].losses, rtol=1e-4, atol=1e-6)


def test_two_processes_train_the_single_process_task_bank(tmp_path):
  """~25 s + ~20 s on 2 idle cores: the bank stage alone."""
  _run_single(tmp_path / "one", "--until", "taskbank")
  _run_group(tmp_path / "two", "--until", "taskbank")
  _assert_same_bank(tmp_path / "one", tmp_path / "two")
  done = {p.parent.name for p in (tmp_path / "two" / "03_taskbank" / "bank").glob("*/done.json")}
  assert done == {"depth_zbuffer", "edge_texture", "random"}
  # The representation units were divided (2 + 1, disjoint), as were the networks.
  ran = [{e["unit"] for e in json.loads((tmp_path / "two" / f).read_text())
          if e["stage"] == "taskbank" and e["ran"] and e["unit"] != pipeline.BANK}
         for f in ("timings.json", "timings.process1.json")]
  assert ran == [{"depth_zbuffer", "random"}, {"edge_texture"}]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("one_process")
  _run_single(workdir)
  return workdir


# The whole tiny taxonomy once in one process (~80 s) and once in two (~40 s): slow.
@pytest.mark.slow
def test_two_processes_reach_the_single_process_affinities(reference, tmp_path):
  _run_group(tmp_path)
  _assert_same_bank(reference, tmp_path)
  _assert_same_affinities(reference, tmp_path)
  # The transfers were divided: each process wrote a part of the group, process 0 joined them.
  parts = sorted(p.relative_to(tmp_path).as_posix()
                 for p in (tmp_path / "05_transfers1" / pipeline.PARTS).glob("*/*")
                 if stages.is_done(p))
  assert parts == ["05_transfers1/parts/00_depth_zbuffer/0of2",
                   "05_transfers1/parts/00_depth_zbuffer/1of2"]


# Reference run, killed run and the rerun: ~2.5 min: slow.
@pytest.mark.slow
def test_a_killed_process_is_rerun_and_the_run_resumes(reference, tmp_path):
  procs = _start_group(tmp_path)
  ckpts = tmp_path / "checkpoints" / "transfers1"
  try:
    deadline = time.time() + 1200
    while time.time() < deadline and all(p.poll() is None for p in procs):
      # Process 1 saved a checkpoint of its transfer part: it is mid-unit.
      if [p for p in ckpts.glob(f"*/{pipeline.PARTS}/1of2/{checkpoint.CHECKPOINT_DIR}/*")
          if p.name.isdigit()]:
        os.killpg(procs[1].pid, signal.SIGKILL)
        break
      time.sleep(0.02)
    else:
      raise AssertionError("process 1 saved no transfer checkpoint before the run ended")
    procs[1].wait(timeout=60)
    assert procs[1].returncode == -signal.SIGKILL
    # Process 0 now waits for process 1's part (forever): it goes down too, as in a job.
    time.sleep(1)
    os.killpg(procs[0].pid, signal.SIGKILL)
    procs[0].wait(timeout=60)
  finally:
    for p in procs:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
  assert not stages.is_done(tmp_path / "05_transfers1" / "00_depth_zbuffer")
  banks = sorted((tmp_path / "03_taskbank" / "bank").glob("*/done.json"))
  stamps = {p: p.stat().st_mtime_ns for p in banks}
  _run_group(tmp_path)
  assert {p: p.stat().st_mtime_ns for p in banks} == stamps  # finished networks: skipped
  _assert_same_bank(reference, tmp_path)
  _assert_same_affinities(reference, tmp_path)


def test_work_group_shares_and_part_bounds(monkeypatch):
  assert workers.work_group(False) == workers.WorkGroup(0, 1)
  for var in ("JAX_PROCESS_ID", "JAX_NUM_PROCESSES", "SLURM_PROCID", "SLURM_NTASKS"):
    monkeypatch.delenv(var, raising=False)
  with pytest.raises(ValueError, match="JAX_PROCESS_ID"):
    workers.work_group(True)
  monkeypatch.setenv("SLURM_PROCID", "3")
  monkeypatch.setenv("SLURM_NTASKS", "2")
  with pytest.raises(ValueError, match="not in"):
    workers.work_group(True)
  shares = [workers.WorkGroup(i, 3).share(range(7)) for i in range(3)]
  assert shares == [[0, 3, 6], [1, 4], [2, 5]]
  # Contiguous slices, sizes within one of each other, covering the group in order.
  assert pipeline.part_bounds(7, 3) == [(0, 2), (2, 5), (5, 7)]
  assert pipeline.part_bounds(1, 2) == [(0, 0), (0, 1)]


def test_wait_for_times_out():
  with pytest.raises(TimeoutError, match="never"):
    workers.wait_for(lambda: False, "never", timeout=0.1)


def test_a_silent_process_stops_the_others_waiting(tmp_path, monkeypatch):
  monkeypatch.setenv(workers.LOST_AFTER_ENV, "0.8")
  group = workers.WorkGroup(0, 3)
  with workers.heartbeat(group, tmp_path) as beating:
    folder = tmp_path / workers.HEARTBEAT_DIR
    assert beating.heartbeats == str(folder) and (folder / "0").is_file()
    first = (folder / "0").stat().st_mtime
    time.sleep(0.5)
    assert (folder / "0").stat().st_mtime > first  # the thread beats (every 0.2 s here)
    # Process 1 beat long ago (its file's time is the filesystem's, as ours); 2 never started.
    (folder / "1").touch()
    past = (folder / "1").stat().st_mtime - 60
    os.utime(folder / "1", (past, past))
    start = time.time()
    with pytest.raises(workers.WorkerLostError,
                       match=r"process 1 has been silent for \d+ s; process 2 has not started"):
      workers.wait_for(lambda: False, "the others' units", group=beating)
    assert 0.8 <= time.time() - start < 5  # not before it waited as long as it allows
    # Beating processes are waited for as long as it takes.
    for other in ("1", "2"):
      (folder / other).touch()
    deadline = time.time() + 2.5
    stop = threading.Event()
    def keep_beating():
      while not stop.wait(0.1):
        for other in ("1", "2"):
          (folder / other).touch()
    thread = threading.Thread(target=keep_beating)
    thread.start()
    try:
      workers.wait_for(lambda: time.time() > deadline, "the others' units", group=beating)
    finally:
      stop.set()
      thread.join()
  beat = (folder / "0").stat().st_mtime
  time.sleep(0.5)
  assert (folder / "0").stat().st_mtime == beat  # stopped beating on leaving
  monkeypatch.setenv(workers.LOST_AFTER_ENV, "0")  # 0: wait for ever
  assert workers.WorkGroup(0, 2, str(folder)).lost(1e9) == []
  with workers.heartbeat(group, tmp_path):  # ... and beat at the 30 s pace, not in a tight loop
    beat = (folder / "0").stat().st_mtime
    time.sleep(0.3)
    assert (folder / "0").stat().st_mtime == beat
  monkeypatch.setenv(workers.LOST_AFTER_ENV, "soon")
  with pytest.raises(ValueError, match="not a number of seconds"):
    workers.lost_after_seconds()
  assert workers.WorkGroup(0, 1).lost(1e9) == []  # a group of one waits on nobody
