#!/usr/bin/env bash
# The default estimator on models trained with --wait-through-plateaus, the default stopping rule (named
# here so the cells keep it) (reports/fidelity-plateaus/README.md).
# Usage: reports/fidelity-plateaus/run.sh   (from the repository root; writes runs/plateaus/, ~3 h on 2 cores)
set -euo pipefail
HERE=reports/fidelity-plateaus
RUNS=runs/plateaus
source reports/fidelity-movielens-shaped/datasets.sh  # ML100K, ML1M, AMZ (under runs/plateaus/ and runs/amazon-shaped/), ML, AM
mkdir -p "$RUNS"
shaped_files
cell() {  # NAME THREADS [fidelity options]: one cell into $HERE/NAME.{md,json}
  local name=$1 threads=$2; shift 2
  .venv/bin/ifru fidelity --wait-through-plateaus --methods ifru,ifru-uncalibrated --threads "$threads" "$@" \
    --out "$RUNS/${name%-*-*}" > /dev/null
  cp "$RUNS/${name%-*-*}/report.md" "$HERE/$name.md"
  cp "$RUNS/${name%-*-*}/report.json" "$HERE/$name.json"
}
# planted:1e4, one thread (the cells of reports/fidelity-synthetic/ with the other rule).
for scenario in poison genuine users; do
  cell "planted-1e4-lightgcn-$scenario-0.02" 1 --model lightgcn --dataset planted:1e4 --scenario "$scenario" --fraction 0.02 --seeds 1
done
for scenario in poison genuine users; do
  for fraction in 0.02 0.08; do
    cell "planted-1e4-mf-$scenario-$fraction" 1 --model mf --dataset planted:1e4 --scenario "$scenario" --fraction "$fraction" --seeds 1,2,3
  done
done
for scenario in poison genuine users; do
  cell "planted-1e5-lightgcn-$scenario-0.02" 2 --model lightgcn --dataset planted:1e5 --scenario "$scenario" --fraction 0.02 --seeds 1
done
# MovieLens 100K's shape, one thread (reports/fidelity-movielens-shaped/ with the other rule).
for scenario in poison genuine users; do
  cell "100k-lightgcn-$scenario-0.02" 1 --model lightgcn --dataset "$ML100K" "${ML[@]}" --scenario "$scenario" --fraction 0.02 --seeds 1
done
# MovieLens 1M's size, two threads: each LightGCN model trains ~560 epochs, ~8 minutes here.
for scenario in poison genuine users; do
  cell "1m-lightgcn-$scenario-0.02" 2 --model lightgcn --dataset "$ML1M" "${ML[@]}" --scenario "$scenario" --fraction 0.02 --seeds 1
done
# planted:1e5 MF, every scenario at 2% and 8%, and planted:1e6 MF's two cells (reports/fidelity-synthetic/run.sh's
# stages, the default rule; ~20 minutes for the 1e6 ones).
for size in 1e5 1e6; do
  HERE=$HERE METHODS=ifru,ifru-uncalibrated TAG=-plateaus reports/fidelity-synthetic/run.sh mf-$size
  mkdir -p "$HERE/planted-$size-mf" && mv "$HERE/mf-$size-plateaus"/* "$HERE/planted-$size-mf/" && rmdir "$HERE/mf-$size-plateaus"
done
# BookCrossing LightGCN, the paper schedule, two threads (~12 minutes a cell here).
cell bookcrossing-lightgcn-poison-0.01 2 --model lightgcn --scenario poison --fraction 0.01 --seeds 1
cell bookcrossing-lightgcn-genuine-0.02 2 --model lightgcn --scenario genuine --fraction 0.02 --seeds 1
cell bookcrossing-lightgcn-users-0.01 2 --model lightgcn --scenario users --fraction 0.01 --seeds 1
# MF's 1M-shaped genuine and users cells (the poisoned one equals the plain-rule report's; README).
for scenario in genuine users; do
  cell "1m-mf-$scenario-0.02" 2 --model mf --dataset "$ML1M" "${ML[@]}" --scenario "$scenario" --fraction 0.02 --seeds 1
done
# The Amazon-shaped file (reports/fidelity-movielens-shaped/ with the plain rule), two threads.
for scenario in poison genuine users; do
  cell "amazon-lightgcn-$scenario-0.02" 2 --model lightgcn "${AM[@]}" --scenario "$scenario" --fraction 0.02 --seeds 1
done
# Where each stopping rule would stop the cell's Original and Retrain, replayed on whole runs
# (README: "A tolerance from the paired noise"); one thread each, ~1.5 h in all, most of it the 1M size.
mkdir -p "$HERE/replay"
replay() {  # NAME MODEL SCENARIO EPOCHS DATASET [--movielens | --amazon]
  local name=$1; shift
  OMP_NUM_THREADS=1 .venv/bin/python "$HERE/paired.py" "$HERE/replay/$name.json" "$@"
}
replay bookcrossing-mf-poison mf poison 150 bookcrossing
replay bookcrossing-mf-genuine mf genuine 150 bookcrossing
replay bookcrossing-lightgcn-poison lightgcn poison 300 bookcrossing
replay planted-1e5-mf-poison mf poison 400 planted:1e5
replay planted-1e5-lightgcn-poison lightgcn poison 600 planted:1e5
replay 100k-mf-poison mf poison 600 "$ML100K" --movielens
replay 100k-lightgcn-poison lightgcn poison 1000 "$ML100K" --movielens
replay 100k-lightgcn-genuine lightgcn genuine 1000 "$ML100K" --movielens
replay amazon-mf-poison mf poison 400 "$AMZ" --amazon
replay amazon-lightgcn-poison lightgcn poison 800 "$AMZ" --amazon
replay 1m-lightgcn-poison lightgcn poison 600 "$ML1M" --movielens
replay 1m-lightgcn-genuine lightgcn genuine 600 "$ML1M" --movielens
replay planted-1e4-lightgcn-poison lightgcn poison 1000 planted:1e4
replay planted-1e4-lightgcn-genuine lightgcn genuine 1000 planted:1e4
replay planted-1e4-mf-poison mf poison 1000 planted:1e4
