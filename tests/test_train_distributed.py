"""The training loop on 8 simulated devices equals 1 device; a SIGKILLed run resumes exactly.

Each run is a subprocess: `--xla_force_host_platform_device_count` must be set before jax
initialises. The sharding comparison uses SGD: Adam divides by running gradient magnitudes,
which amplifies the last-bit differences of a reordered all-reduce within a few steps.
Compilation is the cost here, so runs share a persistent compilation cache and compile at XLA's
lowest optimisation level (the same level for every run compared).
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 12
# A smooth (L2) pixel task with SGD for the device-count comparison.
SGD = ("--optimizer", "sgd", "--task", "curvature")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  # The suite's persistent cache (tests/conftest.py) where there is one, so reruns reuse it.
  shared = os.environ.get("JAX_COMPILATION_CACHE_DIR")
  return pathlib.Path(shared) if shared else tmp_path_factory.mktemp("jax_cache")


def _env(devices: int, cache: pathlib.Path) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = (f"--xla_force_host_platform_device_count={devices} "
                      "--xla_backend_optimization_level=0")
  env["JAX_PLATFORMS"] = "cpu"
  env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  env["PYTHONPATH"] = str(REPO)
  return env


def _cmd(workdir, devices=1, *extra):
  return [sys.executable, str(REPO / "tests" / "train_worker.py"), "--workdir", str(workdir),
          "--steps", str(STEPS), "--devices", str(devices), *extra]


def _run(cache, workdir, devices=1, *extra) -> dict:
  out = subprocess.run(_cmd(workdir, devices, *extra), env=_env(devices, cache), capture_output=True,
                       text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  line = [x for x in out.stdout.splitlines() if x.startswith("FACTS ")][-1]
  return json.loads(line[len("FACTS "):])


def _losses(workdir) -> dict[int, float]:
  """step -> training loss; a step logged twice (re-run after a resume) keeps the last value."""
  rows = [json.loads(x) for x in (pathlib.Path(workdir) / "metrics.jsonl").read_text().split("\n")
          if x.strip()]
  return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}


@pytest.fixture(scope="module")
def reference_sgd(tmp_path_factory, cache_dir):
  workdir = tmp_path_factory.mktemp("reference_sgd")
  return workdir, _run(cache_dir, workdir, 1, *SGD)


@pytest.fixture(scope="module")
def reference_adam(tmp_path_factory, cache_dir):
  workdir = tmp_path_factory.mktemp("reference_adam")
  return workdir, _run(cache_dir, workdir, 1)


def _flat_params(workdir, step: int) -> np.ndarray:
  from taskonomy_jax.train import checkpoint
  params = checkpoint.load_variables(str(workdir), step=step)["params"]
  return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in
                         jax.tree.leaves(params)])


def assert_same_training(one_dir, other_dir):
  """What data parallelism guarantees, to tolerances float accumulation allows.

  - Step 1's loss: the same parameters on the same batch; only the order of the batch mean's
    additions differs (a few ulp), rtol 1e-6. A wrongly split batch (rows dropped, duplicated or
    swapped between shards) changes the mean at once.
  - The parameters at step 4 (the first checkpoint): within 1% of the distance the reference
    moves over the next 8 steps. Reordered all-reduces leave ~4e-4 of it here; this small
    network amplifies such rounding ~8x every 4 steps (1.8% by step 12), which is why the
    comparison is early. A gradient summed rather than averaged over devices, or one device's
    gradient taken for the whole batch, moves them by a multiple of that distance.
  - The loss curve, rtol 1e-3: reduction order differs between CPUs (AMD EPYC and Intel differ
    by up to 9e-5 of the loss in 12 steps).
  """
  one, other = _losses(one_dir), _losses(other_dir)
  assert sorted(one) == sorted(other) == list(range(1, STEPS + 1))
  np.testing.assert_allclose(other[1], one[1], rtol=1e-6)
  start, end = _flat_params(one_dir, 4), _flat_params(one_dir, STEPS)
  drift = np.linalg.norm(_flat_params(other_dir, 4) - start)
  moved = np.linalg.norm(end - start)
  assert moved > 0 and drift <= 1e-2 * moved, (drift, moved)
  np.testing.assert_allclose([other[s] for s in one], [one[s] for s in one], rtol=1e-3)


def test_eight_devices_match_one_device(reference_sgd, cache_dir, tmp_path):
  ref_dir, _ = reference_sgd
  facts = _run(cache_dir, tmp_path, 8, *SGD)
  assert facts["num_devices"] == 8
  # The batch of 8 is split one row per device over 8 distinct devices ...
  assert facts["batch_shard_rows"] == [1] * 8 and facts["batch_shard_devices"] == 8
  # ... and every parameter is replicated on all 8.
  assert facts["param_devices"] == [8] and facts["params_fully_replicated"]
  assert_same_training(ref_dir, tmp_path)


@pytest.mark.slow
def test_fsdp_splits_parameters_and_matches(reference_sgd, cache_dir, tmp_path):
  ref_dir, _ = reference_sgd
  facts = _run(cache_dir, tmp_path, 8, "--fsdp", *SGD)
  assert facts["split_params"] > 0 and not facts["params_fully_replicated"]
  assert_same_training(ref_dir, tmp_path)


def test_sigkill_then_resume_reproduces_the_loss_curve(reference_adam, cache_dir, tmp_path):
  ref_dir, _ = reference_adam
  proc = subprocess.Popen(_cmd(tmp_path, 1, "--delay", "0.05"), env=_env(1, cache_dir),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  metrics = tmp_path / "metrics.jsonl"
  deadline = time.time() + 300
  try:
    # Kill once step 4's checkpoint is committed and the run has gone past it.
    while time.time() < deadline and proc.poll() is None:
      done = (tmp_path / "checkpoints" / "4" / "commit_success.txt").exists() or \
          (tmp_path / "checkpoints" / "4" / "_CHECKPOINT_METADATA").exists()
      if done and metrics.exists() and max(_losses(tmp_path), default=0) >= 6:
        os.kill(proc.pid, signal.SIGKILL)
        break
      time.sleep(0.01)
  finally:
    proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
  killed_at = max(_losses(tmp_path))
  assert 6 <= killed_at < STEPS
  lines_before = len(metrics.read_text().splitlines())

  _run(cache_dir, tmp_path, 1)  # the same command again resumes
  resumed = [json.loads(x) for x in metrics.read_text().splitlines()[lines_before:]]
  first = resumed[0]["step"]
  assert 4 < first <= killed_at + 1, f"did not resume from a checkpoint (restarted at {first})"
  # Bit-for-bit the uninterrupted run: same data order, same dropout, same arithmetic.
  ref = _losses(ref_dir)
  assert _losses(tmp_path) == ref


def test_readme_finetune_snippet_restores_the_trained_encoder(reference_adam, cache_dir):
  """The README's <= 5-line snippet, run as written on the reference run's checkpoint (a
  depth_zbuffer network) to start a surface-normal model."""
  workdir, _ = reference_adam
  out = subprocess.run([sys.executable, str(REPO / "tests" / "train_worker.py"), "--readme",
                        "--workdir", str(workdir)], env=_env(1, cache_dir),
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  facts = json.loads([x for x in out.stdout.splitlines() if x.startswith("FACTS ")][-1][6:])
  assert facts["lines"] <= 5
  assert facts["encoder_is_trained"] and facts["decoder_is_new"]
  assert facts["fresh_encoder_differs"]  # so the equality above is not a coincidence
  assert facts["output_shape"] == [2, 32, 32, 3] and facts["finite"]


# Runs each argv through the CLI in one process (importing jax and the package once), with the
# exit code and what the command wrote to stderr.
_CLI_CASES = """
import contextlib, io, json, sys
from taskonomy_jax import cli
results = []
for argv in json.loads(sys.argv[1]):
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    try:
      code = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
      code = e.code
  results.append([code, err.getvalue()])
print("RESULTS " + json.dumps(results))
"""


def test_bad_configs_fail_fast_with_clear_errors(tmp_path, cache_dir):
  cfg = "task_network:cpu"
  base = ["train", cfg, "--workdir", str(tmp_path)]
  cases = [  # on 8 devices, so a batch of 12 cannot be split
      (["--task", "normals_typo"], "Unknown task 'normals_typo'"),
      (["--set", "train.batch_size=12"], "batch_size=12 is not divisible by the 8 devices"),
      (["--set", "train.bacth_size=12"], "config has no field 'train.bacth_size'"),
      (["--set", "optimizer.name=adamw"], "unknown optimizer 'adamw'"),
      (["--task", "random"], "untrained encoder"),
  ]
  out = subprocess.run([sys.executable, "-c", _CLI_CASES,
                        json.dumps([base + extra for extra, _ in cases])],
                       env=_env(8, cache_dir), capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  results = json.loads(out.stdout.split("RESULTS ", 1)[1])
  for (extra, message), (code, stderr) in zip(cases, results, strict=True):
    assert code == 2, (extra, stderr[-2000:])
    assert message in stderr, (message, stderr[-2000:])
  # Nothing was trained: every case failed before a checkpoint was written.
  assert not (tmp_path / "checkpoints").exists()
