"""Procedural textures (albedo) and lighting: what turns hits into `rgb` and `reshading`.

Textures are evaluated on the 3D hit point, with 2D surface coordinates taken from the two world
axes least aligned with the normal (planar projection per face), so a pattern sits still on a
surface when the camera moves: RGB is consistent across views, as a real scan's texture is.
"""

from __future__ import annotations

import numpy as np

from taskonomy_jax.world.scene import Building

AMBIENT = 0.18
# The drift's waves are the material's grain waves (`Materials.noise`) slowed to periods of
# 1.5-6 m, so the drift needs no random draws of its own: the buildings' geometry, and every
# domain not computed from the image, stay as they are without it.
DRIFT_SLOWDOWN = 0.12


def _surface_uv(p: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """2D coordinates on the surface: drop the world axis most aligned with the normal."""
  a = np.argmax(np.abs(n), axis=-1)
  u = np.where(a == 0, p[:, 1], p[:, 0])
  v = np.where(a == 2, p[:, 1], p[:, 2])
  return u, v


def _hash(i: np.ndarray, j: np.ndarray) -> np.ndarray:
  """A cheap deterministic per-cell random number in [0, 1) from integer cell coordinates."""
  h = np.sin(i * 127.1 + j * 311.7) * 43758.5453
  return h - np.floor(h)


def drift_factor(waves: np.ndarray, p: np.ndarray, drift: float) -> np.ndarray:
  """(N, 3) albedo multipliers `1 + drift * sin(.)` at points p (N, 3), one slow plane wave per
  colour channel from the point's material grain waves `waves` (N, 3, 4)
  (`WorldConfig.albedo_drift`)."""
  phase = np.einsum("nkc,nc->nk", waves[..., :3] * DRIFT_SLOWDOWN, p) + 1.7 * waves[..., 3]
  return 1.0 + drift * np.sin(phase)


def albedo(bld: Building, p: np.ndarray, n: np.ndarray, material: np.ndarray,
           drift: float = 0.0) -> np.ndarray:
  """Albedo (N, 3) in [0, 1] at hit points p (N, 3) with normals n (N, 3) of `material` (N,);
  `drift`: `drift_factor`'s contrast (0: the materials' patterns alone)."""
  m = bld.materials
  c1, c2 = m.color1[material], m.color2[material]
  pattern, scale, angle = m.pattern[material], m.scale[material], m.angle[material]
  u0, v0 = _surface_uv(p, n)
  ca, sa = np.cos(angle), np.sin(angle)
  u = (ca * u0 - sa * v0) * scale
  v = (sa * u0 + ca * v0) * scale
  waves = m.noise[material]                                   # (N, 3, 4)
  grain = np.sin(np.einsum("nkc,nc->nk", waves[..., :3], p) + waves[..., 3]).mean(axis=1)
  mix = np.zeros(len(p))
  sel = pattern == 1                                          # stripes
  mix[sel] = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * u[sel]))
  sel = pattern == 2                                          # checker tiles with grout
  cu, cv = np.floor(u[sel]), np.floor(v[sel])
  fu, fv = u[sel] - cu, v[sel] - cv
  grout = (np.minimum(fu, 1 - fu) < 0.03) | (np.minimum(fv, 1 - fv) < 0.03)
  mix[sel] = np.where(grout, 0.5, (cu + cv) % 2)
  sel = pattern == 3                                          # planks with grain
  row = np.floor(v[sel])
  mix[sel] = 0.6 * _hash(row, 3.0) + 0.4 * (0.5 + 0.5 * np.sin(u[sel] * 9 + 4 * grain[sel]))
  mix[sel] = np.where(v[sel] - row < 0.04, 1.0, mix[sel])
  sel = pattern == 4                                          # bricks with mortar
  row = np.floor(v[sel])
  uu = u[sel] * 0.5 + 0.5 * (row % 2)
  mortar = ((v[sel] - row) < 0.08) | ((uu - np.floor(uu)) < 0.04)
  mix[sel] = np.where(mortar, 1.0, 0.3 * _hash(np.floor(uu), row))
  sel = pattern == 5                                          # blobs (marble / foliage)
  blob = np.sin(u[sel] * 1.7 + 2 * grain[sel]) * np.sin(v[sel] * 2.3 - grain[sel])
  mix[sel] = (blob > 0.1).astype(float)
  sel = pattern == 6                                          # dots
  du, dv = u[sel] - np.round(u[sel]), v[sel] - np.round(v[sel])
  mix[sel] = (du * du + dv * dv < 0.09).astype(float)
  col = c1 * (1 - mix[:, None]) + c2 * mix[:, None]
  col *= (1.0 + 0.08 * grain)[:, None]
  if drift:
    col *= drift_factor(waves, p, drift)
  return np.clip(col, 0.0, 1.0)


def irradiance(bld: Building, p: np.ndarray, n: np.ndarray, rooms: np.ndarray) -> np.ndarray:
  """Diffuse light (N, 3) at points p with normals n from the lights of the point's room.

  Lambert with inverse-square falloff (softened), no shadows: light does not leak through walls
  because a point only sees its own room's lights.
  """
  out = np.full((len(p), 3), AMBIENT)
  for pos, power, room in zip(bld.light_pos, bld.light_power, bld.light_room, strict=True):
    sel = rooms == room
    if not sel.any():
      continue
    to = pos - p[sel]
    dist2 = np.sum(to * to, axis=1)
    lam = np.maximum(np.sum(n[sel] * to, axis=1), 0) / np.sqrt(dist2)
    out[sel] += lam[:, None] * power[None] * (2.5 / (1.0 + dist2))[:, None]
  return out


def tone_map(radiance: np.ndarray) -> np.ndarray:
  """Linear radiance -> display RGB in [0, 1] (soft exposure curve, then gamma 2.2)."""
  return (1.0 - np.exp(-1.2 * radiance)) ** (1 / 2.2)
