"""Markdown tables of a finished (or exported) `taskonomy taxonomy` run: stage times, the gates,
each task network against its baselines, where random projection ranks, the families of the
paper's similarity tree, and the estimators against the transfers.

    .venv/bin/python experiments/summarize_run.py docs/taxonomy_cpu_full > docs/taxonomy_cpu_full/summary.md

The folder is an export (`tools/export_run.sh`: report.json, affinities.json, timings.json at
its top) or a run's workdir.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib

from taskonomy_jax.taxonomy import compare
from taskonomy_jax.taxonomy.affinities import AffinityTable
from taskonomy_jax.taxonomy.estimators import MEASURES


def _find(folder: pathlib.Path, name: str, run_path: str) -> pathlib.Path:
  return folder / name if (folder / name).is_file() else folder / run_path


def stage_table(timings: list[dict]) -> list[str]:
  """Minutes per stage: every unit's own time (`unit_seconds`, whichever attempt ran it); in
  timings written before that field, the units this process ran."""
  seconds: dict[str, float] = collections.defaultdict(float)
  for e in timings:
    if "unit_seconds" in e:
      seconds[e["stage"]] += float(e["unit_seconds"])
    elif e.get("ran"):
      seconds[e["stage"]] += float(e["seconds"])
  lines = ["| stage | minutes |", "| --- | --- |"]
  lines += [f"| {s} | {v / 60:.1f} |" for s, v in seconds.items()]
  lines.append(f"| **total** | **{sum(seconds.values()) / 60:.1f}** |")
  return lines


def network_table(report: dict) -> list[str]:
  lines = ["| target | network - mean image (95% interval) | network - median image | "
           "beats both |",
           "| --- | --- | --- | --- |"]
  for t, g in report["gates"]["networks"]["per_target"].items():
    m, d = g["mean image"], g["median image"]
    lines.append(f"| {t} | {m['mean']:+.4f} ({m['low']:+.4f}, {m['high']:+.4f}) | "
                 f"{d['mean']:+.4f} ({d['low']:+.4f}, {d['high']:+.4f}) | "
                 f"{'yes' if g['passes'] else '**no**'} |")
  return lines


def random_ranks(table: AffinityTable) -> list[str]:
  """Per target: random projection's rank among the first-order sources, the best three."""
  first = compare.first_order(table)
  lines = ["| target | random's rank (AHP affinity) | best three sources |",
           "| --- | --- | --- |"]
  for t in table.targets:
    scores = {s: v for (s, tt), v in first.items() if tt == t}
    ranked = sorted(scores, key=lambda s: -scores[s])
    if "random" not in ranked:
      continue
    r = ranked.index("random") + 1
    lines.append(f"| {t} | {r} of {len(ranked)} | {', '.join(ranked[:3])} |")
  return lines


def families(report: dict) -> list[str]:
  tree = report["gates"]["paper_agreement"].get("similarity_tree", {})
  lines = ["| family | ours: cohesion, p, flat clusters | paper: cohesion, p, flat clusters |",
           "| --- | --- | --- |"]
  for name in tree.get("ours", {}).get("families", {}):
    cells = []
    for side in ("ours", "paper"):
      f = tree[side]["families"][name]
      if f["cohesion"] is None:
        cells.append("-")
        continue
      clusters = collections.Counter(f["cluster_of"].values())
      cells.append(f"{f['cohesion']:.2f}, p {f['p']:.3f}, "
                   + " ".join(f"c{c}x{n}" for c, n in sorted(clusters.items())))
    lines.append(f"| {name} ({len(tree['ours']['families'][name]['members'])}) | "
                 f"{cells[0]} | {cells[1]} |")
  lines.append("")
  for side in ("ours", "paper"):
    for c, members in tree.get(side, {}).get("clusters", {}).items():
      lines.append(f"- {side}, flat cluster c{c}: {', '.join(members)}")
  return lines


def estimators(report: dict) -> list[str]:
  est = report.get("estimators") or {}
  lines = ["| measure | Spearman vs transfers (all / per-target mean) | vs paper | "
           "Quality ratio at the budget | speed-up |", "| --- | --- | --- | --- | --- |"]
  # Reports before the probe list no measures; reports without estimators have none of them.
  for m in est.get("measures", [m for m in MEASURES if m in est]):
    e = est[m]
    vt, vp = e["vs_transfer"], e["vs_paper"] or {}
    lines.append(f"| {m} | {vt['spearman_all']['rho']:.2f} / {vt['spearman_per_target_mean']:.2f}"
                 f" | {(vp.get('spearman_all') or {}).get('rho', float('nan')):.2f} / "
                 f"{vp.get('spearman_per_target_mean', float('nan')):.2f} | "
                 f"{e['quality_ratio']:.2f} | {e['speedup']:.0f}x |")
  return lines


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("folder", type=pathlib.Path)
  args = parser.parse_args()
  folder = args.folder
  report = json.loads(_find(folder, "report.json", "08_taxonomy/out/report.json").read_text())
  table = AffinityTable.load(_find(folder, "affinities.json",
                                   "07_affinities/table/affinities.json"))
  timings = json.loads(_find(folder, "timings.json", "timings.json").read_text())
  out = ["### Stage times (`timings.json`)", "", *stage_table(timings), "",
         "### Gates (`report.json`)", ""]
  verdict = {True: "pass", False: "**FAIL**", None: "not evaluated"}
  out += [f"- {name}: {verdict[g['passes']]} ({g.get('line', '')})"
          for name, g in report["gates"].items()]
  out += ["", "### Task networks against the trivial baselines (test views)", "",
          *network_table(report), "", "### Random projection among the first-order sources", "",
          *random_ranks(table), "", "### Families of the paper's similarity tree", "",
          *families(report), "", "### Estimators (RSA, CKA, linear probe) against the transfers", "",
          *estimators(report)]
  print("\n".join(out))


if __name__ == "__main__":
  main()
