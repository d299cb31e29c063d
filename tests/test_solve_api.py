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


def _table_doc() -> dict:
  """A valid affinity-table document (as `AffinityTable.save` writes) serving `reshading`."""
  return {"format": "taskonomy-jax/affinities-v1", "source": "computed", "transfers": [
      {"sources": ["normal"], "target": "reshading", "affinity": 0.7},
      {"sources": ["self"], "target": "reshading", "affinity": 0.8, "quality": 0.5}],
      "baseline_quality": {"reshading": 0.3}}


def _row(k: int, **changes):
  return lambda doc: doc["transfers"][k].update(changes)


@pytest.mark.parametrize("change,words", [
    (_row(1, affinity="abc"),
     "transfer #1 (self -> reshading): affinity must be a finite number >= 0, got 'abc'"),
    (_row(0, affinity=-0.5), "transfer #0 (normal -> reshading): affinity must be a finite "
     "number >= 0, got -0.5"),
    (_row(0, affinity=True), "transfer #0 (normal -> reshading): affinity must be a finite "
     "number >= 0, got true (a boolean, not a number)"),
    (_row(0, affinity="0.7"), "transfer #0 (normal -> reshading): affinity must be a finite "
     "number >= 0, got '0.7' (a string, not a number)"),
    (_row(1, gain=-1), "transfer #1 (self -> reshading): gain must be a win rate from 0 to 1"),
    (lambda d: d["transfers"][1].pop("affinity"), "transfer #1 has no 'affinity'"),
    (_row(0, sources=[]), 'transfer #0 (to \'reshading\'): "sources" must be a non-empty list'),
    (_row(0, sources=["self", "normal"]), "transfer #0: 'self' cannot be combined"),
    (_row(0, target="reshadinq"), "transfer #0 (normal -> reshadinq): Unknown task 'reshadinq'. "
     "Did you mean 'reshading'?"),
    (_row(0, sources=["self"]), "transfer #1 (self -> reshading) repeats transfer #0"),
    (lambda d: d.update(baseline_quality=[1, 2]),
     '"baseline_quality" must be an object of task name -> a win rate from 0 to 1, got [1, 2]'),
    (lambda d: d.update(baseline_quality={"reshading": "abc"}),
     "baseline_quality of 'reshading' must be a win rate from 0 to 1, got 'abc'"),
    (lambda d: d.update(transfers={"a": 1}), '"transfers" must be a non-empty list'),
    (lambda d: d.update(transfers=[]), '"transfers" must be a non-empty list'),
    (lambda d: d.update(costs={"normal": 1}), "unknown field 'costs'; an affinity table has "
     "format, source, transfers, baseline_quality"),
])
def test_cli_malformed_table_file_exits_2_naming_file_and_row(tmp_path, capfd, change, words):
  doc = _table_doc()
  change(doc)
  path = tmp_path / "affinities.json"
  path.write_text(json.dumps(doc))
  code, out, err = _run(capfd, "solve", "--targets", "reshading", "--budget", "1",
                        "--data", str(path))
  assert code == cli.EXIT_BAD_INPUT and out == ""
  assert f"error: {path}: " in err and words in err, err
  assert "Traceback" not in err


def test_the_valid_table_file_of_these_tests_solves(tmp_path, capfd):
  path = tmp_path / "affinities.json"
  path.write_text(json.dumps(_table_doc()))
  code, out, err = _run(capfd, "solve", "--targets", "reshading", "--budget", "1",
                        "--data", str(path))
  assert code == 0, err
  assert json.loads(out)["objective"] == 0.8


@pytest.mark.parametrize("data,words", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply (more than 32 levels"),
    (b"{not json", "not valid JSON (Expecting property name"),
    (b'{"format": "\xff"}', "not UTF-8 text"),
])
def test_cli_unreadable_table_file_exits_2(tmp_path, capfd, data, words):
  path = tmp_path / "affinities.json"
  path.write_bytes(data)
  code, out, err = _run(capfd, "solve", "--targets", "reshading", "--budget", "1",
                        "--data", str(path))
  assert code == cli.EXIT_BAD_INPUT and f"error: {path}: " in err and words in err, err
  assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("doc,words", [
    ({"normal": "abc"}, "cost of 'normal' must be a finite number >= 0, got 'abc'"),
    ({"normal": True}, "cost of 'normal' must be a finite number >= 0, got True"),
    ([1, 2], "must hold a JSON object NAME -> number"),
    (json.loads("[" * 40 + "]" * 40), "nested too deeply"),
])
def test_cli_malformed_costs_file_exits_2_naming_the_file(tmp_path, capfd, doc, words):
  path = tmp_path / "costs.json"
  path.write_text(json.dumps(doc))
  with pytest.raises(SystemExit) as e:
    cli.main(["solve", "--targets", "normal", "--budget", "1", "--costs", str(path)])
  err = capfd.readouterr().err
  assert e.value.code == 2 and f"argument --costs: {path}" in err and words in err, err


@pytest.mark.parametrize("cost", ["1e15", "1e100", "1e300"])
def test_cli_huge_costs_solve(capfd, paper_results_dir, cost):
  """A cost of 1e15 or more used to end in 'Cannot unpack invalid solution'; such a task is
  simply never bought within a budget of 1."""
  code, out, err = _run(capfd, "solve", "--targets", "normal,reshading", "--budget", "1",
                        "--costs", f"normal={cost}", "--results-dir", str(paper_results_dir))
  assert code == 0, err
  doc = json.loads(out)
  assert [s["task"] for s in doc["supervised"]] == ["reshading"] and doc["cost"] == 1
  assert doc["objective"] == pytest.approx(0.1025, abs=1e-4)
  assert [s["sources"] for s in doc["served"]] == [["reshading"], ["reshading"]]


def test_huge_costs_and_budgets_give_the_unit_cost_answer(default_table):
  """The answer depends on costs relative to the budget only, at any scale."""
  targets = ["normal", "reshading", "depth_zbuffer", "curvature"]
  unit = api.solve_taxonomy(targets, 2, data=default_table)
  for scale in (1e-200, 1e15, 1e300):
    costs = {n: scale for n in default_table.nodes}
    tax = api.solve_taxonomy(targets, 2 * scale, data=default_table, costs=costs)
    assert tax.supervised == unit.supervised and tax.objective == unit.objective
  # Dearer than the whole budget: never chosen; the minimum budget is still reported.
  with pytest.raises(bip.InfeasibleBudgetError, match="at least 1e\\+300"):
    api.solve_taxonomy(["normal"], 1, ["normal", "reshading"], data=default_table,
                       costs={"normal": 1e300, "reshading": 2e300})


@pytest.mark.parametrize("cost", ["inf", "nan", "-1"])
def test_cli_non_finite_or_negative_costs_exit_2(capfd, paper_results_dir, cost):
  code, out, err = _run(capfd, "solve", "--targets", "normal", "--budget", "1", "--costs",
                        f"normal={cost}", "--results-dir", str(paper_results_dir))
  assert code == cli.EXIT_BAD_INPUT and out == ""
  assert "cost of 'normal' must be a finite number >= 0" in err


@pytest.mark.parametrize("targets", [None, "", " , ", []])
def test_no_targets_is_a_clear_value_error(default_table, targets):
  with pytest.raises(bip.BadProblemError, match="no targets given; give a list of task names"):
    api.solve_taxonomy(targets, 1, data=default_table)


def test_targets_must_be_names(default_table):
  with pytest.raises(bip.BadProblemError, match="targets must be task names"):
    api.solve_taxonomy([1], 1, data=default_table)
  with pytest.raises(bip.BadProblemError, match="targets must be task names"):
    api.solve_taxonomy(5, 1, data=default_table)
  # One comma-separated string, as on the command line.
  tax = api.solve_taxonomy("normal, reshading", 1, "normal,reshading", data=default_table)
  assert tax.targets == ("normal", "reshading") and tax.sources == ("normal", "reshading")


def test_tables_made_in_python_are_checked_too():
  from taskonomy_jax.taxonomy.affinities import AffinityDataError, AffinityTable

  for value in (-1.0, True, "0.5", float("inf")):
    with pytest.raises(AffinityDataError, match="normal -> reshading: affinity must be"):
      AffinityTable({Transfer(("normal",), "reshading"): value})
  with pytest.raises(AffinityDataError, match="baseline_quality of 'normal' must be a win rate"):
    AffinityTable({Transfer(("normal",), "reshading"): 0.5}, baseline_quality={"normal": 2.0})


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
  by_budget = json.loads((tmp_path / "taxonomies_by_budget.json").read_text())
  assert by_budget["order"] == 1
  assert [t["budget"] for t in by_budget["taxonomies"]] == curve["budget"]
  for tax, quality in zip(by_budget["taxonomies"], curve["quality"], strict=True):
    assert len(tax["supervised"]) <= tax["budget"] and tax["mean_quality"] == quality
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
