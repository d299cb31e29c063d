"""The synthetic builder, the exporter, the real builder on exported files, and omnidata-tools.

One module-scoped export and build (two small world buildings at 32x32) serve every test here.
"""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders.taskonomy import taskonomy_dataset_builder as real
from data_builders.taskonomy_synthetic import taskonomy_synthetic_dataset_builder as synth
from taskonomy_jax import cli, config_files, world
from taskonomy_jax.configs import taxonomy as taxonomy_config
from taskonomy_jax.data import encodings as enc
from taskonomy_jax.data import features as features_lib
from taskonomy_jax.data import layout, synthetic

RES = 32
CFG = synth.SyntheticConfig(name="test32", resolution=RES, num_train=1, num_validation=1,
                            num_test=0, first_seed=0, points_per_building=2,
                            views_per_point=(2, 2))


def _records(builder, split):
  source = builder.as_data_source(split=split)
  return {features_lib.record_key(source[i]): source[i] for i in range(len(source))}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("synthetic")
  seeds = CFG.seeds()
  summary = synthetic.export(root / "export", [*seeds["train"], *seeds["validation"]],
                             CFG.world(), layout="domain", progress=False)
  sb = synth.Builder(config=CFG, data_dir=str(root / "data"))
  sb.download_and_prepare()
  names = summary.buildings
  rcfg = real.TaskonomyConfig(name="exported", split_size="custom", resolution=RES,
                              buildings={"train": (names[0],), "validation": (names[1],)})
  rb = real.Builder(config=rcfg, data_dir=str(root / "data"))
  rb.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(root / "export")))
  return root, summary, sb, rb


def test_synthetic_build_equals_real_build_of_the_exported_files(built):
  _, summary, sb, rb = built
  assert summary.views == sum(sb.info.splits[s].num_examples for s in ("train", "validation"))
  for split in ("train", "validation"):
    a, b = _records(sb, split), _records(rb, split)
    assert set(a) == set(b) and len(a) == 4  # 2 points x 2 views
    for key in a:
      for feature in a[key]:
        np.testing.assert_array_equal(np.asarray(a[key][feature]), np.asarray(b[key][feature]),
                                      err_msg=f"{key} {feature}")
  assert rb.info.metadata["skipped"]["train"]["num_skipped"] == 0


def test_synthetic_records_decode_to_the_worlds_views(built):
  _, _, sb, _ = built
  records = _records(sb, "train")
  views = {layout.ViewKey(v.building, v.point, v.view): v
           for v in _world_views(CFG.seeds()["train"])}
  assert set(views) == set(records)
  for key, view in views.items():
    rec = records[key]
    valid = view.domains["mask_valid"]
    np.testing.assert_array_equal(enc.decode_mask(rec["mask_valid"]), valid)
    np.testing.assert_allclose(enc.decode_depth(rec["depth_zbuffer"])[valid],
                               view.domains["depth_zbuffer"][valid], atol=0.5 / 512 + 1e-6)
    np.testing.assert_allclose(enc.decode_rgb(rec["rgb"]), view.domains["rgb"],
                               atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(enc.decode_normal(rec["normal"])[valid],
                               view.domains["normal"][valid], atol=0.5 / 127.5 + 1e-6)
    np.testing.assert_array_equal(enc.decode_semantic(rec["segment_semantic"]),
                                  view.domains["segment_semantic"])
    info = json.loads(rec["point_info"])
    assert info["point_uuid"] == view.point_info["point_uuid"]
    np.testing.assert_allclose(rec["camera_location"], view.point_info["camera_location"],
                               rtol=1e-6)


def _world_views(seeds):
  from taskonomy_jax import world
  cfg = CFG.world()
  for s in seeds:
    yield from world.render_views(world.generate_building(s, cfg), cfg)


def test_export_resumes_and_refuses_other_settings(built):
  root, summary, _, _ = built
  again = synthetic.export(root / "export", [0, 1], CFG.world(), layout="domain",
                           progress=False)
  assert again.resumed == summary.buildings and again.views == summary.views
  with pytest.raises(ValueError, match="other settings"):
    synthetic.export(root / "export", [0], CFG.world(), layout="building", progress=False)


def test_cli_builds_the_real_dataset_from_the_export(built, tmp_path):
  root, summary, _, rb = built
  assert cli.main(["data", "build", "taskonomy", "--config", "found", "--resolution", str(RES),
                   "--manual-dir", str(root / "export"), "--data-dir", str(tmp_path)]) == 0
  source = tfds.data_source("taskonomy/found_32px", split="train", data_dir=str(tmp_path))
  assert len(source) == summary.views
  by_key = {**_records(rb, "train"), **_records(rb, "validation")}
  for i in range(len(source)):
    record = source[i]
    np.testing.assert_array_equal(record["depth_zbuffer"],
                                  by_key[features_lib.record_key(record)]["depth_zbuffer"])


def test_cli_export_and_build_reject_bad_input(tmp_path, capsys):
  assert cli.main(["data", "export", str(tmp_path), "--buildings", "0"]) == cli.EXIT_BAD_INPUT
  assert "--buildings" in capsys.readouterr().err
  assert cli.main(["data", "export", str(tmp_path), "--domains", "rgb,depth"]) == \
      cli.EXIT_BAD_INPUT
  assert "unknown domains" in capsys.readouterr().err
  assert cli.main(["data", "build", "taskonomy", "--manual-dir",
                   str(tmp_path / "none")]) == cli.EXIT_BAD_INPUT
  assert cli.main(["data", "build", "taskonomy_synthetic", "--config", "r9"]) == \
      cli.EXIT_BAD_INPUT
  assert "r64_tiny" in capsys.readouterr().err


# --- omnidata-tools' own loader reads the exported files ---------------------------------------

OMNIDATA_DOMAINS = ("rgb", "normal", "reshading", "depth_zbuffer", "depth_euclidean",
                    "edge_texture", "edge_occlusion", "keypoints2d", "keypoints3d",
                    "principal_curvature", "segment_semantic", "mask_valid", "class_object",
                    "class_scene", "point_info")


def _import_omnidata():
  torch = pytest.importorskip("torch")
  pytest.importorskip("omnidata_tools")
  # PyPI's torchvision wheels are CUDA builds whose compiled ops cannot load next to the CPU
  # torch; omnidata only uses torchvision's pure-Python transforms, but torchvision registers
  # fake kernels for `nms`/`qnms` at import, which needs their schemas. Define them when the
  # compiled library is absent (see BUILD_NOTES.md, "Interpreter and dependency versions").
  if not hasattr(torch.ops, "torchvision") or not hasattr(torch.ops.torchvision, "nms"):
    try:
      lib = torch.library.Library("torchvision", "DEF")
      lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
      lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
      _import_omnidata.lib = lib
    except RuntimeError:
      pass
  from omnidata_tools.torch.data import taskonomy_dataset
  return torch, taskonomy_dataset


def _ours(domain, stored):
  """Our decoding of a stored domain, in omnidata's conventions (channels first, its scales)."""
  if domain in ("rgb", "reshading", "mask_valid"):
    x = np.asarray(stored, np.float32) / 255.0
  elif domain == "normal":
    # omnidata keeps [0, 1] in the dataset's frame (y down); ours decodes to OpenGL (y up).
    x = (enc.decode_normal(stored) * enc.NORMAL_AXIS_SIGN + 1.0) / 2.0
  elif domain in ("depth_zbuffer", "depth_euclidean"):
    # omnidata: raw / 65535 rescaled by its clamp max 8000 / 65535, i.e. raw / 8000, where
    # torchvision reads 16-bit PNGs as int16, so the invalid marker 65535 reads as -1.
    metres = enc.decode_depth(stored)
    x = np.where(stored == enc.DEPTH_INVALID, -1.0 / 8000.0,
                 metres * enc.DEPTH_UNITS_PER_METRE / 8000.0)
  elif domain == "edge_texture":
    x = enc.decode_edge_texture(stored)  # omnidata divides by its clamp max 0.25: [0, 1]
  elif domain == "edge_occlusion":
    x = enc.decode_edge_occlusion(stored) * enc.EDGE_OCCLUSION_CODES_PER_UNIT / 65535.0
  elif domain in ("keypoints2d", "keypoints3d"):
    x = enc.decode_keypoints(stored) * enc.KEYPOINT_CODES_PER_UNIT / 65535.0
  elif domain == "principal_curvature":
    k = enc.decode_curvature(stored)
    x = np.concatenate([(k * enc.CURVATURE_CODES_PER_INV_METRE + enc.CURVATURE_ZERO) / 255.0,
                        np.asarray(stored[..., 2:], np.float32) / 255.0], -1)
    x = np.where(enc.curvature_valid(stored)[..., None], x, 0.0)
  elif domain == "segment_semantic":
    labels = enc.decode_semantic(stored)
    return np.where(enc.semantic_labelled(stored), labels + 1, 0)
  else:
    raise AssertionError(domain)
  x = np.asarray(x, np.float32)
  return x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)


def test_omnidata_loader_reads_the_export_and_agrees(built, tmp_path, monkeypatch):
  torch, od = _import_omnidata()
  root, summary, sb, _ = built
  monkeypatch.chdir(tmp_path)  # omnidata caches file lists under ./tmp
  opts = od.TaskonomyDataset.Options(data_path=str(root / "export"), tasks=list(OMNIDATA_DOMAINS),
                                     buildings=list(summary.buildings), transform="DEFAULT",
                                     zip_file_name=True)
  dataset = od.TaskonomyDataset(opts)
  ours = {**_records(sb, "train"), **_records(sb, "validation")}
  assert len(dataset) == len(ours)
  for i in range(len(dataset)):
    item = dataset[i]
    point, view, _ = enc.parse_filename(item["rgb_fpath"].split("/")[-1])
    building = item["rgb_fpath"].split("/")[-2]
    rec = ours[layout.ViewKey(building, point, view)]
    for domain in OMNIDATA_DOMAINS:
      theirs = item[domain]
      if domain == "point_info":
        mine = json.loads(rec["point_info"])
        assert theirs["building"] == building
        for k in ("camera_location", "camera_rotation_final", "point_uuid", "field_of_view_rads"):
          assert theirs[k] == mine[k], k
        continue
      theirs = theirs.numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
      if domain == "class_object":
        np.testing.assert_allclose(enc.softmax(theirs), enc.decode_class_object(rec[domain]),
                                   atol=1e-7)
      elif domain == "class_scene":
        np.testing.assert_array_equal(theirs, rec[domain])
      else:
        np.testing.assert_allclose(theirs, _ours(domain, rec[domain]), atol=1e-6,
                                   err_msg=f"{domain} of {building}/{point}/{view}")


def test_albedo_drift_reaches_the_world_from_the_builder_and_the_run_config():
  """None keeps `WorldConfig`'s default; a value (a run's `data.albedo_drift`) is the world's."""
  assert CFG.world().albedo_drift == world.WorldConfig().albedo_drift > 0
  plain = synth.SyntheticConfig(name="plain", albedo_drift=0.0)
  assert plain.world().albedo_drift == 0.0
  run = taxonomy_config.get_config()
  assert run.data.albedo_drift is None  # the world's own default
  config_files.apply_overrides(run, ["data.albedo_drift=0.0"])  # the CLI's --set
  assert run.data.albedo_drift == 0.0
