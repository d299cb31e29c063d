"""The task registry against the paper's facts and the published results' code names."""

import json
import re

import pytest

from taskonomy_jax import cli, tasks

# Facts of the paper and of the original task-bank configs, written out independently of the
# registry so a wrong edit there fails here.
SOURCE_ONLY = {"colorization", "jigsaw", "inpainting", "random"}
MULTI_VIEW = {"fixated_pose": 2, "nonfixated_pose": 2, "point_matching": 2, "egomotion": 3}
OUTPUT_SHAPES_256 = {
    "autoencoding": (256, 256, 3), "denoising": (256, 256, 3), "inpainting": (256, 256, 3),
    "colorization": (64, 64, 313), "curvature": (256, 256, 2), "normal": (256, 256, 3),
    "depth_zbuffer": (256, 256, 1), "depth_euclidean": (256, 256, 1),
    "edge_texture": (256, 256, 1), "edge_occlusion": (256, 256, 1),
    "keypoints2d": (256, 256, 1), "keypoints3d": (256, 256, 1), "reshading": (256, 256, 1),
    "segment_unsup2d": (256, 256, 64), "segment_unsup25d": (256, 256, 64),
    "segment_semantic": (256, 256, 17), "class_object": (1000,), "class_scene": (63,),
    "room_layout": (9,), "vanishing_point": (9,), "fixated_pose": (6,),
    "nonfixated_pose": (6,), "egomotion": (18,), "point_matching": (2,), "jigsaw": (100,),
    "random": (),
}
L2_TASKS = {"curvature", "room_layout", "vanishing_point", "fixated_pose", "nonfixated_pose",
            "egomotion"}
DEPTH_MASKED = {"curvature", "edge_occlusion", "keypoints3d", "reshading", "depth_zbuffer",
                "depth_euclidean", "normal"}


def test_26_tasks_with_unique_names():
  specs = list(tasks.all_tasks())
  assert len(specs) == 26
  every_name = [n for t in specs for n in t.all_names]
  assert len(set(tasks.names())) == 26
  # No name (registry, code or alias) points at two tasks.
  owners = {}
  for t in specs:
    for n in set(t.all_names):
      assert owners.setdefault(n, t.name) == t.name, n
  assert len(every_name) >= 26


def test_source_only_tasks():
  assert {t.name for t in tasks.all_tasks() if t.source_only} == SOURCE_ONLY
  assert len(tasks.targets()) == 22
  assert len(tasks.trainable()) == 25  # the task bank: all but random projection
  assert "random" not in {t.name for t in tasks.trainable()}


def test_views_and_decoders():
  for t in tasks.all_tasks():
    assert t.num_views == MULTI_VIEW.get(t.name, 1), t.name
    if t.num_views > 1 or t.name == "jigsaw":
      assert t.decoder == "siamese", t.name
    elif t.name == "random":
      assert t.decoder == "none"
    elif len(OUTPUT_SHAPES_256[t.name]) == 3:
      assert t.decoder == "pixel", t.name
    else:
      assert t.decoder == "vector", t.name
  assert tasks.get("jigsaw").num_tiles == 9


@pytest.mark.parametrize("name,shape", sorted(OUTPUT_SHAPES_256.items()))
def test_output_shapes(name, shape):
  assert tasks.get(name).output_shape(256) == shape


def test_output_shape_scales_with_resolution():
  assert tasks.get("normal").output_shape(64) == (64, 64, 3)
  assert tasks.get("colorization").output_shape(64) == (16, 16, 313)
  with pytest.raises(ValueError, match="output stride"):
    tasks.get("colorization").output_shape(66)


def test_losses_metrics_and_masks_follow_the_original_configs():
  for t in tasks.all_tasks():
    if t.name in L2_TASKS:
      assert t.loss == "l2", t.name
    assert (t.valid_mask == "depth") == (t.name in DEPTH_MASKED), t.name
    if t.valid_mask == "depth":
      assert "depth_zbuffer" in t.domains, t.name
    if t.loss in ("softmax_xent", "weighted_softmax_xent", "metric_embedding"):
      assert t.dtype == "int32", t.name
    if t.loss in ("l1", "l2", "soft_xent"):
      assert t.dtype == "float32", t.name
  assert tasks.get("segment_semantic").metric == "miou"
  assert tasks.get("normal").metric == "angular_error_deg"
  assert tasks.get("point_matching").loss == "softmax_xent"


def test_display_kinds_are_consistent_with_outputs():
  for t in tasks.all_tasks():
    if t.display in ("rgb", "normal"):
      assert t.channels == 3, t.name
    if t.display in ("gray", "depth"):
      assert t.channels == 1, t.name
    if t.display == "curvature":
      assert t.channels == 2


def test_domains_are_real_dataset_domains():
  real = {"rgb", "depth_zbuffer", "depth_euclidean", "normal", "reshading",
          "principal_curvature", "edge_occlusion", "edge_texture", "keypoints2d", "keypoints3d",
          "segment_unsup2d", "segment_unsup25d", "segment_semantic", "class_object",
          "class_scene", "point_info"}
  assert set(tasks.domains()) <= real
  assert tasks.get("normal").domains[0] == "normal"
  assert tasks.get("segment_semantic").domains == ("segment_semantic",)


def _published_code_names(paper_results_dir):
  names = set()
  for path in paper_results_dir.glob("*.json"):
    data = json.loads(path.read_text())
    if isinstance(data, dict) and all(isinstance(v, (int, float)) for v in data.values()):
      for key in data:
        names.update(key.split("__"))
    else:  # ranked lists: {target: [sources...]}
      for target, sources in data.items():
        names.add(target)
        names.update(sources)
  return names


def test_every_published_code_name_maps_to_a_task(paper_results_dir):
  readme = (paper_results_dir / "README.md").read_text()
  in_readme = set(re.findall(r"`([a-z0-9_]+)`", readme)) - {"self", "random", "results"}
  in_readme = {n for n in in_readme if not n.endswith("json")}
  published = _published_code_names(paper_results_dir) - set(tasks.SPECIAL_SOURCES)
  assert len(published) >= 26
  for code in sorted(in_readme | published):
    spec = tasks.get(code)  # raises if unmapped
    assert code in spec.all_names
  # Each of the 26 tasks appears in the published data under its code name.
  assert {tasks.get(c).name for c in published} == set(tasks.names())


def test_published_targets_are_the_registry_targets(paper_results_dir):
  data = json.loads((paper_results_dir / "all_affinities.json").read_text())
  published_targets = {tasks.get(k.split("__")[-1]).name for k in data}
  assert published_targets == {t.name for t in tasks.targets()} - {"class_scene"}
  assert {tasks.get(k.split("__")[-1]).name for k in json.loads(
      (paper_results_dir / "all_affinities_1k.json").read_text())} == {
          t.name for t in tasks.targets()}


@pytest.mark.parametrize("query,expected", [
    ("normal", "normal"), ("rgb2sfnorm", "normal"), ("segmentsemantic_rb", "segment_semantic"),
    ("impainting_whole", "inpainting"), ("inpainting_whole", "inpainting"),
    ("class_1000", "class_object"), ("class_places", "class_scene"),
    ("class_selected", "class_object"), ("Depth-Zbuffer", "depth_zbuffer"),
    ("vanishing_point_well_defined", "vanishing_point"), ("ego_motion", "egomotion"),
])
def test_lookup_by_any_name(query, expected):
  assert tasks.get(query).name == expected


def test_unknown_name_names_it_lists_accepted_and_suggests():
  with pytest.raises(tasks.UnknownTaskError) as info:
    tasks.get("depht_zbufer")
  message = str(info.value)
  assert "'depht_zbufer'" in message
  assert "Did you mean 'depth_zbuffer'" in message
  for name in tasks.names():
    assert name in message
  assert info.value.suggestions[0] == "depth_zbuffer"
  # A code name misspelling suggests the registry name it belongs to.
  with pytest.raises(tasks.UnknownTaskError, match="'normal'"):
    tasks.get("rgb2sfnrm")
  with pytest.raises(tasks.UnknownTaskError, match="Accepted names"):
    tasks.get("zzzz")
  with pytest.raises(TypeError):
    tasks.get(3)


def test_cli_lists_and_rejects(capsys):
  assert cli.main(["tasks"]) == cli.EXIT_OK
  out = capsys.readouterr().out
  assert len(out.strip().splitlines()) == 27 and "rgb2sfnorm" in out
  assert cli.main(["tasks", "rgb2mist", "--json"]) == cli.EXIT_OK
  row = json.loads(capsys.readouterr().out)
  assert row["name"] == "depth_euclidean" and row["output_shape_256"] == [256, 256, 1]
  assert cli.main(["tasks", "nrmal"]) == cli.EXIT_BAD_INPUT
  assert "Did you mean 'normal'" in capsys.readouterr().err
