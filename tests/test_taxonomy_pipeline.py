"""`make taxonomy` end to end at toy size: a run SIGKILLed inside a transfer unit resumes to the
same affinities as an uninterrupted run, and finished units are skipped."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from taskonomy_jax import config_files
from taskonomy_jax.configs import taxonomy as taxonomy_config
from taskonomy_jax.taxonomy.affinities import SELF, AffinityTable, Transfer
from taskonomy_jax.train import checkpoint
from taskonomy_jax.transfer import pipeline, stages

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "taxonomy:tiny"


def _cli(workdir: pathlib.Path, *extra: str) -> list[str]:
  """The command line of a run. Every run that makes numbers to compare is one, so all share
  its XLA flags (set before JAX starts, which a test process can no longer do)."""
  return [sys.executable, "-m", "taskonomy_jax.cli", "taxonomy", "--config", CONFIG,
          "--workdir", str(workdir), *extra]


def _run_cli(workdir: pathlib.Path, *extra: str) -> None:
  proc = subprocess.run(_cli(workdir, *extra), cwd=ROOT, capture_output=True, text=True,
                        timeout=1800)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _kill_inside_first_transfer_unit(workdir: pathlib.Path) -> pathlib.Path:
  """Starts the CLI and SIGKILLs its process group once the first first-order transfer unit
  has saved a training checkpoint (the loop saves its first step): the unit's remaining steps,
  its probes and held-out losses (seconds) are still to come. Returns that unit's folder."""
  proc = subprocess.Popen(_cli(workdir), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
  ckpts = pipeline.Run(taxonomy_config.get_config("tiny"), workdir).ckpt / "transfers1"
  try:
    deadline = time.time() + 1800
    while time.time() < deadline and proc.poll() is None:
      # A step's folder gets its number only once written (orbax renames it into place).
      saved = [p for p in ckpts.glob(f"*/{checkpoint.CHECKPOINT_DIR}/*") if p.name.isdigit()]
      if saved:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return workdir / "05_transfers1" / saved[0].parents[1].name
      time.sleep(0.02)
    raise AssertionError(f"no transfer checkpoint was saved (exit code {proc.poll()})")
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()


def _markers(workdir: pathlib.Path) -> dict[pathlib.Path, int]:
  return {p: p.stat().st_mtime_ns for p in workdir.glob(f"*/*/{stages.MARKER}")}


def _transfer_units(workdir: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for stage in ("05_transfers1", "06_transfers_high")
                for p in (workdir / stage).iterdir() if stages.is_done(p))


def _assert_same_numbers(a: pathlib.Path, b: pathlib.Path) -> None:
  """Exactly equal affinities, per-example losses and convergence records in workdirs a, b."""
  config = taxonomy_config.get_config("tiny")
  runs = [pipeline.Run(config, w) for w in (a, b)]
  ta, tb = (AffinityTable.load(pipeline.affinities_path(r)) for r in runs)
  assert ta.affinity == tb.affinity and ta.quality == tb.quality and ta.gain == tb.gain
  la, lb = (pipeline.target_losses_of_run(r) for r in runs)
  assert la.keys() == lb.keys()
  for t in la:
    assert la[t].candidates == lb[t].candidates
    for field in ("losses", "self_losses", "scratch_losses"):
      np.testing.assert_array_equal(getattr(la[t], field), getattr(lb[t], field), err_msg=t)
  units = [u.relative_to(a) for u in _transfer_units(a)]
  assert units == [u.relative_to(b) for u in _transfer_units(b)]
  for u in units:
    assert (a / u / "plateau.json").read_text() == (b / u / "plateau.json").read_text(), u


# Three tiny runs (uninterrupted, killed, resumed) and a redone transfer unit: ~3 min on an idle
# 2-core machine, 10+ min under the build machine's load: marked slow.
@pytest.mark.slow
def test_pipeline_killed_inside_a_transfer_unit_resumes_to_identical_affinities(tmp_path):
  reference = tmp_path / "uninterrupted"
  _run_cli(reference)

  workdir = tmp_path / "tax"
  killed = _kill_inside_first_transfer_unit(workdir)
  assert not stages.is_done(killed), "the kill came after the transfer unit had finished"
  before = _markers(workdir)
  assert before and all(p.parents[1].name < "05" for p in before)
  _run_cli(workdir)
  after = _markers(workdir)
  assert {p: after[p] for p in before} == before  # the units finished before the kill: skipped
  ran = {(e["stage"], e["unit"]): e["ran"]
         for e in json.loads((workdir / "timings.json").read_text())}
  assert ran[("transfers1", killed.name)] is True
  assert not any(r for (s, _), r in ran.items() if s in ("dataset", "views", "taskbank",
                                                         "scratch"))
  # The resumed run's timings still give every unit's own time, from its marker.
  resumed = pipeline.Run(taxonomy_config.get_config("tiny"), workdir)
  for e in json.loads((workdir / "timings.json").read_text()):
    if e["unit"] == pipeline.BANK:
      assert e["unit_seconds"] > 0
    else:
      path = resumed.stage_dir(e["stage"]) / e["unit"]
      assert e["unit_seconds"] == stages.marker_info(path)["seconds"]
  _assert_same_numbers(reference, workdir)
  reports = [json.loads((w / "08_taxonomy" / "out" / pipeline.REPORT).read_text())
             for w in (reference, workdir)]
  assert reports[0]["selection_frequencies"] == reports[1]["selection_frequencies"]

  # Killed after a unit's last checkpoint but before its marker: the unit is redone from that
  # checkpoint and still says how far its loss fell over the second half.
  for unit in _transfer_units(reference):
    (unit / stages.MARKER).unlink()
  _run_cli(reference, "--until", "transfers_high")
  _assert_same_numbers(reference, workdir)

  config = taxonomy_config.get_config("tiny")
  run = pipeline.Run(config, workdir)
  out = pipeline.outputs(run)
  for path in out.values():
    if path.is_dir():  # the exported task bank is a folder
      assert any(path.iterdir()), path
    else:
      assert path.is_file() and path.stat().st_size > 0, path
  report = json.loads(out["gates (report.json)"].read_text())
  assert set(report["gates"]) >= {"networks", "transfers_vs_random", "readouts_converged"}
  assert isinstance(report["trusted"], bool)
  est = report["estimators"]  # beside the gates: RSA, CKA and the linear probe
  assert est["measures"] == ["rsa", "cka", "probe"] and est["networks"] == run.bank
  probe = est["probe"]  # its table: every first-order source of every target, and its own
  probe_table = AffinityTable.load(out["gates (report.json)"].parent / probe["table"])
  for t in run.targets:
    assert {tr.sources for tr in probe_table.affinity if tr.target == t and tr.order == 1} == {
        (s,) for s in [*run.bank, "self"] if s != t}
    assert probe["scores"][t][t] == pytest.approx(
        probe_table.affinity[Transfer((SELF,), t)], abs=1e-6)
    assert probe["heldout_r2"][t][t] is not None and probe["scores"]["random"]["random"] is None
  assert probe["speedup"] > 0 and probe["taxonomies"]
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
  # The report's resampled choices, carried into the taxonomy (issue 20).
  freq = report["selection_frequencies"][f"{config.taxonomy.budget:g}"]
  chosen = "+".join(sorted(s["task"] for s in tax["supervised"]))
  assert tax["selection"]["supervised_set"] == chosen
  assert tax["selection"]["chosen"] == freq.get(chosen, 0.0)
  assert tax["selection"]["resamples"] == report["selection_resamples"]
  assert tax["selection"]["by_budget"] == report["selection_frequencies"]

  # A second run does nothing; removing the last stages' units redoes exactly those.
  again = pipeline.run_pipeline(config, workdir)
  assert not any(e["ran"] for e in again.log)
  for stage in ("affinities", "taxonomy"):
    for unit in run.stage_dir(stage).iterdir():
      (unit / stages.MARKER).unlink()
  third = pipeline.run_pipeline(config, workdir)
  assert {e["stage"] for e in third.log if e["ran"]} == {"affinities", "taxonomy"}
  assert AffinityTable.load(out["affinities"]).affinity == table.affinity


def test_derived_config_fields_follow_their_source_one_way():
  """`--set transfer.max_order=2` also moves the solver's order (it once stayed at 3); setting a
  derived field itself detaches it without touching its source."""
  config = taxonomy_config.get_config("default")
  assert (config.taxonomy.order, config.transfer.learning_rate) == (
      config.transfer.max_order, config.optimizer.learning_rate)
  config_files.apply_overrides(config, ["transfer.max_order=2", "optimizer.learning_rate=0.01",
                                      "model.fc_hidden=7"])
  assert config.taxonomy.order == 2
  assert config.transfer.learning_rate == 0.01
  assert config.readout.fc_hidden == 7
  config_files.apply_overrides(config, ["taxonomy.order=1"])
  assert (config.taxonomy.order, config.transfer.max_order) == (1, 2)
  batch = config.transfer.batch_size  # the baselines' batch follows the transfers' until set
  config_files.apply_overrides(config, [f"transfer.batch_size={batch // 2}"])
  assert config.scratch.batch_size == batch // 2
  config_files.apply_overrides(config, [f"scratch.batch_size={batch}"])
  assert (config.scratch.batch_size, config.transfer.batch_size) == (batch, batch // 2)
  assert config.to_dict()["taxonomy"]["order"] == 1


def test_scratch_baselines_keep_a_tasks_recipe_but_train_the_transfer_budgets_steps(tmp_path):
  config = taxonomy_config.get_config("tiny")
  recipe = {"data": {"augment": ("color",)}, "model": {"width": 16},
            "train": {"num_steps": 99}, "optimizer": {"decay_steps": (50, 80)}}
  config.taskbank.per_task = {"depth_zbuffer": recipe}
  run = pipeline.Run(config, tmp_path)
  run._views["validation"] = [None] * 40  # the transfer budget: 40 views (no dataset needed)
  bank = pipeline.bank_config(run).to_dict()
  scratch = pipeline.bank_config(run, "scratch").to_dict()
  assert bank["per_task"]["depth_zbuffer"] == recipe
  assert scratch["per_task"]["depth_zbuffer"] == {"data": {"augment": ("color",)},
                                                  "model": {"width": 16}}
  assert set(scratch["per_task"]) == set(bank["per_task"])
  assert scratch["train"]["num_steps"] == config.scratch.num_steps != bank["train"]["num_steps"]


def test_plateau_flags_call_a_loss_converged_when_it_fell_less_than_the_tolerance():
  tol = pipeline.PLATEAU_TOLERANCE
  mid = np.array([1.0, 1.0, 1.0, 2.0, -2.0])
  end = np.array([1.0 - 2 * tol, 1.0 - tol / 2, 1.2, 2.0, -2.0 - tol])  # fell, barely, rose, ...
  assert pipeline.plateau_flags(mid, end) == [False, True, True, True, True]
