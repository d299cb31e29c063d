"""Networks: shapes for every task, shared siamese weights, the paper's encoder size, layouts."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from taskonomy_jax import models, tasks
from taskonomy_jax.models import conv, decoders, resnet

TINY = dict(width=4, blocks=(1, 1, 1, 1), decoder_width_multiplier=1 / 16, fc_hidden=16)
# torchvision's ResNet-50 has 25,557,032 parameters, 2,049,000 of them in the classifier.
RESNET50_TRUNK = 25_557_032 - 2_049_000


def _input(spec, res=32, batch=2):
  views = max(spec.num_views, spec.num_tiles)
  shape = (batch, res, res, 3) if views == 1 else (batch, views, res, res, 3)
  return jnp.asarray(np.random.default_rng(0).uniform(-1, 1, shape), jnp.float32)


@pytest.mark.parametrize("name", [t.name for t in tasks.all_tasks()])
def test_output_shape_matches_the_registry(name):
  spec = tasks.get(name)
  net = models.build(name, TINY)
  x = _input(spec)
  out = jax.eval_shape(lambda x: net.init_with_output(jax.random.key(0), x)[0], x)
  if spec.decoder == "none":  # random projection: the representation itself
    assert out.shape == (2, 2, 2, 8)
  else:
    assert out.shape == (2, *spec.output_shape(32))
  assert out.dtype == jnp.float32


def test_paper_encoder_is_resnet50_with_the_16x16x8_head():
  net = models.build("normal")
  x = jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32)
  variables = jax.eval_shape(net.init, jax.random.key(0), x)
  n_enc = sum(p.size for p in jax.tree.leaves(variables["params"]["encoder"]))
  compress = 3 * 3 * 2048 * 8 + 2 * 8  # 3x3 conv to 8 channels (no bias) + its BN
  assert n_enc == RESNET50_TRUNK + compress
  rep = jax.eval_shape(lambda v, x: net.apply(v, x, method=lambda m, x: m.encoder(x)),
                       variables, x)
  assert rep.shape == (1, 16, 16, 8)
  out = jax.eval_shape(net.apply, variables, x)
  assert out.shape == (1, 256, 256, 3)


def test_pixel_decoder_has_15_layers():
  net = models.build("depth_zbuffer")
  variables = jax.eval_shape(net.init, jax.random.key(0),
                             jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32))
  dec = variables["params"]["decoder"]
  convs = [k for k in dec if k.startswith("layer") or k == "output"]
  bns = [k for k in dec if k.startswith("bn")]
  # 13 conv/deconv layers + BN each, plus the output conv; the paper counts 15 with the input
  # projection of the representation (the first conv here, conv2 in the original).
  assert len(convs) == 14 and len(bns) == 13


def test_siamese_towers_share_one_encoder():
  spec = tasks.get("fixated_pose")
  net = models.build(spec, TINY)
  x = _input(spec)
  # jitted: eager flax compiles every op separately, which is far slower on CPU
  variables = jax.jit(net.init)(jax.random.key(0), x)
  assert sorted(variables["params"]) == ["decoder", "encoder"]  # one encoder, not one per view
  apply = jax.jit(net.apply)  # one compilation for both view orders
  out = apply(variables, x)

  # Brute force: run the encoder on each view alone, concatenate, apply the head.
  def manual(m, x):
    reps = [m.encoder(x[:, v]).reshape(x.shape[0], -1) for v in range(x.shape[1])]
    return m.decoder(jnp.concatenate(reps, axis=-1))
  want = jax.jit(lambda v, x: net.apply(v, x, method=manual))(variables, x)
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
  swapped = apply(variables, x[:, ::-1])
  assert not np.allclose(out, swapped)  # views are ordered: concatenation, not pooling


def test_jigsaw_uses_nine_tiles_and_three_fc_layers():
  spec = tasks.get("jigsaw")
  net = models.build(spec, TINY)
  variables = jax.eval_shape(net.init, jax.random.key(0), _input(spec))
  assert sorted(variables["params"]["decoder"]) == ["bn0", "bn1", "fc0", "fc1", "output"]
  with pytest.raises(ValueError, match=r"takes 9 images per example: expected \(B, 9"):
    net.init(jax.random.key(0), _input(tasks.get("fixated_pose")))


def test_max_pool_ceil_matches_brute_force():
  x = np.random.default_rng(1).normal(size=(1, 7, 6, 2)).astype(np.float32)
  got = np.asarray(resnet.max_pool_ceil(jnp.asarray(x), 3, 2))
  assert got.shape == (1, 3, 3, 2)  # ceil((7-3)/2)+1 = 3, ceil((6-3)/2)+1 = 3
  for i in range(3):
    for j in range(3):
      np.testing.assert_array_equal(got[0, i, j], x[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max((0, 1)))


@pytest.mark.parametrize("conv_impl", ["xla", "patches"])
def test_deconv_is_tensorflow_same_transposed_convolution(conv_impl):
  """The decoder's deconv equals TF's conv2d_transpose with 'SAME' (out = 2 in), and flax's
  ConvTranspose with the explicit padding it replaced (exactly, for XLA's convolution)."""
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(1, 5, 5, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 3, 4)), jnp.float32)
  ours = decoders.deconv(4, conv_general_dilated=conv.get(conv_impl)).apply({"params": {"kernel": k}}, x)
  tf_same = jax.lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO",
                                                                             "NHWC"))
  assert ours.shape == (1, 10, 10, 4)
  np.testing.assert_allclose(ours, tf_same, rtol=1e-5, atol=1e-5)
  flax_t = nn.ConvTranspose(4, (3, 3), strides=(2, 2), padding=decoders.DECONV_PADDING,
                            use_bias=False).apply({"params": {"kernel": k}}, x)
  if conv_impl == "xla":
    np.testing.assert_array_equal(ours, flax_t)


def test_bfloat16_compute_keeps_float32_params_and_output():
  spec = tasks.get("normal")
  net = models.build(spec, {**TINY, "dtype": "bfloat16"})
  x = _input(spec)
  variables = jax.eval_shape(net.init, jax.random.key(0), x)
  assert {p.dtype for p in jax.tree.leaves(variables["params"])} == {jnp.dtype("float32")}
  assert jax.eval_shape(net.apply, variables, x).dtype == jnp.float32


def test_bad_inputs_get_clear_errors():
  with pytest.raises(tasks.UnknownTaskError, match="Did you mean 'normal'"):
    models.build("normall")
  with pytest.raises(ValueError, match="unknown model config keys"):
    models.build("normal", {"widht": 3})
  with pytest.raises(ValueError, match="accepted: \\['bfloat16', 'float32'\\]"):
    models.build("normal", {"dtype": "float16"})
  net = models.build("normal", TINY)
  with pytest.raises(ValueError, match="multiples of its output stride 16"):
    net.init(jax.random.key(0), jnp.zeros((1, 40, 40, 3)))


@pytest.mark.parametrize("stride", [4, 8, 16])
def test_output_stride_sets_the_representation_grid_and_the_decoder_upsamples_back(stride):
  """The CPU configs' stride 4 gives the paper's 16x16x8 grid at 64x64; every pixel task's
  output keeps the registry's shape whatever the representation's stride."""
  cfg = {"width": 4, "blocks": (1, 1, 0, 0), "decoder_width_multiplier": 1 / 32,
         "output_stride": stride, "fc_hidden": 8}
  x = jnp.zeros((2, 64, 64, 3))
  rep_model = models.build("random", cfg)
  rep = jax.eval_shape(lambda: rep_model.apply(rep_model.init(jax.random.key(0), x), x))
  assert rep.shape == (2, 64 // stride, 64 // stride, 8)
  for name in ("depth_zbuffer", "colorization", "room_layout"):
    spec = tasks.get(name)
    m = models.build(spec, cfg)
    out = jax.eval_shape(lambda m=m: m.apply(m.init(jax.random.key(0), x), x))
    assert out.shape == (2, *spec.output_shape(64)), name


def test_output_stride_outside_the_supported_set_is_a_clear_error():
  m = models.build("depth_zbuffer", {"width": 4, "output_stride": 2})
  with pytest.raises(ValueError, match=r"output_stride must be one of \[4, 8, 16\]"):
    m.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
