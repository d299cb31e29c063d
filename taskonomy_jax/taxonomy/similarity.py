"""The task similarity tree (paper Fig. 13) and how tightly a group of tasks clusters in it.

The paper clusters tasks agglomeratively by their *transferring-out* patterns: a task's feature
is its column of first-order affinities as a source, one entry per target. Taxonomy's finding
is that 3D, 2D, low-dimensional geometric and semantic tasks fall into their own branches; the
functions here measure that for any affinity table (published or computed), so the synthetic
taxonomy can be compared with the paper's on the same tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.cluster import hierarchy
from scipy.spatial import distance

from taskonomy_jax.taxonomy.affinities import AffinityTable

# The paper's 3D cluster (Fig. 13).
THREE_D = ("edge_occlusion", "keypoints3d", "reshading", "depth_zbuffer", "depth_euclidean",
           "normal", "curvature", "segment_unsup25d")
# The other families of the paper's tree (Fig. 13): 2D, low-dimensional geometric, semantic.
TWO_D = ("autoencoding", "denoising", "colorization", "inpainting", "edge_texture",
         "keypoints2d", "segment_unsup2d")
GEOMETRIC = ("room_layout", "vanishing_point", "fixated_pose", "nonfixated_pose", "egomotion",
             "point_matching")
SEMANTIC = ("segment_semantic", "class_object", "class_scene")
FAMILIES = {"3d": THREE_D, "2d": TWO_D, "geometric": GEOMETRIC, "semantic": SEMANTIC}


def transfer_out_features(table: AffinityTable, sources: Sequence[str],
                          targets: Sequence[str]) -> np.ndarray:
  """Each source's first-order affinities to `targets`, every target scaled to its best source.

  A target's published affinities sum to one over all its candidates, so raw values are not
  comparable across targets; dividing each target (column) by its best first-order source
  makes them so. A source's entry for itself (its own network) is set to 1: no transfer beats
  a task's own network on the paper's data, and the tree should not depend on that entry.

  Returns: (len(sources), len(targets)) float array with values in [0, 1].
  Raises: ValueError when a (source, target) pair has no affinity in `table`.
  """
  mat = np.array(table.first_order_matrix(list(sources), list(targets)), float)
  own = np.array([[s == t for t in targets] for s in sources])
  mat[own] = np.nan
  missing = np.argwhere(np.isnan(mat) & ~own)
  if len(missing):
    s, t = missing[0]
    raise ValueError(f"no first-order affinity {sources[s]} -> {targets[t]} "
                     f"({len(missing)} pairs missing); choose sources and targets the table has")
  mat = mat / np.nanmax(mat, axis=0, keepdims=True)
  mat[own] = 1.0
  return mat


def complete_sources(table: AffinityTable, candidates: Sequence[str],
                     targets: Sequence[str]) -> list[str]:
  """The `candidates` with a first-order affinity to every target (themselves excepted), in
  order: the tasks a similarity tree over `targets` can place."""
  keep = []
  for s, row in zip(candidates, table.first_order_matrix(list(candidates), list(targets)),
                    strict=True):
    if all(s == t or not np.isnan(v) for t, v in zip(targets, row, strict=True)):
      keep.append(s)
  return keep


def similarity_tree(features: np.ndarray) -> np.ndarray:
  """Average-linkage agglomerative clustering of the rows of `features` (n, d).

  Returns scipy's linkage matrix (n - 1, 4). Euclidean distances between transfer-out
  vectors; the paper does not state its distance or linkage.
  """
  if len(features) < 2:
    raise ValueError(f"a tree needs at least 2 tasks, got {len(features)}")
  return hierarchy.linkage(features, method="average", metric="euclidean")


def cohesion(linkage: np.ndarray, labels: Sequence[str], group: Sequence[str]) -> float:
  """How cleanly `group` forms one branch: |group| / |leaves under the group's lowest common
  ancestor|. 1.0: the group is exactly one subtree; lower: other tasks are mixed in.

  Only group members among `labels` count; fewer than two of them gives NaN.
  """
  members = {i for i, name in enumerate(labels) if name in set(group)}
  if len(members) < 2:
    return float("nan")
  root = hierarchy.to_tree(linkage)

  def smallest_cover(node) -> list[int]:
    for child in (node.get_left(), node.get_right()):
      if child is not None and members <= set(child.pre_order()):
        return smallest_cover(child)
    return node.pre_order()

  return len(members) / len(smallest_cover(root))


def cohesion_p_value(linkage: np.ndarray, labels: Sequence[str], group: Sequence[str],
                     samples: int = 2000, seed: int = 0) -> float:
  """Fraction of random groups of the same size with cohesion >= `group`'s (a permutation
  test: how surprising the observed cluster is if task identity did not matter)."""
  size = sum(name in set(group) for name in labels)
  observed = cohesion(linkage, labels, group)
  if np.isnan(observed):
    return float("nan")
  rng = np.random.default_rng(seed)
  hits = sum(cohesion(linkage, labels, [labels[i] for i in rng.choice(len(labels), size,
                                                                         replace=False)])
             >= observed - 1e-12 for _ in range(samples))
  return (hits + 1) / (samples + 1)


def family_placement(linkage: np.ndarray, labels: Sequence[str], family: Sequence[str],
                     flat: Sequence[int]) -> dict:
  """`family`'s members among `labels`, its `cohesion` and permutation p-value, and the flat
  cluster (`flat`, one id per label) of each member."""
  members = [s for s in labels if s in set(family)]
  enough = len(members) >= 2 and len(members) < len(labels)
  return {"members": members,
          "cohesion": cohesion(linkage, labels, family) if enough else None,
          "p": cohesion_p_value(linkage, labels, family) if enough else None,
          "cluster_of": {s: int(f) for s, f in zip(labels, flat, strict=True)
                         if s in set(family)}}


def cophenetic_correlation(a: np.ndarray, b: np.ndarray) -> float:
  """Pearson correlation of two trees' cophenetic distances over the same leaves (1 = the same
  merge structure and heights up to scale)."""
  da, db = hierarchy.cophenet(a), hierarchy.cophenet(b)
  if len(da) != len(db):
    raise ValueError(f"trees over different numbers of leaves: {len(da)} and {len(db)} pairs")
  return float(1.0 - distance.correlation(da, db))


def adjusted_rand_index(labels_a: Sequence[int], labels_b: Sequence[int]) -> float:
  """Agreement of two flat clusterings of the same items, 1 = identical, ~0 = chance.

  Hubert & Arabie (1985): (index - expected) / (max - expected) over pairs of items.
  """
  a, b = np.asarray(labels_a), np.asarray(labels_b)
  if a.shape != b.shape:
    raise ValueError(f"clusterings of {a.shape} and {b.shape} items")
  _, ai = np.unique(a, return_inverse=True)
  _, bi = np.unique(b, return_inverse=True)
  table = np.zeros((ai.max() + 1, bi.max() + 1))
  np.add.at(table, (ai, bi), 1)
  pairs = lambda x: (x * (x - 1) / 2).sum()  # noqa: E731
  index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
  expected = rows * cols / pairs(np.array([len(a)], float))
  top = (rows + cols) / 2
  return 1.0 if top == expected else float((index - expected) / (top - expected))


def compare_trees(ours: AffinityTable, paper: AffinityTable, sources: Sequence[str],
                  targets: Sequence[str], group: Sequence[str] = THREE_D,
                  clusters: int = 4) -> dict:
  """Both tables' similarity trees over the same tasks, and how `group` clusters in each."""
  out: dict = {"tasks": list(sources), "features_over_targets": list(targets)}
  trees = {}
  for name, table in (("ours", ours), ("paper", paper)):
    z = similarity_tree(transfer_out_features(table, sources, targets))
    trees[name] = z
    flat = hierarchy.fcluster(z, t=min(clusters, len(sources)), criterion="maxclust")
    out[name] = {"group_cohesion": cohesion(z, sources, group),
                 "group_cohesion_p": cohesion_p_value(z, sources, group),
                 "clusters": {int(c): [s for s, f in zip(sources, flat, strict=True) if f == c]
                              for c in sorted(set(flat))},
                 # Where each family of the paper's tree falls: its cohesion, p-value and the
                 # flat clusters its members landed in (None with under 2 members here).
                 "families": {f: family_placement(z, sources, members, flat)
                              for f, members in FAMILIES.items()}}
    out[name]["_flat"] = flat
  out["group"] = [g for g in group if g in set(sources)]
  out["cophenetic_correlation"] = cophenetic_correlation(trees["ours"], trees["paper"])
  out["adjusted_rand_index"] = adjusted_rand_index(out["ours"].pop("_flat"),
                                                   out["paper"].pop("_flat"))
  return out
