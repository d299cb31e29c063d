"""Pictures of the taxonomy: the chosen graph, the affinity matrix, Quality/Gain vs budget.

All functions write a PNG atomically and use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import io
import json
import pathlib
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.cluster import hierarchy

from taskonomy_jax import files, tasks
from taskonomy_jax.taxonomy import api, similarity
from taskonomy_jax.taxonomy.affinities import (
  AffinityTable,
  node_spec,
  node_title,
)
from taskonomy_jax.taxonomy.api import Taxonomy

_SUPERVISED, _TARGET, _BOTH = "#f4a259", "#8cb8e0", "#9bc995"


def _save(fig: plt.Figure, path: pathlib.Path) -> pathlib.Path:
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
  plt.close(fig)
  files.write_atomic(pathlib.Path(path), buf.getvalue())
  return pathlib.Path(path)


def _spread(n: int) -> np.ndarray:
  return np.linspace(0, 1, n + 2)[1:-1] if n else np.zeros(0)


def draw_taxonomy(tax: Taxonomy, path: str | pathlib.Path, ax: plt.Axes | None = None) -> None:
  """Draws supervised tasks (top row) and the transfers serving the other targets (bottom row).

  A target that is supervised is drawn in the top row in green (served by its own network).
  Transfers of order > 1 meet in a junction dot; each edge into a target carries its order,
  affinity and Quality. When `tax.selection` holds its budget's resampled choices, the title
  says how often this supervised set was chosen and each supervised task how often it was in
  the chosen set.
  """
  freq = tax.selection.at(tax.budget) if tax.selection is not None else None
  in_set = api.source_frequencies(freq) if freq is not None else {}
  supervised = list(tax.supervised)
  served_by_transfer = [s for s in tax.served if not s.transfer.is_self]
  width = max(len(supervised), len(served_by_transfer), 3)
  own = ax is None
  if own:
    fig, ax = plt.subplots(figsize=(1.6 * width + 1.5, 5.2))  # room for "Euclidean distance"
  top_x = dict(zip(supervised, _spread(len(supervised)), strict=True))
  bottom_x = dict(zip([s.target for s in served_by_transfer],
                      _spread(len(served_by_transfer)), strict=True))
  targets = set(tax.targets)
  stagger = len(served_by_transfer) > 8
  target_y = {name: (0.04 if stagger and k % 2 else 0.13) for k, name in enumerate(bottom_x)}
  for s in served_by_transfer:
    # Every transfer meets in a junction above its target (one dot for all its sources), so
    # labels sit beside the target instead of crossing each other mid-way.
    tx, jy = bottom_x[s.target], 0.45
    label = f"o{s.transfer.order} a={s.affinity:.2g}"
    if s.quality is not None:
      label += f"\nQ={s.quality:.2f}"
    for src in s.transfer.sources:
      ax.plot([top_x[src], tx], [0.88, jy], color="0.55", lw=0.9, zorder=1)
    ax.plot([tx], [jy], "o", color="0.3", ms=4, zorder=3)
    ax.annotate("", xy=(tx, target_y[s.target] + 0.03), xytext=(tx, jy),
                arrowprops=dict(arrowstyle="-|>", color="0.35", lw=1.1))
    ax.text(tx, jy - 0.1 if not stagger else jy - 0.08, label, fontsize=6.5, ha="center",
            va="center", zorder=4,
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9))
  for name, x in top_x.items():
    colour = _BOTH if name in targets else _SUPERVISED
    extra = "\n(own network)" if name in targets else ""
    if freq is not None:  # inside the node: side by side, separate labels overlapped
      extra += f"\nchosen in {in_set.get(name, 0.0):.0%}"
    ax.text(x, 0.9, node_title(name) + extra, ha="center", va="center", fontsize=8, zorder=5,
            bbox=dict(boxstyle="round,pad=0.4", fc=colour, ec="0.3"))
  for name, x in bottom_x.items():
    ax.text(x, target_y[name], node_title(name), ha="center", va="center", fontsize=8, zorder=5,
            bbox=dict(boxstyle="round,pad=0.4", fc=_TARGET, ec="0.3"))
  q = f"{tax.mean_quality:.2f}" if tax.mean_quality is not None else "n/a"
  g = f"{tax.mean_gain:.2f}" if tax.mean_gain is not None else "n/a"
  title = (f"budget {tax.budget:g} (used {tax.cost:g}), order <= {tax.order}: "
           f"{len(supervised)} supervised, {len(tax.targets)} targets; mean Quality {q}, "
           f"mean Gain {g}")
  caption = tax.selection_caption()
  ax.set_title(title if caption is None else f"{title}\n{caption}", fontsize=9)
  ax.set_xlim(-0.02, 1.02)
  ax.set_ylim(0, 1)
  ax.axis("off")
  if own:
    _save(fig, path)


def node_order(nodes: Sequence[str]) -> list[str]:
  """Nodes in registry order (self-supervised, 2D, 3D, geometry, semantic), variants last."""
  rank = {n: i for i, n in enumerate(tasks.names())}
  return sorted(nodes, key=lambda n: (rank[node_spec(n).name], n))


def affinity_heatmap(table: AffinityTable, path: str | pathlib.Path,
                     title: str = "First-order task affinities") -> np.ndarray:
  """Draws the first-order affinity matrix (rows: sources, columns: targets).

  Each column is divided by its best first-order transfer, so colours compare sources for one
  target (the published affinities of a target sum to one over all its transfers, orders 1-2 and
  its own network included, so raw columns are not comparable). The diagonal, the target's own
  network, is left out of the scaling and drawn hatched. Returns the raw (sources, targets)
  matrix, own networks on the diagonal.
  """
  targets = node_order(table.targets)
  sources = node_order(table.nodes)
  mat = np.array(table.first_order_matrix(sources, targets))
  shown = mat.copy()
  own = [(sources.index(t), j) for j, t in enumerate(targets) if t in sources]
  for i, j in own:
    shown[i, j] = np.nan
  with np.errstate(invalid="ignore", divide="ignore"):
    shown = shown / np.nanmax(shown, axis=0, keepdims=True)
  fig, ax = plt.subplots(figsize=(0.42 * len(targets) + 3, 0.38 * len(sources) + 2))
  im = ax.imshow(np.ma.masked_invalid(shown), cmap="viridis", aspect="auto", vmin=0, vmax=1)
  ax.set_xticks(range(len(targets)), [node_title(t) for t in targets], rotation=70,
                ha="right", fontsize=7)
  ax.set_yticks(range(len(sources)), [node_title(s) for s in sources], fontsize=7)
  for i, j in own:
    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="0.4", lw=0,
                               hatch="////"))
  ax.set_xlabel("target")
  ax.set_ylabel("source")
  ax.set_title(f"{title}\n(each column / its best source; hatched: the target's own network; "
               "grey: not measured)", fontsize=9)
  ax.set_facecolor("0.85")
  fig.colorbar(im, ax=ax, fraction=0.03, label="affinity / best source's affinity")
  _save(fig, path)
  return mat


def affinity_error_bars(table: AffinityTable, intervals: Mapping[str, Sequence[float]],
                        path: str | pathlib.Path,
                        title: str = "First-order affinities with bootstrap intervals") -> None:
  """One panel per target: its first-order sources' affinities, best first, with their 95%
  bootstrap intervals (`intervals`: str(transfer) -> (low, high), e.g. report.json's
  `affinity_intervals`; a transfer without one is drawn without a bar)."""
  targets = node_order(table.targets)
  cols = min(4, len(targets))
  rows = -(-len(targets) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 0.22 * len(table.nodes) * rows + 1.5),
                           squeeze=False)
  for ax, target in zip(axes.flat, targets, strict=False):
    first = sorted(((t, v) for t, v in table.affinity.items()
                    if t.target == target and t.order == 1 and not t.is_self),
                   key=lambda tv: -tv[1])
    values = np.array([v for _, v in first])
    bounds = np.array([intervals.get(str(t), (v, v)) for t, v in first], float)
    err = np.abs(np.stack([values - bounds[:, 0], bounds[:, 1] - values]))
    y = np.arange(len(first))
    ax.barh(y, values, xerr=err, color="tab:blue", ecolor="0.2", capsize=2)
    ax.set_yticks(y, [node_title(t.sources[0]) for t, _ in first], fontsize=7)
    ax.invert_yaxis()
    ax.set_title(node_title(target), fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
  for ax in list(axes.flat)[len(targets):]:
    ax.axis("off")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  _save(fig, path)


def budget_curves(series: dict[str, dict[str, list[float]]], path: str | pathlib.Path,
                  title: str) -> None:
  """Mean Quality and mean Gain against budget; `series[label] = {budget, quality, gain}`."""
  fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
  for label, s in series.items():
    axes[0].plot(s["budget"], s["quality"], "o-", ms=3, label=label)
    axes[1].plot(s["budget"], s["gain"], "o-", ms=3, label=label)
  axes[0].axhline(0.5, color="0.5", ls=":", lw=1)
  axes[0].text(0.98, 0.505, "= fully supervised", transform=axes[0].get_yaxis_transform(),
               ha="right", va="bottom", fontsize=7, color="0.4")
  axes[1].axhline(0.5, color="0.5", ls=":", lw=1)
  axes[1].text(0.98, 0.505, "= from scratch", transform=axes[1].get_yaxis_transform(),
               ha="right", va="bottom", fontsize=7, color="0.4")
  axes[0].set_ylabel("mean Quality (win rate vs fully supervised)")
  axes[1].set_ylabel("mean Gain (win rate vs from scratch)")
  for ax in axes:
    ax.set_xlabel("supervision budget (tasks)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(title, fontsize=10)
  _save(fig, path)


def draw_many(taxonomies: Sequence[Taxonomy], path: str | pathlib.Path) -> None:
  """Several taxonomies stacked in one picture (e.g. one per budget)."""
  width = max(max(len(t.supervised), len(t.targets) - len(
      [s for s in t.served if s.transfer.is_self]), 3) for t in taxonomies)
  fig, axes = plt.subplots(len(taxonomies), 1,
                           figsize=(1.05 * width + 1.5, 4.6 * len(taxonomies)))
  for ax, tax in zip(np.atleast_1d(axes), taxonomies, strict=True):
    draw_taxonomy(tax, path, ax=ax)
  _save(fig, path)




def similarity_dendrogram(table: AffinityTable, path: str | pathlib.Path,
                          title: str = "Task similarity tree") -> list[str]:
  """The paper's Fig. 13: tasks clustered by their transfer-out affinities
  (`similarity.transfer_out_features`), leaves coloured by the task's family; the 3D tasks'
  cohesion is printed in the title. Uses every node with a first-order affinity to every
  target. Returns the leaves in drawing order."""
  targets = node_order(table.targets)
  sources = similarity.complete_sources(table, node_order(table.nodes), targets)
  z = similarity.similarity_tree(similarity.transfer_out_features(table, sources, targets))
  fig, ax = plt.subplots(figsize=(8, 0.28 * len(sources) + 1.5))
  tree = hierarchy.dendrogram(z, labels=[node_title(s) for s in sources], orientation="right",
                              color_threshold=0, above_threshold_color="0.3", ax=ax)
  three_d = set(similarity.THREE_D)
  for label, leaf in zip(ax.get_yticklabels(), tree["leaves"], strict=True):
    label.set_color("#c0392b" if sources[leaf] in three_d else "0.15")
    label.set_fontsize(8)
  ax.set_xlabel("distance between transfer-out affinity vectors")
  ax.set_title(f"{title}\n(red: the paper's 3D tasks; their cohesion "
               f"{similarity.cohesion(z, sources, similarity.THREE_D):.2f}, 1 = one branch)",
               fontsize=9)
  _save(fig, path)
  return [sources[i] for i in tree["leaves"]]


def write_outputs(tax: Taxonomy, out: pathlib.Path) -> list[pathlib.Path]:
  """Writes `taxonomy.json` and `taxonomy.png` into `out` (each atomically)."""
  out.mkdir(parents=True, exist_ok=True)
  json_path, png_path = out / "taxonomy.json", out / "taxonomy.png"
  files.write_atomic(json_path, json.dumps(tax.to_json(), indent=1))
  draw_taxonomy(tax, png_path)
  return [json_path, png_path]
