"""The Transfer Learning API (`solve_taxonomy`, `taskonomy solve`) and `taskonomy figures`."""

import json

import numpy as np
import pytest
from PIL import Image

from taskonomy_jax import cli
from taskonomy_jax.taxonomy import api, bip, draw, published
from taskonomy_jax.taxonomy.affinities import SELF, Transfer


@pytest.fixture(scope="module")
def default_table(paper_results_dir):
  return published.load_published("default", root=paper_results_dir)


def test_solve_reports_the_published_numbers(default_table):
  targets = ["rgb2sfnorm", "reshade", "rgb2depth", "edge3d", "keypoint3d", "room_layout"]
  sources = [*targets, "curvature", "keypoints2d", "denoising", "edge_texture", "jigsaw"]
  tax = api.solve_taxonomy(targets, 2, sources, order=2, data=default_table)
  problem = bip.build_problem(default_table, targets, sources, order=2)
  assert tax.objective == pytest.approx(bip.brute_force(problem, 2)[0])
  assert tax.cost <= 2 and len(tax.supervised) <= 2
  for s in tax.served:
    assert s.affinity == default_table.affinity[s.transfer]
    if s.transfer.is_self:
      assert s.target in tax.supervised and s.quality == 0.5
    else:
      assert set(s.transfer.sources) <= set(tax.supervised)
      assert s.quality == default_table.quality[s.transfer]
    assert s.gain == default_table.gain[s.transfer]
  doc = tax.to_json()
  assert [t["target"] for t in doc["served"]] == list(tax.targets)
  assert doc["mean_quality"] == pytest.approx(np.mean([s.quality for s in tax.served]))


def test_costs_and_importance_change_the_answer(default_table):
  targets = ["normal", "reshading", "depth_zbuffer"]
  free = api.solve_taxonomy(targets, 1, data=default_table)
  assert free.supervised == ("normal",)  # normals is the best single source of the three
  pricey = api.solve_taxonomy(targets, 1, data=default_table, costs={"normal": 2})
  assert "normal" not in pricey.supervised
  # A heavy weight on depth makes the best single source for depth win, whatever the others lose.
  weighted = api.solve_taxonomy(targets, 1, targets, data=default_table,
                                importance={"depth_zbuffer": 100})
  problem = bip.build_problem(default_table, targets, targets, importance={"depth_zbuffer": 100})
  assert weighted.objective == pytest.approx(bip.brute_force(problem, 1)[0])
  best_for_depth = max(targets, key=lambda s: default_table.affinity[
      Transfer((SELF,), s) if s == "depth_zbuffer" else Transfer((s,), "depth_zbuffer")])
  assert weighted.supervised == (best_for_depth,)


def _run(capfd, *argv):
  code = cli.main(list(argv))
  out, err = capfd.readouterr()
  return code, out, err


def test_cli_solve_writes_json_and_png(tmp_path, capfd, paper_results_dir):
  code, out, err = _run(capfd, "solve", "--targets", "normal,reshading,depth_zbuffer,curvature",
                        "--budget", "2", "--order", "2", "--results-dir",
                        str(paper_results_dir), "--out", str(tmp_path))
  assert code == 0, err
  doc = json.loads((tmp_path / "taxonomy.json").read_text())
  assert doc["order"] == 2 and doc["budget"] == 2 and len(doc["served"]) == 4
  assert "supervise" in out and "wrote" in out
  with Image.open(tmp_path / "taxonomy.png") as im:
    assert im.size[0] > 400 and im.size[1] > 200
  # Without --out, stdout is exactly the JSON (the solver's banner goes to stderr).
  code, out, err = _run(capfd, "solve", "--targets", "normal", "--budget", "1",
                        "--results-dir", str(paper_results_dir))
  assert code == 0 and json.loads(out)["supervised"][0]["task"] == "normal"


def test_cli_solve_on_a_computed_affinity_table(tmp_path, capfd):
  """`--data PATH` takes a table this project computed (written by `AffinityTable.save`)."""
  from taskonomy_jax.taxonomy.affinities import AffinityTable

  table = AffinityTable({Transfer(("normal",), "reshading"): 0.7,
                         Transfer(("depth_zbuffer",), "reshading"): 0.9,
                         Transfer((SELF,), "reshading"): 0.8}, source="computed")
  path = table.save(tmp_path / "affinities.json")
  code, out, err = _run(capfd, "solve", "--targets", "reshading", "--budget", "1",
                        "--data", str(path), "--costs", "depth_zbuffer=2")
  assert code == 0, err
  doc = json.loads(out)
  assert [s["task"] for s in doc["supervised"]] == ["reshading"]  # depth costs 2, self is 0.8
  assert doc["served"][0]["served_by"] == "own network" and doc["objective"] == 0.8
  assert doc["served"][0]["quality"] == 0.5 and doc["served"][0]["gain"] is None


@pytest.mark.parametrize("argv,message", [
    (["--targets", "normall", "--budget", "1"], "Unknown task 'normall'. Did you mean 'normal'"),
    (["--targets", "normal", "--budget", "-1"], "budget must be >= 0"),
    (["--targets", "normal", "--budget", "1", "--order", "5"],
     "order must be an integer from 1 to 4, got 5"),
    (["--targets", "colorization", "--budget", "1"], "target 'colorization' cannot be served"),
    (["--targets", "normal", "--budget", "1", "--sources", "class_places", "--order", "1"],
     "target 'normal' cannot be served"),
    (["--targets", "normal", "--budget", "0"], "budget 0 is too small"),
    (["--targets", "normal", "--budget", "1", "--data", "nowhere"], "neither a published set"),
    (["--targets", "normal", "--budget", "1", "--solver", "magic"], "unknown solver 'magic'"),
    (["--targets", "normal", "--budget", "1", "--costs", "normal=-2"],
     "cost of 'normal' must be a finite number >= 0"),
    (["--targets", "normal", "--budget", "1", "--importance", "reshading=2"],
     "importance given for 'reshading', which is not among the targets"),
])
def test_cli_bad_input_exits_2_with_message(capfd, paper_results_dir, argv, message):
  code, out, err = _run(capfd, "solve", "--results-dir", str(paper_results_dir), *argv)
  assert code == cli.EXIT_BAD_INPUT
  assert message in err and out == ""


def test_cli_malformed_costs_exit_2(capfd):
  with pytest.raises(SystemExit) as e:
    cli.main(["solve", "--targets", "normal", "--budget", "1", "--costs", "normal:2"])
  assert e.value.code == 2
  assert "expected NAME=NUMBER pairs" in capfd.readouterr().err


def test_figures_command(tmp_path, capfd, paper_results_dir, default_table):
  code, _, err = _run(capfd, "figures", "--out", str(tmp_path), "--results-dir",
                        str(paper_results_dir), "--orders", "1", "--graph-budgets", "2,4")
  assert code == 0, err
  for name in ("affinity_matrix.png", "taxonomies.png", "quality_gain_vs_budget.png",
               "similarity_tree.png"):
    with Image.open(tmp_path / name) as im:
      assert im.size[0] > 300
  summary = json.loads((tmp_path / "figures.json").read_text())
  curve = summary["curves"]["order <= 1"]
  assert curve["budget"] == sorted(curve["budget"]) and curve["budget"][0] == 1  # 0 infeasible
  assert [g["budget"] for g in summary["graphs"]] == [2, 4]
  # With every task supervisable and a budget of all of them, every target is served by its
  # best first-order option, so the last point's Quality is that of those choices.
  last_q = curve["quality"][-1]
  best = []
  for t in default_table.targets:
    cands = [tr for tr in default_table.affinity if tr.target == t and tr.order == 1
             and (tr.is_self or t not in tr.sources)]
    pick = max(cands, key=default_table.affinity.get)
    best.append(0.5 if pick.is_self else default_table.quality[pick])
  assert last_q <= 0.5 + 1e-9 or last_q == pytest.approx(np.mean(best))


def test_heatmap_matrix_is_the_table(tmp_path, default_table):
  mat = draw.affinity_heatmap(default_table, tmp_path / "m.png")
  targets, sources = draw.node_order(default_table.targets), draw.node_order(default_table.nodes)
  i, j = sources.index("normal"), targets.index("reshading")
  assert mat[i, j] == default_table.affinity[Transfer(("normal",), "reshading")]
  assert mat[sources.index("normal"), targets.index("normal")] == (
      default_table.affinity[Transfer((SELF,), "normal")])
  assert np.isnan(mat[sources.index("colorization"), :]).sum() == 0
