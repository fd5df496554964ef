#!/usr/bin/env bash
# ifru-trajectory (UnlearnConfig(corrections=2, horizon="trajectory"), calibrated for itself; the default ifru since
# 2026-12-06 answers as it on every model here, whose traces carry the tail) next to ifru-nonlinear (the same response
# at the recorded horizon, the same calibration) and ifru-linear (the default before, calibrated for itself).
# Each cell runs twice on the same Original, Retrain and Retrain-2 (the second run reuses the first's checkpoints):
# once calibrated for ifru-linear (answers: ifru-linear; the reports written before 2026-12-06 call it ifru), once
# for ifru-trajectory (answers: ifru-nonlinear, ifru-trajectory).
# Usage: reports/fidelity-endpoint/trajectory/run.sh [STAGE...]
#   stages: users-0.25 full planted-1e5 planted-1e4 users-0.5 lightgcn-1e4 lightgcn-full lightgcn-full-genuine lightgcn-full-users
#           ml100k amazon ml1m lightgcn-ml100k (the shaped files of reports/fidelity-movielens-shaped: data the method was not built on)
#           lightgcn-amazon (the Amazon-shaped file's LightGCN poisoned 2% cell, seed 1), planted-1e6 (MF, poisoned 8%, seed 1)
#           poison-0.08 (BookCrossing's 8% poisoned-row cells of full, users-0.5 and users-0.25 again)
#           amazon-sparse (a sparser Amazon-shaped file drawn after the default was chosen: 40k users, 20k items,
#           300k ratings, seed 17; MF, four cells, three seeds), lightgcn-amazon-sparse (its LightGCN poisoned 2% cell,
#           seed 1), movielens-new (a MovieLens-shaped file drawn after the default was chosen: 3,000 users, 2,500
#           items, 400k ratings, seed 23; MF, four cells, three seeds), lightgcn-movielens-new (its LightGCN poisoned
#           2% cell, seed 1), movielens-wide (a wider MovieLens-shaped file drawn on 2026-12-06 after the rest: 8,000
#           users, 3,000 items, 250k ratings, seed 41; MF, four cells, three seeds), lightgcn-movielens-wide (its
#           LightGCN poisoned 2% cell, seed 1), amazon-new (an Amazon-shaped file with fewer, denser items drawn on
#           2026-12-07 after the rest: 25,000 users, 4,000 items, 350k ratings, seed 67; MF, four cells, three seeds),
#           lightgcn-amazon-new (its LightGCN poisoned 2% cell, seed 1), movielens-dense (a denser MovieLens-shaped
#           file drawn on the afternoon of 2026-12-07: 1,500 users, 1,800 items, 300k ratings, seed 89; MF, four cells,
#           three seeds), lightgcn-movielens-dense (its LightGCN poisoned 2% cell, seed 1), movielens-narrow (a
#           MovieLens-shaped file with many users and few items, drawn after that: 12,000 users, 800 items, 250k
#           ratings, seed 101; MF, four cells, three seeds), lightgcn-movielens-narrow (its LightGCN poisoned 2% cell)
# PASSES=adaptive (2026-12-07): the default ifru since then (a stalled step walked in shorter steps), calibrated for
# itself on the trajectory pass's models (runs/trajectory-<stage>-a). Since 2026-12-07 the trajectory pass's two
# methods walk stalled steps shorter too; its committed reports are the fixed-step walk's (ifru-fixed-steps).
# Reports: reports/fidelity-endpoint/trajectory/<stage>/<scenario>-<fraction>.{default,trajectory,adaptive}.{md,json};
# models cached in runs/trajectory-<stage>{,-t,-a} (a model trained before 2026-12-06 has no tail: not reusable).
# Environment: STOPPING (stopping flags for every training, e.g. --scaled-patience), HERE (where the reports go),
# RUNS (the model caches' prefix), PASSES (default,trajectory: which of the two runs a cell makes), THREADS.
set -euo pipefail
cd "$(dirname "$0")/../../.."
IFRU=${IFRU:-.venv/bin/ifru}
HERE=${HERE:-reports/fidelity-endpoint/trajectory}
RUNS=${RUNS:-runs/trajectory}
PASSES=${PASSES:-default,trajectory}
read -ra STOPPING <<< "${STOPPING:-}"
THREADS=${THREADS:-2}

answer() {  # out calibrate-for methods name scenario fraction seeds [flags...]
  local out=$1 calibrate_for=$2 methods=$3 name=$4 scenario=$5 fraction=$6 seeds=$7
  shift 7
  "$IFRU" fidelity --model "${MODEL:-mf}" --scenario "$scenario" --fraction "$fraction" --seeds "$seeds" \
      --methods "$methods" --calibrate-for "$calibrate_for" --threads "$THREADS" --out "$out" "${STOPPING[@]}" "$@" \
      > "$out.$scenario-$fraction.log" 2>&1 || { echo "FAILED (see $out.$scenario-$fraction.log)"; return 1; }
  cp "$out/report.md" "$dest/$scenario-$fraction.$name.md"
  cp "$out/report.json" "$dest/$scenario-$fraction.$name.json"
}

cell() {  # stage scenario fraction seeds [dataset flags...]
  local stage=$1 scenario=$2 fraction=$3 seeds=$4
  shift 4
  local out=$RUNS-$stage
  dest=$HERE/$stage
  echo "=== $(date +%T) ${MODEL:-mf} $stage $scenario $fraction seeds $seeds"
  local start=$SECONDS
  mkdir -p "$out" "$out-t" "$dest"
  if [[ ,$PASSES, == *,default,* ]]; then
    answer "$out" ifru-linear ifru-linear default "$scenario" "$fraction" "$seeds" "$@"
    cp -n "$out"/*.pt "$out-t"/  # the same Originals and Retrains, calibrated again for the trajectory
  fi
  if [[ ,$PASSES, == *,trajectory,* ]]; then
    answer "$out-t" ifru-trajectory ifru-nonlinear,ifru-trajectory trajectory "$scenario" "$fraction" "$seeds" "$@"
  fi
  if [[ ,$PASSES, == *,adaptive,* ]]; then  # the same Originals and Retrains again (hard links: a checkpoint is
    # replaced by a rename, never rewritten in place), calibrated for the default ifru (the reports of 2026-12-07
    # ran it as ifru-adaptive, the registry's name for it that morning)
    mkdir -p "$out-a"; cp -ln "$out-t"/*.pt "$out-a"/ 2>/dev/null || true
    answer "$out-a" ifru ifru adaptive "$scenario" "$fraction" "$seeds" "$@"
  fi
  echo "    done in $((SECONDS - start)) s"
}

fresh() {  # name file "users items ratings seed" [amazon]: a shaped file drawn after the default was chosen, its
  # four MF cells at three seeds (stage NAME) or its LightGCN poisoned 2% cell at seed 1 (stage lightgcn-NAME)
  local name=$1 file=$2 shape=$3 kind=${4:-movielens} options
  # shellcheck disable=SC2086  # the shape is four numbers
  [ -f "$file" ] || { mkdir -p "$(dirname "$file")" && .venv/bin/python \
      reports/fidelity-movielens-shaped/movielens_shaped.py $shape "$file" "$kind"; }
  if [ "$kind" = amazon ]; then
    options=(--dataset "$file" --header --columns user,item,rating,timestamp --threshold 3 --kcore 5)
  else
    options=(--dataset "$file" --sep :: --columns user,item,rating,timestamp --threshold 3 --kcore 5)
  fi
  if [ "$stage" = "$name" ]; then
    for s in "poison 0.08" "poison 0.02" "genuine 0.02" "users 0.02"; do cell "$name" $s 1,2,3 "${options[@]}"; done
  else
    MODEL=lightgcn cell "lightgcn-$name" poison 0.02 1 "${options[@]}"
  fi
}

stages=("$@"); [ $# -gt 0 ] || stages=(users-0.25 full planted-1e5 planted-1e4 users-0.5)
for stage in "${stages[@]}"; do
  case $stage in
    users-0.25|users-0.5)
      u=${stage#users-}
      for f in 0.08 0.02 0.005; do cell $stage poison $f 1,2,3 --user-fraction $u; done
      cell $stage genuine 0.02 1,2,3 --user-fraction $u
      cell $stage users 0.01 1,2,3 --user-fraction $u ;;
    full)
      cell full poison 0.08 1,2,3
      for f in 0.02 0.005; do cell full poison $f 1; done
      cell full genuine 0.02 1; cell full genuine 0.08 1; cell full users 0.01 1 ;;
    planted-1e5|planted-1e4)
      for f in 0.08 0.02; do cell $stage poison $f 1,2,3 --dataset planted:${stage#planted-}; done
      cell $stage genuine 0.02 1,2,3 --dataset planted:${stage#planted-}
      cell $stage users 0.01 1,2,3 --dataset planted:${stage#planted-} ;;
    lightgcn-full) MODEL=lightgcn cell lightgcn-full poison 0.01 1 ;;  # ~20 min: four LightGCN trainings, two calibrations
    lightgcn-full-genuine) MODEL=lightgcn cell lightgcn-full genuine 0.02 1 ;;  # as long
    lightgcn-full-users) MODEL=lightgcn cell lightgcn-full users 0.01 1 ;;  # as long
    lightgcn-1e4) for s in "poison 0.02" "genuine 0.02"; do MODEL=lightgcn cell lightgcn-1e4 $s 1,2,3 --dataset planted:1e4; done ;;
    ml100k|amazon|ml1m|lightgcn-ml100k|lightgcn-amazon)  # MovieLens-100K-, Amazon- and MovieLens-1M-shaped ratings files, read as public files
      source reports/fidelity-movielens-shaped/datasets.sh  # ML100K, ML1M, AM, ML; shaped_files writes them
      shaped_files
      model=mf; cells=("poison 0.08" "poison 0.02" "genuine 0.02" "users 0.02"); seeds=1,2,3
      case $stage in
        ml100k) data=(--dataset "$ML100K" "${ML[@]}") ;;
        amazon) data=("${AM[@]}") ;;
        ml1m) data=(--dataset "$ML1M" "${ML[@]}") ;;
        lightgcn-ml100k) model=lightgcn; data=(--dataset "$ML100K" "${ML[@]}") ;;  # 8% poisoned rows included
        # the Amazon-shaped LightGCN poisoned 2% cell the default misses (reports/fidelity-movielens-shaped), ~25 min
        lightgcn-amazon) model=lightgcn; data=("${AM[@]}"); cells=("poison 0.02"); seeds=1 ;;
      esac
      for s in "${cells[@]}"; do
        MODEL=$model cell $stage $s $seeds "${data[@]}"
      done ;;
    planted-1e6) cell planted-1e6 poison 0.08 1 --dataset planted:1e6 ;;  # the planted set at 1e6 interactions, ~25 min
    poison-0.08)  # BookCrossing's 8% poisoned-row cells again (all users, half, a quarter): the ones nearest the speed floor
      cell full poison 0.08 1,2,3
      for u in 0.5 0.25; do cell users-$u poison 0.08 1,2,3 --user-fraction $u; done ;;
    amazon-sparse|lightgcn-amazon-sparse) fresh "${stage#lightgcn-}" runs/amazon-sparse/ratings.csv "40000 20000 300000 17" amazon ;;
    movielens-new|lightgcn-movielens-new) fresh "${stage#lightgcn-}" runs/movielens-new/ratings.dat "3000 2500 400000 23" ;;
    movielens-wide|lightgcn-movielens-wide) fresh "${stage#lightgcn-}" runs/movielens-wide/ratings.dat "8000 3000 250000 41" ;;
    amazon-new|lightgcn-amazon-new) fresh "${stage#lightgcn-}" runs/amazon-new/ratings.csv "25000 4000 350000 67" amazon ;;
    movielens-dense|lightgcn-movielens-dense) fresh "${stage#lightgcn-}" runs/movielens-dense/ratings.dat "1500 1800 300000 89" ;;
    movielens-narrow|lightgcn-movielens-narrow) fresh "${stage#lightgcn-}" runs/movielens-narrow/ratings.dat "12000 800 250000 101" ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
