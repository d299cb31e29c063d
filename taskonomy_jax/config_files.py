"""Run configs: a Python file's `get_config(arg)` (big_vision's convention) and `--set` overrides.

    config = load_config("experiments/configs/task_network.py:cpu")
    apply_overrides(config, ["train.num_steps=100", "data.name=taskonomy_synthetic"])
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections.abc import Sequence

import ml_collections


def load_config(spec: str) -> ml_collections.ConfigDict:
  """'path/to/config.py[:arg]' -> the file's `get_config(arg)` (big_vision's convention)."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise ValueError(f"config file {path!r} does not exist")
  module_spec = importlib.util.spec_from_file_location("_taskonomy_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"config file {path!r} has no get_config(arg) function")
  return module.get_config(arg) if arg else module.get_config()


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
  """Applies 'dotted.key=value' strings; values parse as Python literals, else strings."""
  for item in overrides:
    key, sep, raw = item.partition("=")
    if not sep:
      raise ValueError(f"override {item!r} is not of the form key=value")
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      value = raw
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      if p not in node:
        raise ValueError(f"config has no field {key!r}")
      node = node[p]
    if leaf not in node:
      raise ValueError(f"config has no field {key!r}; fields here: {sorted(node.keys())}")
    node[leaf] = value
