#!/usr/bin/env bash
# The default estimator on a MovieLens-shaped ratings file (reports/fidelity-movielens-shaped/README.md).
# Usage: reports/fidelity-movielens-shaped/run.sh   (from the repository root; writes runs/movielens-shaped/,
# runs/movielens-1m-shaped/ and runs/amazon-shaped/; the shaped files are datasets.sh's)
set -euo pipefail
HERE=reports/fidelity-movielens-shaped
source "$HERE/datasets.sh"  # ML100K, ML1M with ML, AM
shaped_files
cell() {  # NAME MODELS [fidelity options]: one cell, seed 1, two threads, models cached in MODELS; $HERE/NAME.{md,json}
  local name=$1 models=$2; shift 2
  mkdir -p "$models"
  .venv/bin/ifru fidelity --seeds 1 --threads 2 "$@" --out "$models" > /dev/null
  cp "$models/report.md" "$HERE/$name.md"
  cp "$models/report.json" "$HERE/$name.json"
}
PLAIN=(--methods ifru,ifru-uncalibrated)
ML100K_DATA=(--dataset "$ML100K" "${ML[@]}")
ML1M_DATA=(--dataset "$ML1M" "${ML[@]}")
RUNS=runs/movielens-shaped RUNS1M=runs/movielens-1m-shaped RUNSAMZ=runs/amazon-shaped
for fraction in 0.02 0.08; do
  for scenario in poison genuine users; do
    cell "mf-$scenario-$fraction" "$RUNS/mf" --model mf --scenario "$scenario" --fraction "$fraction" "${PLAIN[@]}" "${ML100K_DATA[@]}"
  done
done
for scenario in poison genuine users; do
  cell "lightgcn-$scenario-0.02" "$RUNS/lightgcn" --model lightgcn --scenario "$scenario" --fraction 0.02 "${PLAIN[@]}" \
    "${ML100K_DATA[@]}"
  cell "lightgcn-plain-stopping-$scenario-0.02" "$RUNS/lightgcn-plain-stopping" --model lightgcn --scenario "$scenario" \
    --fraction 0.02 "${PLAIN[@]}" "${ML100K_DATA[@]}" --no-wait-until-decelerating
done
# The two options on the MF cell that misses, each calibrated for itself.
for option in ifru-horizon ifru-nonlinear; do
  cell "mf-$option-poison-0.08" "$RUNS/mf-$option" --model mf --scenario poison --fraction 0.08 --methods "$option" \
    --calibrate-for "$option" "${ML100K_DATA[@]}"
done
# MovieLens 1M's size (6,040 users, 3,706 items, ~1M ratings): MF, 2% of each kind.
for scenario in poison genuine users; do
  cell "1m-mf-$scenario-0.02" "$RUNS1M/mf" --model mf --scenario "$scenario" --fraction 0.02 "${PLAIN[@]}" "${ML1M_DATA[@]}"
done
# LightGCN at the 1M size (its plain rule already returns a fitted model there: epoch 35 of 45 either way);
# each of its Retrains runs ~480 epochs, about 8 minutes here.
for scenario in poison genuine; do
  cell "1m-lightgcn-$scenario-0.02" "$RUNS1M/lightgcn" --model lightgcn --scenario "$scenario" --fraction 0.02 \
    "${PLAIN[@]}" "${ML1M_DATA[@]}"
done
# An Amazon-shaped file (20,000 users, 8,000 items, ~200k ratings, at least 5 per user, about three
# quarters above 3), read as a headed reviews CSV.
for model in mf lightgcn; do
  for scenario in poison genuine users; do
    cell "amazon-$model-$scenario-0.02" "$RUNSAMZ/$model" --model "$model" --scenario "$scenario" --fraction 0.02 \
      "${PLAIN[@]}" "${AM[@]}"
  done
done
