#!/usr/bin/env bash
# The default estimator with the trace's snapshots picked near a third and two thirds of the run
# (SnapshotRecorder, 2026-12-05) on the cells of reports/fidelity-plateaus/ whose runs are long
# enough for the picks to move (reports/fidelity-picks/README.md); compare.py reads them against
# the committed cells, which the earlier picks answered.
# Usage: reports/fidelity-picks/run.sh   (from the repository root; writes runs/picks/, ~4.5 h on 2 cores)
set -euo pipefail
HERE=reports/fidelity-picks
RUNS=runs/picks
mkdir -p "$RUNS"
cell() {  # NAME THREADS [fidelity options]: one cell into $HERE/NAME.{md,json}, as fidelity-plateaus/run.sh runs it
  local name=$1 threads=$2; shift 2
  .venv/bin/ifru fidelity --wait-through-plateaus --methods ifru,ifru-uncalibrated --threads "$threads" "$@" \
    --out "$RUNS/${name%-*-*}" > /dev/null
  cp "$RUNS/${name%-*-*}/report.md" "$HERE/$name.md"
  cp "$RUNS/${name%-*-*}/report.json" "$HERE/$name.json"
}
source reports/fidelity-movielens-shaped/datasets.sh  # AM, ML100K, ML1M, ML
shaped_files
for scenario in poison genuine users; do
  cell "amazon-lightgcn-$scenario-0.02" 2 --model lightgcn "${AM[@]}" --scenario "$scenario" --fraction 0.02 --seeds 1
done
cell bookcrossing-lightgcn-poison-0.01 2 --model lightgcn --scenario poison --fraction 0.01 --seeds 1
cell bookcrossing-lightgcn-genuine-0.02 2 --model lightgcn --scenario genuine --fraction 0.02 --seeds 1
cell bookcrossing-lightgcn-users-0.01 2 --model lightgcn --scenario users --fraction 0.01 --seeds 1
for scenario in poison genuine users; do
  cell "planted-1e4-lightgcn-$scenario-0.02" 1 --model lightgcn --dataset planted:1e4 --scenario "$scenario" --fraction 0.02 --seeds 1
  cell "planted-1e5-lightgcn-$scenario-0.02" 2 --model lightgcn --dataset planted:1e5 --scenario "$scenario" --fraction 0.02 --seeds 1
  cell "100k-lightgcn-$scenario-0.02" 1 --model lightgcn --dataset "$ML100K" "${ML[@]}" --scenario "$scenario" --fraction 0.02 --seeds 1
  for fraction in 0.02 0.08; do
    cell "planted-1e4-mf-$scenario-$fraction" 1 --model mf --dataset planted:1e4 --scenario "$scenario" --fraction "$fraction" --seeds 1,2,3
  done
done
# The 1M-shaped LightGCN cells, two threads, alone on the machine: ~31–33 minutes for poison and genuine (four models
# each), ~17 for users (its two Retrains; the clean Original is genuine's).
for scenario in poison genuine users; do
  cell "1m-lightgcn-$scenario-0.02" 2 --model lightgcn --dataset "$ML1M" "${ML[@]}" --scenario "$scenario" --fraction 0.02 --seeds 1
done
# BookCrossing MF's full-data stage (the cells of fidelity-plateaus/bookcrossing-mf/), then its
# quarter- and half-of-the-users stages (~15 minutes both).
HERE=$HERE/bookcrossing-mf RUNS=$RUNS/bookcrossing-mf reports/fidelity-mf-calibrated/run.sh full users-0.25 users-0.5
# planted:1e5 MF's six cells (~2 minutes) and planted:1e6 MF's two (~20 minutes each), as fidelity-plateaus/run.sh
# runs them (models cached in runs/fidelity-synthetic/mf-<size>-picks).
for size in 1e5 1e6; do
  HERE=$HERE METHODS=ifru,ifru-uncalibrated TAG=-picks reports/fidelity-synthetic/run.sh mf-$size
  mkdir -p "$HERE/planted-$size-mf" && mv "$HERE/mf-$size-picks"/* "$HERE/planted-$size-mf/" && rmdir "$HERE/mf-$size-picks"
done
# The 1M-shaped MF genuine and users cells and the BPR cells (a quarter of BookCrossing's users), as
# fidelity-plateaus/ runs them, with today's picks and CG tolerance.
for scenario in genuine users; do
  cell "1m-mf-$scenario-0.02" 2 --model mf --dataset "$ML1M" "${ML[@]}" --scenario "$scenario" --fraction 0.02 --seeds 1
done
.venv/bin/python reports/fidelity-plateaus/bpr/run.py "$RUNS/bpr"
mkdir -p "$HERE/bpr"
for name in mf-bpr-genuine-0.02 lightgcn-bpr-genuine-0.02 lightgcn-bpr-users-0.01; do
  cp "$RUNS/bpr/$name/report.md" "$HERE/bpr/$name.md"
  cp "$RUNS/bpr/$name/report.json" "$HERE/bpr/$name.json"
done
