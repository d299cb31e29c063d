"""The real-dataset TFDS builder on files in both released layouts, including bad input."""

import io
import json
import os
import pathlib
import struct
import zlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from data_builders.taskonomy import splits
from data_builders.taskonomy import taskonomy_dataset_builder as real
from taskonomy_jax import cli
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


# --- damaged data under good checksums, stray files, the wrong resolution -----------------------


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
  chunks, pos = [], 8
  while pos < len(data):
    (n,) = struct.unpack(">I", data[pos:pos + 4])
    chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]))
    pos += 12 + n
  return chunks


def _with_image_data(png: bytes, make_idat) -> bytes:
  """`png` with its IDAT replaced by `make_idat(raw scanlines, original IDAT)`, every chunk CRC
  recomputed: the damage is invisible to the chunk checksums."""
  chunks = _png_chunks(png)
  idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
  new = [(k, b) for k, b in chunks if k not in (b"IDAT", b"IEND")]
  new += [(b"IDAT", make_idat(zlib.decompress(idat), idat)), (b"IEND", b"")]
  out = b"\x89PNG\r\n\x1a\n"
  for kind, body in new:
    out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
  with Image.open(io.BytesIO(out)) as im:
    im.verify()  # the premise: Pillow's checks pass
  return out


_DAMAGE = {
    "garbage": lambda raw, idat: bytes(range(256)) * 4,
    "short": lambda raw, idat: zlib.compress(raw[: len(raw) // 2]),
    "long": lambda raw, idat: zlib.compress(raw + raw),
    "bad_filter": lambda raw, idat: zlib.compress(b"\x07" + raw[1:]),
    "cut_short": lambda raw, idat: idat[:-6],
}


@pytest.mark.parametrize("damage", sorted(_DAMAGE))
def test_check_file_finds_damaged_image_data_under_good_crcs(tmp_path, damage):
  stored = enc.encode_view(*data_fixtures.random_view("alpha", 0, 0, RES), names=("rgb",))
  path = tmp_path / "point_0_view_0_domain_rgb.png"
  path.write_bytes(enc.file_bytes("rgb", stored["rgb"]))
  assert layout.check_file(path, "rgb", RES) is None
  path.write_bytes(_with_image_data(path.read_bytes(), _DAMAGE[damage]))
  reason = layout.check_file(path, "rgb", RES)
  assert reason is not None and reason.startswith("corrupt_png:rgb: "), reason


def test_png_with_good_crcs_but_damaged_data_is_skipped_not_fatal(tmp_path):
  """Such a file passed the scan and aborted the whole build when it was decoded."""
  manual = tmp_path / "manual"
  written = data_fixtures.write_dataset(manual, "domain", BUILDINGS, RES)
  rgb = layout.path_for(manual, "domain", layout.ViewKey("alpha", 0, 0), "rgb")
  rgb.write_bytes(_with_image_data(rgb.read_bytes(), _DAMAGE["garbage"]))
  depth = layout.path_for(manual, "domain", layout.ViewKey("beta", 0, 1), "depth_zbuffer")
  depth.write_bytes(_with_image_data(depth.read_bytes(), _DAMAGE["short"]))
  builder = _build(manual, tmp_path / "data", _config("damaged"))
  skipped = builder.info.metadata["skipped"]["train"]["skipped"]
  assert skipped["alpha/point_0_view_0"].startswith("corrupt_png:rgb: image data is not a valid "
                                                    "zlib stream")
  assert skipped["beta/point_0_view_1"].startswith(
      "corrupt_png:depth_zbuffer: image data inflates to ")
  assert builder.info.splits["train"].num_examples == 7 - 2
  for key, record in _records(builder, "train").items():
    _assert_same(record, written[key], features_lib.ALL_DOMAINS)


def test_stray_files_and_undecodable_names_are_listed_in_the_report(tmp_path):
  manual = tmp_path / "manual"
  written = data_fixtures.write_dataset(manual, "domain", {"alpha": (1, 2)}, RES)
  folder = manual / "rgb" / "alpha"
  (folder / "notes.txt").write_text("x")
  (folder / "point_0_view_0_domain_rgb.png.part").write_bytes(b"x")
  (folder / "point_7_view_0_domain_normal.png").write_bytes(b"x")  # in the wrong folder
  (folder / "thumbs").mkdir()
  (folder / os.fsdecode(b"point_0_view_\xff_domain_rgb.png")).write_bytes(b"x")
  latin1 = os.fsdecode(b"caf\xe9")  # a building folder named in Latin-1, not UTF-8
  (manual / "rgb" / latin1).mkdir()
  data_fixtures.write_dataset(manual, "domain", {latin1: (1, 1)}, RES, domains=("normal",))
  cfg = real.TaskonomyConfig(name="found_stray", split_size="found", resolution=RES)
  builder = _build(manual, tmp_path / "data", cfg)
  assert set(_records(builder, "train")) == set(written)  # nothing else changed
  report = tfds.builder_from_directory(builder.data_dir).info.metadata["skipped"]["train"]
  assert report["ignored"] == {
      "normal/caf\\xe9": "undecodable_name: a building folder whose name is not UTF-8",
      "rgb/caf\\xe9": "undecodable_name: a building folder whose name is not UTF-8",
      "rgb/alpha/notes.txt": "stray_file: not point_{p}_view_{v}_domain_{domain}.{png,npy,json}",
      "rgb/alpha/point_0_view_0_domain_rgb.png.part":
          "stray_file: not point_{p}_view_{v}_domain_{domain}.{png,npy,json}",
      "rgb/alpha/point_7_view_0_domain_normal.png": "stray_file: a normal file in the rgb folder",
      "rgb/alpha/thumbs": "stray_folder: a folder inside the rgb folder",
      "rgb/alpha/point_0_view_\\xff_domain_rgb.png": "undecodable_name: not UTF-8",
  }
  assert report["num_ignored"] == 7 and report["ignored_by_reason"] == {
      "stray_file": 3, "stray_folder": 1, "undecodable_name": 3}
  assert report["num_skipped"] == 0


def test_wrong_resolution_names_the_files_resolution(tmp_path):
  data_fixtures.write_dataset(tmp_path / "manual", "domain", {"alpha": (1, 2)}, RES,
                              domains=("rgb", "point_info"))
  cfg = real.TaskonomyConfig(name="res2", split_size="custom", buildings={"train": ("alpha",)},
                             resolution=64, domains=("rgb",))
  with pytest.raises(ValueError, match=r"The images are 16x16 \(2 views\), not 64x64: build "
                     r"with --resolution 16"):
    _build(tmp_path / "manual", tmp_path / "data", cfg)


def test_cli_build_exit_codes_and_reports(tmp_path, capsys):
  manual, data = tmp_path / "manual", tmp_path / "data"
  data_fixtures.write_dataset(manual, "domain", {"alpha": (1, 2)}, RES)
  (manual / "rgb" / "alpha" / ".DS_Store").write_bytes(b"x")
  base = ["data", "build", "taskonomy", "--config", "found", "--manual-dir", str(manual),
          "--data-dir", str(data)]
  assert cli.main(base) == 2  # the default --resolution 512
  err = capsys.readouterr().err
  assert "error: no usable views under" in err and "wrong_size" in err
  assert "The images are 16x16 (2 views), not 512x512: build with --resolution 16" in err
  assert "Traceback" not in err and not list(data.rglob("*.array_record*"))
  assert cli.main([*base, "--resolution", str(RES)]) == 0
  out = capsys.readouterr().out
  summary = json.loads(out[out.index("\n{") + 1:])  # after TFDS's own lines
  assert summary["splits"] == {"train": 2} and summary["ignored"] == {"train": 1}
