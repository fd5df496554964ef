#!/usr/bin/env bash
# The finer walk on the MF cells of the matrix, seed 1: Originals trained keeping 32 snapshots
# (`--snapshots 32`: every epoch of a run up to 33 epochs, 32 evenly spread ones of a longer run),
# answered by the default's equation calibrated (ifru) and uncalibrated, and by the nonlinear one
# uncalibrated. Models in $U (one folder per dataset); reports here as <cell>.md / .json.
# The shaped files: reports/fidelity-movielens-shaped/datasets.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
U=${U:-runs/segments}; HERE=${HERE:-reports/fidelity-segments/matrix}; SNAPSHOTS=${SNAPSHOTS:-32}
METHODS=${METHODS:-ifru,ifru-uncalibrated,ifru-nonlinear-uncalibrated}; CALIBRATE_FOR=${CALIBRATE_FOR:-ifru}
mkdir -p "$HERE"
cell() {  # name models-folder args...
  local name=$1 dir=$U/$2; shift 2
  mkdir -p "$dir"; echo "$(date +%T) start $name"
  ${IFRU:-.venv/bin/ifru} fidelity --methods $METHODS --calibrate-for $CALIBRATE_FOR --snapshots $SNAPSHOTS --threads 2 \
    --seeds 1 "$@" --out "$dir" > "$U/$name.log" 2>&1
  local status=$?
  cp "$dir/report.md" "$HERE/$name.md"; cp "$dir/report.json" "$HERE/$name.json"
  echo "$(date +%T) done $name rc=$status"
}
source reports/fidelity-movielens-shaped/datasets.sh  # AM, ML100K, ML1M, ML (the shaped files, generated if missing)
shaped_files
stages=("$@"); [ $# -gt 0 ] || stages=(bookcrossing planted shaped)  # and lightgcn, run on its own
for stage in "${stages[@]}"; do case $stage in
bookcrossing)
  cell bookcrossing-mf-genuine-0.02 bookcrossing-mf --model mf --scenario genuine --fraction 0.02
  cell bookcrossing-mf-users-0.01 bookcrossing-mf --model mf --scenario users --fraction 0.01
  for f in 0.02 0.08; do cell bookcrossing-mf-poison-$f bookcrossing-mf --model mf --scenario poison --fraction $f; done
;;
planted)
  for size in 1e4 1e5; do
    for s in genuine poison; do for f in 0.02 0.08; do
      cell planted-$size-mf-$s-$f planted-$size-mf --model mf --dataset planted:$size --scenario $s --fraction $f
    done; done
    cell planted-$size-mf-users-0.02 planted-$size-mf --model mf --dataset planted:$size --scenario users --fraction 0.02
  done
;;
lightgcn)  # BookCrossing's three cells (as reports/fidelity-plateaus), the Amazon-shaped poisoned one
  cell bookcrossing-lightgcn-poison-0.01 bookcrossing-lightgcn --model lightgcn --scenario poison --fraction 0.01
  cell bookcrossing-lightgcn-genuine-0.02 bookcrossing-lightgcn --model lightgcn --scenario genuine --fraction 0.02
  cell bookcrossing-lightgcn-users-0.01 bookcrossing-lightgcn --model lightgcn --scenario users --fraction 0.01
  cell amazon-lightgcn-poison-0.02 amazon-lightgcn --model lightgcn "${AM[@]}" --scenario poison --fraction 0.02
;;
shaped)
  for s in genuine poison; do
    cell 100k-mf-$s-0.02 100k-mf --model mf --dataset "$ML100K" "${ML[@]}" --scenario $s --fraction 0.02
  done
;;
*) echo "unknown stage $stage (bookcrossing, planted, shaped, lightgcn)"; exit 2;;
esac; done
