"""The real Taskonomy dataset's on-disk encodings: one place, encode and decode per domain.

Every file of the released dataset is `point_{p}_view_{v}_domain_{domain}.{ext}`. This module
turns the *physical* form of a domain (what the procedural world renders, see
`taskonomy_jax.world.DOMAINS`) into the *stored* form (the integer array a PNG holds, the logits an
`.npy` holds, the dict a JSON holds) and back. The TFDS builders store the stored form, so the same
decoders serve files on disk and records in array_record.

Facts (sources: the dataset README `data/README.md` and `code/lib/data/load_ops.py` of
StanfordVL/taskonomy; `omnidata_tools/torch/data/{transforms,task_configs}.py` of omnidata-tools):

- depth_zbuffer, depth_euclidean: 16-bit grayscale PNG in units of 1/512 m (max range 128 m);
  65535 marks pixels without depth (the original masks `>= 64500` to absorb resampling).
- normal: 8-bit RGB, `[0, 255] <-> [-1, 1]` ("127-centred"), camera frame in the convention of
  2D-3D-S / NYU that Taskonomy and omnidata use: red = x (right), green = y (*down*), blue = z
  (toward the camera; a wall facing the camera is (128, 128, 255)). The world's physical normals
  are OpenGL (y up), so the encoder flips y (`NORMAL_AXIS_SIGN`) and the decoder flips it back.
- reshading: 8-bit grayscale, `[0, 255] <-> [0, 1]`.
- principal_curvature: 8-bit RGB, the two principal curvatures in channels 0 and 1, zero
  curvature at 128 (the original's `curvature_preprocess_gaussian` subtracts 128). The dataset
  never documents the metric scale; we use `CURVATURE_CODES_PER_INV_METRE` codes per 1/m.
  Pixels without geometry are (0, 0, 0) (omnidata's `mask_val` 0.0 for this domain).
- edge_texture, edge_occlusion, keypoints2d, keypoints3d: 16-bit grayscale PNG. omnidata reads
  them through torchvision as *signed* 16-bit (`value / 65535`, codes >= 32768 wrap negative)
  and rescales edge_texture by its `clamp_to` max 0.25, so we keep codes <= 32767: edge_texture
  [0, 1] <-> [0, 0.25 * 65535] (omnidata reads back [0, 1]); keypoint responses [0, 1] <->
  [0, 32767]; occlusion-edge strength (>= 0) at `EDGE_OCCLUSION_CODES_PER_UNIT` codes per unit,
  saturating at 32767. The released data documents none of these scales.
- segment_unsup2d, segment_unsup25d: 16-bit grayscale PNG of segment ids (ids can exceed 255).
- segment_semantic: 8-bit grayscale PNG; 0 = "uncertain" (masked out), 1 = background,
  2..17 = the 16 COCO classes of `COCO_SELECTED_CLASSES`. Training label = stored - 1.
- mask_valid: 8-bit grayscale PNG, 255 where depth is defined, 0 elsewhere (omnidata: mask_val 0).
- class_object: `.npy` of 1000 ImageNet logits (the original applies a softmax when loading).
- class_scene: `.npy` of 365 Places365 probabilities (the original keeps the 63 "workspace and
  home" classes of `PLACES_WORKSPACE_AND_HOME` and renormalises).
- point_info: JSON, one dict per view (camera pose, field of view, point location, room box, ...).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from PIL import Image

DEPTH_UNITS_PER_METRE = 512.0
DEPTH_INVALID = 65535
DEPTH_MAX_METRES = (DEPTH_INVALID - 1) / DEPTH_UNITS_PER_METRE  # ~128 m, the README's max range
# The original depth tasks mask raw values >= 64500 ("roughly max - 1000", for interpolation).
DEPTH_MASK_THRESHOLD = 64500
CURVATURE_ZERO = 128
CURVATURE_CODES_PER_INV_METRE = 8.0  # our choice: +-15.9 1/m fit in 8 bits (radius >= 6.3 cm)
INT16_SAFE_MAX = 32767  # largest 16-bit code that omnidata's (torchvision's) int16 read keeps
EDGE_TEXTURE_CODES_PER_UNIT = 0.25 * 65535  # omnidata: value / 65535 / 0.25 gives [0, 1] back
KEYPOINT_CODES_PER_UNIT = float(INT16_SAFE_MAX)
EDGE_OCCLUSION_CODES_PER_UNIT = 4096.0  # our choice: strengths up to 8 before saturating
UINT16_MAX = 65535

# `taskbank/assets/web_assets/pseudosemantics/coco_selected_classes.txt`: label 0 is background.
COCO_SELECTED_CLASSES = (
    "background", "bottle", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase")
NUM_SEMANTIC_CLASSES = len(COCO_SELECTED_CLASSES)  # 17

# Indices (into Places365) of the 63 "workspace and home" classes the original scene task keeps
# (`class_places_workspace_and_home` in load_ops.py).
PLACES_WORKSPACE_AND_HOME = (
    3, 23, 25, 26, 28, 37, 43, 45, 51, 52, 56, 61, 63, 88, 89, 93, 95, 100, 102, 106, 121, 124,
    126, 129, 131, 133, 135, 156, 165, 176, 177, 179, 182, 203, 208, 215, 217, 228, 240, 241, 244,
    246, 248, 253, 255, 264, 269, 280, 281, 282, 285, 298, 303, 311, 317, 318, 328, 332, 343, 346,
    352, 358, 363)

FileKind = Literal["png", "npy", "json"]
FILENAME_RE = re.compile(
    r"^point_(?P<point>\d+)_view_(?P<view>\d+)_domain_(?P<domain>\w+?)\.(?P<ext>png|npy|json)$")


class EncodingError(ValueError):
  """A stored file or array that does not follow the domain's encoding."""


@dataclasses.dataclass(frozen=True)
class DomainEncoding:
  """How one domain is stored.

  Attributes:
    name: the domain (folder) name of the released dataset.
    kind: file kind (`png`, `npy`, `json`).
    stored_dtype: numpy dtype of the stored array (`uint8`, `uint16`, `float32`; None for JSON).
    stored_channels: channels of the stored PNG (1 = grayscale, 3 = RGB), or the vector length
      of an `.npy`; 0 for JSON.
    encode: physical form -> stored form.
    decode: stored form -> physical form.
  """

  name: str
  kind: FileKind
  stored_dtype: str | None
  stored_channels: int
  encode: Callable[..., Any]
  decode: Callable[[Any], Any]

  def stored_shape(self, resolution: int) -> tuple[int, ...]:
    """Shape of the stored array for square images of `resolution` pixels."""
    if self.kind == "png":
      side = (resolution, resolution)
      return side if self.stored_channels == 1 else (*side, self.stored_channels)
    if self.kind == "npy":
      return (self.stored_channels,)
    return ()


def _to_uint(x: np.ndarray, scale: float, dtype: type, offset: float = 0.0) -> np.ndarray:
  info = np.iinfo(dtype)
  return np.clip(np.rint(np.asarray(x, np.float64) * scale + offset), info.min,
                 info.max).astype(dtype)


# --- per-domain encoders and decoders (physical <-> stored) -------------------------------------

def encode_rgb(rgb: np.ndarray) -> np.ndarray:
  """(H, W, 3) float in [0, 1] -> (H, W, 3) uint8."""
  return _to_uint(rgb, 255.0, np.uint8)


def decode_rgb(stored: np.ndarray) -> np.ndarray:
  """(H, W, 3) uint8 -> (H, W, 3) float32 in [0, 1]."""
  return np.asarray(stored, np.float32) / 255.0


def encode_depth(metres: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
  """(H, W) float metres (+ bool valid mask) -> (H, W) uint16 in 1/512 m, 65535 = invalid.

  Depths beyond the 128 m range saturate at 65534 (still valid), as in the released data.
  """
  metres = np.asarray(metres, np.float64)
  out = np.clip(np.rint(metres * DEPTH_UNITS_PER_METRE), 0, DEPTH_INVALID - 1).astype(np.uint16)
  invalid = ~np.isfinite(metres)
  if valid is not None:
    invalid |= ~np.asarray(valid, bool)
  out[invalid] = DEPTH_INVALID
  return out


def decode_depth(stored: np.ndarray) -> np.ndarray:
  """(H, W) uint16 -> (H, W) float32 metres, 0 where invalid (use `depth_valid` for the mask)."""
  stored = np.asarray(stored)
  return np.where(stored == DEPTH_INVALID, 0.0,
                  stored.astype(np.float32) / DEPTH_UNITS_PER_METRE).astype(np.float32)


def depth_valid(stored: np.ndarray) -> np.ndarray:
  """(H, W) uint16 depth -> (H, W) bool, True where depth is defined (< 64500 as the original)."""
  return np.asarray(stored) < DEPTH_MASK_THRESHOLD


# Physical (OpenGL: x right, y up, z to the camera) -> stored (x right, y down, z to the camera).
NORMAL_AXIS_SIGN = np.array([1.0, -1.0, 1.0], np.float32)


def encode_normal(normal: np.ndarray) -> np.ndarray:
  """(H, W, 3) unit vectors (OpenGL camera frame) -> (H, W, 3) uint8, y flipped to "down"."""
  return _to_uint(np.asarray(normal) * NORMAL_AXIS_SIGN, 127.5, np.uint8, offset=127.5)


def decode_normal(stored: np.ndarray) -> np.ndarray:
  """(H, W, 3) uint8 -> (H, W, 3) float32 unit vectors in the OpenGL camera frame (y up)."""
  return (np.asarray(stored, np.float32) / 127.5 - 1.0) * NORMAL_AXIS_SIGN


def encode_unit_gray8(x: np.ndarray) -> np.ndarray:
  """(H, W) float in [0, 1] -> (H, W) uint8 (reshading)."""
  return _to_uint(x, 255.0, np.uint8)


def decode_unit_gray8(stored: np.ndarray) -> np.ndarray:
  """(H, W) uint8 -> (H, W) float32 in [0, 1]."""
  return np.asarray(stored, np.float32) / 255.0


def _scaled16(codes_per_unit: float, name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
  """Encoder/decoder pair: float (H, W) >= 0 <-> uint16 codes `x * codes_per_unit`, <= 32767."""
  def encode(x: np.ndarray) -> np.ndarray:
    codes = np.rint(np.asarray(x, np.float64) * codes_per_unit)
    return np.clip(codes, 0, INT16_SAFE_MAX).astype(np.uint16)

  def decode(stored: np.ndarray) -> np.ndarray:
    return np.asarray(stored, np.float32) / np.float32(codes_per_unit)

  encode.__doc__ = f"(H, W) float {name} -> (H, W) uint16 at {codes_per_unit:g} codes per unit."
  decode.__doc__ = f"(H, W) uint16 -> (H, W) float32 {name}."
  return encode, decode


encode_edge_texture, decode_edge_texture = _scaled16(EDGE_TEXTURE_CODES_PER_UNIT, "edge strength")
encode_keypoints, decode_keypoints = _scaled16(KEYPOINT_CODES_PER_UNIT, "keypoint response")
encode_edge_occlusion, decode_edge_occlusion = _scaled16(EDGE_OCCLUSION_CODES_PER_UNIT,
                                                         "occlusion-edge strength")


def encode_curvature(k: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
  """(H, W, 2) principal curvatures (1/m, k1 >= k2) -> (H, W, 3) uint8, 128 = zero.

  Channel 2 is 128 where there is geometry; invalid pixels are (0, 0, 0). Valid codes are kept in
  [1, 255] so a valid pixel can never read as invalid.
  """
  k = np.asarray(k, np.float64)
  codes = np.clip(np.rint(k * CURVATURE_CODES_PER_INV_METRE + CURVATURE_ZERO), 1, 255)
  out = np.concatenate([codes, np.full((*k.shape[:-1], 1), CURVATURE_ZERO)], -1).astype(np.uint8)
  if valid is not None:
    out[~np.asarray(valid, bool)] = 0
  return out


def decode_curvature(stored: np.ndarray) -> np.ndarray:
  """(H, W, 3) uint8 -> (H, W, 2) float32 principal curvatures in 1/m (0 where invalid)."""
  stored = np.asarray(stored)
  k = (stored[..., :2].astype(np.float32) - CURVATURE_ZERO) / CURVATURE_CODES_PER_INV_METRE
  return np.where(curvature_valid(stored)[..., None], k, 0.0).astype(np.float32)


def curvature_valid(stored: np.ndarray) -> np.ndarray:
  """(H, W, 3) uint8 -> (H, W) bool, False where all channels are 0."""
  return np.any(np.asarray(stored) != 0, axis=-1)


def encode_segment_ids(ids: np.ndarray) -> np.ndarray:
  """(H, W) int segment ids -> (H, W) uint16."""
  ids = np.asarray(ids)
  if ids.size and (ids.min() < 0 or ids.max() > UINT16_MAX):
    raise EncodingError(f"segment ids must lie in [0, {UINT16_MAX}], got "
                        f"[{ids.min()}, {ids.max()}]")
  return ids.astype(np.uint16)


def decode_segment_ids(stored: np.ndarray) -> np.ndarray:
  """(H, W) uint16 -> (H, W) int32."""
  return np.asarray(stored).astype(np.int32)


def encode_semantic(labels: np.ndarray, labelled: np.ndarray | None = None) -> np.ndarray:
  """(H, W) int labels in [0, 17) (+ bool mask of labelled pixels) -> (H, W) uint8 (label + 1).

  Unlabelled ("uncertain") pixels are stored as 0.
  """
  labels = np.asarray(labels)
  if labels.size and (labels.min() < 0 or labels.max() >= NUM_SEMANTIC_CLASSES):
    raise EncodingError(f"semantic labels must lie in [0, {NUM_SEMANTIC_CLASSES}), got "
                        f"[{labels.min()}, {labels.max()}]")
  out = (labels + 1).astype(np.uint8)
  if labelled is not None:
    out[~np.asarray(labelled, bool)] = 0
  return out


def decode_semantic(stored: np.ndarray) -> np.ndarray:
  """(H, W) uint8 -> (H, W) int32 labels in [0, 17) (uncertain pixels read as background)."""
  stored = np.asarray(stored).astype(np.int32)
  return np.maximum(stored - 1, 0)


def semantic_labelled(stored: np.ndarray) -> np.ndarray:
  """(H, W) uint8 -> (H, W) bool, False on "uncertain" pixels (stored 0)."""
  return np.asarray(stored) > 0


def encode_mask(mask: np.ndarray) -> np.ndarray:
  """(H, W) bool -> (H, W) uint8 in {0, 255}."""
  return np.where(np.asarray(mask, bool), 255, 0).astype(np.uint8)


def decode_mask(stored: np.ndarray) -> np.ndarray:
  """(H, W) uint8 -> (H, W) bool."""
  return np.asarray(stored) > 127


def softmax(logits: np.ndarray) -> np.ndarray:
  """(..., C) logits -> (..., C) float32 probabilities."""
  logits = np.asarray(logits, np.float64)
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return (e / e.sum(-1, keepdims=True)).astype(np.float32)


# Probabilities below this are stored as this before the log (softmax of the logits gives the
# distribution back to within ~1e-7 of each entry).
_MIN_PROB = 1e-12


def encode_class_object(probs: np.ndarray) -> np.ndarray:
  """(1000,) probabilities -> (1000,) float32 logits (log-probabilities)."""
  probs = np.asarray(probs, np.float64)
  return np.log(np.maximum(probs, _MIN_PROB)).astype(np.float32)


def decode_class_object(stored: np.ndarray) -> np.ndarray:
  """(1000,) logits -> (1000,) float32 probabilities (softmax, as the original loader)."""
  return softmax(stored)


def encode_class_scene(probs: np.ndarray) -> np.ndarray:
  """(365,) Places365 probabilities -> (365,) float32."""
  return np.asarray(probs, np.float32)


def decode_class_scene(stored: np.ndarray) -> np.ndarray:
  """(365,) float32 -> (365,) float32 probabilities."""
  return np.asarray(stored, np.float32)


def scene_63(places365: np.ndarray) -> np.ndarray:
  """(..., 365) Places365 probabilities -> (..., 63) renormalised "workspace and home" classes."""
  sel = np.asarray(places365, np.float64)[..., list(PLACES_WORKSPACE_AND_HOME)]
  total = sel.sum(-1, keepdims=True)
  uniform = np.full_like(sel, 1.0 / sel.shape[-1])
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(total > 0, sel / np.where(total > 0, total, 1.0), uniform).astype(np.float32)


def encode_point_info(info: dict[str, Any]) -> dict[str, Any]:
  """A point_info dict -> the JSON-ready dict (numpy values become lists / Python scalars)."""
  return json.loads(json.dumps(info, default=_json_default))


def decode_point_info(stored: Any) -> dict[str, Any]:
  """A point_info dict, JSON text or JSON bytes -> dict."""
  if isinstance(stored, dict):
    return stored
  if isinstance(stored, bytes):
    stored = stored.decode("utf-8")
  try:
    info = json.loads(stored)
  except json.JSONDecodeError as e:
    raise EncodingError(f"point_info is not valid JSON: {e}") from e
  if not isinstance(info, dict):
    raise EncodingError(f"point_info must be a JSON object, got {type(info).__name__}")
  return info


def _json_default(x: Any) -> Any:
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, np.generic):
    return x.item()
  raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _enc(name: str, kind: FileKind, dtype: str | None, channels: int, encode: Callable[..., Any],
         decode: Callable[[Any], Any]) -> DomainEncoding:
  return DomainEncoding(name, kind, dtype, channels, encode, decode)


ENCODINGS: dict[str, DomainEncoding] = {e.name: e for e in (
    _enc("rgb", "png", "uint8", 3, encode_rgb, decode_rgb),
    _enc("depth_zbuffer", "png", "uint16", 1, encode_depth, decode_depth),
    _enc("depth_euclidean", "png", "uint16", 1, encode_depth, decode_depth),
    _enc("mask_valid", "png", "uint8", 1, encode_mask, decode_mask),
    _enc("normal", "png", "uint8", 3, encode_normal, decode_normal),
    _enc("reshading", "png", "uint8", 1, encode_unit_gray8, decode_unit_gray8),
    _enc("principal_curvature", "png", "uint8", 3, encode_curvature, decode_curvature),
    _enc("edge_occlusion", "png", "uint16", 1, encode_edge_occlusion, decode_edge_occlusion),
    _enc("edge_texture", "png", "uint16", 1, encode_edge_texture, decode_edge_texture),
    _enc("keypoints2d", "png", "uint16", 1, encode_keypoints, decode_keypoints),
    _enc("keypoints3d", "png", "uint16", 1, encode_keypoints, decode_keypoints),
    _enc("segment_unsup2d", "png", "uint16", 1, encode_segment_ids, decode_segment_ids),
    _enc("segment_unsup25d", "png", "uint16", 1, encode_segment_ids, decode_segment_ids),
    _enc("segment_semantic", "png", "uint8", 1, encode_semantic, decode_semantic),
    _enc("class_object", "npy", "float32", 1000, encode_class_object, decode_class_object),
    _enc("class_scene", "npy", "float32", 365, encode_class_scene, decode_class_scene),
    _enc("point_info", "json", None, 0, encode_point_info, decode_point_info),
)}

# The largest code each image domain's encoder writes: training targets rescale [0, it] to
# [-1, 1], as the original rescaled the stored image's range (`resize_rescale_image`).
FULL_SCALE_CODE = {"rgb": 255, "normal": 255, "reshading": 255,
                   "edge_texture": round(EDGE_TEXTURE_CODES_PER_UNIT),
                   "keypoints2d": INT16_SAFE_MAX, "keypoints3d": INT16_SAFE_MAX,
                   "edge_occlusion": INT16_SAFE_MAX}

# Domains whose encoder also takes the view's validity mask (depth mask_valid / labelled mask).
MASKED_ENCODERS = frozenset({"depth_zbuffer", "depth_euclidean", "principal_curvature"})


def get(domain: str) -> DomainEncoding:
  """The encoding of `domain`; a clear error names the accepted domains."""
  try:
    return ENCODINGS[domain]
  except KeyError:
    raise EncodingError(f"unknown domain {domain!r}; known domains: "
                        f"{', '.join(sorted(ENCODINGS))}") from None


def encode_view(domains: dict[str, np.ndarray], point_info: dict[str, Any] | None = None,
                *, names: tuple[str, ...] | None = None) -> dict[str, Any]:
  """Physical domains of one view (the world's `view.domains`) -> stored forms.

  Args:
    domains: domain name -> physical array; `mask_valid` (H, W) bool is used to mark invalid depth
      and curvature.
    point_info: the view's point_info dict (stored as a JSON-ready dict under `point_info`).
    names: which domains to encode (default: every domain given that has an encoding, and
      point_info if given).

  Returns:
    domain name -> stored array (or dict for point_info).
  """
  valid = domains.get("mask_valid")
  out: dict[str, Any] = {}
  if names is None:
    names = tuple(d for d in domains if d in ENCODINGS)
    names += ("point_info",) if point_info is not None else ()
  for name in names:
    if name == "point_info":
      if point_info is None:
        raise EncodingError("point_info requested but not given")
      out[name] = encode_point_info(point_info)
      continue
    if name not in domains:
      raise EncodingError(f"domain {name!r} missing from the view; it has {sorted(domains)}")
    enc = get(name)
    out[name] = (enc.encode(domains[name], valid) if name in MASKED_ENCODERS
                 else enc.encode(domains[name]))
  return out


# --- files -------------------------------------------------------------------------------------

def filename(point: int, view: int, domain: str) -> str:
  """`point_{p}_view_{v}_domain_{domain}.{ext}` as the released dataset names its files."""
  return f"point_{point}_view_{view}_domain_{domain}.{get(domain).kind}"


def parse_filename(name: str) -> tuple[int, int, str]:
  """`point_3_view_1_domain_rgb.png` -> (3, 1, "rgb"); EncodingError if it is not such a name."""
  m = FILENAME_RE.match(name)
  if not m:
    raise EncodingError(f"{name!r} is not a Taskonomy file name "
                        "(expected point_{p}_view_{v}_domain_{domain}.{png,npy,json})")
  return int(m["point"]), int(m["view"]), m["domain"]


def _png_mode(stored: np.ndarray) -> str:
  if stored.dtype == np.uint16:
    return "I;16"
  return "RGB" if stored.ndim == 3 else "L"


def png_bytes(stored: np.ndarray) -> bytes:
  """A stored uint8 (H, W[, 3]) or uint16 (H, W) array -> PNG bytes (lossless)."""
  stored = np.ascontiguousarray(stored)
  if stored.dtype not in (np.uint8, np.uint16) or (stored.dtype == np.uint16 and stored.ndim != 2):
    raise EncodingError(f"cannot store {stored.dtype} {stored.shape} as PNG "
                        "(accepted: uint8 (H, W) or (H, W, 3), uint16 (H, W))")
  buf = io.BytesIO()
  if stored.dtype == np.uint16:
    # Pillow writes 16-bit grayscale from "I;16" images built from raw little-endian bytes.
    Image.frombytes("I;16", stored.shape[::-1], stored.astype("<u2").tobytes()).save(
        buf, format="PNG")
  else:
    Image.fromarray(stored, _png_mode(stored)).save(buf, format="PNG", compress_level=1)
  return buf.getvalue()


def decode_png(data: bytes, domain: str | None = None) -> np.ndarray:
  """PNG bytes -> stored array (uint8 (H, W[, 3]) or uint16 (H, W)).

  With `domain`, checks the dtype and channels against the domain's encoding (an RGB image is
  reduced to its first channel for grayscale domains, and a grayscale one broadcast for RGB ones,
  since some releases store grayscale domains as RGB).

  Raises:
    EncodingError: corrupt or truncated PNG, or a dtype the domain does not use.
  """
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.load()
      arr = _pil_to_array(im)
  except (OSError, SyntaxError, ValueError) as e:
    raise EncodingError(f"corrupt PNG ({e})") from e
  if domain is None:
    return arr
  enc = get(domain)
  want = np.dtype(enc.stored_dtype)
  if arr.dtype != want:
    if want == np.uint16 and arr.dtype == np.uint8:
      raise EncodingError(f"{domain} must be a 16-bit PNG, got 8-bit")
    arr = arr.astype(want)
  if enc.stored_channels == 1 and arr.ndim == 3:
    arr = arr[..., 0]
  elif enc.stored_channels == 3 and arr.ndim == 2:
    arr = np.repeat(arr[..., None], 3, -1)
  return arr


def _pil_to_array(im: Image.Image) -> np.ndarray:
  if im.mode in ("I;16", "I;16L", "I;16B", "I"):
    arr = np.asarray(im)
    if arr.dtype != np.uint16:
      arr = arr.astype(np.uint16)
    return arr
  if im.mode in ("L", "RGB"):
    return np.asarray(im)
  if im.mode in ("RGBA", "P", "LA", "1"):
    return np.asarray(im.convert("RGB" if im.mode in ("RGBA", "P") else "L"))
  raise EncodingError(f"unsupported PNG mode {im.mode}")


def npy_bytes(stored: np.ndarray) -> bytes:
  buf = io.BytesIO()
  np.save(buf, np.asarray(stored))
  return buf.getvalue()


def decode_npy(data: bytes, domain: str | None = None) -> np.ndarray:
  """`.npy` bytes -> float32 vector, checked against the domain's length."""
  try:
    arr = np.load(io.BytesIO(data), allow_pickle=False)
  except (OSError, ValueError) as e:
    raise EncodingError(f"corrupt .npy ({e})") from e
  arr = np.asarray(arr, np.float32).reshape(-1)
  if domain is not None and arr.shape != (get(domain).stored_channels,):
    raise EncodingError(f"{domain} must hold {get(domain).stored_channels} values, got "
                        f"{arr.size}")
  return arr


def file_bytes(domain: str, stored: Any) -> bytes:
  """Stored form -> the bytes of the file the released dataset would hold."""
  kind = get(domain).kind
  if kind == "png":
    return png_bytes(stored)
  if kind == "npy":
    return npy_bytes(stored)
  return json.dumps(encode_point_info(stored), indent=1, sort_keys=True).encode("utf-8")


def read_stored(domain: str, data: bytes) -> Any:
  """File bytes -> stored form (the inverse of `file_bytes`), validating the encoding."""
  kind = get(domain).kind
  if kind == "png":
    return decode_png(data, domain)
  if kind == "npy":
    return decode_npy(data, domain)
  return decode_point_info(data)
