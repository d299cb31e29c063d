"""XLA flags of the entry points: appended only when new and in time, accepted by this jaxlib,
and they do move convolutions off YNNPACK (checked against a process without them)."""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

from taskonomy_jax import xla_flags

REPO = pathlib.Path(__file__).resolve().parents[1]

# Compiles `conv(x, w) + 1` and prints the op_name of every ynn_fusion XLA:CPU made.
_PROBE = """
import sys
from taskonomy_jax import xla_flags
added = xla_flags.configure_for_training() if sys.argv[1] == "configure" else ()
import jax, jax.numpy as jnp
f = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
    x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + 1.0)
hlo = f.lower(jnp.ones((4, 32, 32, 64)), jnp.ones((3, 3, 64, 64))).compile().as_text()
fused = [line.split('op_name="', 1)[1].split('"', 1)[0] for line in hlo.splitlines()
         if "%ynn_fusion" in line and " fusion(" in line]
print(repr((added, fused)))
"""


def _probe(mode: str) -> tuple[tuple[str, ...], list[str]]:
  env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
  out = subprocess.run([sys.executable, "-c", _PROBE, mode], env=env, capture_output=True,
                       text=True, timeout=300, check=True)
  return ast.literal_eval(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not xla_flags.cpu_training_flags(), reason="flags not measured on this jaxlib")
def test_training_flags_are_accepted_and_keep_convolutions_off_ynnpack():
  added, fused = _probe("configure")
  assert added == xla_flags.CPU_TRAINING_FLAGS
  assert not any(name.endswith("conv_general_dilated") for name in fused), fused
  # Control: without the flags this jaxlib does fuse the convolution into YNNPACK.
  added, fused = _probe("none")
  assert added == () and any(name.endswith("conv_general_dilated") for name in fused), fused


def test_add_appends_only_new_flags_and_only_before_the_backend_starts(monkeypatch):
  monkeypatch.setattr(xla_flags, "_backend_started", lambda: False)
  monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=1")
  added = xla_flags.add("--xla_backend_optimization_level=0", "--xla_cpu_enable_fast_math=false")
  assert added == ("--xla_cpu_enable_fast_math=false",)  # the user's level stays
  assert os.environ["XLA_FLAGS"] == ("--xla_backend_optimization_level=1 "
                                     "--xla_cpu_enable_fast_math=false")
  assert xla_flags.add("--xla_cpu_enable_fast_math=true") == ()
  monkeypatch.delenv("XLA_FLAGS")
  assert xla_flags.add("--xla_cpu_enable_fast_math=false") == ("--xla_cpu_enable_fast_math=false",)
  assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false"
  # Once XLA has read its flags, adding them would be a silent no-op: nothing is added.
  monkeypatch.setattr(xla_flags, "_backend_started", lambda: True)
  monkeypatch.setenv("XLA_FLAGS", "")
  assert xla_flags.add("--xla_cpu_enable_fast_math=false") == ()
  assert os.environ["XLA_FLAGS"] == ""


def test_training_flags_only_for_measured_jaxlib_versions():
  # An unknown flag aborts XLA, so another jaxlib gets none.
  assert xla_flags.cpu_training_flags("0.10.2") == xla_flags.CPU_TRAINING_FLAGS
  assert xla_flags.cpu_training_flags("0.11.2") == ()
  assert xla_flags.cpu_training_flags("0.4.38") == ()
