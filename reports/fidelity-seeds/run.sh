#!/usr/bin/env bash
# Seeds 1-3 of four single-seed planted LightGCN cells of reports/fidelity-plateaus/ (two whose
# |AUC_0 - R| missed on seed 1, two that passed), with the default estimator. The cached models of
# reports/fidelity-picks/run.sh (runs/picks/work/planted-<size>-lightgcn) are reused: seed 1's are
# those cells' models, seeds 2 and 3 train their Retrains. One thread, ~7 minutes in all.
# Then seeds 1-3 of planted:1e5 MF's six single-seed cells (every scenario at 2% and 8%), models
# trained here (seed 1's are the bits of fidelity-picks/planted-1e5-mf's); one thread.
# Usage: reports/fidelity-seeds/run.sh [lightgcn] [mf]   (from the repository root; default both)
set -euo pipefail
HERE=reports/fidelity-seeds
mkdir -p runs/seeds
stages=("$@"); [ $# -gt 0 ] || stages=(lightgcn mf)
if [[ " ${stages[*]} " == *" lightgcn "* ]]; then
for cell in "1e4 genuine" "1e5 users" "1e4 users" "1e5 genuine"; do
  set -- $cell
  name=planted-$1-lightgcn-$2-0.02 out=runs/picks/work/planted-$1-lightgcn
  .venv/bin/ifru fidelity --model lightgcn --dataset "planted:$1" --scenario "$2" --fraction 0.02 --seeds 1,2,3 \
    --methods ifru,ifru-uncalibrated --threads 1 --out "$out" > "runs/seeds/$name.log" 2>&1
  cp "$out/report.md" "$HERE/$name.md"
  cp "$out/report.json" "$HERE/$name.json"
done
fi
if [[ " ${stages[*]} " == *" mf "* ]]; then
  mkdir -p "$HERE/planted-1e5-mf"
  for scenario in poison genuine users; do
    for fraction in 0.02 0.08; do
      out=runs/seeds/planted-1e5-mf
      .venv/bin/ifru fidelity --model mf --dataset planted:1e5 --scenario "$scenario" --fraction "$fraction" \
        --seeds 1,2,3 --methods ifru,ifru-uncalibrated --threads 1 --out "$out" > "$out.$scenario-$fraction.log" 2>&1
      cp "$out/report.md" "$HERE/planted-1e5-mf/$scenario-$fraction.md"
      cp "$out/report.json" "$HERE/planted-1e5-mf/$scenario-$fraction.json"
    done
  done
fi
