"""The task similarity tree (paper Fig. 13): known answers, brute force, the paper's finding."""

import itertools

import numpy as np
import pytest
from PIL import Image
from scipy.cluster import hierarchy

from taskonomy_jax.taxonomy import draw, published, similarity
from taskonomy_jax.taxonomy.affinities import AffinityTable, make_transfer


@pytest.mark.parametrize("a, b, expected", [
    ([0, 0, 1, 2], [0, 0, 1, 1], 4 / 7),  # worked by hand: (1 - 1/3) / (3/2 - 1/3)
    ([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2], 0.8 / 3.3),
    ([0, 1, 2, 3], [5, 6, 7, 8], 1.0),  # relabelled singletons
    ([1, 1, 2, 2], [7, 7, 3, 3], 1.0),
])
def test_adjusted_rand_index_known_answers(a, b, expected):
  assert similarity.adjusted_rand_index(a, b) == pytest.approx(expected)


def test_adjusted_rand_index_matches_pair_counting():
  rng = np.random.default_rng(0)
  for _ in range(30):
    n = int(rng.integers(4, 12))
    a, b = rng.integers(0, 3, n), rng.integers(0, 4, n)
    pairs = list(itertools.combinations(range(n), 2))
    both = sum(a[i] == a[j] and b[i] == b[j] for i, j in pairs)
    in_a = sum(a[i] == a[j] for i, j in pairs)
    in_b = sum(b[i] == b[j] for i, j in pairs)
    expected_both = in_a * in_b / len(pairs)
    top = (in_a + in_b) / 2
    want = 1.0 if top == expected_both else (both - expected_both) / (top - expected_both)
    assert similarity.adjusted_rand_index(a, b) == pytest.approx(want)


def _two_blobs() -> tuple[np.ndarray, list[str]]:
  rng = np.random.default_rng(1)
  feats = np.concatenate([rng.normal(0, 0.05, (4, 3)), rng.normal(5, 0.05, (5, 3))])
  return feats, [f"t{i}" for i in range(9)]


def test_cohesion_of_a_separate_branch_is_one_and_mixed_groups_lower():
  feats, labels = _two_blobs()
  z = similarity.similarity_tree(feats)
  assert similarity.cohesion(z, labels, labels[:4]) == 1.0
  assert similarity.cohesion(z, labels, labels[4:]) == 1.0
  # One member of each blob: the smallest branch holding both is the whole tree.
  assert similarity.cohesion(z, labels, ["t0", "t8"]) == pytest.approx(2 / 9)
  assert np.isnan(similarity.cohesion(z, labels, ["t0", "not_a_leaf"]))


def test_family_placement_names_each_members_cluster():
  feats, labels = _two_blobs()
  z = similarity.similarity_tree(feats)
  flat = hierarchy.fcluster(z, t=2, criterion="maxclust")
  blob = similarity.family_placement(z, labels, ["t5", "t6", "t7", "t8", "t4", "absent"], flat)
  assert blob["members"] == ["t4", "t5", "t6", "t7", "t8"] and blob["cohesion"] == 1.0
  assert blob["p"] < 0.05 and len(set(blob["cluster_of"].values())) == 1
  mixed = similarity.family_placement(z, labels, ["t0", "t8"], flat)
  assert mixed["cohesion"] == pytest.approx(2 / 9) and mixed["p"] > 0.5
  assert mixed["cluster_of"]["t0"] != mixed["cluster_of"]["t8"]
  assert similarity.family_placement(z, labels, ["t0"], flat)["p"] is None


def test_cohesion_equals_brute_force_over_all_subtrees():
  rng = np.random.default_rng(2)
  feats = rng.normal(size=(8, 2))
  labels = [f"t{i}" for i in range(8)]
  z = similarity.similarity_tree(feats)
  subtrees = []

  def collect(node):  # every subtree's leaf set, internal nodes included
    subtrees.append(set(node.pre_order()))
    for child in (node.get_left(), node.get_right()):
      if child is not None:
        collect(child)
  collect(hierarchy.to_tree(z))
  for size in (2, 3, 5):
    for group in itertools.combinations(range(8), size):
      smallest = min(len(s) for s in subtrees if set(group) <= s)
      got = similarity.cohesion(z, labels, [labels[i] for i in group])
      assert got == pytest.approx(size / smallest)


def _table(values: dict[tuple[str, str], float]) -> AffinityTable:
  aff = {make_transfer([s], t): v for (s, t), v in values.items()}
  for t in {t for _, t in values}:
    aff[make_transfer(["self"], t)] = 1.0
  return AffinityTable(affinity=aff, quality={}, gain={}, source="test")


def test_features_scale_each_target_to_its_best_source_and_own_entry_to_one():
  table = _table({("normal", "depth_zbuffer"): 0.2, ("random", "depth_zbuffer"): 0.1,
                  ("depth_zbuffer", "normal"): 0.3, ("random", "normal"): 0.6})
  feats = similarity.transfer_out_features(table, ["normal", "depth_zbuffer", "random"],
                                           ["depth_zbuffer", "normal"])
  np.testing.assert_allclose(feats, [[1.0, 1.0], [1.0, 0.5], [0.5, 1.0]])
  with pytest.raises(ValueError, match="no first-order affinity edge_texture -> normal"):
    similarity.transfer_out_features(table, ["edge_texture"], ["normal"])


def test_published_affinities_give_the_papers_3d_branch(paper_results_dir, tmp_path):
  """Fig. 13 of the paper: the 3D tasks form one branch of the tree built from the published
  affinities, far beyond chance for a group of that size."""
  table = published.load_published("default", paper_results_dir)
  targets = draw.node_order(table.targets)
  sources = similarity.complete_sources(table, draw.node_order(table.nodes), targets)
  assert set(similarity.THREE_D) <= set(sources)
  z = similarity.similarity_tree(similarity.transfer_out_features(table, sources, targets))
  assert similarity.cohesion(z, sources, similarity.THREE_D) == 1.0
  assert similarity.cohesion_p_value(z, sources, similarity.THREE_D, samples=300) < 0.01
  # The same table compared with itself: identical trees.
  same = similarity.compare_trees(table, table, sources, targets)
  assert same["paper"]["families"]["3d"]["cohesion"] == 1.0
  assert same["paper"]["families"] == same["ours"]["families"]
  assert same["cophenetic_correlation"] == pytest.approx(1.0)
  assert same["adjusted_rand_index"] == pytest.approx(1.0)
  leaves = draw.similarity_dendrogram(table, tmp_path / "tree.png")
  assert sorted(leaves) == sorted(sources)
  with Image.open(tmp_path / "tree.png") as im:
    assert im.size[0] > 300
