"""The project's TFDS builders by name, for the code that opens a dataset.

Openers construct the builder class from this table instead of asking TFDS's global registry by
name, so opening `taskonomy_synthetic` works in any process, whatever it happened to import.
(Importing this module also defines the classes, which is how TFDS's own `tfds.builder(name)` /
`tfds.data_source(name)` learn the names: a user script that calls those imports it first.)
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
  (None: the TFDS default folder)."""
  cls = builder_class(name)
  kwargs = {"config": config} if config else {}
  return cls(data_dir=data_dir, **kwargs)
