"""Convolution implementations, chosen by name: XLA's convolution, patches times a matrix, ...

Every conv layer of the networks (encoder, pixel decoder, transfer readout) takes its
`conv_general_dilated` from here: the top-level modules' `conv_impl` names one, and
`kernels.select` passes the function down. All compute the
same function with the same parameters; they differ in speed per backend, and in how XLA runs
them under `jax.vmap` over the *kernel* (stacked copies of a network, transfer/readout.py):

  - "xla": `lax.conv_general_dilated`. vmapped over kernels it becomes a grouped convolution
    (`feature_group_count=K`) and its kernel gradient a `batch_group_count=K` convolution;
    XLA:CPU expands those into dense convolutions K times larger (measured: compile and step
    time grow roughly with K^2, BUILD_NOTES.md "Stacked readouts: transfers/hour").
  - "patches": the input's kxk windows gathered by strided slices (im2col) and one `dot_general`
    with the flattened kernel. vmapped over kernels it becomes a *batched matmul*, which every
    backend runs well; unstacked it is slower than XLA's own convolution on CPU.
  - "polyphase": XLA's convolution, except that a transposed convolution (input dilation s,
    the decoder's deconvolutions) runs as one convolution on the *undilated* input with s^2
    output phases, interleaved afterwards (sub-pixel convolution). XLA's form also multiplies
    the s^2 - 1 zeros inserted per input sample; on CPU the paper decoder's last deconvolution
    (forward + backward) took over 10x longer that way (BUILD_NOTES.md "The CPU train step").
  - "mixed": patches for small feature maps, XLA's convolution for large ones (CPU, YNNPACK).
  - "polyphase_matmul": "polyphase", and 1x1 convolutions (the bottlenecks' and projection
    shortcuts') as one 2-D matmul on the (subsampled) input. The kernel gradient is then a
    matmul contracting the positions, which XLA:CPU runs with a transposed operand in place;
    as a convolution it copied every such input into a (C, H, W, N) layout first, recomputing
    the residual stream's elementwise chain inside the copy (BUILD_NOTES.md "The CPU train
    step").
  - "auto": the backend's entry in `UNSTACKED_DEFAULT` for a single network ("xla" where not
    listed); stacking code (`for_stacking`) replaces it with the backend's `STACKED_DEFAULT`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

ConvFn = Callable[..., jax.Array]


def _dims(x: int | Sequence[int] | None, n: int) -> tuple[int, ...]:
  if x is None:
    return (1,) * n
  return (x,) * n if isinstance(x, int) else tuple(x)


def _is_nhwc(lhs: jax.Array, rhs: jax.Array, dimension_numbers: Any) -> bool:
  """Whether `dimension_numbers` mean channels-last input/output and an HWIO-style kernel."""
  n = lhs.ndim - 2
  spatial = tuple(range(1, n + 1))
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  return dn == lax.ConvDimensionNumbers((0, n + 1, *spatial), (n + 1, n, *range(n)),
                                        (0, n + 1, *spatial))


def patches_conv_general_dilated(
    lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]], lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None, dimension_numbers=None,
    feature_group_count: int = 1, batch_group_count: int = 1, precision=None,
    preferred_element_type=None) -> jax.Array:
  """`lax.conv_general_dilated` for channels-last inputs, as im2col + one matmul.

  Same arguments as `lax.conv_general_dilated` (the signature flax's `nn.Conv` calls), limited
  to what the networks use: NHWC input, HWIO kernel, NHWC output (any number of spatial dims),
  one feature group.

  Args:
    lhs: (B, *in_spatial, C_in). rhs: (*kernel_spatial, C_in, C_out).
    padding: 'SAME', 'VALID' or (low, high) per spatial dim, on the lhs-dilated input.
    lhs_dilation: input dilation (a transposed convolution's stride).
  Returns:
    (B, *out_spatial, C_out), out = floor((padded - dilated_kernel) / stride) + 1 per dim.
  """
  n = lhs.ndim - 2
  if dimension_numbers is None:
    raise ValueError("patches convolution needs dimension_numbers (NHWC, HWIO, NHWC); lax's "
                     "default NCHW layout is not supported")
  if not _is_nhwc(lhs, rhs, dimension_numbers):
    raise ValueError(f"patches convolution takes NHWC/HWIO/NHWC layouts, got {dimension_numbers}")
  if feature_group_count != 1 or batch_group_count != 1:
    raise ValueError("patches convolution supports feature_group_count = batch_group_count = 1, "
                     f"got {feature_group_count}, {batch_group_count}")
  kernel = rhs.shape[:n]
  strides, ldil, rdil = _dims(window_strides, n), _dims(lhs_dilation, n), _dims(rhs_dilation, n)
  dilated_in = [(s - 1) * d + 1 for s, d in zip(lhs.shape[1:-1], ldil, strict=True)]
  dilated_k = [(k - 1) * d + 1 for k, d in zip(kernel, rdil, strict=True)]
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(dilated_in, dilated_k, strides, padding)
  # Input dilation and padding (negative allowed, as in lax) in one lax.pad.
  zero = np.zeros((), lhs.dtype)
  x = lax.pad(lhs, zero, ((0, 0, 0), *((lo, hi, d - 1) for (lo, hi), d in
                                      zip(padding, ldil, strict=True)), (0, 0, 0)))
  out = [(p - k) // s + 1 for p, k, s in zip(x.shape[1:-1], dilated_k, strides, strict=True)]
  if min(out) <= 0:
    raise ValueError(f"convolution output would be empty: input {lhs.shape}, kernel {rhs.shape}")
  # One strided slice per kernel offset, offsets in HWIO's row-major order.
  cols = []
  for offset in np.ndindex(*kernel):
    start = [o * d for o, d in zip(offset, rdil, strict=True)]
    stop = [st + (o - 1) * s + 1 for st, o, s in zip(start, out, strides, strict=True)]
    cols.append(lax.slice(x, (0, *start, 0), (x.shape[0], *stop, x.shape[-1]),
                          (1, *strides, 1)))
  patches = cols[0] if len(cols) == 1 else lax.concatenate(cols, x.ndim - 1)
  w = rhs.reshape(-1, rhs.shape[-1])  # (prod(kernel) * C_in, C_out), offset-major
  return lax.dot_general(patches, w, (((x.ndim - 1,), (0,)), ((), ())), precision=precision,
                         preferred_element_type=preferred_element_type)


# 'mixed' sends feature maps of up to this many input positions (32x32) to patches.
MIXED_PATCHES_MAX_POSITIONS = 32 * 32


def mixed_conv_general_dilated(lhs: jax.Array, rhs: jax.Array, *args: Any,
                               dimension_numbers=None, **kwargs: Any) -> jax.Array:
  """Patches + matmul for small feature maps and for inputs of <= 4 channels, XLA's
  convolution elsewhere: the same function, chosen per layer from static shapes.

  Why (BUILD_NOTES.md "The CPU train step"): on XLA:CPU the paper-size training
  step is fastest with patches where a layer's input has <= MIXED_PATCHES_MAX_POSITIONS
  positions (the weight-heavy deep layers, whose input gradients otherwise copy a flipped
  kernel each step) and for the RGB stem (a 3-channel weight gradient), and with XLA's
  convolution on the large maps, where im2col's 9x activations cost more than they save.
  Without `dimension_numbers` (lax's NCHW default) it is XLA's convolution.
  """
  if dimension_numbers is None:
    return lax.conv_general_dilated(lhs, rhs, *args, **kwargs)
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  positions = int(np.prod([lhs.shape[d] for d in dn.lhs_spec[2:]]))
  small = positions <= MIXED_PATCHES_MAX_POSITIONS or lhs.shape[dn.lhs_spec[1]] <= 4
  fn = patches_conv_general_dilated if small else lax.conv_general_dilated
  return fn(lhs, rhs, *args, dimension_numbers=dimension_numbers, **kwargs)


def _phase_taps(dilation: int, size: int, pad_low: int) -> tuple[np.ndarray, int]:
  """One spatial dim of a stride-1 convolution on an input dilated by `dilation`, split into
  output phases: out[dilation * i + a] = sum_u x[i + u + first] * sum_t sel[u, a, t] w[t].

  Returns (sel, first): sel (taps on the undilated input, dilation, size) in {0, 1}, and the
  undilated input offset of tap 0 (may be negative: zero padding).
  """
  offsets = {(a, t): (a + t - pad_low) // dilation for a in range(dilation) for t in range(size)
             if (a + t - pad_low) % dilation == 0}
  first, last = min(offsets.values()), max(offsets.values())
  sel = np.zeros((last - first + 1, dilation, size), np.float32)
  for (a, t), offset in offsets.items():
    sel[offset - first, a, t] = 1.0
  return sel, first


def polyphase_transposed(conv_fn: ConvFn) -> ConvFn:
  """`conv_fn` with input-dilated (transposed) convolutions run on the undilated input.

  For a stride-1 convolution of an input dilated by s (per dim), output position s * i + a
  reads only the taps whose dilated offset lands on an input sample; the taps of all s^n phases
  go into one kernel of shape (*taps, C_in, s^n * C_out) (zeros where a phase has no tap), one
  `conv_fn` call computes every phase at the input's resolution, and a reshape interleaves
  them. Same function and parameters; no multiplications by inserted zeros, forward or
  backward. Other convolutions, NCHW layouts, feature groups, window strides or kernel
  dilation with input dilation, string padding, or an output not divisible by s go to
  `conv_fn` unchanged.
  """

  def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                           padding: str | Sequence[tuple[int, int]],
                           lhs_dilation: Sequence[int] | None = None,
                           rhs_dilation: Sequence[int] | None = None, dimension_numbers=None,
                           feature_group_count: int = 1, batch_group_count: int = 1,
                           precision=None, preferred_element_type=None) -> jax.Array:
    n = lhs.ndim - 2
    dilation = _dims(lhs_dilation, n)
    direct = functools.partial(
        conv_fn, lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type)
    if (max(dilation) == 1 or isinstance(padding, str) or dimension_numbers is None
        or feature_group_count != 1 or batch_group_count != 1
        or _dims(window_strides, n) != (1,) * n or _dims(rhs_dilation, n) != (1,) * n
        or not _is_nhwc(lhs, rhs, dimension_numbers)):
      return direct()
    kernel, in_spatial = rhs.shape[:n], lhs.shape[1:-1]
    out = [(m - 1) * s + 1 + lo + hi - k + 1
           for m, s, (lo, hi), k in zip(in_spatial, dilation, padding, kernel, strict=True)]
    if any(o % s for o, s in zip(out, dilation, strict=True)):
      return direct()
    sels, pads = [], []
    for s, k, (lo, _), m, o in zip(dilation, kernel, padding, in_spatial, out, strict=True):
      sel, first = _phase_taps(s, k, lo)
      sels.append(jnp.asarray(sel, rhs.dtype))
      pads.append((-first, o // s + sel.shape[0] - 1 - m + first))
    # rhs[t..., i, o] x sel_d[u_d, a_d, t_d] -> kernel[u..., i, a..., o]
    t, u, a = "abcdef"[:n], "ghjklm"[:n], "pqrstv"[:n]
    spec = ",".join([f"{t}xy", *(f"{u[d]}{a[d]}{t[d]}" for d in range(n))]) + f"->{u}x{a}y"
    # HIGHEST: a selection must copy the kernel exactly (TPUs' default rounds to bfloat16).
    phased = jnp.einsum(spec, rhs, *sels, precision=lax.Precision.HIGHEST)
    c_out = rhs.shape[-1]
    phased = phased.reshape(*phased.shape[:n + 1], -1)
    y = conv_fn(lhs, phased, (1,) * n, pads, dimension_numbers=dimension_numbers,
                precision=precision, preferred_element_type=preferred_element_type)
    batch, low_res = y.shape[0], y.shape[1:-1]
    y = y.reshape(batch, *low_res, *dilation, c_out)
    # (B, i..., a..., C) -> (B, i_0, a_0, i_1, a_1, ..., C): phase a of i is output s * i + a.
    y = y.transpose(0, *(ax for d in range(n) for ax in (1 + d, 1 + n + d)), 2 * n + 1)
    return y.reshape(batch, *(r * s for r, s in zip(low_res, dilation, strict=True)), c_out)

  return conv_general_dilated


def _is_pointwise(lhs: jax.Array, rhs: jax.Array, padding: str | Sequence[tuple[int, int]],
                  lhs_dilation: Sequence[int] | None, dimension_numbers: Any,
                  feature_group_count: int, batch_group_count: int) -> bool:
  """Whether a convolution is a 1x1 kernel on channels-last data, unpadded, undilated input,
  one group (any window stride: a stride only subsamples the input)."""
  n = lhs.ndim - 2
  unpadded = padding == "VALID" or (not isinstance(padding, str)
                                    and all(tuple(p) == (0, 0) for p in padding))
  return (dimension_numbers is not None and rhs.shape[:n] == (1,) * n and unpadded
          and _dims(lhs_dilation, n) == (1,) * n and feature_group_count == 1
          and batch_group_count == 1 and _is_nhwc(lhs, rhs, dimension_numbers))


def pointwise_as_matmul(conv_fn: ConvFn) -> ConvFn:
  """`conv_fn` with 1x1 convolutions run as one matmul: (positions, C_in) x (C_in, C_out).

  The input is subsampled by the window strides (kernel dilation does not matter for a 1x1
  kernel) and flattened to 2-D *before* the matmul, so that both gradients are 2-D matmuls too
  (XLA canonicalises a 4-D operand contracted over (N, H, W) with a transposing copy; a 2-D
  one contracted over rows it reads in place). Other convolutions go to `conv_fn` unchanged.
  """

  def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                           padding: str | Sequence[tuple[int, int]],
                           lhs_dilation: Sequence[int] | None = None,
                           rhs_dilation: Sequence[int] | None = None, dimension_numbers=None,
                           feature_group_count: int = 1, batch_group_count: int = 1,
                           precision=None, preferred_element_type=None) -> jax.Array:
    if not _is_pointwise(lhs, rhs, padding, lhs_dilation, dimension_numbers,
                         feature_group_count, batch_group_count):
      return conv_fn(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                     dimension_numbers=dimension_numbers,
                     feature_group_count=feature_group_count,
                     batch_group_count=batch_group_count, precision=precision,
                     preferred_element_type=preferred_element_type)
    strides = _dims(window_strides, lhs.ndim - 2)
    x = lhs
    if max(strides) > 1:
      x = lax.slice(x, (0,) * x.ndim, x.shape, (1, *strides, 1))
    c_in, c_out = rhs.shape[-2:]
    y = lax.dot_general(x.reshape(-1, c_in), rhs.reshape(c_in, c_out), (((1,), (0,)), ((), ())),
                        precision=precision, preferred_element_type=preferred_element_type)
    return y.reshape(*x.shape[:-1], c_out)

  return conv_general_dilated


CONV_IMPLS: dict[str, ConvFn] = {
    "xla": lax.conv_general_dilated,
    "patches": patches_conv_general_dilated,
    "mixed": mixed_conv_general_dilated,
    "polyphase": polyphase_transposed(lax.conv_general_dilated),
    "polyphase_matmul": pointwise_as_matmul(polyphase_transposed(lax.conv_general_dilated)),
}
AUTO = "auto"
# Under vmap over stacked kernels, per backend (`jax.default_backend()`); "xla" where not
# listed. Measured on CPU (BUILD_NOTES.md "Stacked readouts: transfers/hour"). On an H200 patches
# was also 2-6x faster at the pipeline's small readout size (same section), but GPU/TPU keep
# XLA's convolution: at the paper's readout size (decoder to 256x256) im2col would hold 9x
# those activations, and that size was not measured with patches.
STACKED_DEFAULT: dict[str, str] = {"cpu": "patches"}
# A single network, per backend; "xla" where not listed (cuDNN and TPUs run transposed
# convolutions natively). Measured on CPU: BUILD_NOTES.md "The CPU train step".
UNSTACKED_DEFAULT: dict[str, str] = {"cpu": "polyphase_matmul"}


def unstacked_impl(backend: str | None = None) -> str:
  """The conv implementation 'auto' means for one network on `backend` (default: jax's)."""
  return UNSTACKED_DEFAULT.get(backend or jax.default_backend(), "xla")


def get(name: str) -> ConvFn:
  """The `conv_general_dilated` named `name` ('auto': the backend's `unstacked_impl`)."""
  if name == AUTO:
    name = unstacked_impl()
  if name not in CONV_IMPLS:
    raise ValueError(f"unknown conv_impl {name!r}; accepted: {sorted((*CONV_IMPLS, AUTO))}")
  return CONV_IMPLS[name]


def stacked_impl(backend: str | None = None) -> str:
  """The conv implementation for stacked (vmapped) copies on `backend` (default: jax's)."""
  return STACKED_DEFAULT.get(backend or jax.default_backend(), "xla")


def for_stacking(module: nn.Module) -> nn.Module:
  """`module` with `conv_impl='auto'` resolved for vmapping over stacked copies.

  Parameters do not depend on the conv implementation, so the clone reads the same variables.
  A module whose `conv_impl` was set explicitly, or that has none, is returned unchanged.
  """
  if getattr(module, "conv_impl", None) != AUTO:
    return module
  return module.clone(conv_impl=stacked_impl())
