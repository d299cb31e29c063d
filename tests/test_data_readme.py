"""The README's JAX idiom (`tfds.data_source` -> `grain.MapDataset`) runs as written."""

import re

import tensorflow_datasets as tfds

from data_builders.taskonomy_synthetic import taskonomy_synthetic_dataset_builder as synth
from taskonomy_jax import cli
from tests.conftest import REPO_ROOT


def test_readme_idiom_runs_as_written(tmp_path):
  readme = (REPO_ROOT / "README.md").read_text()
  section = readme[readme.index("## Loading Taskonomy in your JAX project"):]
  code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
  assert "tfds.data_source" in code and "grain.MapDataset" in code
  # The README's build command, into a temp folder.
  assert cli.main(["data", "build", "taskonomy_synthetic", "--config", "r32_mini",
                   "--data-dir", str(tmp_path)]) == cli.EXIT_OK
  assert synth.Builder(config="r32_mini", data_dir=str(tmp_path)).info.splits["train"].num_examples
  tfds.core.add_data_dir(str(tmp_path))
  namespace = {}
  exec(compile(code, "README.md", "exec"), namespace)
  batch = next(iter(namespace["ds"].to_iter_dataset()))
  assert batch["rgb"].shape == (32, 32, 32, 3)
  assert batch["targets"]["normal"].shape == (32, 32, 32, 3)
  assert batch["masks"]["depth_zbuffer"].shape == (32, 32, 32)
