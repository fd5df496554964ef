#!/usr/bin/env bash
# The planted-factor cells of the fidelity matrix, one after another (one thread each).
# Usage: reports/fidelity-synthetic/run.sh [STAGE...]   (stages: mf-1e4 mf-1e5 probe-1e6 mf-1e6 lightgcn small)
# Each cell's report goes to reports/fidelity-synthetic/<model>-<size>/<scenario>-<fraction>.{md,json};
# trained models are cached per model and size in runs/fidelity-synthetic/<model>-<size>.
set -euo pipefail
cd "$(dirname "$0")/../.."
IFRU=${IFRU:-.venv/bin/ifru}
PYTHON=${PYTHON:-.venv/bin/python}
HERE=${HERE:-reports/fidelity-synthetic}  # where the reports go
METHODS=${METHODS:-ifru,ifru-validation,ifru-reference}
FLAGS=${FLAGS:-}  # e.g. --no-calibrate (the uncalibrated cells were measured before calibration existed)
TAG=${TAG:-}      # suffix of the cached models' folders, e.g. -calibrated
REPORT_TAG=${REPORT_TAG:-$TAG}  # suffix of the report folders, e.g. -corrected next to the -calibrated models

cell() {  # model size scenario fraction seeds
  local model=$1 size=$2 scenario=$3 fraction=$4 seeds=$5
  local out=runs/fidelity-synthetic/$model-$size$TAG dest=$HERE/$model-$size$REPORT_TAG
  echo "=== $(date +%T) $model planted:$size $scenario $fraction seeds $seeds"
  local start=$SECONDS
  "$IFRU" fidelity --model "$model" --dataset "planted:$size" --scenario "$scenario" --fraction "$fraction" \
      --seeds "$seeds" --methods "$METHODS" $FLAGS --threads 1 --out "$out" > "$out.$scenario-$fraction.log" 2>&1 \
    || { echo "FAILED (see $out.$scenario-$fraction.log)"; return 1; }
  mkdir -p "$dest"
  cp "$out/report.md" "$dest/$scenario-$fraction.md"
  cp "$out/report.json" "$dest/$scenario-$fraction.json"
  echo "    done in $((SECONDS - start)) s"
}

mkdir -p runs/fidelity-synthetic
stages=("$@"); [ $# -gt 0 ] || stages=(mf-1e4 mf-1e5)
for stage in "${stages[@]}"; do
  case $stage in
    mf-1e4) for s in poison genuine users; do for f in 0.02 0.08; do cell mf 1e4 $s $f 1,2,3; done; done ;;
    mf-1e5) for s in poison genuine users; do for f in 0.02 0.08; do cell mf 1e5 $s $f 1; done; done ;;
    probe-1e6)  # time a few epochs of one Original (clean) training at 1e6 before any 1e6 cell
      echo "=== $(date +%T) probe: 3 epochs of mf on planted:1e6"
      "$IFRU" -q train --model mf --dataset planted:1e6 --attack-fraction 0 --epochs 3 --threads 1 --no-progress \
          --out runs/fidelity-synthetic/probe-1e6 > runs/fidelity-synthetic/probe-1e6.log 2>&1
      "$PYTHON" -c "import json; s = json.load(open('runs/fidelity-synthetic/probe-1e6/summary.json')); \
print(f\"    {s['seconds']:.1f} s for {s['epochs']} epochs: {s['seconds'] / s['epochs']:.1f} s per epoch\")" ;;
    mf-1e6) cell mf 1e6 genuine 0.02 1; cell mf 1e6 poison 0.02 1 ;;
    lightgcn) for n in 1e4 1e5; do cell lightgcn $n poison 0.02 1; cell lightgcn $n genuine 0.02 1; done ;;
    small) for s in poison genuine users; do cell mf 1e4 $s 0.005 1,2,3; done
           for s in poison genuine users; do cell mf 1e5 $s 0.005 1; done ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
