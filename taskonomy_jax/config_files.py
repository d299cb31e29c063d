"""Run configs: a config's `get_config(arg)` (big_vision's convention) and `--set` overrides.

A config is named either as a packaged config of `taskonomy_jax/configs/` (installed with the
package, so it resolves from any working directory) or as a Python file (a researcher's own
config, e.g. one of experiments/configs/ that builds on a packaged one):

    config = load_config("task_network:cpu")
    config = load_config("experiments/configs/taxonomy_wider_bank.py")
    apply_overrides(config, ["train.num_steps=100", "data.name=taskonomy_synthetic"])
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pkgutil
import types
from collections.abc import Sequence

import ml_collections

from taskonomy_jax import configs


def packaged_configs() -> list[str]:
  """The names of the configs installed with the package (modules of taskonomy_jax/configs/)."""
  return sorted(m.name for m in pkgutil.iter_modules(configs.__path__) if not m.ispkg)


def _module(name: str) -> types.ModuleType:
  """A config file (path ending in .py) or a packaged config by name, as a module."""
  if name.endswith(".py"):
    if not os.path.isfile(name):
      raise ValueError(f"config file {name!r} does not exist")
    spec = importlib.util.spec_from_file_location("_taskonomy_config", name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
  if name in packaged_configs():
    return importlib.import_module(f"{configs.__name__}.{name}")
  raise ValueError(
      f"unknown config {name!r}: name a packaged config ({', '.join(packaged_configs())}), "
      "e.g. 'taxonomy:tiny', or a config file, whose path must end in .py "
      "(e.g. 'experiments/configs/taxonomy_wider_bank.py')")


def load_config(spec: str) -> ml_collections.ConfigDict:
  """'name[:arg]' (a packaged config) or 'path/to/config.py[:arg]' -> its `get_config(arg)`."""
  name, _, arg = spec.partition(":")
  module = _module(name)
  if not hasattr(module, "get_config"):
    raise ValueError(f"config {name!r} has no get_config(arg) function")
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
