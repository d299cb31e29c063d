"""grain pipelines: per-process shards, exact resumption, decoded targets, multi-view samples."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders.taskonomy import taskonomy_dataset_builder as real
from taskonomy_jax.data import encodings as enc
from taskonomy_jax.data import features as features_lib
from taskonomy_jax.data import pipeline, targets
from tests import data_fixtures

RES = 8
BUILDINGS = {"alpha": (3, 3), "beta": (3, 2), "gamma": (1, 4)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("pipeline")
  written = data_fixtures.write_dataset(root / "manual", "domain", BUILDINGS, RES)
  cfg = real.TaskonomyConfig(name="pipe", split_size="custom",
                             buildings={"train": tuple(BUILDINGS)}, resolution=RES)
  builder = real.Builder(config=cfg, data_dir=str(root / "data"))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(root / "manual")))
  return builder, written


def _keys(source):
  return [features_lib.record_key(source[i]) for i in range(len(source))]


@pytest.mark.parametrize("count", [2, 3])
def test_simulated_processes_see_disjoint_shards_covering_the_split(built, count):
  builder, written = built
  shards = [builder.as_data_source(split=pipeline.process_split("train", i, count))
            for i in range(count)]
  keys = [set(_keys(s)) for s in shards]
  for i in range(count):
    for j in range(i + 1, count):
      assert not keys[i] & keys[j]
  assert set().union(*keys) == set(written)
  assert sum(len(s) for s in shards) == len(written)
  with pytest.raises(ValueError, match="process_index"):
    pipeline.process_split("train", 2, 2)
  assert pipeline.per_process_batch_size(8, 2) == 4
  with pytest.raises(ValueError, match="multiple"):
    pipeline.per_process_batch_size(6, 4)


def _batches(it, n):
  return [next(it) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b, strict=True):
    np.testing.assert_array_equal(x["rgb"], y["rgb"])
    for t in x["targets"]:
      np.testing.assert_array_equal(x["targets"][t], y["targets"][t])
      np.testing.assert_array_equal(x["masks"][t], y["masks"][t])


def test_resuming_from_a_saved_state_gives_the_uninterrupted_batches(built):
  builder, _ = built
  source = builder.as_data_source(split="train")
  make = lambda: pipeline.single_view_dataset(  # noqa: E731
      source, ["normal", "depth_zbuffer", "segment_semantic"], batch_size=4, seed=7)
  # 7 batches of 4 cross the epoch boundary (19 views), so per-epoch reshuffling is covered.
  uninterrupted = _batches(pipeline.iterator(make()), 7)
  it = pipeline.iterator(make())
  _batches(it, 3)
  saved = pipeline.state_to_bytes(it.get_state())
  del it
  resumed = pipeline.iterator(make())
  resumed.set_state(pipeline.state_from_bytes(saved))
  _assert_batches_equal(_batches(resumed, 4), uninterrupted[3:])
  # A different seed gives a different order; the same seed the same one.
  other = _batches(pipeline.iterator(pipeline.single_view_dataset(
      source, ["normal"], batch_size=4, seed=8)), 1)
  assert not np.array_equal(other[0]["rgb"], uninterrupted[0]["rgb"])


def test_batches_hold_the_registry_targets_and_every_view_once_per_epoch(built):
  builder, written = built
  source = builder.as_data_source(split="train")
  ds = pipeline.single_view_dataset(source, ["rgb2sfnorm", "class_scene"], batch_size=1,
                                    seed=0, num_epochs=1)
  seen = []
  for batch in ds:
    key = next(k for k in written
               if k.point == batch["point"][0] and k.view == batch["view"][0]
               and np.array_equal(enc.encode_rgb((batch["rgb"][0] + 1) / 2), written[k]["rgb"]))
    seen.append(key)
    want, mask = targets.single_view_target("normal", written[key])
    np.testing.assert_array_equal(batch["targets"]["normal"][0], want)
    np.testing.assert_array_equal(batch["masks"]["normal"][0], mask)
    assert batch["targets"]["class_scene"].shape == (1, 63)
  assert sorted(seen) == sorted(written)
  with pytest.raises(ValueError, match="multi-view"):
    pipeline.SingleViewDecoder(["egomotion"])


@pytest.mark.parametrize("task", sorted(pipeline.MULTI_VIEW_KINDS))
def test_multi_view_samples(built, task):
  builder, written = built
  source = builder.as_data_source(split="train")
  mv = pipeline.MultiViewSource(source, task, seed=3, max_distance=100.0)
  again = pipeline.MultiViewSource(source, task, seed=3, max_distance=100.0, index=mv.index)
  labels = []
  for i in range(len(mv)):
    members, label = mv.members(i)
    assert members == again.members(i)[0]  # deterministic for a seed
    keys = [features_lib.record_key(source[j]) for j in members]
    assert len(set(keys)) == len(keys) == pipeline.MULTI_VIEW_KINDS[task]
    assert len({k.building for k in keys}) == 1
    if task in ("fixated_pose", "egomotion"):
      assert len({k.point for k in keys}) == 1
    if task == "nonfixated_pose":
      assert keys[0].point != keys[1].point
    if task == "point_matching":
      assert label == int(keys[0].point == keys[1].point)
      labels.append(label)
  if task == "point_matching":
    assert 0 < sum(labels) < len(labels)  # both positives and negatives
  sample = mv[0]
  members, _ = mv.members(0)
  assert sample["rgb"].shape == (pipeline.MULTI_VIEW_KINDS[task], RES, RES, 3)
  infos = [written[features_lib.record_key(source[j])]["point_info"] for j in members]
  if task != "point_matching":
    want, _ = targets.multi_view_target(task, infos)
    np.testing.assert_allclose(sample["target"], want, rtol=1e-6)
  # gamma has a single point: no non-fixated partner; egomotion needs 3 views of a point.
  if task == "nonfixated_pose":
    assert all(features_lib.record_key(source[int(a)]).building != "gamma" for a in mv.anchors)
  if task == "egomotion":
    assert all(features_lib.record_key(source[int(a)]).building != "beta" for a in mv.anchors)
  halves = [pipeline.MultiViewSource(source, task, seed=3, max_distance=100.0, index=mv.index,
                                     process_index=p, process_count=2) for p in range(2)]
  assert sorted(np.concatenate([h.anchors for h in halves]).tolist()) == mv.anchors.tolist()
  batch = next(iter(pipeline.multi_view_dataset(mv, batch_size=2, seed=0)))
  assert batch["rgb"].shape[:2] == (2, pipeline.MULTI_VIEW_KINDS[task])


def test_nonfixated_partners_are_nearby(built):
  builder, _ = built
  source = builder.as_data_source(split="train")
  mv = pipeline.MultiViewSource(source, "nonfixated_pose", seed=0, max_distance=2.5)
  idx = mv.index
  for i in range(len(mv)):
    a, b = mv.members(i)[0]
    assert np.linalg.norm(idx.point_location[a] - idx.point_location[b]) <= 2.5 + 1e-6


def test_more_draws_per_anchor_give_fresh_partners_and_keep_draw_zero(built):
  builder, _ = built
  source = builder.as_data_source(split="train")
  one = pipeline.MultiViewSource(source, "nonfixated_pose", seed=0, max_distance=100.0)
  many = pipeline.MultiViewSource(source, "nonfixated_pose", seed=0, max_distance=100.0,
                                  index=one.index, draws_per_anchor=8)
  n = len(one.anchors)
  assert len(one) == n and len(many) == 8 * n
  assert [many.members(i) for i in range(n)] == [one.members(i) for i in range(n)]
  pairs = {tuple(many.members(i)[0]) for i in range(len(many))}
  assert len(pairs) > n  # later draws pick other partners of the same anchors
  for i in range(len(many)):
    a, b = many.members(i)[0]
    assert a == int(one.anchors[i % n]) and b in one._nearby[a]
  with pytest.raises(IndexError):
    many.members(len(many))
  with pytest.raises(ValueError, match="draws_per_anchor"):
    pipeline.MultiViewSource(source, "nonfixated_pose", seed=0, draws_per_anchor=0)


def test_epoch_shuffle_is_a_fresh_permutation_each_epoch():
  import grain

  ds = pipeline.EpochShuffle(grain.MapDataset.range(10), seed=5).repeat(3)
  epochs = [[ds[e * 10 + i] for i in range(10)] for e in range(3)]
  for order in epochs:
    assert sorted(order) == list(range(10))
  assert epochs[0] != epochs[1] != epochs[2]
  again = pipeline.EpochShuffle(grain.MapDataset.range(10), seed=5).repeat(3)
  assert [again[i] for i in range(30)] == [x for e in epochs for x in e]


def test_global_batch_is_sharded_over_the_data_axis(built):
  import jax

  builder, _ = built
  ds = pipeline.single_view_dataset(builder.as_data_source(split="train"), ["normal"],
                                    batch_size=2, seed=0)
  local = ds[0]
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
  out = pipeline.global_batch(local, mesh)
  assert out["rgb"].shape == (2 * jax.process_count(), RES, RES, 3)
  assert out["rgb"].sharding.spec[0] == "data"
  np.testing.assert_array_equal(np.asarray(out["targets"]["normal"]), local["targets"]["normal"])


def test_iterator_state_round_trips_through_an_orbax_checkpoint(built, tmp_path):
  import grain
  import orbax.checkpoint as ocp

  builder, _ = built
  source = builder.as_data_source(split="train")
  make = lambda: pipeline.iterator(pipeline.single_view_dataset(  # noqa: E731
      source, ["depth_zbuffer"], batch_size=3, seed=1))
  uninterrupted = _batches(make(), 6)
  it = make()
  _batches(it, 4)
  with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
    mngr.save(4, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    mngr.wait_until_finished()
  fresh = make()
  with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
    mngr.restore(4, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  _assert_batches_equal(_batches(fresh, 2), uninterrupted[4:])


def test_batched_decoding_equals_per_example_decoding(built):
  import grain

  builder, _ = built
  source = builder.as_data_source(split="train")
  decoder = pipeline.SingleViewDecoder(list(targets.TARGETS))
  batch = decoder(grain.MapDataset.source(source).batch(3)[0])
  for i in range(3):
    one = decoder(source[i])
    np.testing.assert_array_equal(batch["rgb"][i], one["rgb"])
    for t in targets.TARGETS:
      np.testing.assert_allclose(batch["targets"][t][i], one["targets"][t], rtol=1e-6,
                                 err_msg=t)
      np.testing.assert_array_equal(batch["masks"][t][i], one["masks"][t], err_msg=t)
