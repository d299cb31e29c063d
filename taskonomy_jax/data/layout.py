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

The root may be any path `etils.epath` reads (a local folder, gs://, s3://, a file:// URL): the
index is built from one listing per folder (`Path.walk`, no stat per file), and
`scan(..., check=False)` stops there, reading no file, for a Beam build whose workers check and
read each view themselves (`read_checked_view`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import io
import json
import os
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from etils import epath
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
_BUFFER_RE = re.compile(r"<_io\.BytesIO object at 0x[0-9a-f]+>")


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
  files: dict[ViewKey, dict[str, epath.Path]]
  skipped: dict[str, str]
  missing_buildings: list[str]
  mismatched_buildings: dict[str, dict[str, int]]
  ignored: dict[str, str] = dataclasses.field(default_factory=dict)

  def skip(self, skipped: Mapping[str, str]) -> None:
    """Moves the views named in `skipped` (view as text -> reason) from `views` to `skipped`:
    the reasons a reader found where it read the views (`read_checked_view`)."""
    self.views = [k for k in self.views if str(k) not in skipped]
    self.files = {k: v for k, v in self.files.items() if str(k) not in skipped}
    self.skipped.update(skipped)

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


def path_for(root: str | os.PathLike, layout: Layout, key: ViewKey, domain: str
             ) -> epath.Path:
  """Where a view's file of `domain` lives in `layout`."""
  root = files_lib.as_epath(root)
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


def _entries(folder: epath.Path) -> tuple[list[str], list[str]] | None:
  """(folder names, file names) in `folder`, sorted, from one listing; None if it is not a
  folder. Why `walk`: on an object store it lists names and kinds in one request, where
  `iterdir` + `is_dir` would cost a request per file (millions for the full release)."""
  top = next(folder.walk(), None)
  if top is None:
    return None
  return sorted(top[1]), sorted(top[2])


def _subdirs(folder: epath.Path) -> list[str]:
  return (_entries(folder) or ([], []))[0]


def _shown(path: epath.Path, root: epath.Path) -> str:
  """`path` relative to `root`, printable: bytes that are not UTF-8 written as `\\xNN`."""
  return os.fsencode(path.relative_to(root)).decode("utf-8", "backslashreplace")


def detect_layout(root: str | os.PathLike) -> Layout:
  """Which layout `root` (a local path or a URL epath reads) is in.

  Raises:
    LayoutError: `root` is missing, or in neither layout; the message lists what is there.
  """
  root = files_lib.as_epath(root)
  top = _entries(root)
  if top is None:
    raise LayoutError(f"manual directory {root} does not exist or is not a directory")
  subdirs = {name: _subdirs(root / name) for name in top[0]}
  if any(_known_dir(name) and inner for name, inner in subdirs.items()):
    return "domain"
  if any(any(_known_dir(q) for q in inner) for inner in subdirs.values()):
    return "building"
  seen = ", ".join(list(subdirs)[:8]) or "no folders"
  raise LayoutError(
      f"{root} is in neither Taskonomy layout: expected {{building}}/{{domain}}/point_*_view_*_"
      f"domain_*.png (original release) or {{domain}}/{{building}}/point_*... (omnidata); "
      f"found {seen}. Known domain folders: {', '.join(sorted(enc.ENCODINGS))}, points.")


def _list_dir(layout: Layout, root: epath.Path, building: str, domain: str,
              ignored: dict[str, str] | None = None) -> dict[tuple[int, int], epath.Path]:
  """(point, view) -> file of `domain` in `building`; anything else found there is added to
  `ignored` with the reason."""
  folders = [_domain_dir_name(layout, domain)]
  if domain == "point_info":  # accept either folder name in either layout
    folders = list(dict.fromkeys([folders[0], "points", "point_info"]))
  out: dict[tuple[int, int], epath.Path] = {}
  notes: dict[str, str] = {}
  for folder in folders:
    d = root / building / folder if layout == "building" else root / folder / building
    entries = _entries(d)
    if entries is None:
      continue
    dirs, names = entries
    for name in dirs:
      notes[_shown(d / name, root)] = (f"stray_folder: a folder inside the {folder} folder"
                                       if _decodable(name) else "undecodable_name: not UTF-8")
    for name in names:
      p = d / name
      if not _decodable(p.name):
        notes[_shown(p, root)] = "undecodable_name: not UTF-8"
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


def _building_dirs(root: epath.Path, layout: Layout) -> list[epath.Path]:
  """Every building folder (in the domain layout, one per domain folder holding it)."""
  if layout == "building":
    return [root / name for name in _subdirs(root)
            if any(_known_dir(q) for q in _subdirs(root / name))]
  return [root / name / b for name in _subdirs(root) if _known_dir(name)
          for b in _subdirs(root / name)]


def list_buildings(root: str | os.PathLike, layout: Layout) -> list[str]:
  """Every building that has at least one domain folder (names that are not UTF-8 left out:
  `scan` reports them)."""
  return sorted({p.name for p in _building_dirs(files_lib.as_epath(root), layout)
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


def check_file(path: str | os.PathLike, domain: str, resolution: int | None) -> str | None:
  """Validity check of one file; None if good, else the reason (`reason: detail`)."""
  try:
    data = files_lib.as_epath(path).read_bytes()
  except OSError as e:
    return f"unreadable:{domain}: {e}"
  return check_bytes(data, domain, resolution)


def check_bytes(data: bytes, domain: str, resolution: int | None) -> str | None:
  """`check_file` on a file's bytes already read."""
  kind = enc.get(domain).kind
  if kind == "png":
    try:
      with Image.open(io.BytesIO(data)) as im:
        size = im.size
        im.verify()  # chunk CRCs and structure, without decoding pixels
    except Exception as e:  # PIL raises many types for broken files
      # Without the buffer's address Pillow names: the same file gives the same report.
      return f"corrupt_png:{domain}: {type(e).__name__}: {_BUFFER_RE.sub('bytes', str(e))}"
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


def scan(root: str | os.PathLike, domains: Sequence[str],
         buildings: Iterable[str] | None = None, *, resolution: int | None = None,
         layout: Layout | None = None, num_threads: int = 8, progress: bool = True,
         check: bool = True) -> ScanResult:
  """Indexes and checks the views of `buildings` (default: all) for `domains` under `root`.

  A view is kept only if every requested domain has a good file for it; otherwise it is skipped
  with the reason (`missing:{domain}`, `corrupt_png:{domain}: ...`, `bad_point_info: ...`,
  `wrong_size:{domain}: ...`, `corrupt_npy:{domain}: ...`). Entries of the scanned folders that
  are no view's file are listed in `ignored` (`stray_file: ...`, `stray_folder: ...`,
  `undecodable_name: ...`).

  With `check=False` only the listing is done (no file is opened): the views with a file for
  every domain are returned unchecked, for a reader that checks each view where it reads it
  (`read_checked_view`) and adds its skips to the result with `skip`.
  """
  root = files_lib.as_epath(root)
  for d in domains:
    enc.get(d)  # unknown domain: clear error
  layout = layout or detect_layout(root)
  ignored = {_shown(p, root): "undecodable_name: a building folder whose name is not UTF-8"
             for p in _building_dirs(root, layout) if not _decodable(p.name)}
  present = set(list_buildings(root, layout))
  wanted = sorted(present) if buildings is None else list(buildings)
  missing_buildings = [b for b in wanted if b not in present]
  files: dict[ViewKey, dict[str, epath.Path]] = {}
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

  def check_view(key: ViewKey) -> tuple[ViewKey, str | None]:
    for d, path in files[key].items():
      reason = check_file(path, d, resolution)
      if reason:
        return key, reason
    return key, None

  keys = sorted(files) if check else []
  with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
    results = list(tqdm(pool.map(check_view, keys), total=len(keys), disable=not progress,
                        desc=f"checking views in {root.name}", leave=False))
  for key, reason in results:
    if reason:
      skipped[str(key)] = reason
      del files[key]
  return ScanResult(layout, sorted(files), files, skipped, missing_buildings, mismatched,
                    ignored)


def read_view(files: Mapping[str, str | os.PathLike]) -> dict[str, Any]:
  """A view's files -> domain -> stored form (validated: raises EncodingError if bad)."""
  out = {}
  for domain, path in files.items():
    try:
      out[domain] = enc.read_stored(domain, files_lib.as_epath(path).read_bytes())
    except enc.EncodingError as e:
      raise enc.EncodingError(f"{path}: {e}") from e
  return out


def read_checked_view(files: Mapping[str, str | os.PathLike], resolution: int | None
                      ) -> tuple[str | None, dict[str, Any] | None]:
  """(None, domain -> stored form) for a good view, (the reason `scan` would give, None) for a
  bad one; each file is read once. What a Beam worker runs on a view `scan(check=False)`
  listed, so that the driver opens no file."""
  data = {}
  for domain, path in files.items():
    try:
      data[domain] = files_lib.as_epath(path).read_bytes()
    except OSError as e:
      return f"unreadable:{domain}: {e}", None
    reason = check_bytes(data[domain], domain, resolution)
    if reason:
      return reason, None
  return None, {d: enc.read_stored(d, b) for d, b in data.items()}


def write_view(root: os.PathLike, layout: Layout, key: ViewKey, stored: Mapping[str, Any]
               ) -> list[epath.Path]:
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
