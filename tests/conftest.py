"""Shared fixtures: where the paper's published results are read from; the device count; XLA's
code generation level and the persistent compilation cache."""

import os
import pathlib
import re

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# The suite sets its own device count: in-process tests run on one CPU device (their tiny
# batches need not divide 8), the multi-device tests start processes with their own XLA_FLAGS.
# A user's `--xla_force_host_platform_device_count` would otherwise reach every test; this runs
# before any test module imports jax.
_DEVICE_COUNT = re.compile(r"--xla_force_host_platform_device_count=\S*")
if _DEVICE_COUNT.search(os.environ.get("XLA_FLAGS", "")):
  os.environ["XLA_FLAGS"] = _DEVICE_COUNT.sub("", os.environ["XLA_FLAGS"]).strip()

# The suite's tiny networks run a few steps each, so compiling is most of its time: LLVM's
# lowest level compiles XLA:CPU programs several times faster (the HLO, what the tests inspect
# and what decides the numbers up to rounding, is the same). For this process and the CLI,
# server and worker processes tests start; a level in the user's XLA_FLAGS wins, and tests that
# check the production flags (test_xla_flags.py) build their own XLA_FLAGS.
_OPT_LEVEL = "--xla_backend_optimization_level"
if _OPT_LEVEL not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_OPT_LEVEL}=0".strip()


# Compilations at least this long go to the persistent cache. Besides reruns on one clone, it
# serves identical computations within one run: tests and their subprocesses (CLI commands, the
# web server, training workers) that build the same network at the same shapes compile it once.
MIN_CACHED_COMPILE_SECS = 0.2


def pytest_configure(config: pytest.Config) -> None:
  """Points jax's persistent compilation cache at pytest's cache dir (`.pytest_cache`, cleared
  by `--cache-clear`), for this process and the subprocesses tests start; a cache the user
  configured through `JAX_COMPILATION_CACHE_DIR` is kept."""
  cache = getattr(config, "cache", None)
  if cache is None or os.environ.get("JAX_COMPILATION_CACHE_DIR"):  # -p no:cacheprovider
    return
  path = str(cache.mkdir("jax_compilation_cache"))
  os.environ["JAX_COMPILATION_CACHE_DIR"] = path
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                        str(MIN_CACHED_COMPILE_SECS))
  import jax  # after XLA_FLAGS is cleaned above; importing does not start a backend
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs",
                    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


def paper_results_path() -> pathlib.Path:
  """`$TASKONOMY_PAPER_RESULTS`, else the copy shipped with the package."""
  from taskonomy_jax.taxonomy import published
  return published.default_root()


@pytest.fixture(scope="session")
def paper_results_dir() -> pathlib.Path:
  path = paper_results_path()
  if not (path / "all_affinities.json").is_file():
    pytest.fail(f"The paper's published results are not at {path}: the package's copy is "
                "missing, or TASKONOMY_PAPER_RESULTS points elsewhere.")
  return path
