"""The committed whole-taxonomy run (`docs/taxonomy_cpu_full/`, `taxonomy:cpu_full`): its files
load, cover every task, agree with each other and with their report, and are the table that
`taskonomy solve --data synthetic` and the web page's `synthetic` choice answer on."""

from __future__ import annotations

import json
import pathlib

import pytest

from taskonomy_jax.configs import taxonomy as taxonomy_config
from taskonomy_jax.taxonomy import api, compare, published
from taskonomy_jax.taxonomy.affinities import SELF, AffinityTable, Transfer
from taskonomy_jax.transfer import gates

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "taxonomy_cpu_full"
PACKAGED = pathlib.Path(published.__file__).parent / published.COMPUTED["synthetic"]


@pytest.fixture(scope="module")
def table() -> AffinityTable:
  return AffinityTable.load(DOCS / "affinities.json")


@pytest.fixture(scope="module")
def report() -> dict:
  return json.loads((DOCS / "report.json").read_text())


def test_the_table_covers_every_task_and_is_the_packaged_one(table):
  config = taxonomy_config.get_config("cpu_full")
  assert sorted(table.targets) == sorted(config.targets)
  sources = set(config.targets) | set(config.extra_sources)
  first = compare.first_order(table)
  assert {s for s, _ in first} == sources
  for target in config.targets:
    # First order from every other source; orders 2-4 over the beam of the 5 best: 25.
    assert {s for s, t in first if t == target} == sources - {target}
    orders = [tr.order for tr in table.affinity if tr.target == target and not tr.is_self]
    assert sorted(set(orders)) == [1, 2, 3, 4] and len(orders) == len(sources) - 1 + 25
    assert Transfer((SELF,), target) in table.affinity
  assert PACKAGED.read_bytes() == (DOCS / "affinities.json").read_bytes()
  assert published.load_published("synthetic").affinity == table.affinity


def test_the_report_is_the_committed_tables(table, report):
  """The gates recomputed from the committed table give the committed report's verdicts."""
  g = report["gates"]
  paper = gates.load_paper()
  assert paper is not None  # the package ships the published results
  agreement = gates.paper_agreement(table, paper)
  assert agreement["pairs"] == g["paper_agreement"]["pairs"]
  assert agreement["spearman_all"]["rho"] == pytest.approx(g["paper_agreement"]["spearman_all"]["rho"])
  assert agreement["spearman_per_target_mean"] == pytest.approx(
      g["paper_agreement"]["spearman_per_target_mean"])
  cohesion = gates.three_d_cohesion(table)
  assert cohesion["cohesion"] == g["three_d_cohesion"]["cohesion"]
  assert cohesion["p"] == pytest.approx(g["three_d_cohesion"]["p"])
  known = gates.known_answers(compare.first_order(table), table.targets)
  for name, result in known.items():
    assert result["passes"] == g[name]["passes"], name
  # Every affinity has its bootstrap interval. Percentile intervals of a nonlinear statistic
  # (AHP) need not contain the estimate; nearly all do.
  intervals = report["affinity_intervals"]
  assert set(intervals) == {str(t) for t in table.affinity}
  assert all(low <= high for low, high in intervals.values())
  inside = [low <= v <= high for t, v in table.affinity.items()
            for low, high in [intervals[str(t)]]]
  assert sum(inside) >= 0.99 * len(inside)
  assert report["trusted"] == (not report["failed"])


def test_solve_answers_on_the_committed_table(table):
  """`taskonomy solve --data synthetic` gives the committed taxonomies, budget by budget."""
  by_budget = json.loads((DOCS / "taxonomies_by_budget.json").read_text())
  chosen = by_budget["taxonomies"]
  assert len(chosen) >= 10
  for want in chosen[::4]:
    got = api.solve_taxonomy(table.targets, want["budget"], order=by_budget["order"],
                             data="synthetic").to_json()
    assert [s["task"] for s in got["supervised"]] == [s["task"] for s in want["supervised"]]
    assert got["mean_quality"] == pytest.approx(want["mean_quality"])
  config = taxonomy_config.get_config("cpu_full")
  committed = json.loads((DOCS / "taxonomy.json").read_text())
  got = api.solve_taxonomy(table.targets, config.taxonomy.budget, order=config.taxonomy.order,
                           data=str(DOCS / "affinities.json")).to_json()
  assert [s["task"] for s in got["supervised"]] == [s["task"] for s in committed["supervised"]]
