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
# MovieLens 1M's size (6,040 users, 3,706 items, ~1M ratings): MF, 2% of each kind.
RUNS1M=runs/movielens-1m-shaped
mkdir -p "$RUNS1M"
[ -f "$RUNS1M/ratings.dat" ] || .venv/bin/python "$HERE/movielens_shaped.py" 6040 3706 1000209 7 "$RUNS1M/ratings.dat"
DATA=(--dataset "$RUNS1M/ratings.dat" --sep :: --columns user,item,rating,timestamp --threshold 3 --kcore 5 --threads 2)
for scenario in poison genuine users; do
  .venv/bin/ifru fidelity --model mf --scenario "$scenario" --fraction 0.02 --seeds 1 --methods ifru,ifru-uncalibrated \
    "${DATA[@]}" --out "$RUNS1M/mf" > /dev/null
  cp "$RUNS1M/mf/report.md" "$HERE/1m-mf-$scenario-0.02.md"
  cp "$RUNS1M/mf/report.json" "$HERE/1m-mf-$scenario-0.02.json"
done
# LightGCN at the 1M size (its plain rule already returns a fitted model there: epoch 35 of 45 either way);
# each of its Retrains runs ~480 epochs, about 8 minutes here.
for scenario in poison genuine; do
  .venv/bin/ifru fidelity --model lightgcn --scenario "$scenario" --fraction 0.02 --seeds 1 \
    --methods ifru,ifru-uncalibrated "${DATA[@]}" --out "$RUNS1M/lightgcn" > /dev/null
  cp "$RUNS1M/lightgcn/report.md" "$HERE/1m-lightgcn-$scenario-0.02.md"
  cp "$RUNS1M/lightgcn/report.json" "$HERE/1m-lightgcn-$scenario-0.02.json"
done
# An Amazon-shaped file (AMAZON_SHAPE: 20,000 users, 8,000 items, ~200k ratings, at least 5 per user,
# about three quarters above 3), read as a headed reviews CSV.
RUNSAMZ=runs/amazon-shaped
mkdir -p "$RUNSAMZ"
[ -f "$RUNSAMZ/ratings.csv" ] || .venv/bin/python "$HERE/movielens_shaped.py" 20000 8000 200000 3 "$RUNSAMZ/ratings.csv" amazon
DATA=(--dataset "$RUNSAMZ/ratings.csv" --header --columns user,item,rating,timestamp --threshold 3 --kcore 5 --threads 2)
for model in mf lightgcn; do
  for scenario in poison genuine users; do
    .venv/bin/ifru fidelity --model "$model" --scenario "$scenario" --fraction 0.02 --seeds 1 \
      --methods ifru,ifru-uncalibrated "${DATA[@]}" --out "$RUNSAMZ/$model" > /dev/null
    cp "$RUNSAMZ/$model/report.md" "$HERE/amazon-$model-$scenario-0.02.md"
    cp "$RUNSAMZ/$model/report.json" "$HERE/amazon-$model-$scenario-0.02.json"
  done
done
