"""The released dataset's two on-disk layouts: detect, index, validate, read and write views.

- `building` layout (the original release, e.g. the sample building of StanfordVL/taskonomy):
  `{root}/{building}/{domain}/point_{p}_view_{v}_domain_{domain}.{ext}`, with the point_info
  JSON in `{root}/{building}/points/point_{p}_view_{v}_domain_fixatedpose.json`.
- `domain` layout (what the omnidata download tool writes and omnidata-tools' Taskonomy loader
  reads): `{root}/{domain}/{building}/point_{p}_view_{v}_domain_{domain}.{ext}`, with point_info
  in `{root}/point_info/{building}/point_{p}_view_{v}_domain_point_info.json`.

`scan(...)` indexes a root, checks every view of the requested domains cheaply (file present,
PNG header/CRC and size, `.npy` length, point_info JSON and keys) and returns the good views and a
report of every skipped view and why. `write_view(...)` writes one view in either layout,
atomically per file.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import io
import json
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

from taskonomy_jax import files as files_lib  # `files` names view file maps here
from taskonomy_jax.data import encodings as enc

Layout = Literal["building", "domain"]
LAYOUTS: tuple[Layout, ...] = ("building", "domain")

# Folder and file-name domain of point_info in each layout (the original release named the
# folder `points` and the files `..._domain_fixatedpose.json`).
POINT_INFO_DIRS = {"building": ("points", "fixatedpose"), "domain": ("point_info", "point_info")}
_POINT_INFO_ALIASES = {"points": "point_info", "fixatedpose": "point_info", "point_info":
                       "point_info"}
REQUIRED_POINT_INFO_KEYS = ("camera_location", "camera_rotation_final", "field_of_view_rads")


class LayoutError(ValueError):
  """The manual directory is in neither layout (the message says what was found)."""


@dataclasses.dataclass(frozen=True, order=True)
class ViewKey:
  building: str
  point: int
  view: int

  def __str__(self) -> str:
    return f"{self.building}/point_{self.point}_view_{self.view}"


@dataclasses.dataclass
class ScanResult:
  """Views that passed the checks, their files, and what was skipped.

  Attributes:
    layout: the detected layout.
    views: good views, sorted.
    files: view -> domain -> path.
    skipped: view (as text) -> reason, for every skipped view.
    missing_buildings: requested buildings that are not in the directory.
    mismatched_buildings: building -> {domain: file count} where the counts differ.
  """

  layout: Layout
  views: list[ViewKey]
  files: dict[ViewKey, dict[str, pathlib.Path]]
  skipped: dict[str, str]
  missing_buildings: list[str]
  mismatched_buildings: dict[str, dict[str, int]]

  def report(self) -> dict[str, Any]:
    """JSON-ready summary: counts by reason and every skipped view."""
    by_reason = collections.Counter(r.split(":")[0] for r in self.skipped.values())
    return {
        "layout": self.layout, "num_views": len(self.views),
        "num_skipped": len(self.skipped), "skipped_by_reason": dict(sorted(by_reason.items())),
        "skipped": dict(sorted(self.skipped.items())),
        "missing_buildings": self.missing_buildings,
        "mismatched_buildings": self.mismatched_buildings,
    }


def _domain_dir_name(layout: Layout, domain: str) -> str:
  return POINT_INFO_DIRS[layout][0] if domain == "point_info" else domain


def path_for(root: os.PathLike, layout: Layout, key: ViewKey, domain: str) -> pathlib.Path:
  """Where a view's file of `domain` lives in `layout`."""
  root = pathlib.Path(root)
  folder = _domain_dir_name(layout, domain)
  file_domain = POINT_INFO_DIRS[layout][1] if domain == "point_info" else domain
  name = f"point_{key.point}_view_{key.view}_domain_{file_domain}.{enc.get(domain).kind}"
  if layout == "building":
    return root / key.building / folder / name
  return root / folder / key.building / name


def _known_dir(name: str) -> bool:
  return name in enc.ENCODINGS or name in _POINT_INFO_ALIASES


def detect_layout(root: os.PathLike) -> Layout:
  """Which layout `root` is in.

  Raises:
    LayoutError: `root` is missing, or in neither layout; the message lists what is there.
  """
  root = pathlib.Path(root)
  if not root.is_dir():
    raise LayoutError(f"manual directory {root} does not exist or is not a directory")
  subdirs = sorted(p for p in root.iterdir() if p.is_dir())
  if any(_known_dir(p.name) and any(q.is_dir() for q in p.iterdir()) for p in subdirs):
    return "domain"
  if any(any(_known_dir(q.name) for q in p.iterdir() if q.is_dir()) for p in subdirs):
    return "building"
  seen = ", ".join(p.name for p in subdirs[:8]) or "no folders"
  raise LayoutError(
      f"{root} is in neither Taskonomy layout: expected {{building}}/{{domain}}/point_*_view_*_"
      f"domain_*.png (original release) or {{domain}}/{{building}}/point_*... (omnidata); "
      f"found {seen}. Known domain folders: {', '.join(sorted(enc.ENCODINGS))}, points.")


def _list_dir(layout: Layout, root: pathlib.Path, building: str, domain: str
              ) -> dict[tuple[int, int], pathlib.Path]:
  folders = [_domain_dir_name(layout, domain)]
  if domain == "point_info":  # accept either folder name in either layout
    folders = list(dict.fromkeys([folders[0], "points", "point_info"]))
  out: dict[tuple[int, int], pathlib.Path] = {}
  for folder in folders:
    d = root / building / folder if layout == "building" else root / folder / building
    if not d.is_dir():
      continue
    for p in d.iterdir():
      try:
        point, view, file_domain = enc.parse_filename(p.name)
      except enc.EncodingError:
        continue
      if _POINT_INFO_ALIASES.get(file_domain, file_domain) == domain:
        out.setdefault((point, view), p)
  return out


def list_buildings(root: os.PathLike, layout: Layout) -> list[str]:
  """Every building that has at least one domain folder."""
  root = pathlib.Path(root)
  if layout == "building":
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and any(_known_dir(q.name) for q in p.iterdir() if q.is_dir()))
  names: set[str] = set()
  for p in root.iterdir():
    if p.is_dir() and _known_dir(p.name):
      names.update(q.name for q in p.iterdir() if q.is_dir())
  return sorted(names)


def check_file(path: pathlib.Path, domain: str, resolution: int | None) -> str | None:
  """Cheap validity check of one file; None if good, else the reason (`reason: detail`)."""
  kind = enc.get(domain).kind
  try:
    data = path.read_bytes()
  except OSError as e:
    return f"unreadable:{domain}: {e}"
  if kind == "png":
    try:
      with Image.open(io.BytesIO(data)) as im:
        size = im.size
        im.verify()  # chunk CRCs and structure, without decoding pixels
    except Exception as e:  # PIL raises many types for broken files
      return f"corrupt_png:{domain}: {type(e).__name__}: {e}"
    if resolution is not None and size != (resolution, resolution):
      return f"wrong_size:{domain}: {size[0]}x{size[1]}, expected {resolution}x{resolution}"
    return None
  if kind == "npy":
    try:
      enc.decode_npy(data, domain)
    except enc.EncodingError as e:
      return f"corrupt_npy:{domain}: {e}"
    return None
  try:
    info = enc.decode_point_info(data)
  except (enc.EncodingError, UnicodeDecodeError) as e:
    return f"bad_point_info: {e}"
  missing = [k for k in REQUIRED_POINT_INFO_KEYS if k not in info]
  if missing:
    return f"bad_point_info: missing keys {missing}"
  return None


def scan(root: os.PathLike, domains: Sequence[str], buildings: Iterable[str] | None = None,
         *, resolution: int | None = None, layout: Layout | None = None,
         num_threads: int = 8, progress: bool = True) -> ScanResult:
  """Indexes and checks the views of `buildings` (default: all) for `domains` under `root`.

  A view is kept only if every requested domain has a good file for it; otherwise it is skipped
  with the reason (`missing:{domain}`, `corrupt_png:{domain}: ...`, `bad_point_info: ...`,
  `wrong_size:{domain}: ...`, `corrupt_npy:{domain}: ...`).
  """
  root = pathlib.Path(root)
  for d in domains:
    enc.get(d)  # unknown domain: clear error
  layout = layout or detect_layout(root)
  present = set(list_buildings(root, layout))
  wanted = sorted(present) if buildings is None else list(buildings)
  missing_buildings = [b for b in wanted if b not in present]
  files: dict[ViewKey, dict[str, pathlib.Path]] = {}
  skipped: dict[str, str] = {}
  mismatched: dict[str, dict[str, int]] = {}
  for building in (b for b in wanted if b in present):
    listing = {d: _list_dir(layout, root, building, d) for d in domains}
    counts = {d: len(v) for d, v in listing.items()}
    if len(set(counts.values())) > 1:
      mismatched[building] = counts
    for point, view in sorted(set().union(*[set(v) for v in listing.values()])):
      key = ViewKey(building, point, view)
      absent = [d for d in domains if (point, view) not in listing[d]]
      if absent:
        skipped[str(key)] = f"missing:{absent[0]}" + (
            f" (and {', '.join(absent[1:])})" if len(absent) > 1 else "")
      else:
        files[key] = {d: listing[d][(point, view)] for d in domains}

  def check(key: ViewKey) -> tuple[ViewKey, str | None]:
    for d, path in files[key].items():
      reason = check_file(path, d, resolution)
      if reason:
        return key, reason
    return key, None

  keys = sorted(files)
  with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
    results = list(tqdm(pool.map(check, keys), total=len(keys), disable=not progress,
                        desc=f"checking views in {root.name}", leave=False))
  for key, reason in results:
    if reason:
      skipped[str(key)] = reason
      del files[key]
  return ScanResult(layout, sorted(files), files, skipped, missing_buildings, mismatched)


def read_view(files: Mapping[str, pathlib.Path]) -> dict[str, Any]:
  """A view's files -> domain -> stored form (validated: raises EncodingError if bad)."""
  out = {}
  for domain, path in files.items():
    try:
      out[domain] = enc.read_stored(domain, path.read_bytes())
    except enc.EncodingError as e:
      raise enc.EncodingError(f"{path}: {e}") from e
  return out


def write_view(root: os.PathLike, layout: Layout, key: ViewKey, stored: Mapping[str, Any]
               ) -> list[pathlib.Path]:
  """Writes one view's stored domains as the released dataset's files; returns the paths."""
  if layout not in LAYOUTS:
    raise ValueError(f"unknown layout {layout!r}; accepted: {', '.join(LAYOUTS)}")
  paths = []
  for domain, value in stored.items():
    path = path_for(root, layout, key, domain)
    files_lib.write_atomic(path, enc.file_bytes(domain, value))
    paths.append(path)
  return paths


def point_info_json(info: Mapping[str, Any]) -> str:
  return json.dumps(enc.encode_point_info(dict(info)), sort_keys=True)


def as_float_vector(x: Any, n: int) -> np.ndarray:
  """A point_info list field -> float32 (n,), NaN-free (zeros if absent)."""
  if x is None:
    return np.zeros(n, np.float32)
  return np.asarray(x, np.float32).reshape(n)
