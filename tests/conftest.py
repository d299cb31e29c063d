"""Shared fixtures: where the paper's published results are read from."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def paper_results_path() -> pathlib.Path:
  """`$TASKONOMY_PAPER_RESULTS`, else `../shared/paper_results` beside the checkout."""
  env = os.environ.get("TASKONOMY_PAPER_RESULTS")
  return pathlib.Path(env) if env else REPO_ROOT.parent / "shared" / "paper_results"


@pytest.fixture(scope="session")
def paper_results_dir() -> pathlib.Path:
  path = paper_results_path()
  if not (path / "all_affinities.json").is_file():
    pytest.fail(f"The paper's published results are not at {path}: put ../shared beside the "
                "checkout or set TASKONOMY_PAPER_RESULTS.")
  return path
