"""The visualpriors converter: randomly initialised PyTorch networks, same input, same output.

Needs the `torch` extra (torch==2.13.0 CPU and visualpriors); `make test` installs it.
"""

import numpy as np
import pytest

try:
  import torch
  from visualpriors import taskonomy_network as vp
except ImportError as e:  # fail loudly: this test must run in CI
  raise ImportError("the converter tests need the torch extra: "
                    "pip install -e '.[test,torch]'") from e

from taskonomy_jax import models
from taskonomy_jax.convert import visualpriors as convert


def _randomise_batchnorm(module, gen):
  """Random BN statistics and affine terms, so a wrong mapping of any of them shows."""
  for m in module.modules():
    if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
      m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) - 0.5)
      m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
      m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
      m.bias.data.copy_(torch.rand(m.bias.shape, generator=gen) * 0.4 - 0.2)


@pytest.fixture(scope="module")
def torch_nets():
  torch.manual_seed(0)
  gen = torch.Generator().manual_seed(0)
  enc = vp.TaskonomyEncoder(normalize_outputs=False, eval_only=True)
  pixel = vp.TaskonomyDecoder(out_channels=3, eval_only=True)
  mlp = vp.TaskonomyDecoder(out_channels=63, eval_only=True, is_decoder_mlp=True)
  with torch.no_grad():
    for net in (enc, pixel, mlp):
      _randomise_batchnorm(net, gen)
  x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 256, 256)).astype(np.float32)
  with torch.no_grad():
    rep = enc(torch.from_numpy(x))
    outs = {"normal": pixel(rep).numpy().transpose(0, 2, 3, 1), "class_scene": mlp(rep).numpy()}
  return enc, {"normal": pixel, "class_scene": mlp}, x.transpose(0, 2, 3, 1), \
      rep.numpy().transpose(0, 2, 3, 1), outs


@pytest.mark.parametrize("task", ["normal", "class_scene"])
def test_converted_network_matches_pytorch(torch_nets, task):
  enc, decoders, x, rep_torch, outs = torch_nets
  variables = convert.convert(task, enc.state_dict(), decoders[task].state_dict())
  net = models.build(task)
  rep = net.apply(variables, x, method=lambda m, x: m.encoder(x))
  np.testing.assert_allclose(np.asarray(rep), rep_torch, atol=1e-4, rtol=0)
  out = net.apply(variables, x)
  np.testing.assert_allclose(np.asarray(out), outs[task], atol=1e-4, rtol=0)


def test_encoder_only_and_bad_state_dicts(torch_nets):
  enc = torch_nets[0]
  variables = convert.convert("fixated_pose", enc.state_dict())  # visualpriors: encoder only
  assert list(variables["params"]) == ["encoder"]
  sd = dict(enc.state_dict())
  sd.pop("compress1.weight")
  with pytest.raises(ValueError, match=r"lacks tensor 'compress1\.weight'"):
    convert.convert("normal", sd)
  sd = dict(enc.state_dict())
  sd["extra.weight"] = torch.zeros(1)
  with pytest.raises(ValueError, match=r"does not map: \['extra\.weight'\]"):
    convert.convert("normal", sd)


def test_cli_converts_pth_files_into_a_loadable_checkpoint(torch_nets, tmp_path):
  from taskonomy_jax import cli, train

  enc, decoders, *_ = torch_nets
  torch.save({"state_dict": enc.state_dict()}, tmp_path / "normal_encoder-x.pth")
  torch.save({"state_dict": decoders["normal"].state_dict()}, tmp_path / "normal_decoder-x.pth")
  rc = cli.main(["convert-visualpriors", "--task", "normal",
                 "--encoder", str(tmp_path / "normal_encoder-x.pth"),
                 "--decoder", str(tmp_path / "normal_decoder-x.pth"),
                 "--out", str(tmp_path / "bank" / "normal")])
  assert rc == 0
  loaded = train.load_variables(str(tmp_path / "bank" / "normal"))
  want = convert.convert("normal", enc.state_dict(), decoders["normal"].state_dict())
  assert len(jax_leaves(loaded)) == len(jax_leaves(want)) > 300
  for a, b in zip(jax_leaves(loaded), jax_leaves(want), strict=True):
    np.testing.assert_array_equal(a, b)


def jax_leaves(tree):
  import jax
  return [np.asarray(x) for x in jax.tree.leaves(tree)]
