"""The real-dataset TFDS builder on files in both released layouts, including bad input."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders.taskonomy import splits
from data_builders.taskonomy import taskonomy_dataset_builder as real
from taskonomy_jax.data import encodings as enc
from taskonomy_jax.data import features as features_lib
from taskonomy_jax.data import layout
from tests import data_fixtures

RES = 16
BUILDINGS = {"alpha": (2, 2), "beta": (1, 3), "gamma": (1, 2)}
SPLITS = {"train": ("alpha", "beta"), "validation": ("gamma",)}


def _config(name, domains=features_lib.ALL_DOMAINS, use_beam=False, buildings=SPLITS):
  return real.TaskonomyConfig(name=name, split_size="custom", buildings=buildings,
                              domains=domains, resolution=RES, use_beam=use_beam)


def _build(manual_dir, data_dir, config, **download_kwargs):
  builder = real.Builder(config=config, data_dir=str(data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir), **download_kwargs))
  return builder


def _records(builder, split):
  source = builder.as_data_source(split=split)
  return {features_lib.record_key(source[i]): source[i] for i in range(len(source))}


def _assert_same(record, stored, domains):
  for d in features_lib.check_domains(domains):
    if d == "point_info":
      assert enc.decode_point_info(record[d]) == stored[d]
    else:
      np.testing.assert_array_equal(record[d], stored[d], err_msg=d)


@pytest.mark.parametrize("layout_name", layout.LAYOUTS)
def test_builds_both_layouts_and_reads_every_feature_back(tmp_path, layout_name):
  written = data_fixtures.write_dataset(tmp_path / "manual", layout_name, BUILDINGS, RES)
  assert layout.detect_layout(tmp_path / "manual") == layout_name
  builder = _build(tmp_path / "manual", tmp_path / "data", _config(f"all_{layout_name}"))
  assert builder.info.splits["train"].num_examples == 4 + 3
  assert builder.info.splits["validation"].num_examples == 2
  for split in ("train", "validation"):
    records = _records(builder, split)
    assert set(records) == {k for k in written if k.building in SPLITS[split]}
    for key, record in records.items():
      _assert_same(record, written[key], features_lib.ALL_DOMAINS)
      info = written[key]["point_info"]
      np.testing.assert_allclose(record["camera_location"], info["camera_location"], rtol=1e-6)
  assert builder.info.metadata["layout"] == layout_name
  assert builder.info.metadata["skipped"]["train"]["num_skipped"] == 0


def test_domain_subset_config_and_data_source_by_name(tmp_path):
  domains = features_lib.DOMAIN_SUBSETS["rgb_depth_normal"]
  written = data_fixtures.write_dataset(tmp_path / "manual", "domain", {"alpha": (1, 2)}, RES,
                                        domains=domains)
  builder = _build(tmp_path / "manual", tmp_path / "data",
                   _config("subset", domains, buildings={"train": ("alpha",)}))
  source = tfds.data_source("taskonomy/subset", split="train", data_dir=str(tmp_path / "data"))
  assert len(source) == 2
  assert set(source[0]) == {*domains, *features_lib.INDEX_FIELDS}
  _assert_same(source[0], written[features_lib.record_key(source[0])], domains)
  assert builder.info.features["depth_zbuffer"].np_dtype == np.uint16


def _break(manual: pathlib.Path) -> dict[str, str]:
  """Damages four views in four ways; returns view -> expected reason prefix."""
  lay = "domain"
  # missing domain file
  layout.path_for(manual, lay, layout.ViewKey("alpha", 0, 1), "normal").unlink()
  # corrupt PNG (truncated)
  p = layout.path_for(manual, lay, layout.ViewKey("alpha", 1, 0), "depth_zbuffer")
  p.write_bytes(p.read_bytes()[:40])
  # malformed point_info JSON
  layout.path_for(manual, lay, layout.ViewKey("beta", 0, 2), "point_info").write_text("{oops")
  # a building whose domains have different view counts: one rgb file too few
  layout.path_for(manual, lay, layout.ViewKey("gamma", 0, 0), "rgb").unlink()
  return {"alpha/point_0_view_1": "missing:normal",
          "alpha/point_1_view_0": "corrupt_png:depth_zbuffer",
          "beta/point_0_view_2": "bad_point_info",
          "gamma/point_0_view_0": "missing:rgb"}


def test_bad_views_are_skipped_and_reported_in_the_dataset_info(tmp_path):
  manual = tmp_path / "manual"
  written = data_fixtures.write_dataset(manual, "domain", BUILDINGS, RES)
  expected = _break(manual)
  builder = _build(manual, tmp_path / "data", _config("bad"))
  report = builder.info.metadata["skipped"]
  skipped = {**report["train"]["skipped"], **report["validation"]["skipped"]}
  assert set(skipped) == set(expected)
  for view, prefix in expected.items():
    assert skipped[view].startswith(prefix), (view, skipped[view])
  assert report["validation"]["mismatched_buildings"]["gamma"]["rgb"] == 1
  assert report["train"]["skipped_by_reason"] == {"bad_point_info": 1, "corrupt_png": 1,
                                                  "missing": 1}
  assert builder.info.splits["train"].num_examples == 7 - 3
  assert builder.info.splits["validation"].num_examples == 1
  # The report is in the dataset's files, so it is there for whoever reads the dataset later.
  reloaded = tfds.builder_from_directory(builder.data_dir)
  assert reloaded.info.metadata["skipped"]["train"]["num_skipped"] == 3
  # Every example that was written is intact.
  for key, record in _records(builder, "train").items():
    _assert_same(record, written[key], features_lib.ALL_DOMAINS)


def test_wrong_resolution_is_skipped_not_misread(tmp_path):
  data_fixtures.write_dataset(tmp_path / "manual", "building", {"alpha": (1, 2)}, RES)
  cfg = real.TaskonomyConfig(name="res", split_size="custom",
                             buildings={"train": ("alpha",)}, resolution=RES * 2,
                             domains=("rgb",))
  with pytest.raises(ValueError, match="no usable views") as info:
    _build(tmp_path / "manual", tmp_path / "data", cfg)
  assert "wrong_size" in str(info.value)
  assert not list((tmp_path / "data").rglob("*.array_record*"))  # nothing half-written


def test_neither_layout_is_a_clear_error_and_writes_nothing(tmp_path):
  manual = tmp_path / "manual"
  (manual / "photos" / "2019").mkdir(parents=True)
  (manual / "photos" / "2019" / "a.png").write_bytes(b"x")
  with pytest.raises(layout.LayoutError, match="neither Taskonomy layout"):
    _build(manual, tmp_path / "data", _config("neither"))
  assert not (tmp_path / "data" / "taskonomy" / "neither").exists() or not list(
      (tmp_path / "data").rglob("dataset_info.json"))
  with pytest.raises(layout.LayoutError, match="does not exist"):
    layout.detect_layout(tmp_path / "nowhere")


def test_public_split_configs():
  sizes = {name: {k: len(v) for k, v in s.items()} for name, s in splits.SPLITS.items()}
  totals = {name: sum(s.values()) for name, s in sizes.items()}
  assert totals == {"tiny": 35, "medium": 138, "full": 482, "fullplus": 537}  # dataset README
  assert sizes["tiny"] == {"train": 25, "validation": 5, "test": 5}
  for small, big in [("tiny", "medium"), ("medium", "full"), ("full", "fullplus")]:
    for split in ("train", "validation", "test"):
      assert set(splits.SPLITS[small][split]) <= set(splits.SPLITS[big][split])
  every = [b for s in splits.SPLITS["fullplus"].values() for b in s]
  assert len(every) == len(set(every))  # splits are disjoint
  names = {c.name for c in real.Builder.BUILDER_CONFIGS}
  assert {"tiny", "fullplus", "tiny_rgb_depth_normal", "medium_rgb"} <= names
  with pytest.raises(ValueError, match="accepted"):
    real.TaskonomyConfig(name="x", split_size="huge").building_lists()


def test_beam_path_builds_the_same_examples(tmp_path):
  pytest.importorskip("apache_beam")
  import apache_beam as beam

  data_fixtures.write_dataset(tmp_path / "manual", "building", BUILDINGS, RES)
  plain = _build(tmp_path / "manual", tmp_path / "plain", _config("cmp"))
  beamed = _build(tmp_path / "manual", tmp_path / "beam", _config("cmp", use_beam=True),
                  beam_runner=beam.runners.DirectRunner())
  for split in ("train", "validation"):
    assert beamed.info.splits[split].num_examples == plain.info.splits[split].num_examples
    a, b = _records(plain, split), _records(beamed, split)
    assert set(a) == set(b)
    for key in a:
      _assert_same(b[key], {d: (enc.decode_point_info(v) if d == "point_info" else v)
                            for d, v in a[key].items()}, features_lib.ALL_DOMAINS)
  assert json.dumps(plain.info.metadata["skipped"]) == json.dumps(beamed.info.metadata["skipped"])
