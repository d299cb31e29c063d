"""Shared fixtures: where the paper's published results are read from; the device count."""

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
