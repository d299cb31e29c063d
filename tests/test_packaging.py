"""The wheel holds what an installed `taskonomy` reads at run time (the packaged configs, the
paper's published results, the class-name lists, the TFDS builders), and a packaged config loads
from the wheel alone, in a directory that is not the checkout.

The wheel is built from a copy of the source tree (a few seconds): setuptools keeps whatever an
earlier build left in build/lib, so a build in the checkout could pass on stale files.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from taskonomy_jax import config_files, tasks
from tests.conftest import REPO_ROOT

# Not needed to build, or outputs of earlier builds and runs.
_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "out", "runs",
                                 "docs", "__pycache__", ".pytest_cache", ".ruff_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
  src = tmp_path_factory.mktemp("src") / "taskonomy-jax"
  shutil.copytree(REPO_ROOT, src, ignore=_IGNORE)
  out = tmp_path_factory.mktemp("wheel")
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "--quiet", "-w", str(out), str(src)], check=True, timeout=300)
  (path,) = out.glob("taskonomy_jax-*.whl")
  return path


def _source_files(folder: str, pattern: str) -> list[str]:
  return sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / folder).glob(pattern))


def test_the_wheel_holds_what_the_installed_commands_read(wheel):
  names = set(zipfile.ZipFile(wheel).namelist())
  results = _source_files("taskonomy_jax/taxonomy/paper_results", "*.json")
  builders = [p for p in _source_files("data_builders", "**/*.py") if not p.endswith("_test.py")]
  assert results and builders  # the globs found the source files
  want = [
      "taskonomy_jax/configs/__init__.py",
      "taskonomy_jax/configs/task_network.py",
      "taskonomy_jax/configs/taskbank.py",
      "taskonomy_jax/configs/taxonomy.py",
      "taskonomy_jax/taxonomy/paper_results/README.md",
      "taskonomy_jax/taxonomy/paper_results/LICENSE",
      "taskonomy_jax/taxonomy/computed/taxonomy_cpu_full.json",  # `--data synthetic`
      *results,
      *_source_files("taskonomy_jax/taskbank/class_names", "*.txt"),
      *builders,
  ]
  missing = [n for n in want if n not in names]
  assert not missing, f"missing from {wheel.name}: {missing}"
  assert not any(n.startswith(("tests/", "experiments/", "benchmarks/")) for n in names)


def test_a_packaged_config_loads_from_the_wheel_outside_the_checkout(wheel, tmp_path):
  # The wheel is a zip of pure Python: put first on the path, it is imported from (not the
  # checkout, not an editable install), and the working directory holds nothing of the project.
  code = ("import taskonomy_jax\n"
          "from taskonomy_jax import config_files\n"
          "c = config_files.load_config('taxonomy:tiny')\n"
          "print(taskonomy_jax.__file__)\n"
          "print(c.data.resolution, list(c.targets), config_files.packaged_configs())\n")
  env = {**os.environ, "PYTHONPATH": str(wheel)}
  proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  where, values = proc.stdout.splitlines()
  assert where.startswith(str(wheel))
  assert values == ("32 ['depth_zbuffer', 'edge_texture'] "
                    "['task_network', 'taskbank', 'taxonomy']")


def test_a_bad_config_name_lists_the_packaged_ones_and_the_file_form():
  with pytest.raises(ValueError, match=r"task_network, taskbank, taxonomy.*must end in \.py"):
    config_files.load_config("taxonmy:tiny")
  with pytest.raises(ValueError, match="does not exist"):
    config_files.load_config("no/such/config.py:tiny")


def test_the_experiment_configs_build_on_the_packaged_ones():
  """Every experiments/configs/ file loads by path (its default size) and changes the packaged
  config it imports; the wider-bank one at each size of the packaged taxonomy config."""
  paths = sorted((REPO_ROOT / "experiments" / "configs").glob("*.py"))
  assert paths
  for path in paths:
    assert config_files.load_config(str(path)).to_dict()
  wider = REPO_ROOT / "experiments" / "configs" / "taxonomy_wider_bank.py"
  for arg in ("default", "cpu_full", "tiny", "paper"):
    base, c = config_files.load_config(f"taxonomy:{arg}"), config_files.load_config(f"{wider}:{arg}")
    assert c.model.width == 4 * base.model.width
    assert c.taskbank.num_steps == base.taskbank.num_steps
    assert c.transfer.to_dict() == base.transfer.to_dict()


def test_the_frozen_decoder_config_keeps_the_packaged_baselines_and_bank():
  """Only the readouts change (and the multi-view targets, which they cannot reach, become
  sources): the from-scratch baselines (Gain) keep the packaged batch."""
  frozen = REPO_ROOT / "experiments" / "configs" / "taxonomy_frozen_decoder.py"
  for arg in ("default", "tiny", "cpu_full", "paper"):
    base, c = config_files.load_config(f"taxonomy:{arg}"), config_files.load_config(f"{frozen}:{arg}")
    assert c.readout.frozen_target_decoder and not c.readout.residual
    assert c.scratch.to_dict() == base.scratch.to_dict()
    assert c.taskbank.to_dict() == base.taskbank.to_dict()
    # multi-view targets cannot read through a frozen decoder: sources only, the bank unchanged
    multi_view = {t for t in base.targets if tasks.get(t).num_views > 1}
    assert set(c.targets) == set(base.targets) - multi_view
    assert {*c.targets, *c.extra_sources} == {*base.targets, *base.extra_sources}
    assert len(c.targets) == (18 if arg in ("cpu_full", "paper") else len(base.targets))


def test_the_strong_bank_config_is_the_frozen_decoder_one_with_a_longer_bank():
  """What the committed docs/taxonomy_bank1200_frozen_decoder/ run was given by `--set`."""
  configs = REPO_ROOT / "experiments" / "configs"
  base = config_files.load_config(str(configs / "taxonomy_frozen_decoder.py"))
  c = config_files.load_config(str(configs / "taxonomy_strong_bank.py"))
  assert (c.taskbank.num_steps, c.transfer.num_steps, c.transfer.batch_size) == (1200, 400, 16)
  assert c.readout.to_dict() == base.readout.to_dict()
  assert c.scratch.to_dict() == base.scratch.to_dict()
  run = json.loads((REPO_ROOT / "docs" / "taxonomy_bank1200_frozen_decoder" / "config.json")
                   .read_text())
  assert run["taskbank"]["num_steps"] == c.taskbank.num_steps
  assert {k: run["transfer"][k] for k in ("num_steps", "batch_size")} == {
      "num_steps": c.transfer.num_steps, "batch_size": c.transfer.batch_size}
  tiny = config_files.load_config(f"{configs / 'taxonomy_strong_bank.py'}:tiny")
  assert tiny.taskbank.num_steps == config_files.load_config("taxonomy:tiny").taskbank.num_steps
