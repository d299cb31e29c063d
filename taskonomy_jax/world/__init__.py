"""The procedural Taskonomy world: seeded buildings rendered with every domain of the dataset.

    from taskonomy_jax import world
    cfg = world.WorldConfig(resolution=64)
    b = world.generate_building(3, cfg)
    for view in world.render_views(b, cfg):
      view.domains["rgb"], view.point_info["camera_location"]

Camera conventions: `taskonomy_jax.world.camera`. Label maps: `taskonomy_jax.world.categories`.
"""

from taskonomy_jax.world.config import WorldConfig
from taskonomy_jax.world.render import DOMAINS, DomainInfo, View, render_view, render_views
from taskonomy_jax.world.scene import Building, Point, generate_building

__all__ = ["DOMAINS", "Building", "DomainInfo", "Point", "View", "WorldConfig",
           "generate_building", "render_view", "render_views"]
