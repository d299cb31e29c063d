"""Conv implementations: patches + matmul equals XLA's convolution, values and gradients, alone,
in whole networks and under vmap over kernels (where it avoids grouped convolutions)."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from taskonomy_jax import models, tasks
from taskonomy_jax.models import batchnorm, conv, kernels, pooling
from taskonomy_jax.transfer import readout

DN = ("NHWC", "HWIO", "NHWC")
HI = jax.lax.Precision.HIGHEST
# (input side, kernel, stride, padding, lhs dilation, rhs dilation): the networks' layers
# (3x3 pad 1, 1x1, the 7x7/2 stem, the decoder's transposed conv) and lax's other cases.
CASES = {
    "3x3_pad1": (6, 3, 1, ((1, 1), (1, 1)), 1, 1),
    "3x3_stride2": (7, 3, 2, ((1, 1), (1, 1)), 1, 1),
    "1x1_stride2": (6, 1, 2, "VALID", 1, 1),
    "1x1_pad0_stride3x": (7, 1, 3, ((0, 0), (0, 0)), 1, 1),
    "1x1_rhs_dilated": (5, 1, 1, "VALID", 1, 2),
    "1x1_padded": (5, 1, 1, ((1, 0), (0, 1)), 1, 1),
    "7x7_stem": (16, 7, 2, ((3, 3), (3, 3)), 1, 1),
    "deconv": (5, 3, 1, ((2, 1), (2, 1)), 2, 1),
    "deconv_k4_pad2": (5, 4, 1, ((2, 2), (2, 2)), 2, 1),
    "deconv_dilation3_uneven_pad": (4, 3, 1, ((1, 3), (0, 2)), 3, 1),
    "deconv_output_not_divisible": (4, 3, 1, ((1, 1), (1, 1)), 2, 1),
    "same_rhs_dilated": (7, 3, 1, "SAME", 1, 2),
    "same_stride2": (6, 3, 2, "SAME", 1, 1),
    "negative_pad_even_kernel": (6, 2, 1, ((0, -1), (1, 0)), 1, 1),
}


def _operands(side, kernel, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(2, side, side + 1, 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(kernel, kernel, 3, 5)), jnp.float32)
  return x, w


@pytest.mark.parametrize("impl", ["patches", "polyphase", "polyphase_matmul"])
@pytest.mark.parametrize("case", list(CASES))
def test_conv_impls_equal_lax_conv_values_and_gradients(case, impl):
  side, kernel, stride, pad, ldil, rdil = CASES[case]
  x, w = _operands(side, kernel)

  def run(fn):
    def f(x, w):
      return fn(x, w, (stride, stride), pad, (ldil, ldil), (rdil, rdil), DN, precision=HI)
    y = f(x, w)
    # A fixed random cotangent: gradients for both operands (what training differentiates).
    ct = jnp.asarray(np.random.default_rng(1).normal(size=y.shape), jnp.float32)
    return y, jax.grad(lambda x, w: jnp.sum(f(x, w) * ct), argnums=(0, 1))(x, w)

  want_y, want_g = run(jax.lax.conv_general_dilated)
  got_y, got_g = run(conv.CONV_IMPLS[impl])
  assert got_y.shape == want_y.shape
  np.testing.assert_allclose(got_y, want_y, rtol=1e-5, atol=1e-5)
  for g, w_ in zip(got_g, want_g, strict=True):
    np.testing.assert_allclose(g, w_, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dilation,kernel,padding", [
    ((2,), (3,), ((2, 1),)),
    ((2, 3), (3, 2), ((2, 1), (1, 2))),
    ((2, 2, 2), (3, 3, 3), ((2, 1), (1, 2), (2, 1))),
])
def test_polyphase_transposed_conv_any_rank_no_dilated_input(dilation, kernel, padding):
  """1-, 2- and 3-D transposed convolutions (unequal dilations per dim): the same values and
  gradients as lax, and the convolution XLA receives reads the undilated input (no
  lhs_dilate), its output channels the s^n phases."""
  n = len(dilation)
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(2, *range(4, 4 + n), 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(*kernel, 3, 5)), jnp.float32)
  dn = ("N" + "HWD"[:n] + "C", "HWD"[:n] + "IO", "N" + "HWD"[:n] + "C")

  def f(fn):
    return lambda x, w: fn(x, w, (1,) * n, padding, dilation, None, dn, precision=HI)
  poly = conv.CONV_IMPLS["polyphase"]
  want, got = f(jax.lax.conv_general_dilated), f(poly)
  np.testing.assert_allclose(got(x, w), want(x, w), rtol=1e-5, atol=1e-5)
  loss = lambda g: lambda x, w: jnp.sum(jnp.sin(g(x, w)))  # noqa: E731
  for a, b in zip(jax.grad(loss(got), (0, 1))(x, w), jax.grad(loss(want), (0, 1))(x, w),
                  strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
  (line,) = [li for li in jax.jit(got).lower(x, w).as_text().splitlines()
              if "stablehlo.convolution" in li]
  assert set(re.search(r"lhs_dilate = \[([\d, ]+)\]", line).group(1).split(", ")) == {"1"}
  assert line.endswith(f"x{int(np.prod(dilation)) * 5}xf32>")


def test_vmapped_patches_conv_is_a_batched_matmul_not_a_grouped_conv():
  """The reason for the patches conv: vmapped over kernels (stacked copies), XLA's conv becomes
  a grouped conv; patches become a dot with a batch dimension. Same values either way."""
  k = 4
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(k, 2, 5, 5, 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, 3, 3, 3, 6)), jnp.float32)

  def stacked(fn):
    return jax.jit(jax.vmap(lambda x, w: fn(x, w, (1, 1), ((1, 1), (1, 1)), None, None, DN,
                                            precision=HI)))
  hlo_xla = stacked(jax.lax.conv_general_dilated).lower(x, w).as_text()
  hlo_patches = stacked(conv.patches_conv_general_dilated).lower(x, w).as_text()
  assert f"feature_group_count = {k}" in hlo_xla
  assert "convolution" not in hlo_patches and "dot_general" in hlo_patches
  np.testing.assert_allclose(stacked(conv.patches_conv_general_dilated)(x, w),
                             stacked(jax.lax.conv_general_dilated)(x, w), rtol=1e-5, atol=1e-5)


def test_mixed_conv_picks_patches_for_small_maps_and_xla_for_large_ones():
  """'mixed' is patches at <= 32x32 input positions or <= 4 input channels, XLA's conv on
  larger maps; values equal lax's either way, and the HLO shows which one ran."""
  rng = np.random.default_rng(4)
  w = jnp.asarray(rng.normal(size=(3, 3, 8, 5)), jnp.float32)
  w_rgb = jnp.asarray(rng.normal(size=(3, 3, 3, 5)), jnp.float32)

  def f(fn):
    return jax.jit(lambda x, w: fn(x, w, (1, 1), ((1, 1), (1, 1)), None, None,
                                   dimension_numbers=DN, precision=HI))
  for side, kernel, expect_conv in ((32, w, False), (33, w, True), (64, w_rgb, False)):
    x = jnp.asarray(rng.normal(size=(2, side, side, kernel.shape[2])), jnp.float32)
    hlo = f(conv.mixed_conv_general_dilated).lower(x, kernel).as_text()
    assert ("convolution" in hlo) == expect_conv, (side, kernel.shape)
    np.testing.assert_allclose(f(conv.mixed_conv_general_dilated)(x, kernel),
                               f(jax.lax.conv_general_dilated)(x, kernel), rtol=1e-5,
                               atol=1e-4)


def test_pointwise_conv_and_both_gradients_are_matmuls_without_layout_copies():
  """A strided 1x1 conv after elementwise work, differentiated: no convolution, and no
  transpose or copy of the input (the kernel gradient reads the 2-D input with a transposed
  contraction in place)."""
  cpu = jax.devices("cpu")[0]  # the layouts checked are XLA:CPU's
  x = jax.device_put(jnp.ones((2, 8, 8, 16)), cpu)
  w = jax.device_put(jnp.ones((1, 1, 16, 32)), cpu)

  def loss(x, w):
    y = conv.CONV_IMPLS["polyphase_matmul"](jnp.maximum(x * 2.0 + 1.0, 0.0), w, (2, 2),
                                            "VALID", None, None, DN)
    return jnp.sum(y * y)
  hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).compile().as_text()
  assert re.search(r" (convolution|transpose|copy)\(%", hlo) is None, hlo
  assert re.search(r"\bdot\(|dot_general", hlo)


@pytest.mark.parametrize("task", ["depth_zbuffer", "room_layout"])
def test_networks_compute_the_same_function_with_either_conv(task):
  """Encoder (stem, bottlenecks, strided blocks), pixel decoder (deconvs) or FC head: one set of
  parameters, every conv implementation, equal outputs and BatchNorm statistics."""
  spec = tasks.get(task)
  tiny = dict(width=4, blocks=(1, 1, 1, 1), decoder_width_multiplier=1 / 16, fc_hidden=16)
  # 48x48: 'mixed' runs the decoder's last layers (48x48 maps) on XLA's conv, the rest on patches.
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 48, 48, 3)), jnp.float32)
  impls = ("xla", "patches", "mixed", "polyphase", "polyphase_matmul")
  nets = {i: models.build(spec, {**tiny, "conv_impl": i}) for i in impls}
  variables = nets["xla"].init(jax.random.key(0), x)
  assert jax.tree.structure(jax.eval_shape(nets["patches"].init, jax.random.key(0), x)) == \
      jax.tree.structure(variables)
  # Eager, not jitted: jitted, each implementation's own fusions moved a few outputs by up to
  # 1.4e-4, beyond the tolerance that compares the convolutions.
  outs = {i: n.apply(variables, x, train=True, mutable=["batch_stats"],
                     rngs={"dropout": jax.random.key(1)}) for i, n in nets.items()}
  for impl in impls[1:]:
    np.testing.assert_allclose(outs[impl][0], outs["xla"][0], rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree.leaves(outs[impl][1]), jax.tree.leaves(outs["xla"][1]),
                    strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_auto_resolves_for_stacking_and_explicit_choices_stay():
  spec = tasks.get("depth_zbuffer")
  small = {"readout_channels": 4, "decoder_width_multiplier": 1 / 16}
  auto = readout.build(spec, small)
  assert auto.conv_impl == conv.AUTO
  assert conv.get(conv.AUTO) is conv.CONV_IMPLS[conv.unstacked_impl()]
  assert conv.unstacked_impl("cpu") == "polyphase_matmul" and conv.unstacked_impl("tpu") == "xla"
  assert conv.for_stacking(auto).conv_impl == conv.stacked_impl()
  assert conv.stacked_impl("cpu") == "patches" and conv.stacked_impl("gpu") == "xla"
  explicit = readout.build(spec, {**small, "conv_impl": "xla"})
  assert conv.for_stacking(explicit) is explicit


def test_hand_written_kernels_are_chosen_on_cpu_only():
  """The custom BatchNorm and max-pool gradients were measured faster on XLA:CPU only; other
  backends get flax's layers and XLA's convolution unless a config names another."""
  cpu = kernels.select(backend="cpu")
  assert cpu == kernels.Kernels(conv.CONV_IMPLS["polyphase_matmul"], batchnorm.BatchNorm,
                                pooling.max_pool)
  for backend in ("gpu", "tpu"):
    assert kernels.select(backend=backend) == kernels.Kernels(
        jax.lax.conv_general_dilated, nn.BatchNorm, kernels.reduce_window_max_pool)
  assert kernels.select("patches", "gpu").conv_general_dilated is conv.CONV_IMPLS["patches"]
  assert kernels.select("patches", "gpu").batch_norm is nn.BatchNorm
  # Equal selections hash equal: a module holding one is a valid jit cache key.
  assert hash(kernels.select(backend="cpu")) == hash(cpu)
  with pytest.raises(ValueError, match="unknown conv_impl"):
    kernels.select("fft")


def test_encoder_computes_the_same_function_with_either_backends_kernels():
  """The CPU's kernels (custom gradients) and the other backends' (flax's layers): the same
  variables, outputs, BatchNorm statistics and parameter gradients in training mode (float32;
  tests/test_batchnorm.py compares the BatchNorms in bfloat16 too)."""
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)), jnp.float32)
  cpu, other = (models.Encoder(width=4, blocks=(1, 1, 1, 1), output_stride=8,
                               kernels=kernels.select(backend=b)) for b in ("cpu", "gpu"))
  variables = other.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, jax.eval_shape(cpu.init, jax.random.key(0), x)) == \
      jax.tree.map(jnp.shape, variables)

  def run(module):
    def loss(params):
      y, stats = module.apply({**variables, "params": params}, x, train=True,
                              mutable=["batch_stats"])
      return jnp.sum(jnp.square(y)), (y, stats)
    grads, aux = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
    return aux, grads

  # The BatchNorms sum in different orders: gradients of ~20 agree to ~2e-4 relative.
  for a, b in zip(jax.tree.leaves(run(cpu)), jax.tree.leaves(run(other)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_bad_conv_settings_get_clear_errors():
  spec = tasks.get("depth_zbuffer")
  with pytest.raises(ValueError, match="unknown conv_impl 'fft'; accepted: \\['auto'"):
    readout.build(spec, {"conv_impl": "fft"})
  with pytest.raises(ValueError, match="unknown conv_impl"):
    models.build(spec, {"conv_impl": "fft"})
  x, w = _operands(5, 3)
  with pytest.raises(ValueError, match="NHWC/HWIO/NHWC"):
    conv.patches_conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW",
                                                                                 "NCHW"))
  with pytest.raises(ValueError, match="feature_group_count"):
    conv.patches_conv_general_dilated(x, w[:, :, :1], (1, 1), "SAME", dimension_numbers=DN,
                                      feature_group_count=3)
