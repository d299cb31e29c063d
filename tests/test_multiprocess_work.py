"""`multihost=True`: two processes on this machine divide the task bank and the transfers of
one taxonomy run (train/workers.py) and reach what one process reaches; a process SIGKILLed
mid-run is rerun with the other and the run resumes. Each twice: as plain processes, and as one
jax.distributed job over localhost (`job`), whose processes checkpoint their own networks.

Every run is a CLI subprocess with the same XLA flags, so the numbers compared come from the
same compiled programs.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import grain
import jax
import numpy as np
import pytest

from taskonomy_jax.configs import taxonomy as taxonomy_config
from taskonomy_jax.taxonomy.affinities import AffinityTable
from taskonomy_jax.train import checkpoint, loop, sharding, workers
from taskonomy_jax.transfer import pipeline, stages

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROCESSES = 2
# What each process of a jax.distributed job says once it joined (workers._join_job).
JOINED = f"one jax.distributed job of {PROCESSES} processes"
# Plain processes, and one jax.distributed job (slow: its tests repeat the plain ones).
JOB = pytest.mark.parametrize("job", [False, pytest.param(True, marks=pytest.mark.slow)],
                              ids=["plain", "job"])


def _cmd(workdir: pathlib.Path, *extra: str) -> list[str]:
  return [sys.executable, "-m", "taskonomy_jax.cli", "taxonomy", "--config", "taxonomy:tiny",
          "--workdir", str(workdir), *extra]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(index: int | None = None, coordinator: str | None = None) -> dict[str, str]:
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  env.pop(sharding.COORDINATOR_ENV, None)
  if index is not None:
    env.update(JAX_PROCESS_ID=str(index), JAX_NUM_PROCESSES=str(PROCESSES))
  if coordinator is not None:
    env[sharding.COORDINATOR_ENV] = coordinator
  return env


def _group_envs(job: bool) -> list[dict[str, str]]:
  """Each process's environment: a coordinator on a free localhost port makes them one job."""
  coordinator = f"localhost:{_free_port()}" if job else None
  return [_env(i, coordinator) for i in range(PROCESSES)]


def _run_single(workdir: pathlib.Path, *extra: str) -> None:
  out = subprocess.run(_cmd(workdir, *extra), env=_env(), capture_output=True, text=True,
                       timeout=1800)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


def _start_group(workdir: pathlib.Path, *extra: str, job: bool = False) -> list[subprocess.Popen]:
  return [subprocess.Popen(_cmd(workdir, "--set", "multihost=True", *extra), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True) for env in _group_envs(job)]


def _run_group(workdir: pathlib.Path, *extra: str, job: bool = False) -> None:
  procs = _start_group(workdir, *extra, job=job)
  outs = [p.communicate(timeout=1800)[0] for p in procs]
  for p, out in zip(procs, outs, strict=True):
    assert p.returncode == 0, out[-4000:]
    # A job's processes really were one: jax.process_count() was 2 in each.
    assert (JOINED in out) == job, out[-4000:]


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


@JOB
def test_two_processes_train_the_single_process_task_bank(tmp_path, job):
  """~25 s + ~20 s on 2 idle cores (~35 s as a job): the bank stage alone."""
  _run_single(tmp_path / "one", "--until", "taskbank")
  _run_group(tmp_path / "two", "--until", "taskbank", job=job)
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
@JOB
def test_two_processes_reach_the_single_process_affinities(reference, tmp_path, job):
  _run_group(tmp_path, job=job)
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
@JOB
def test_a_killed_process_is_rerun_and_the_run_resumes(reference, tmp_path, job):
  procs = _start_group(tmp_path, job=job)
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
    # Process 0 now waits for process 1's part (forever; in a job, until jax's coordination
    # service takes it down): it goes down too, as in a batch job.
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
  _run_group(tmp_path, job=job)
  assert {p: p.stat().st_mtime_ns for p in banks} == stamps  # finished networks: skipped
  _assert_same_bank(reference, tmp_path)
  _assert_same_affinities(reference, tmp_path)


# Each process of a job saves a network of its own (a state on its device and the position of
# its data iterator, as the training loop does) and reads it back, alone.
_SAVE_ALONE = """
import sys
import grain, jax, numpy as np
from taskonomy_jax.train import checkpoint, loop, workers
group = workers.work_group(True)
me = jax.process_index()
params = {"w": jax.device_put(np.full((2, 3), me, np.float32), jax.local_devices()[0])}
data = loop.batched_iterator(grain.MapDataset.range(12), 2, seed=0, split_by_process=False)
mngr = checkpoint.manager(f"{sys.argv[1]}/net{me}", save_every=1, keep=1)
for step in (1, 2, 3):  # both processes save at once, several times
  next(data)
  checkpoint.save(mngr, step, {"step": np.asarray(step, np.int32), "params": params}, data)
mngr.wait_until_finished()
back = checkpoint.load_variables(f"{sys.argv[1]}/net{me}")
assert back["params"]["w"].tolist() == [[me] * 3] * 2, back
print("saved alone, process_count", jax.process_count())
"""


def test_each_process_of_a_job_checkpoints_its_own_network(tmp_path):
  """~10 s: two processes of one jax.distributed job each write a checkpoint alone, which one
  process (no job) restores, iterator position included, as a single-process rerun would."""
  procs = [subprocess.Popen([sys.executable, "-c", _SAVE_ALONE, str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for env in _group_envs(job=True)]
  for p in procs:
    out = p.communicate(timeout=300)[0]
    assert p.returncode == 0, out[-4000:]
    assert JOINED in out and "saved alone, process_count 2" in out, out[-4000:]
  for me in range(PROCESSES):
    workdir = str(tmp_path / f"net{me}")
    assert checkpoint.load_variables(workdir)["params"]["w"].tolist() == [[me] * 3] * 2
    data = loop.batched_iterator(grain.MapDataset.range(12), 2, seed=0, split_by_process=False)
    mngr = checkpoint.manager(workdir, save_every=1, keep=1)
    abstract = {"step": jax.ShapeDtypeStruct((), np.int32),
                "params": {"w": jax.ShapeDtypeStruct((2, 3), np.float32)}}
    assert int(checkpoint.restore(mngr, abstract, data)["step"]) == 3
    mngr.close()
    expected = loop.batched_iterator(grain.MapDataset.range(12), 2, seed=0,
                                     split_by_process=False)
    for _ in range(3):
      next(expected)
    np.testing.assert_array_equal(next(data), next(expected))  # resumes where it was saved


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
