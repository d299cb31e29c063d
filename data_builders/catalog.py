"""The project's TFDS builders by name, for the code that opens a dataset.

Importing this module defines both builder classes, which is what registers them with TFDS; the
code that opens a dataset imports it (and a user script calling `tfds.data_source(name)` does
too), so opening `taskonomy_synthetic` works in any process, whatever else it imported.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from data_builders.taskonomy import taskonomy_dataset_builder as real
from data_builders.taskonomy_synthetic import taskonomy_synthetic_dataset_builder as synthetic

BUILDERS: dict[str, type[tfds.core.GeneratorBasedBuilder]] = {
    "taskonomy": real.Builder,
    "taskonomy_synthetic": synthetic.Builder,
}


def builder_class(name: str) -> type[tfds.core.GeneratorBasedBuilder]:
  """The builder class of dataset `name` ('taskonomy' or 'taskonomy_synthetic')."""
  if name not in BUILDERS:
    raise ValueError(f"unknown dataset {name!r}; accepted: {', '.join(BUILDERS)}")
  return BUILDERS[name]


def builder(name: str, config: str | None = None,
            data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """The builder of `name` with builder config `config` (None: its default) under `data_dir`
  (None: the TFDS default folder). Through `tfds.builder`, which also opens a prepared dataset
  of a config the class does not list (the taxonomy pipeline renders its own sizes) from the
  files in `data_dir`."""
  builder_class(name)  # an unknown name: our error, naming the accepted ones
  return tfds.builder(f"{name}/{config}" if config else name, data_dir=data_dir)
