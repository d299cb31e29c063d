"""Imports point one way: every module's imports, read with `ast`, against the layer order.

Layers, lowest first (a module may import its own package and any lower layer; packages that
share a layer do not import each other):

  0  configs                the packaged run configs (ml_collections and each other only)
  1  tasks, files, malloc, xla_flags, workdir_lock, config_files   the registry and plumbing
     (and taskonomy_jax/__init__.py); config_files loads the packaged configs by name
  2  world                  the procedural world
  3  data                   encodings, targets, grain pipelines
  4  data_builders          the TFDS builders (they store `data`'s records)
  5  models                 `models.build` and its layers
  6  train                  the one loop, losses, metrics, checkpoints
  7  taskbank, taxonomy     the task bank; AHP, the BIP and figures on an `AffinityTable`
  8  transfer               readouts, the `make taxonomy` stages and gates, which train
                            the bank, fill the `AffinityTable` and call the solver
  9  web, convert           the web app; the visualpriors converter
  10 commands               the command line, one module per subcommand
  11 cli                    the console script

`taxonomy` sits below `transfer`: the data flows transfer -> taxonomy through the table, but the
solver, AHP and the table type need nothing of the networks, while the pipeline calls the
solver, so this is the order with no module moved across packages.

Besides the order: no import cycle between modules (imports inside functions count), and no
import inside a function but of an optional dependency (`OPTIONAL`, the setup.cfg extras): a
lazy first-party import hides an edge. The exceptions are `LAZY_THIRD_PARTY` and
`LAZY_EXCEPTIONS` below, each with its reason. argparse is imported only by the command line,
and no module uses another module's private (`_name`) names.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

from tests.conftest import REPO_ROOT

LAYERS: list[set[str]] = [
    {"configs"},
    {"package", "tasks", "files", "malloc", "xla_flags", "workdir_lock", "config_files"},
    {"world"},
    {"data"},
    {"data_builders"},
    {"models"},
    {"train"},
    {"taskbank", "taxonomy"},
    {"transfer"},
    {"web", "convert"},
    {"commands"},
    {"cli"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}

# Optional dependencies (setup.cfg extras), imported where they are used so the rest works
# without them.
OPTIONAL = {"torch": "torch", "apache_beam": "beam", "uvicorn": "web", "imageio": "video"}

# Required packages imported inside a function, each with its measured reason.
LAZY_THIRD_PARTY = {
    "tensorboardX": "imports torch where torch is installed (1.3 s a process); only a process "
                    "that logs a training run needs it (train/loop.py MetricsLog)",
}

# (importing module, imported module) -> why a first-party import sits inside a function.
LAZY_EXCEPTIONS = {
    ("taskonomy_jax.commands.serve", "taskonomy_jax.web.app"):
        "the app imports fastapi, of the optional `web` extra; only `taskonomy serve` needs it",
}


def _modules() -> dict[str, pathlib.Path]:
  """Every module of taskonomy_jax and data_builders (tests beside the builders excluded)."""
  out = {}
  for top in ("taskonomy_jax", "data_builders"):
    for path in sorted((REPO_ROOT / top).rglob("*.py")):
      if path.name.endswith("_test.py"):
        continue
      parts = path.relative_to(REPO_ROOT).with_suffix("").parts
      name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
      out[name] = path
  return out


MODULES = _modules()


def _targets(module: str, path: pathlib.Path, node: ast.Import | ast.ImportFrom) -> list[str]:
  """The first-party modules an import statement loads (a name imported from a package that is
  not a submodule counts as the package)."""
  if isinstance(node, ast.Import):
    names = [a.name for a in node.names]
  else:
    base = node.module or ""
    if node.level:  # relative: resolve against this module's package
      package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
      package = package[:len(package) - node.level + 1]
      base = ".".join(package + ([base] if base else []))
    names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
  return [n for n in names if n.split(".")[0] in ("taskonomy_jax", "data_builders")]


def imports(module: str) -> list[tuple[str, int, bool]]:
  """(imported module, line, inside a function) for each first-party import of `module`."""
  path = MODULES[module]
  tree = ast.parse(path.read_text(), str(path))
  in_function = {id(n) for f in ast.walk(tree)
                 if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                 for n in ast.walk(f)}
  return [(t, node.lineno, id(node) in in_function) for node in ast.walk(tree)
          if isinstance(node, ast.Import | ast.ImportFrom)
          for t in _targets(module, path, node)]


def unit(module: str) -> str:
  """The layer unit of a module: its subpackage of taskonomy_jax, its top module, or
  data_builders."""
  parts = module.split(".")
  if parts[0] == "data_builders":
    return "data_builders"
  return parts[1] if len(parts) > 1 else "package"


def upward_edges(graph: dict[str, list[tuple[str, int, bool]]]) -> list[str]:
  bad = []
  for module, edges in graph.items():
    for target, line, _ in edges:
      src, dst = unit(module), unit(target)
      if src != dst and RANK[dst] >= RANK[src]:
        bad.append(f"{MODULES[module].relative_to(REPO_ROOT)}:{line}: {module} ({src}, layer "
                   f"{RANK[src]}) imports {target} ({dst}, layer {RANK[dst]})")
  return bad


def cycles(graph: dict[str, list[tuple[str, int, bool]]]) -> list[list[str]]:
  """One cycle through each strongly connected group of modules (Tarjan)."""
  succ = {m: sorted({t for t, _, _ in edges if t in graph}) for m, edges in graph.items()}
  index, low, stack, on_stack, groups = {}, {}, [], set(), []

  def visit(v: str) -> None:
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in succ[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      group = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        group.append(w)
        if w == v:
          break
      if len(group) > 1 or v in succ[v]:
        groups.append(sorted(group))

  for v in sorted(succ):
    if v not in index:
      visit(v)
  return groups


def test_every_module_has_a_layer():
  missing = sorted({unit(m) for m in MODULES} - set(RANK))
  assert not missing, f"give these a layer in LAYERS (and the docstring): {missing}"


def test_imports_point_down_the_layers():
  bad = upward_edges({m: imports(m) for m in MODULES})
  assert not bad, "imports pointing up the layers:\n" + "\n".join(bad)


def test_no_import_cycles():
  found = cycles({m: imports(m) for m in MODULES})
  assert not found, "import cycles:\n" + "\n".join(" <-> ".join(g) for g in found)


def test_first_party_imports_sit_at_the_top_of_modules():
  lazy = [f"{MODULES[m].relative_to(REPO_ROOT)}:{line}: {t}" for m in MODULES
          for t, line, inside in imports(m)
          if inside and (m, t) not in LAZY_EXCEPTIONS]
  assert not lazy, "first-party imports inside functions (hidden edges):\n" + "\n".join(lazy)
  stale = [k for k in LAZY_EXCEPTIONS
           if not any(t == k[1] and inside for t, _, inside in imports(k[0]))]
  assert not stale, f"LAZY_EXCEPTIONS lists imports that are gone: {stale}"


def test_only_optional_dependencies_are_imported_inside_functions():
  lazy = []
  for path in MODULES.values():
    tree = ast.parse(path.read_text())
    for f in ast.walk(tree):
      if not isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef):
        continue
      for node in ast.walk(f):
        if isinstance(node, ast.Import):
          names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
          names = [node.module or ""]
        else:
          continue
        lazy += [f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {n}" for n in names
                 if n.split(".")[0] not in (*OPTIONAL, *LAZY_THIRD_PARTY, "taskonomy_jax",
                                            "data_builders")]
  assert not lazy, "imports inside functions of required packages:\n" + "\n".join(sorted(set(lazy)))


def private_uses(module: str) -> list[str]:
  """`from other import _name` and `other._name` in `module`, `other` a first-party module."""
  path = MODULES[module]
  tree = ast.parse(path.read_text())
  aliases, out = set(), []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import | ast.ImportFrom):
      first_party = _targets(module, path, node)
      for a in node.names:
        bound = a.asname or a.name.split(".")[0]
        if isinstance(node, ast.ImportFrom) and first_party:
          target = first_party[0]
          if a.name.startswith("_") and not a.name.startswith("__") and target != module:
            out.append(f"{node.lineno}: from {target} import {a.name}")
          aliases.add(bound)
        elif isinstance(node, ast.Import) and first_party:
          aliases.add(bound)
  for node in ast.walk(tree):
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        and node.value.id in aliases and node.attr.startswith("_")
        and not node.attr.startswith("__")):
      out.append(f"{node.lineno}: {node.value.id}.{node.attr}")
  return [f"{path.relative_to(REPO_ROOT)}:{u}" for u in out]


def test_no_module_reaches_into_another_modules_private_names():
  found = [u for m in MODULES for u in private_uses(m)]
  assert not found, "private names used from outside their module:\n" + "\n".join(found)


def test_argparse_only_in_the_command_line():
  users = [m for m, path in MODULES.items()
           if unit(m) != "commands" and any(
               isinstance(n, ast.Import | ast.ImportFrom)
               and "argparse" in ([a.name for a in n.names] if isinstance(n, ast.Import)
                                  else [n.module or ""])
               for n in ast.walk(ast.parse(path.read_text())))]
  assert not users, f"argparse outside taskonomy_jax/commands: {users}"


@pytest.mark.parametrize("edge", [
    ("taskonomy_jax.data.pipeline", "taskonomy_jax.train.loop"),
    ("taskonomy_jax.taxonomy.bip", "taskonomy_jax.taskbank.train"),
])
def test_an_upward_import_is_caught(edge):
  """The checks themselves: an added upward edge is reported (and a cycle through it)."""
  graph = {m: imports(m) for m in MODULES}
  graph[edge[0]] = [*graph[edge[0]], (edge[1], 1, False)]
  assert any(f"{edge[0]} (" in line and edge[1] in line for line in upward_edges(graph))
  if edge[0] == "taskonomy_jax.data.pipeline":  # train.loop imports data.pipeline back
    assert any(edge[0] in g and edge[1] in g for g in cycles(graph))


def test_configs_import_only_ml_collections_and_each_other():
  """The packaged configs are data at the bottom layer: one is read (and a researcher's config
  builds on it) without importing the library it configures."""
  bad = []
  for module, path in MODULES.items():
    if unit(module) != "configs":
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        names = [node.module or ""]
      else:
        continue
      bad += [f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {n}" for n in names
              if n.split(".")[0] != "ml_collections" and not n.startswith("taskonomy_jax.configs")]
  assert not bad, "configs importing beyond ml_collections and each other:\n" + "\n".join(bad)
