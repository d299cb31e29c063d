"""XLA flags the entry points set before JAX starts: the command line (`taskonomy ...`),
`experiments/train.py` and the benchmarks that time our training step.

XLA reads `XLA_FLAGS` once, when JAX's first computation starts its backend, and aborts on a
flag its version does not know; so flags are appended only (a) before that, (b) when the user's
XLA_FLAGS does not name the flag already (theirs wins), and (c) for jaxlib versions they were
measured on.
"""

from __future__ import annotations

import os

from jax._src import xla_bridge
from jaxlib import version

YNN_FUSION_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
# Which ops XLA:CPU hands to YNNPACK: matmuls and reductions, as by default, but not
# convolutions, which then run on XLA's own (Eigen) convolution. By default jax 0.10 sends
# convolutions to YNNPACK too, and on the networks' layers its kernel-gradient convolutions
# were 3-10x slower than Eigen's. Matmuls (stacked transfer readouts) and reductions (BatchNorm
# statistics, ~10x) were slower without YNNPACK; elementwise fusions (not on by default) made
# optax's Adam 4-5x slower. Measurements: BUILD_NOTES.md, "The CPU train step".
CPU_TRAINING_FLAGS: tuple[str, ...] = (
    f"{YNN_FUSION_FLAG}=LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,"
    "LIBRARY_FUSION_TYPE_REDUCE",)
# jaxlib versions (prefixes) whose XLA knows CPU_TRAINING_FLAGS and where they were measured.
MEASURED_JAXLIB = ("0.10.",)


def _backend_started() -> bool:
  # No public API says whether XLA has read its flags (importing jax does not start it).
  return xla_bridge.backends_are_initialized()


def add(*flags: str) -> tuple[str, ...]:
  """Appends each `--name=value` in `flags` to the XLA_FLAGS environment variable unless
  XLA_FLAGS names it already. Returns the flags added.

  Must run before JAX's first computation: after it XLA would not read them, so nothing is
  added (returns ()). That is what happens when tests call the entry points in one process.
  """
  current = os.environ.get("XLA_FLAGS", "")
  new = tuple(f for f in flags if f.split("=", 1)[0] not in current)
  if not new:
    return ()
  if _backend_started():
    return ()
  os.environ["XLA_FLAGS"] = " ".join((current, *new)).strip()
  return new


def cpu_training_flags(jaxlib_version: str | None = None) -> tuple[str, ...]:
  """`CPU_TRAINING_FLAGS` for a jaxlib they were measured on (default: the installed one),
  else (): on another version the flag may not exist, which XLA treats as fatal."""
  if jaxlib_version is None:
    jaxlib_version = version.__version__
  return CPU_TRAINING_FLAGS if jaxlib_version.startswith(MEASURED_JAXLIB) else ()


def configure_for_training() -> tuple[str, ...]:
  """Adds `cpu_training_flags()` (see `add`); the flags only change XLA:CPU, so they are
  harmless on a GPU or TPU host. Returns the flags added."""
  return add(*cpu_training_flags())
