"""`make taxonomy` end to end at toy size: a killed run resumes, finished units are skipped."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from experiments.configs import taxonomy as taxonomy_config
from taskonomy_jax.taxonomy.affinities import AffinityTable
from taskonomy_jax.transfer import pipeline, stages

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _kill_after_first_taskbank_unit(workdir: pathlib.Path) -> pathlib.Path:
  """Starts the CLI, SIGKILLs it once one task-bank unit is finished; returns that unit."""
  cmd = [sys.executable, "-m", "taskonomy_jax.cli", "taxonomy", "--config",
         "experiments/configs/taxonomy.py:tiny", "--workdir", str(workdir)]
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
  bank = workdir / "03_taskbank"
  try:
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
      done = sorted(p.parent for p in bank.glob("*/DONE"))
      if done:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return done[0]
      time.sleep(0.5)
    raise AssertionError(f"no task-bank unit finished (exit code {proc.poll()})")
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()


# ~2 min on an idle 2-core machine, 10+ min under the build machine's load: marked slow.
@pytest.mark.slow
def test_pipeline_end_to_end_resumes_after_a_kill(tmp_path):
  workdir = tmp_path / "tax"
  first = _kill_after_first_taskbank_unit(workdir)
  before = (first / stages.MARKER).stat().st_mtime_ns
  config = taxonomy_config.get_config("tiny")

  run = pipeline.run_pipeline(config, workdir)
  ran = {(e["stage"], e["unit"]): e["ran"] for e in run.log}
  assert ran[("dataset", "tfds")] is False and ran[("views", "train")] is False
  assert ran[("taskbank", first.name)] is False          # finished before the kill: skipped
  assert (first / stages.MARKER).stat().st_mtime_ns == before
  assert any(r for (s, _), r in ran.items() if s == "taskbank")  # the rest ran now

  out = pipeline.outputs(run)
  for path in out.values():
    if path.is_dir():  # the exported task bank is a folder
      assert any(path.iterdir()), path
    else:
      assert path.is_file() and path.stat().st_size > 0, path
  report = json.loads(out["gates (report.json)"].read_text())
  assert set(report["gates"]) >= {"networks", "transfers_vs_random", "readouts_converged"}
  assert isinstance(report["trusted"], bool)
  table = AffinityTable.load(out["affinities"])
  targets = run.targets
  assert sorted(table.targets) == sorted(targets)
  sources = run.bank
  for t in targets:
    first_order = [tr for tr in table.affinity if tr.target == t and tr.order == 1
                   and not tr.is_self]
    assert sorted(s for tr in first_order for s in tr.sources) == sorted(
        s for s in sources if s != t)
    assert any(tr.order == 2 for tr in table.affinity if tr.target == t)
    total = sum(v for tr, v in table.affinity.items() if tr.target == t)
    assert total == pytest.approx(1.0)
  tax = json.loads(out["taxonomy"].read_text())
  assert tax["budget"] == config.taxonomy.budget

  # A second run does nothing; removing the last stages' units redoes exactly those.
  again = pipeline.run_pipeline(config, workdir)
  assert not any(e["ran"] for e in again.log)
  for stage in ("affinities", "taxonomy"):
    for unit in run.stage_dir(stage).iterdir():
      (unit / stages.MARKER).unlink()
  third = pipeline.run_pipeline(config, workdir)
  assert {e["stage"] for e in third.log if e["ran"]} == {"affinities", "taxonomy"}
  assert AffinityTable.load(out["affinities"]).affinity == table.affinity
