#!/usr/bin/env bash
# The poisoned-row cells of the fidelity matrix answered by ifru-horizon (UnlearnConfig(horizon="validation"),
# calibrated for itself) next to ifru-uncalibrated, one after another. On genuine rows and whole users the rule
# keeps the recorded horizon (and the calibration request's scale is ifru's), so those cells are ifru's.
# Usage: reports/fidelity-endpoint/horizon/run.sh [STAGE...]   (stages: full users-0.25 users-0.5 planted lightgcn-planted lightgcn
#   planted-1e5-seeds: planted:1e5 at 2% and 8%, seeds 1-3, the draws of reports/fidelity-seeds/planted-1e5-mf; THREADS=1 as those
#   planted-1e6: planted:1e6's poisoned 2% cell (SCENARIO=genuine: its genuine one), seed 1
#   bpr: the BPR cells of reports/fidelity-picks/bpr (reports/fidelity-plateaus/bpr/run.py)
#   lightgcn-planted-clean: LightGCN genuine rows and whole users at planted:1e4 / 1e5, seeds 1-3
#   lightgcn-full-clean: the same on BookCrossing, genuine 2% and users 1%, seed 1
#   lightgcn-amazon / lightgcn-1m / lightgcn-100k: the Amazon- / 1M- / 100K-shaped LightGCN cells of reports/fidelity-picks/ (poison, genuine,
#   users at 2%, seed 1, --wait-through-plateaus as those; SCENARIOS="poison" runs only the named ones);
#   lightgcn-1m-clean: the 1M-shaped genuine and users cells; mf-1m-clean: MF's)
# Reports: reports/fidelity-endpoint/horizon/<stage>/<scenario>-<fraction>.{md,json}; models cached in runs/horizon-<stage>.
set -euo pipefail
cd "$(dirname "$0")/../../.."
IFRU=${IFRU:-.venv/bin/ifru}
HERE=reports/fidelity-endpoint/horizon
THREADS=${THREADS:-2}
source reports/fidelity-movielens-shaped/datasets.sh  # AM, ML1M, ML

cell() {  # stage fraction seeds [dataset flags...]
  local stage=$1 fraction=$2 seeds=$3
  shift 3
  local out=runs/horizon-$stage dest=$HERE/$stage scenario=${SCENARIO:-poison}
  echo "=== $(date +%T) ${MODEL:-mf} $stage $scenario $fraction seeds $seeds"
  local start=$SECONDS
  mkdir -p "$out" "$dest"
  "$IFRU" fidelity --model "${MODEL:-mf}" --scenario "$scenario" --fraction "$fraction" --seeds "$seeds" \
      --methods ifru-horizon,ifru-uncalibrated --calibrate-for ifru-horizon --threads "$THREADS" --out "$out" "$@" \
      > "$out.$scenario-$fraction.log" 2>&1 || { echo "FAILED (see $out.$scenario-$fraction.log)"; return 1; }
  cp "$out/report.md" "$dest/$scenario-$fraction.md"
  cp "$out/report.json" "$dest/$scenario-$fraction.json"
  echo "    done in $((SECONDS - start)) s"
}

stages=("$@"); [ $# -gt 0 ] || stages=(full users-0.25 users-0.5 planted)
for stage in "${stages[@]}"; do
  case $stage in
    full) cell full 0.08 1; cell full 0.02 1,2,3; cell full 0.005 1 ;;
    users-0.25|users-0.5) for f in 0.08 0.02 0.005; do cell $stage $f 1,2,3 --user-fraction "${stage#users-}"; done ;;
    planted) for f in 0.02 0.08; do cell planted-1e4 $f 1,2,3 --dataset planted:1e4; cell planted-1e5 $f 1 --dataset planted:1e5; done ;;
    planted-1e5-seeds) for f in 0.02 0.08; do cell planted-1e5-seeds $f 1,2,3 --dataset planted:1e5; done ;;
    planted-1e6) cell planted-1e6 0.02 1 --dataset planted:1e6 ;;  # THREADS=1 as fidelity-picks/planted-1e6-mf, ~20 min
    lightgcn) MODEL=lightgcn cell lightgcn-full 0.01 1 ;;
    lightgcn-full-clean)  # BookCrossing's genuine-row and whole-user cells of reports/fidelity-picks/ (two threads)
      MODEL=lightgcn SCENARIO=genuine cell lightgcn-full-clean 0.02 1
      MODEL=lightgcn SCENARIO=users cell lightgcn-full-clean 0.01 1 ;;
    lightgcn-planted-clean)  # genuine rows and whole users, the draws of reports/fidelity-seeds/; THREADS=1 as those
      for size in 1e4 1e5; do for scenario in genuine users; do
        MODEL=lightgcn SCENARIO=$scenario cell lightgcn-$size-clean 0.02 1,2,3 --dataset planted:$size; done; done ;;
    lightgcn-amazon|lightgcn-1m|lightgcn-1m-clean|lightgcn-100k)  # the shaped LightGCN cells of reports/fidelity-picks/
      shaped_files
      scenarios=(poison genuine users); [ "$stage" = lightgcn-1m-clean ] && scenarios=(genuine users)
      [ -z "${SCENARIOS:-}" ] || read -r -a scenarios <<< "$SCENARIOS"  # e.g. SCENARIOS=poison: one of them
      case $stage in
        lightgcn-amazon) data=("${AM[@]}") ;;
        lightgcn-100k) data=(--dataset "$ML100K" "${ML[@]}") ;;  # THREADS=1 as fidelity-picks/ ran them
        *) data=(--dataset "$ML1M" "${ML[@]}") ;;
      esac
      for scenario in "${scenarios[@]}"; do
        MODEL=lightgcn SCENARIO=$scenario cell "${stage%-clean}" 0.02 1 --wait-through-plateaus "${data[@]}"; done ;;
    mf-1m-clean)  # the 1M-shaped MF genuine-row and whole-user cells of reports/fidelity-picks/ (two threads)
      shaped_files
      for scenario in genuine users; do
        SCENARIO=$scenario cell mf-1m 0.02 1 --wait-through-plateaus --dataset "$ML1M" "${ML[@]}"; done ;;
    lightgcn-planted) for size in 1e4 1e5; do MODEL=lightgcn cell lightgcn-$size 0.02 1 --dataset planted:$size; done ;;
    bpr)  # the three BPR cells of reports/fidelity-picks/bpr (a quarter of BookCrossing's users), their script
      .venv/bin/python reports/fidelity-plateaus/bpr/run.py runs/horizon-bpr ifru-horizon,ifru-uncalibrated ifru-horizon \
        > runs/horizon-bpr.log 2>&1
      mkdir -p "$HERE/bpr"
      for name in mf-bpr-genuine-0.02 lightgcn-bpr-genuine-0.02 lightgcn-bpr-users-0.01; do
        cp "runs/horizon-bpr/$name/report.md" "$HERE/bpr/$name.md"
        cp "runs/horizon-bpr/$name/report.json" "$HERE/bpr/$name.json"
      done ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
