"""The synthetic builder's smallest public config builds, with disjoint building splits."""

import pytest

from data_builders.taskonomy_synthetic import taskonomy_synthetic_dataset_builder as synth
from taskonomy_jax.data import features as features_lib


@pytest.mark.slow
def test_r32_mini_builds_with_disjoint_buildings(tmp_path):
  builder = synth.Builder(config="r32_mini", data_dir=str(tmp_path))
  builder.download_and_prepare()
  buildings = {}
  for split in ("train", "validation", "test"):
    source = builder.as_data_source(split=split)
    assert len(source) > 0
    buildings[split] = {features_lib.record_key(source[i]).building for i in range(len(source))}
  assert len(buildings["train"]) == 2 and len(buildings["validation"]) == 1
  assert not buildings["train"] & buildings["validation"]
  assert not buildings["validation"] & buildings["test"]
  assert builder.info.features["rgb"].shape == (32, 32, 3)


def test_configs_split_seeds_without_overlap():
  for cfg in synth.Builder.BUILDER_CONFIGS:
    seeds = cfg.seeds()
    every = [s for r in seeds.values() for s in r]
    assert len(every) == len(set(every)) == cfg.num_train + cfg.num_validation + cfg.num_test
