"""Convert the PyTorch Taskonomy task bank (the `visualpriors` layout) into Flax variables.

`visualpriors` (PyPI) ships `TaskonomyEncoder` / `TaskonomyDecoder` state dicts, one `.pth` per
task and part (`normal_encoder-<hash>.pth`, `normal_decoder-<hash>.pth`, each a dict with a
`state_dict`). Our paper-size networks match those modules layer for layer
(taskonomy_jax/models/resnet.py, decoders.py), so conversion is a renaming plus layout changes:

  Conv2d weight (O, I, kh, kw)           -> kernel (kh, kw, I, O)
  ConvTranspose2d weight (I, O, kh, kw)  -> kernel (kh, kw, I, O), spatially flipped
  Linear weight (O, I)                   -> kernel (I, O)
  BatchNorm weight/bias/running_*        -> params scale/bias, batch_stats mean/var

The conversion itself needs only numpy; torch is needed only to read `.pth` files
(`pip install 'taskonomy-jax[torch]'`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from taskonomy_jax import models, tasks
from taskonomy_jax.train import checkpoint

# visualpriors decoder module names, in order, -> our PixelDecoder layer index.
_PIXEL_DECODER_NAMES = ("conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "deconv8",
                        "conv9", "deconv10", "conv11", "deconv12", "conv13", "deconv14")


def _np(x: Any) -> np.ndarray:
  if hasattr(x, "detach"):  # a torch tensor
    x = x.detach().cpu().numpy()
  return np.asarray(x, dtype=np.float32)


def _conv(w: Any) -> np.ndarray:
  return _np(w).transpose(2, 3, 1, 0)


def _deconv(w: Any) -> np.ndarray:
  return _np(w)[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).copy()


def _set(tree: dict, path: tuple[str, ...], value: np.ndarray) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  if path[-1] in tree:
    raise ValueError(f"two source tensors map to {'/'.join(path)}")
  tree[path[-1]] = value


def _bn(out: dict, prefix: tuple[str, ...], sd: Mapping[str, Any], name: str) -> set[str]:
  _set(out["params"], (*prefix, "scale"), _np(sd[f"{name}.weight"]))
  _set(out["params"], (*prefix, "bias"), _np(sd[f"{name}.bias"]))
  _set(out["batch_stats"], (*prefix, "mean"), _np(sd[f"{name}.running_mean"]))
  _set(out["batch_stats"], (*prefix, "var"), _np(sd[f"{name}.running_var"]))
  return {f"{name}.{k}" for k in ("weight", "bias", "running_mean", "running_var",
                                  "num_batches_tracked")}


def convert_encoder(sd: Mapping[str, Any], out: dict | None = None) -> dict:
  """`TaskonomyEncoder.state_dict()` -> {'params': {'encoder': ...}, 'batch_stats': {...}}."""
  out = out if out is not None else {"params": {}, "batch_stats": {}}
  used: set[str] = set()
  enc = ("encoder",)
  _set(out["params"], (*enc, "conv1", "kernel"), _conv(sd["conv1.weight"]))
  used |= {"conv1.weight"} | _bn(out, (*enc, "bn1"), sd, "bn1")
  block = re.compile(r"layer(\d)\.(\d+)\.(conv[123]|bn[123]|downsample\.[01])\.")
  for key in sd:
    m = block.match(key)
    if not m or key in used:
      continue
    stage, idx, part = m.groups()
    ours = (*enc, f"layer{stage}_{idx}")
    src = f"layer{stage}.{idx}.{part}"
    if part.startswith("conv") or part == "downsample.0":
      name = "downsample_conv" if part == "downsample.0" else part
      _set(out["params"], (*ours, name, "kernel"), _conv(sd[f"{src}.weight"]))
      used.add(f"{src}.weight")
    else:
      name = "downsample_bn" if part == "downsample.1" else part
      used |= _bn(out, (*ours, name), sd, src)
  _set(out["params"], (*enc, "compress_conv", "kernel"), _conv(sd["compress1.weight"]))
  used |= {"compress1.weight"} | _bn(out, (*enc, "compress_bn"), sd, "compress_bn")
  _check_all_used(sd, used, "encoder")
  return out


def convert_decoder(sd: Mapping[str, Any], out: dict | None = None) -> dict:
  """`TaskonomyDecoder.state_dict()` (pixel or MLP) -> {'params': {'decoder': ...}, ...}."""
  out = out if out is not None else {"params": {}, "batch_stats": {}}
  used: set[str] = set()
  dec = ("decoder",)
  if "fc0.weight" in sd:  # the 2-layer FC head (`is_decoder_mlp=True`)
    _set(out["params"], (*dec, "fc0", "kernel"), _np(sd["fc0.weight"]).T.copy())
    used |= {"fc0.weight"} | _bn(out, (*dec, "bn0"), sd, "bn0")
    _set(out["params"], (*dec, "output", "kernel"), _np(sd["fc2.weight"]).T.copy())
    _set(out["params"], (*dec, "output", "bias"), _np(sd["fc2.bias"]))
    used |= {"fc2.weight", "fc2.bias"}
  else:
    for i, name in enumerate(_PIXEL_DECODER_NAMES):
      deconv = name.startswith("deconv")
      conv_idx, bn_idx = (1, 3) if deconv else (0, 1)
      w = sd[f"{name}.{conv_idx}.weight"]
      _set(out["params"], (*dec, f"layer{i}", "kernel"), _deconv(w) if deconv else _conv(w))
      used |= {f"{name}.{conv_idx}.weight"} | _bn(out, (*dec, f"bn{i}"), sd, f"{name}.{bn_idx}")
    _set(out["params"], (*dec, "output", "kernel"), _conv(sd["decoder_output.0.weight"]))
    _set(out["params"], (*dec, "output", "bias"), _np(sd["decoder_output.0.bias"]))
    used |= {"decoder_output.0.weight", "decoder_output.0.bias"}
  _check_all_used(sd, used, "decoder")
  return out


def _check_all_used(sd: Mapping[str, Any], used: set[str], what: str) -> None:
  left = sorted(k for k in sd if k not in used and not k.endswith("num_batches_tracked"))
  if left:
    raise ValueError(f"visualpriors {what} state dict has tensors the converter does not map: "
                     f"{left[:8]}{' ...' if len(left) > 8 else ''}")


def convert(task: str | tasks.TaskSpec, encoder_sd: Mapping[str, Any],
            decoder_sd: Mapping[str, Any] | None = None) -> dict:
  """Both state dicts -> Flax variables of `models.build(task)` at paper size, shape-checked.

  Without `decoder_sd` (visualpriors ships encoders only for pose, egomotion, point matching,
  jigsaw, room layout, vanishing points and colorization) only the encoder part is returned.

  Raises:
    ValueError: a tensor is missing, unmapped or has a shape our network does not have.
  """
  spec = task if isinstance(task, tasks.TaskSpec) else tasks.get(task)
  try:
    out = convert_encoder(encoder_sd)
    if decoder_sd is not None:
      convert_decoder(decoder_sd, out)
  except KeyError as e:
    raise ValueError(f"visualpriors state dict lacks tensor {e}; is it a TaskonomyEncoder/"
                     "TaskonomyDecoder state dict?") from None
  _check_shapes(spec, out, with_decoder=decoder_sd is not None)
  return out


def _check_shapes(spec: tasks.TaskSpec, variables: dict, with_decoder: bool) -> None:
  net = models.build(spec)
  views = max(spec.num_views, spec.num_tiles)
  x = np.zeros((1, 256, 256, 3) if views == 1 else (1, views, 256, 256, 3), np.float32)
  want = jax.eval_shape(net.init, jax.random.key(0), x)
  for col in ("params", "batch_stats"):
    parts = want[col] if with_decoder else {"encoder": want[col]["encoder"]}
    want_flat = {jax.tree_util.keystr(k): v.shape
                 for k, v in jax.tree_util.tree_leaves_with_path(parts)}
    got_flat = {jax.tree_util.keystr(k): v.shape
                for k, v in jax.tree_util.tree_leaves_with_path(variables[col])}
    if want_flat != got_flat:
      bad = sorted(k for k in set(want_flat) | set(got_flat)
                   if want_flat.get(k) != got_flat.get(k))
      raise ValueError(f"converted {col} do not fit {spec.name}'s network at paper size: "
                       + ", ".join(f"{k}: ours {want_flat.get(k)} vs theirs {got_flat.get(k)}"
                                   for k in bad[:6]))


def load_pth(path: str) -> dict[str, np.ndarray]:
  """Reads a visualpriors `.pth` file (needs torch) -> its state dict as numpy arrays."""
  try:
    import torch
  except ImportError as e:
    raise ImportError("reading .pth files needs PyTorch: pip install 'taskonomy-jax[torch]'") \
        from e
  ckpt = torch.load(path, map_location="cpu", weights_only=True)
  sd = ckpt.get("state_dict", ckpt)
  return {k: _np(v) for k, v in sd.items()}


def save(variables: dict, workdir: str) -> str:
  """Writes converted variables as a step-0 checkpoint in the training loop's layout, so
  `taskonomy_jax.train.load_variables(workdir)` and `restore_encoder` read it. Returns the path.
  """
  return checkpoint.save_variables(workdir, variables)
