"""Analytic ray casting against boxes, cylinders and spheres, jitted with JAX.

The scene is three flat arrays of primitives (world frame, metres):

* boxes `(B, 6)`: axis-aligned, `(x0, y0, z0, x1, y1, z1)`;
* cylinders `(C, 6)`: `(c0, c1, a0, a1, radius, axis)`: a cylinder whose axis is the world axis
  number `axis` (0 = x, 1 = y, 2 = z), running from `a0` to `a1` along it, centred at `(c0, c1)`
  in the other two coordinates taken in increasing axis order; capped at both ends;
* spheres `(S, 4)`: `(cx, cy, cz, radius)`.

A ray hits the nearest primitive surface with `t > T_MIN`; all primitives are solid and every
camera stands outside all of them, so the first hit is an entering hit and its outward normal
faces the camera. Arrays may be padded with empty primitives (`EMPTY_BOX` etc.) so one compiled
function serves scenes of many sizes (`pad_rows`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

T_MIN = 1e-4
FAR = 1e6
EMPTY_BOX = np.array([1e7, 1e7, 1e7, -1e7, -1e7, -1e7], np.float32)  # lo > hi: never hit
EMPTY_CYLINDER = np.array([1e7, 1e7, 0.0, 0.0, 0.0, 2], np.float32)   # radius 0
EMPTY_SPHERE = np.array([1e7, 1e7, 1e7, 0.0], np.float32)
# Primitive kinds, in the order of the global primitive index: boxes, then cylinders, spheres.
KIND_BOX, KIND_CYLINDER, KIND_SPHERE = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Hits:
  """Per-ray results (numpy). N = number of rays.

  Attributes:
    t: (N,) distance along the (unit) ray to the hit; `inf` where nothing is hit.
    kind: (N,) int32 primitive kind (`KIND_*`), -1 where nothing is hit.
    index: (N,) int32 index of the hit primitive within its kind's array, -1 where none.
    normal: (N, 3) outward unit normal at the hit (world frame), zeros where none.
    cap: (N,) bool, True where a cylinder was hit on one of its flat caps.
  """

  t: np.ndarray
  kind: np.ndarray
  index: np.ndarray
  normal: np.ndarray
  cap: np.ndarray


def _components(v):
  return v[:, 0], v[:, 1], v[:, 2]


def _select(axis, x, y, z):
  """Component number `axis` (a traced scalar) of the vector given by its components."""
  return jnp.where(axis == 0, x, jnp.where(axis == 1, y, z))


_UNROLL = 4


def _unrolled_loop(body, count, carry):
  """`body(k, carry)` for k in [0, count rounded up to _UNROLL): a loop with a traced trip
  count (one compilation for every scene size), unrolled by hand; the padding rows it may
  visit past `count` are empty primitives that never hit."""
  def step(i, c):
    for j in range(_UNROLL):
      c = body(i * _UNROLL + j, c)
    return c

  return jax.lax.fori_loop(0, (count + _UNROLL - 1) // _UNROLL, step, carry)


def _scan_boxes(o, inv, boxes, count, carry):
  """Running nearest hit over boxes, one box per scan step, rays as structure of arrays.

  Looping over primitives with (N,)-vectors keeps the work fused and in cache; the (N, B)
  broadcast form was ~20x slower on CPU (BUILD_NOTES.md).
  """
  ox, oy, oz = _components(o)
  ix, iy, iz = _components(inv)

  def body(k, c):
    tb, kind, ib, cap = c
    xb = boxes[k]
    ax, bx = (xb[0] - ox) * ix, (xb[3] - ox) * ix
    ay, by = (xb[1] - oy) * iy, (xb[4] - oy) * iy
    az, bz = (xb[2] - oz) * iz, (xb[5] - oz) * iz
    tnear = jnp.maximum(jnp.maximum(jnp.minimum(ax, bx), jnp.minimum(ay, by)),
                        jnp.minimum(az, bz))
    tfar = jnp.minimum(jnp.minimum(jnp.maximum(ax, bx), jnp.maximum(ay, by)),
                       jnp.maximum(az, bz))
    ok = (tnear <= tfar) & (tnear > T_MIN) & (tnear < tb)
    return (jnp.where(ok, tnear, tb), jnp.where(ok, KIND_BOX, kind), jnp.where(ok, k, ib),
            jnp.where(ok, False, cap))

  return _unrolled_loop(body, count, carry)


def _scan_cylinders(o, d, cylinders, count, carry):
  ox, oy, oz = _components(o)
  dx, dy, dz = _components(d)

  def body(k, c):
    tb, kind, ib, cap = c
    cy = cylinders[k]
    axis = cy[5].astype(jnp.int32)
    a1 = jnp.where(axis == 0, 1, 0)
    a2 = jnp.where(axis == 2, 1, 2)
    oa, da = _select(axis, ox, oy, oz), _select(axis, dx, dy, dz)
    o1, d1 = _select(a1, ox, oy, oz) - cy[0], _select(a1, dx, dy, dz)
    o2, d2 = _select(a2, ox, oy, oz) - cy[1], _select(a2, dx, dy, dz)
    r2 = cy[4] * cy[4]
    qa = d1 * d1 + d2 * d2
    qb = o1 * d1 + o2 * d2
    qc = o1 * o1 + o2 * o2 - r2
    disc = qb * qb - qa * qc
    t_side = (-qb - jnp.sqrt(jnp.maximum(disc, 0.0))) / jnp.where(qa < 1e-12, 1.0, qa)
    h = oa + t_side * da
    side_ok = (disc >= 0) & (qa >= 1e-12) & (t_side > T_MIN) & (h >= cy[2]) & (h <= cy[3])
    t_side = jnp.where(side_ok & (cy[4] > 0), t_side, FAR)
    inv_da = 1.0 / jnp.where(jnp.abs(da) < 1e-12, 1e-12, da)
    t_cap = jnp.full_like(t_side, FAR)
    for end in (cy[2], cy[3]):
      tc = (end - oa) * inv_da
      x1, x2 = o1 + tc * d1, o2 + tc * d2
      ok = (tc > T_MIN) & (x1 * x1 + x2 * x2 <= r2) & (cy[4] > 0)
      t_cap = jnp.minimum(t_cap, jnp.where(ok, tc, FAR))
    t = jnp.minimum(t_side, t_cap)
    ok = t < tb
    return (jnp.where(ok, t, tb), jnp.where(ok, KIND_CYLINDER, kind), jnp.where(ok, k, ib),
            jnp.where(ok, t_cap < t_side, cap))

  return _unrolled_loop(body, count, carry)


def _scan_spheres(o, d, spheres, count, carry):
  ox, oy, oz = _components(o)
  dx, dy, dz = _components(d)

  def body(k, c):
    tb, kind, ib, cap = c
    s = spheres[k]
    px, py, pz = ox - s[0], oy - s[1], oz - s[2]
    b = px * dx + py * dy + pz * dz
    disc = b * b - (px * px + py * py + pz * pz - s[3] * s[3])
    t = -b - jnp.sqrt(jnp.maximum(disc, 0.0))
    ok = (disc >= 0) & (t > T_MIN) & (t < tb) & (s[3] > 0)
    return (jnp.where(ok, t, tb), jnp.where(ok, KIND_SPHERE, kind), jnp.where(ok, k, ib),
            jnp.where(ok, False, cap))

  return _unrolled_loop(body, count, carry)


def _normals(o, d, inv, t, kind, index, cap, boxes, cylinders, spheres):
  """Outward unit normals at the hits, from the winning primitive alone. (N, 3)."""
  p = o + t[:, None] * d
  # Box: the entering face is the slab whose near distance is largest.
  b = boxes[jnp.clip(index, 0, boxes.shape[0] - 1)]
  t1, t2 = (b[:, :3] - o) * inv, (b[:, 3:] - o) * inv
  axis = jnp.argmax(jnp.minimum(t1, t2), axis=-1)
  onehot = jax.nn.one_hot(axis, 3, dtype=d.dtype)
  n_box = -jnp.sign(jnp.sum(d * onehot, axis=-1, keepdims=True)) * onehot
  # Cylinder: radial on the side, +-axis on the caps.
  c = cylinders[jnp.clip(index, 0, cylinders.shape[0] - 1)]
  cax = c[:, 5].astype(jnp.int32)
  ax = jax.nn.one_hot(cax, 3, dtype=d.dtype)
  e1 = jax.nn.one_hot(jnp.where(cax == 0, 1, 0), 3, dtype=d.dtype)
  e2 = jax.nn.one_hot(jnp.where(cax == 2, 1, 2), 3, dtype=d.dtype)
  radial = p - (e1 * c[:, 0:1] + e2 * c[:, 1:2] + ax * p)
  radial = radial / jnp.maximum(jnp.linalg.norm(radial, axis=-1, keepdims=True), 1e-12)
  n_cap = -jnp.sign(jnp.sum(d * ax, axis=-1, keepdims=True)) * ax
  n_cyl = jnp.where(cap[:, None], n_cap, radial)
  # Sphere: radial.
  s = spheres[jnp.clip(index, 0, spheres.shape[0] - 1)]
  n_sph = (p - s[:, :3]) / jnp.maximum(s[:, 3:4], 1e-12)
  n = jnp.where((kind == KIND_BOX)[:, None], n_box,
                jnp.where((kind == KIND_CYLINDER)[:, None], n_cyl, n_sph))
  return jnp.where((kind >= 0)[:, None], n, 0.0)


@jax.jit
def _cast(o, d, boxes, cylinders, spheres, counts):
  n = o.shape[0]
  inv = 1.0 / jnp.where(jnp.abs(d) < 1e-12, 1e-12, d)
  carry = (jnp.full((n,), FAR, d.dtype), jnp.full((n,), -1, jnp.int32),
           jnp.full((n,), -1, jnp.int32), jnp.zeros((n,), bool))
  carry = _scan_boxes(o, inv, boxes, counts[0], carry)
  carry = _scan_cylinders(o, d, cylinders, counts[1], carry)
  t, kind, index, cap = _scan_spheres(o, d, spheres, counts[2], carry)
  normal = _normals(o, d, inv, t, kind, index, cap, boxes, cylinders, spheres)
  hit = kind >= 0
  return jnp.where(hit, t, jnp.inf), kind, index, normal, cap & (kind == KIND_CYLINDER)


def pad_rows(a: np.ndarray, empty: np.ndarray, minimum: int = 256) -> np.ndarray:
  """Pads (n, k) to the next power of two rows (at least `minimum`) with `empty` rows.

  The loops run over the real count only (a traced bound), so padding costs nothing at run
  time; few distinct shapes means few compilations (each takes seconds).
  """
  n = a.shape[0]
  size = max(minimum, 1 << max(0, (n - 1)).bit_length())
  out = np.tile(empty.astype(np.float32), (size, 1))
  out[:n] = a
  return out


# 64x64 view rays plus up to 64 rays towards the building's other points cast in one call.
_CHUNK = 4096 + 64


def cast(origins: np.ndarray, dirs: np.ndarray, boxes: np.ndarray, cylinders: np.ndarray,
         spheres: np.ndarray) -> Hits:
  """Casts rays against the scene.

  Args:
    origins: (N, 3) or (3,) ray origins (world).
    dirs: (N, 3) unit ray directions (world).
    boxes, cylinders, spheres: primitive arrays as described in the module docstring
      (already padded, or padded here).

  Returns:
    `Hits` with per-ray arrays; indices refer to rows of the arrays passed in.
  """
  dirs = np.asarray(dirs, np.float32)
  n = dirs.shape[0]
  origins = np.broadcast_to(np.asarray(origins, np.float32), dirs.shape)
  b = pad_rows(np.asarray(boxes, np.float32).reshape(-1, 6), EMPTY_BOX)
  c = pad_rows(np.asarray(cylinders, np.float32).reshape(-1, 6), EMPTY_CYLINDER)
  s = pad_rows(np.asarray(spheres, np.float32).reshape(-1, 4), EMPTY_SPHERE)
  counts = np.array([len(np.asarray(boxes).reshape(-1, 6)), len(np.asarray(cylinders).reshape(-1, 6)),
                     len(np.asarray(spheres).reshape(-1, 4))], np.int32)
  # Rays in chunks of a fixed size: bounded memory at any resolution, one compiled shape.
  size = _CHUNK if n > 64 else 64   # two ray shapes only: each compilation takes seconds
  out = []
  for start in range(0, n, size):
    o_chunk = np.zeros((size, 3), np.float32)
    d_chunk = np.tile(np.array([[0, 0, 1]], np.float32), (size, 1))
    m = min(size, n - start)
    o_chunk[:m] = origins[start:start + m]
    d_chunk[:m] = dirs[start:start + m]
    res = jax.device_get(_cast(o_chunk, d_chunk, b, c, s, counts))
    out.append([np.asarray(r)[:m] for r in res])
  t, kind, index, normal, cap = (np.concatenate(parts) for parts in zip(*out, strict=True))
  return Hits(t=t.astype(np.float64), kind=kind, index=index, normal=normal.astype(np.float64),
              cap=cap)


