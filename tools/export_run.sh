#!/usr/bin/env bash
# Copies a finished `taskonomy taxonomy` run's small results into a folder to commit:
#   tools/export_run.sh out/taxonomy_cpu_full docs/taxonomy_cpu_full
# The affinity table (the format `taskonomy solve --data` reads), report.json with the gates,
# the taxonomy and every budget's, the figures, the estimators' tables, the per-target loss
# summary and the stage timings. Never checkpoints, representations or caches.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 WORKDIR DEST (WORKDIR: a finished taskonomy taxonomy run)" >&2
  exit 2
fi
src=$1 dest=$2
out="$src/08_taxonomy/out"
if [ ! -f "$out/DONE" ]; then
  echo "$src has no finished taxonomy stage ($out/DONE missing): finish the run first" >&2
  exit 2
fi
mkdir -p "$dest/estimators"
cp "$src/07_affinities/table/affinities.json" "$src/07_affinities/table/losses_summary.json" \
   "$src/timings.json" "$dest/"
cp "$out/report.json" "$out/taxonomy.json" "$out/taxonomy.png" "$dest/"
cp "$out"/figures/*.png "$out"/figures/*.json "$dest/"
cp "$out"/estimators/*_affinities.json "$dest/estimators/"
echo "exported $src to $dest"
