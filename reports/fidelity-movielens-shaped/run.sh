#!/usr/bin/env bash
# The default estimator on a MovieLens-shaped ratings file (reports/fidelity-movielens-shaped/README.md).
# Usage: reports/fidelity-movielens-shaped/run.sh   (from the repository root; writes runs/movielens-shaped/)
set -euo pipefail
HERE=reports/fidelity-movielens-shaped
RUNS=runs/movielens-shaped
mkdir -p "$RUNS"
[ -f "$RUNS/ratings.dat" ] || .venv/bin/python "$HERE/movielens_shaped.py" 943 1682 100000 7 "$RUNS/ratings.dat"
DATA=(--dataset "$RUNS/ratings.dat" --sep :: --columns user,item,rating,timestamp --threshold 3 --kcore 5 --threads 2)
cell() {  # MODEL SCENARIO FRACTION TAG [more fidelity options]
  local model=$1 scenario=$2 fraction=$3 tag=$4; shift 4
  .venv/bin/ifru fidelity --model "$model" --scenario "$scenario" --fraction "$fraction" --seeds 1 \
    --methods ifru,ifru-uncalibrated "${DATA[@]}" --out "$RUNS/$model$tag" "$@" > /dev/null
  cp "$RUNS/$model$tag/report.md" "$HERE/$model$tag-$scenario-$fraction.md"
  cp "$RUNS/$model$tag/report.json" "$HERE/$model$tag-$scenario-$fraction.json"
}
for fraction in 0.02 0.08; do
  for scenario in poison genuine users; do cell mf "$scenario" "$fraction" ""; done
done
for scenario in poison genuine users; do
  cell lightgcn "$scenario" 0.02 ""
  cell lightgcn "$scenario" 0.02 "-plain-stopping" --no-wait-until-decelerating
done
# The two options on the MF cell that misses, each calibrated for itself.
for option in ifru-horizon ifru-nonlinear; do
  .venv/bin/ifru fidelity --model mf --scenario poison --fraction 0.08 --seeds 1 --methods "$option" \
    --calibrate-for "$option" "${DATA[@]}" --out "$RUNS/mf-$option" > /dev/null
  cp "$RUNS/mf-$option/report.md" "$HERE/mf-$option-poison-0.08.md"
  cp "$RUNS/mf-$option/report.json" "$HERE/mf-$option-poison-0.08.json"
done
