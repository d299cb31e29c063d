"""The procedural Taskonomy world: seeded buildings rendered with every domain of the dataset.

    from taskonomy_jax import world
    cfg = world.WorldConfig(resolution=64)
    b = world.generate_building(3, cfg)
    for view in world.render_views(b, cfg):
      view.domains["rgb"], view.point_info["camera_location"]

Camera conventions: `taskonomy_jax.world.camera`. Label maps: `taskonomy_jax.world.categories`.
The renderer imports JAX, so its names load on first use (PEP 562) and `taskonomy --help`,
which registers `taskonomy world preview`, stays fast.
"""

import importlib
from typing import Any

from taskonomy_jax.world.config import WorldConfig

_LAZY = {"DOMAINS": "render", "DomainInfo": "render", "View": "render", "render_view": "render",
         "render_views": "render", "Building": "scene", "Point": "scene",
         "generate_building": "scene"}

__all__ = ["DOMAINS", "Building", "DomainInfo", "Point", "View", "WorldConfig",
           "generate_building", "render_view", "render_views"]


def __getattr__(name: str) -> Any:
  if name in _LAZY:
    return getattr(importlib.import_module(f"taskonomy_jax.world.{_LAZY[name]}"), name)
  raise AttributeError(f"module 'taskonomy_jax.world' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(__all__)
