"""Synthetic views from the procedural world, in the stored forms, and the exporter to disk.

`stored_views(seeds, cfg)` renders buildings of `taskonomy_jax.world` and encodes every view with
the real dataset's encodings; the synthetic TFDS builder stores those, and `export(...)` writes
them as the released dataset's files (either layout), so the real builder and other Taskonomy
tools (omnidata-tools) read them. Export is resumable: a manifest lists finished buildings, and
every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

from tqdm import tqdm

from taskonomy_jax import files, world
from taskonomy_jax.data import encodings as enc
from taskonomy_jax.data import features as features_lib
from taskonomy_jax.data import layout as layout_lib

MANIFEST = "taskonomy_export.json"


def world_config(resolution: int = 64, **overrides: Any):
  """A `world.WorldConfig` of this resolution."""
  return world.WorldConfig(resolution=resolution, **overrides)


def stored_views(seeds: Sequence[int], cfg: Any, domains: Sequence[str] = features_lib.ALL_DOMAINS
                 ) -> Iterator[tuple[layout_lib.ViewKey, dict[str, Any]]]:
  """(view key, stored domains) of every view of the buildings with these seeds, in order."""
  names = features_lib.check_domains(domains)
  for seed in seeds:
    building = world.generate_building(int(seed), cfg)
    for view in world.render_views(building, cfg):
      key = layout_lib.ViewKey(view.building, int(view.point), int(view.view))
      yield key, enc.encode_view(view.domains, view.point_info, names=names)


@dataclasses.dataclass
class ExportSummary:
  out_dir: pathlib.Path
  layout: str
  buildings: list[str]
  views: int
  resumed: list[str]


def _read_manifest(out_dir: pathlib.Path) -> dict[str, Any]:
  path = out_dir / MANIFEST
  return json.loads(path.read_text()) if path.is_file() else {"buildings": {}}


def export(out_dir: os.PathLike, seeds: Sequence[int], cfg: Any, *, layout: str = "domain",
           domains: Sequence[str] = features_lib.ALL_DOMAINS, progress: bool = True
           ) -> ExportSummary:
  """Writes the buildings with `seeds` to `out_dir` in the real on-disk `layout`.

  Buildings already listed in the manifest with the same settings are skipped (resume after an
  interruption); a building is added to the manifest only after all its files are written.
  """
  if layout not in layout_lib.LAYOUTS:
    raise ValueError(f"unknown layout {layout!r}; accepted: {', '.join(layout_lib.LAYOUTS)}")
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  names = features_lib.check_domains(domains)
  settings = {"layout": layout, "domains": list(names), "world": repr(cfg)}
  manifest = _read_manifest(out)
  if manifest.get("settings", settings) != settings:
    raise ValueError(f"{out} holds an export with other settings ({manifest['settings']}); "
                     "use a new folder or the same settings to resume")
  manifest["settings"] = settings
  done, resumed, views = manifest["buildings"], [], 0
  for seed in tqdm(list(seeds), desc=f"exporting to {out}", disable=not progress):
    tag = str(int(seed))
    if tag in done:
      resumed.append(done[tag]["name"])
      views += done[tag]["views"]
      continue
    n, name = 0, None
    for key, stored in stored_views([seed], cfg, names):
      layout_lib.write_view(out, layout, key, stored)
      n, name = n + 1, key.building
    done[tag] = {"name": name, "views": n}
    views += n
    files.write_atomic(out / MANIFEST, json.dumps(manifest, indent=1).encode())
  return ExportSummary(out, layout, [done[str(int(s))]["name"] for s in seeds], views, resumed)
