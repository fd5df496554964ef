#!/usr/bin/env bash
# ifru-own-moments next to ifru-original-moments (the default ifru until 2026-12-07), each calibrated for itself,
# on the same Originals and Retrains (the second pass hard-links the first pass's checkpoints; a checkpoint is
# replaced by a rename, never rewritten).
# Usage: reports/fidelity-own-moments/run.sh [CELL...]
#   MF on BookCrossing: mf-full-p8 mf-full-p2 mf-full-g2 mf-full-u1 mf-users25-p8; MF on shaped files:
#   mf-amazon-p8 mf-planted1e4-p2; LightGCN, every cell of the matrix (../fidelity-endpoint/trajectory, with its
#   stopping: --no-scaled-patience, but the MovieLens-shaped file's cell, which holds the scaled run):
#   lightgcn-amazon-p2 lightgcn-amazon-sparse-p2 lightgcn-amazon-new-p2 lightgcn-ml100k-p8 lightgcn-ml100k-p2
#   lightgcn-ml100k-g2 lightgcn-ml100k-u2 lightgcn-1e4-p2 lightgcn-1e4-g2 lightgcn-full-p1 lightgcn-full-u1
#   lightgcn-movielens-new-p2; lightgcn-full-g2 (BookCrossing's LightGCN genuine 2% cell, which the trajectory
#   matrix's adaptive pass did not run either; added 2026-12-07 afternoon, not in the default list),
#   lightgcn-movielens-dense-p2, lightgcn-movielens-narrow-p2 (the poisoned 2% cells of the dense and the narrow
#   MovieLens-shaped files drawn that afternoon)
# Reports: reports/fidelity-own-moments/<cell>.{default,own}.{md,json}; models in runs/own-moments/<cell>-{a,o}.
# Environment: IFRU (the CLI), THREADS.
set -euo pipefail
cd "$(dirname "$0")/../.."
IFRU=${IFRU:-.venv/bin/ifru}
THREADS=${THREADS:-2}
HERE=reports/fidelity-own-moments
source reports/fidelity-movielens-shaped/datasets.sh  # AM, ML100K, ML; shaped_files writes them
SHAPED_AMAZON=(--header --columns user,item,rating,timestamp --threshold 3 --kcore 5)

shaped() {  # file "users items ratings seed" kind: a shaped file of the trajectory matrix, drawn if missing
  # shellcheck disable=SC2086  # the shape is four numbers
  [ -f "$1" ] || { mkdir -p "$(dirname "$1")" && .venv/bin/python "$SHAPED" $2 "$1" "$3"; }
}

pair() {  # cell model scenario fraction seeds [flags...]
  local cell=$1 model=$2 scenario=$3 fraction=$4 seeds=$5 out=runs/own-moments/$1
  shift 5
  echo "=== $(date +%T) $cell"
  mkdir -p "$out-a" "$out-o"
  # the first pass answers with the original moments (the default of the morning these cells first ran, when it was
  # named ifru; MF's default still), calibrated for themselves
  "$IFRU" fidelity --model "$model" --scenario "$scenario" --fraction "$fraction" --seeds "$seeds" \
      --methods ifru-original-moments --calibrate-for ifru-original-moments --threads "$THREADS" --out "$out-a" "$@" \
      > "$out-a.log" 2>&1
  cp -ln "$out-a"/*.pt "$out-o"/ 2>/dev/null || true
  "$IFRU" fidelity --model "$model" --scenario "$scenario" --fraction "$fraction" --seeds "$seeds" \
      --methods ifru-own-moments,ifru-own-moments-uncalibrated,ifru-uncalibrated --calibrate-for ifru-own-moments \
      --threads "$THREADS" --out "$out-o" "$@" > "$out-o.log" 2>&1
  for pass in a:default o:own; do
    cp "$out-${pass%%:*}/report.md" "$HERE/$cell.${pass#*:}.md"; cp "$out-${pass%%:*}/report.json" "$HERE/$cell.${pass#*:}.json"
  done
}

LGN=(--no-scaled-patience)
cells=("$@"); [ $# -gt 0 ] || cells=(mf-full-p8 mf-full-p2 mf-full-g2 mf-full-u1 mf-users25-p8 mf-amazon-p8 mf-planted1e4-p2
                                      lightgcn-amazon-p2 lightgcn-amazon-sparse-p2 lightgcn-amazon-new-p2 lightgcn-ml100k-p8
                                      lightgcn-ml100k-p2 lightgcn-ml100k-g2 lightgcn-ml100k-u2 lightgcn-1e4-p2 lightgcn-1e4-g2
                                      lightgcn-full-p1 lightgcn-full-u1 lightgcn-movielens-new-p2)
for cell in "${cells[@]}"; do
  case $cell in
    mf-full-p8) pair "$cell" mf poison 0.08 1 ;;
    mf-full-p2) pair "$cell" mf poison 0.02 1 ;;
    mf-full-g2) pair "$cell" mf genuine 0.02 1 ;;
    mf-full-u1) pair "$cell" mf users 0.01 1 ;;
    mf-users25-p8) pair "$cell" mf poison 0.08 1,2,3 --user-fraction 0.25 ;;
    mf-amazon-p8) shaped_files; pair "$cell" mf poison 0.08 1,2,3 "${AM[@]}" ;;
    mf-planted1e4-p2) pair "$cell" mf poison 0.02 1,2,3 --dataset planted:1e4 ;;
    lightgcn-amazon-p2) shaped_files; pair "$cell" lightgcn poison 0.02 1 "${LGN[@]}" "${AM[@]}" ;;
    lightgcn-amazon-sparse-p2) shaped runs/amazon-sparse/ratings.csv "40000 20000 300000 17" amazon
      pair "$cell" lightgcn poison 0.02 1 "${LGN[@]}" --dataset runs/amazon-sparse/ratings.csv "${SHAPED_AMAZON[@]}" ;;
    lightgcn-amazon-new-p2) shaped runs/amazon-new/ratings.csv "25000 4000 350000 67" amazon
      pair "$cell" lightgcn poison 0.02 1 "${LGN[@]}" --dataset runs/amazon-new/ratings.csv "${SHAPED_AMAZON[@]}" ;;
    lightgcn-ml100k-p8) shaped_files; pair "$cell" lightgcn poison 0.08 1,2,3 "${LGN[@]}" --dataset "$ML100K" "${ML[@]}" ;;
    lightgcn-ml100k-p2) shaped_files; pair "$cell" lightgcn poison 0.02 1,2,3 "${LGN[@]}" --dataset "$ML100K" "${ML[@]}" ;;
    lightgcn-ml100k-g2) shaped_files; pair "$cell" lightgcn genuine 0.02 1,2,3 "${LGN[@]}" --dataset "$ML100K" "${ML[@]}" ;;
    lightgcn-ml100k-u2) shaped_files; pair "$cell" lightgcn users 0.02 1,2,3 "${LGN[@]}" --dataset "$ML100K" "${ML[@]}" ;;
    lightgcn-1e4-p2) pair "$cell" lightgcn poison 0.02 1,2,3 "${LGN[@]}" --dataset planted:1e4 ;;
    lightgcn-1e4-g2) pair "$cell" lightgcn genuine 0.02 1,2,3 "${LGN[@]}" --dataset planted:1e4 ;;
    lightgcn-full-p1) pair "$cell" lightgcn poison 0.01 1 "${LGN[@]}" ;;
    lightgcn-full-u1) pair "$cell" lightgcn users 0.01 1 "${LGN[@]}" ;;
    lightgcn-full-g2) pair "$cell" lightgcn genuine 0.02 1 "${LGN[@]}" ;;
    lightgcn-movielens-dense-p2) shaped runs/movielens-dense/ratings.dat "1500 1800 300000 89" movielens
      pair "$cell" lightgcn poison 0.02 1 --dataset runs/movielens-dense/ratings.dat "${ML[@]}" ;;
    lightgcn-movielens-narrow-p2) shaped runs/movielens-narrow/ratings.dat "12000 800 250000 101" movielens
      pair "$cell" lightgcn poison 0.02 1 --dataset runs/movielens-narrow/ratings.dat "${ML[@]}" ;;
    lightgcn-movielens-new-p2) shaped runs/movielens-new/ratings.dat "3000 2500 400000 23" movielens
      pair "$cell" lightgcn poison 0.02 1 --dataset runs/movielens-new/ratings.dat "${ML[@]}" ;;
    *) echo "unknown cell $cell"; exit 2 ;;
  esac
done
