"""The real-dataset builder on its dummy data (omnidata layout, tiny-split building names).

Regenerate the dummy data with `python -m data_builders.taskonomy.taskonomy_dataset_builder_test`.
"""

import pathlib

import numpy as np
import tensorflow_datasets as tfds

from data_builders.taskonomy import splits
from data_builders.taskonomy import taskonomy_dataset_builder as real
from taskonomy_jax.data import encodings as enc
from taskonomy_jax.data import features as features_lib
from taskonomy_jax.data import layout

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
RES = 16
# One building of each tiny split, two points of two views each.
BUILDINGS = {"train": ("hanson",), "validation": ("wiconisco",), "test": ("ihlen",)}


def _config() -> real.TaskonomyConfig:
  return real.TaskonomyConfig(name="dummy", split_size="custom", buildings=BUILDINGS,
                              resolution=RES)


def test_dummy_buildings_are_in_the_tiny_split():
  for split, names in BUILDINGS.items():
    assert set(names) <= set(splits.SPLITS["tiny"][split])


def test_builds_from_dummy_data(tmp_path):
  builder = real.Builder(config=_config(), data_dir=str(tmp_path))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY)))
  assert {s: builder.info.splits[s].num_examples for s in BUILDINGS} == {
      "train": 4, "validation": 4, "test": 4}
  source = builder.as_data_source(split="train")
  for i in range(len(source)):
    record = source[i]
    key = features_lib.record_key(record)
    files = {d: layout.path_for(DUMMY, "domain", key, d) for d in features_lib.ALL_DOMAINS}
    for domain, stored in layout.read_view(files).items():
      if domain == "point_info":
        assert enc.decode_point_info(record[domain]) == stored
      else:
        np.testing.assert_array_equal(record[domain], stored)


def make_dummy_data() -> None:
  from tests import data_fixtures

  for names in BUILDINGS.values():
    data_fixtures.write_dataset(DUMMY, "domain", {n: (2, 2) for n in names}, RES)


if __name__ == "__main__":
  make_dummy_data()
