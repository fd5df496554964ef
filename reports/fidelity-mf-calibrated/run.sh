#!/usr/bin/env bash
# The BookCrossing MF cells of the fidelity matrix with the default (calibrated) ifru, next to
# ifru-uncalibrated, one after another on one thread.
# Usage: reports/fidelity-mf-calibrated/run.sh [STAGE...]   (stages: full users-0.25 users-0.5; default full)
# Another estimator: HERE=reports/fidelity-mf-corrected METHODS=ifru-corrected,ifru-corrected-uncalibrated \
#   CALIBRATE_FOR=ifru-corrected reports/fidelity-mf-calibrated/run.sh full
# Each cell's report goes to reports/fidelity-mf-calibrated[/users-<share>]/<scenario>-<fraction>.{md,json};
# the trained models (Originals with their calibration, Retrains) are cached in runs/fidelity-mf-cal[-<share>]
# (another folder: RUNS=runs/<name>).
set -euo pipefail
cd "$(dirname "$0")/../.."
IFRU=${IFRU:-.venv/bin/ifru}
HERE=${HERE:-reports/fidelity-mf-calibrated}
METHODS=${METHODS:-ifru,ifru-uncalibrated}
CALIBRATE_FOR=${CALIBRATE_FOR:-ifru}
RUNS=${RUNS:-runs/fidelity-mf-cal}

cell() {  # out dest scenario fraction seeds [dataset flags...]
  local out=$1 dest=$2 scenario=$3 fraction=$4 seeds=$5
  shift 5
  echo "=== $(date +%T) mf bookcrossing $* $scenario $fraction seeds $seeds"
  local start=$SECONDS
  mkdir -p "$out" "$dest"
  "$IFRU" fidelity --model mf --scenario "$scenario" --fraction "$fraction" --seeds "$seeds" \
      --methods "$METHODS" --calibrate-for "$CALIBRATE_FOR" --threads 1 --out "$out" "$@" > "$out.$scenario-$fraction.log" 2>&1 \
    || { echo "FAILED (see $out.$scenario-$fraction.log)"; return 1; }
  cp "$out/report.md" "$dest/$scenario-$fraction.md"
  cp "$out/report.json" "$dest/$scenario-$fraction.json"
  echo "    done in $((SECONDS - start)) s"
}

stages=("$@"); [ $# -gt 0 ] || stages=(full)
for stage in "${stages[@]}"; do
  case $stage in
    full)  # all 351,347 training rows: the cells of reports/fidelity-mf, the same draws
      out=$RUNS
      cell $out $HERE genuine 0.02 1,2,3
      cell $out $HERE users 0.01 1,2,3
      cell $out $HERE poison 0.02 1,2,3
      for f in 0.005 0.08; do cell $out $HERE genuine $f 1; cell $out $HERE poison $f 1; done
      for f in 0.005 0.02 0.08; do cell $out $HERE users $f 1; done ;;
    users-0.25|users-0.5)  # a seeded random share of the users: the cells of reports/fidelity-mf-sizes
      share=${stage#users-}
      out=$RUNS-$share
      for s in genuine users poison; do for f in 0.005 0.02 0.08; do
        cell $out $HERE/$stage $s $f 1,2,3 --user-fraction "$share"
      done; done ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
