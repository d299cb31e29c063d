"""The released dataset's two on-disk layouts: detect, index, validate, read and write views.

- `building` layout (the original release, e.g. the sample building of StanfordVL/taskonomy):
  `{root}/{building}/{domain}/point_{p}_view_{v}_domain_{domain}.{ext}`, with the point_info
  JSON in `{root}/{building}/points/point_{p}_view_{v}_domain_fixatedpose.json`.
- `domain` layout (what the omnidata download tool writes and omnidata-tools' Taskonomy loader
  reads): `{root}/{domain}/{building}/point_{p}_view_{v}_domain_{domain}.{ext}`, with point_info
  in `{root}/point_info/{building}/point_{p}_view_{v}_domain_point_info.json`.

`scan(...)` indexes a root, checks every view of the requested domains (file present, PNG
header/CRC and size, then its image data decoded as the build will decode it, `.npy` length,
point_info JSON and keys) and returns the good views and a report of every skipped view and why,
and of every file in the scanned folders that is not a view's file (stray files, names that are
not UTF-8). `write_view(...)` writes one view in either layout, atomically per file.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import io
import json
import os
import pathlib
import re
import struct
import zlib
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
# The report lists at most this many ignored files (a copy made on macOS has a `._` file beside
# every file); the counts by reason cover them all.
MAX_LISTED_IGNORED = 1000
_WRONG_SIZE_RE = re.compile(r"^wrong_size:[^:]+: (\d+x\d+),")


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
    ignored: path relative to the root (non-UTF-8 bytes as `\\xNN`) -> reason, for every entry
      of a scanned folder that is not a view's file: stray files, folders inside domain
      folders, names that are not UTF-8 (building folders included).
  """

  layout: Layout
  views: list[ViewKey]
  files: dict[ViewKey, dict[str, pathlib.Path]]
  skipped: dict[str, str]
  missing_buildings: list[str]
  mismatched_buildings: dict[str, dict[str, int]]
  ignored: dict[str, str] = dataclasses.field(default_factory=dict)

  def wrong_sizes(self) -> dict[str, int]:
    """Image size (`WxH`) -> number of views skipped as `wrong_size` with it."""
    sizes = (_WRONG_SIZE_RE.match(r) for r in self.skipped.values())
    return dict(collections.Counter(m[1] for m in sizes if m).most_common())

  def report(self) -> dict[str, Any]:
    """JSON-ready summary: counts by reason, every skipped view, the ignored files (the first
    `MAX_LISTED_IGNORED` of them)."""
    by_reason = collections.Counter(r.split(":")[0] for r in self.skipped.values())
    ignored_by_reason = collections.Counter(r.split(":")[0] for r in self.ignored.values())
    listed = dict(sorted(self.ignored.items())[:MAX_LISTED_IGNORED])
    return {
        "layout": self.layout, "num_views": len(self.views),
        "num_skipped": len(self.skipped), "skipped_by_reason": dict(sorted(by_reason.items())),
        "skipped": dict(sorted(self.skipped.items())),
        "wrong_sizes": self.wrong_sizes(),
        "missing_buildings": self.missing_buildings,
        "mismatched_buildings": self.mismatched_buildings,
        "num_ignored": len(self.ignored),
        "ignored_by_reason": dict(sorted(ignored_by_reason.items())),
        "ignored": listed,
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


def _decodable(name: str) -> bool:
  """False for a file name whose bytes are not UTF-8 (Python keeps them as lone surrogates,
  which the report, the log and the dataset's string features cannot encode)."""
  try:
    name.encode("utf-8")
  except UnicodeEncodeError:
    return False
  return True


def _shown(path: pathlib.Path, root: pathlib.Path) -> str:
  """`path` relative to `root`, printable: bytes that are not UTF-8 written as `\\xNN`."""
  return os.fsencode(path.relative_to(root)).decode("utf-8", "backslashreplace")


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


def _list_dir(layout: Layout, root: pathlib.Path, building: str, domain: str,
              ignored: dict[str, str] | None = None) -> dict[tuple[int, int], pathlib.Path]:
  """(point, view) -> file of `domain` in `building`; anything else found there is added to
  `ignored` with the reason."""
  folders = [_domain_dir_name(layout, domain)]
  if domain == "point_info":  # accept either folder name in either layout
    folders = list(dict.fromkeys([folders[0], "points", "point_info"]))
  out: dict[tuple[int, int], pathlib.Path] = {}
  notes: dict[str, str] = {}
  for folder in folders:
    d = root / building / folder if layout == "building" else root / folder / building
    if not d.is_dir():
      continue
    for p in d.iterdir():
      if not _decodable(p.name):
        notes[_shown(p, root)] = "undecodable_name: not UTF-8"
        continue
      if p.is_dir():
        notes[_shown(p, root)] = f"stray_folder: a folder inside the {folder} folder"
        continue
      try:
        point, view, file_domain = enc.parse_filename(p.name)
      except enc.EncodingError:
        notes[_shown(p, root)] = (
            "stray_file: not point_{p}_view_{v}_domain_{domain}.{png,npy,json}")
        continue
      if _POINT_INFO_ALIASES.get(file_domain, file_domain) == domain:
        out.setdefault((point, view), p)
      else:
        notes[_shown(p, root)] = f"stray_file: a {file_domain} file in the {folder} folder"
  if ignored is not None:
    ignored.update(notes)
  return out


def _building_dirs(root: pathlib.Path, layout: Layout) -> list[pathlib.Path]:
  """Every building folder (in the domain layout, one per domain folder holding it)."""
  if layout == "building":
    return [p for p in root.iterdir()
            if p.is_dir() and any(_known_dir(q.name) for q in p.iterdir() if q.is_dir())]
  return [q for p in root.iterdir() if p.is_dir() and _known_dir(p.name)
          for q in p.iterdir() if q.is_dir()]


def list_buildings(root: os.PathLike, layout: Layout) -> list[str]:
  """Every building that has at least one domain folder (names that are not UTF-8 left out:
  `scan` reports them)."""
  return sorted({p.name for p in _building_dirs(pathlib.Path(root), layout)
                 if _decodable(p.name)})


def check_png_data(data: bytes) -> None:
  """Checks a PNG's image data inflates to exactly the bytes its header declares, each row
  starting with a valid filter type.

  Why: the chunk CRCs that `Image.verify` checks are computed over whatever was written, so a
  damaged stream under a recomputed CRC passes them; and Pillow decodes a zlib stream that ends
  early or runs long without complaint, filling or dropping rows. Decoding the image (as `scan`
  does too) catches the rest.

  Raises:
    EncodingError: the data is not a PNG or its image data is damaged; the message says how.
  """
  if not data.startswith(b"\x89PNG\r\n\x1a\n"):
    raise enc.EncodingError("not a PNG signature")
  pos, header, idat = 8, None, []
  while pos + 8 <= len(data):
    (length,) = struct.unpack(">I", data[pos:pos + 4])
    kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
      header = body
    elif kind == b"IDAT":
      idat.append(body)
    elif kind == b"IEND":
      break
    pos += 12 + length
  if header is None or len(header) != 13 or not idat:
    raise enc.EncodingError("no IHDR or no IDAT chunk")
  width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
  samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour)
  if samples is None:
    raise enc.EncodingError(f"unknown PNG colour type {colour}")
  # Rows of each pass (one pass, or Adam7's seven): (offset of the pass, rows, bytes per row).
  passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
            (0, 1, 1, 2)) if interlace else ((0, 0, 1, 1),)
  rows, expected = [], 0
  for x0, y0, dx, dy in passes:
    w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
    if w > 0 and h > 0:
      stride = 1 + -(-(w * samples * depth) // 8)
      rows.append((expected, h, stride))
      expected += h * stride
  if expected == 0:  # and a max_length of 0 below would mean no limit
    raise enc.EncodingError(f"an image of {width}x{height} pixels")
  inflater = zlib.decompressobj()
  try:
    raw = inflater.decompress(b"".join(idat), expected)
    longer = inflater.decompress(inflater.unconsumed_tail, 1)
  except zlib.error as e:
    raise enc.EncodingError(f"image data is not a valid zlib stream ({e})") from None
  needs = f"the header ({width}x{height}, {depth}-bit, colour type {colour}) needs {expected}"
  if len(raw) < expected:
    raise enc.EncodingError(f"image data inflates to {len(raw)} bytes; {needs}")
  if longer:
    raise enc.EncodingError(f"image data inflates to more bytes than {needs}")
  if not inflater.eof:
    raise enc.EncodingError("image data is cut short: its zlib stream has no end")
  flat = np.frombuffer(raw, np.uint8)
  for offset, h, stride in rows:
    if flat[offset:offset + h * stride:stride].max() > 4:
      raise enc.EncodingError("a row with an unknown filter type (PNG defines 0-4)")


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
    # Decoded here as the build will decode it: a file that passes the cheap checks above but
    # fails there would otherwise abort the whole build instead of being skipped. This decodes
    # each image twice per build (here and when writing it), the price of a complete report.
    try:
      check_png_data(data)
      enc.decode_png(data, domain)
    except enc.EncodingError as e:
      return f"corrupt_png:{domain}: {e}"
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
  `wrong_size:{domain}: ...`, `corrupt_npy:{domain}: ...`). Entries of the scanned folders that
  are no view's file are listed in `ignored` (`stray_file: ...`, `stray_folder: ...`,
  `undecodable_name: ...`).
  """
  root = pathlib.Path(root)
  for d in domains:
    enc.get(d)  # unknown domain: clear error
  layout = layout or detect_layout(root)
  ignored = {_shown(p, root): "undecodable_name: a building folder whose name is not UTF-8"
             for p in _building_dirs(root, layout) if not _decodable(p.name)}
  present = set(list_buildings(root, layout))
  wanted = sorted(present) if buildings is None else list(buildings)
  missing_buildings = [b for b in wanted if b not in present]
  files: dict[ViewKey, dict[str, pathlib.Path]] = {}
  skipped: dict[str, str] = {}
  mismatched: dict[str, dict[str, int]] = {}
  for building in (b for b in wanted if b in present):
    listing = {d: _list_dir(layout, root, building, d, ignored) for d in domains}
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
  return ScanResult(layout, sorted(files), files, skipped, missing_buildings, mismatched,
                    ignored)


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
