"""TFDS builder for synthetic Taskonomy: the procedural world's views, in the real dataset's schema.

    taskonomy data build taskonomy_synthetic --config r64_tiny  # `tfds build` too, with TF

The embedded default: nothing is downloaded. Same features as `taskonomy` (one example = one
view, every domain in the real on-disk encoding plus point_info), rendered by
`taskonomy_jax.world`. Buildings are the world's seeds: train takes the first `num_train`
seeds, validation the next `num_validation`, test the next `num_test`, so splits never share a
building (as the real splits).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow_datasets as tfds

from taskonomy_jax.data import features as features_lib
from taskonomy_jax.data import synthetic

_DESCRIPTION = """
Procedurally generated indoor buildings (rooms, doors, windows, furniture of semantic categories,
procedural textures and lights) rendered with every Taskonomy domain by a seeded ray caster, in the
real Taskonomy dataset's structure (building -> points -> views) and encodings.
"""


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
  """Resolution, split sizes (in buildings) and world settings.

  Attributes:
    resolution: image side in pixels.
    num_train, num_validation, num_test: buildings per split.
    first_seed: the world seed of the first training building.
    points_per_building, views_per_point: passed to `world.WorldConfig`.
    albedo_drift: passed to `world.WorldConfig`; None: its default.
    domains: the domains to store.
  """

  resolution: int = 64
  num_train: int = 6
  num_validation: int = 2
  num_test: int = 2
  first_seed: int = 0
  points_per_building: int = 8
  views_per_point: tuple[int, int] = (2, 4)
  albedo_drift: float | None = None
  domains: tuple[str, ...] = features_lib.ALL_DOMAINS

  def world(self) -> Any:
    drift = {} if self.albedo_drift is None else {"albedo_drift": self.albedo_drift}
    return synthetic.world_config(self.resolution, points_per_building=self.points_per_building,
                                  views_per_point=tuple(self.views_per_point), **drift)

  def seeds(self) -> dict[str, range]:
    a = self.first_seed
    b = a + self.num_train
    c = b + self.num_validation
    return {"train": range(a, b), "validation": range(b, c),
            "test": range(c, c + self.num_test)}


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for synthetic Taskonomy."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {  # noqa: RUF012 (TFDS reads it from the class)
      "1.0.0": "Initial release.",
      "1.1.0": "Slow albedo drift on every material (`WorldConfig.albedo_drift`): RGB and "
               "the domains computed from it change, geometry does not.",
  }
  BUILDER_CONFIGS = [  # noqa: RUF012 (TFDS reads it from the class)
      SyntheticConfig(name="r32_mini", resolution=32, num_train=2, num_validation=1,
                      num_test=1, points_per_building=3,
                      description="2/1/1 buildings at 32x32: tests and smoke runs"),
      SyntheticConfig(name="r64_tiny", resolution=64,
                      description="6/2/2 buildings at 64x64 (~300 views): the quick start"),
      SyntheticConfig(name="r64", resolution=64, num_train=60, num_validation=10, num_test=10,
                      description="60/10/10 buildings at 64x64 (~2,400 views): CPU experiments"),
      SyntheticConfig(name="r64_large", resolution=64, num_train=300, num_validation=20,
                      num_test=20, description="300/20/20 buildings at 64x64 (~10,000 views): "
                      "the CPU task bank (`taskbank.py:cpu_full`)"),
      SyntheticConfig(name="r256", resolution=256, num_train=60, num_validation=10,
                      num_test=10, description="60/10/10 buildings at 256x256, the paper's size"),
  ]
  DEFAULT_CONFIG_NAME = "r64_tiny"

  def __init__(self, **kwargs: Any):
    kwargs["file_format"] = kwargs.get("file_format") or "array_record"
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg: SyntheticConfig = self.builder_config
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=features_lib.features(cfg.domains, cfg.resolution),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    del dl_manager  # nothing to download
    cfg: SyntheticConfig = self.builder_config
    return {split: self._generate_examples(seeds) for split, seeds in cfg.seeds().items()
            if len(seeds)}

  def _generate_examples(self, seeds: range):
    cfg: SyntheticConfig = self.builder_config
    domains = features_lib.check_domains(cfg.domains)
    for key, stored in synthetic.stored_views(seeds, cfg.world(), domains):
      yield features_lib.example_key(key), features_lib.example(key, stored, domains)
