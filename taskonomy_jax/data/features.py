"""The TFDS schema shared by the real and the synthetic builders: one example = one view.

Each image domain is stored as its on-disk integer encoding (`encodings.py`: uint8 or uint16
arrays) in a `tfds.features.Tensor` with zlib encoding, `.npy` domains as float32 vectors, and
point_info as JSON text; `building`, `point`, `view` and the camera fields used to pair views are
plain scalars/vectors so the multi-view index can be read without decoding images.
Why tensors and not `tfds.features.Image`: Image needs TensorFlow to encode PNG, and decoding zlib
tensors in the pipeline measured faster than PNG (BUILD_NOTES.md, "TFDS builders").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from taskonomy_jax.data import encodings as enc
from taskonomy_jax.data import layout

# Every domain a builder can hold, in a fixed order (point_info is always included).
ALL_DOMAINS = (
    "rgb", "depth_zbuffer", "depth_euclidean", "mask_valid", "normal", "reshading",
    "principal_curvature", "edge_occlusion", "edge_texture", "keypoints2d", "keypoints3d",
    "segment_unsup2d", "segment_unsup25d", "segment_semantic", "class_object", "class_scene",
    "point_info")

# Named domain subsets for builder configs.
DOMAIN_SUBSETS: dict[str, tuple[str, ...]] = {
    "all": ALL_DOMAINS,
    "rgb_depth_normal": ("rgb", "depth_zbuffer", "mask_valid", "normal", "point_info"),
    "rgb": ("rgb", "point_info"),
}

INDEX_FIELDS = ("building", "point", "view", "camera_location", "camera_rotation_final",
                "point_location")


def check_domains(domains: Sequence[str]) -> tuple[str, ...]:
  """Validates a domain list; returns it in canonical order with point_info added."""
  unknown = [d for d in domains if d not in ALL_DOMAINS]
  if unknown:
    raise ValueError(f"unknown domains {unknown}; accepted: {', '.join(ALL_DOMAINS)}")
  wanted = set(domains) | {"point_info"}
  return tuple(d for d in ALL_DOMAINS if d in wanted)


def features(domains: Sequence[str], resolution: int) -> tfds.features.FeaturesDict:
  """The FeaturesDict of one view with `domains` at `resolution`."""
  spec: dict[str, Any] = {
      "building": tfds.features.Text(),
      "point": tfds.features.Scalar(np.int32),
      "view": tfds.features.Scalar(np.int32),
      "camera_location": tfds.features.Tensor(shape=(3,), dtype=np.float32),
      "camera_rotation_final": tfds.features.Tensor(shape=(3,), dtype=np.float32),
      "point_location": tfds.features.Tensor(shape=(3,), dtype=np.float32),
  }
  for d in check_domains(domains):
    e = enc.get(d)
    if d == "point_info":
      spec[d] = tfds.features.Text(doc="the view's point_info JSON")
    elif e.kind == "npy":
      spec[d] = tfds.features.Tensor(shape=e.stored_shape(resolution), dtype=np.float32)
    else:
      spec[d] = tfds.features.Tensor(shape=e.stored_shape(resolution),
                                     dtype=np.dtype(e.stored_dtype), encoding="zlib")
  return tfds.features.FeaturesDict(spec)


def example(key: layout.ViewKey, stored: Mapping[str, Any], domains: Sequence[str]
            ) -> dict[str, Any]:
  """A TFDS example from a view's stored domains (`point_info` as a dict)."""
  info = enc.decode_point_info(stored["point_info"])
  ex: dict[str, Any] = {
      "building": key.building, "point": np.int32(key.point), "view": np.int32(key.view),
      "camera_location": layout.as_float_vector(info.get("camera_location"), 3),
      "camera_rotation_final": layout.as_float_vector(info.get("camera_rotation_final"), 3),
      "point_location": layout.as_float_vector(info.get("point_location"), 3),
  }
  for d in check_domains(domains):
    ex[d] = layout.point_info_json(info) if d == "point_info" else stored[d]
  return ex


def example_key(key: layout.ViewKey) -> str:
  """The TFDS example key: stable across the plain and Beam paths."""
  return str(key)


def stored_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
  """A record read back through `tfds.data_source` -> domain -> stored form.

  point_info stays JSON bytes (decoded by the targets that need it: most tasks do not).
  """
  return {d: record[d] for d in ALL_DOMAINS if d in record}


def record_key(record: Mapping[str, Any]) -> layout.ViewKey:
  building = record["building"]
  if isinstance(building, bytes):
    building = building.decode("utf-8")
  return layout.ViewKey(str(building), int(record["point"]), int(record["view"]))
