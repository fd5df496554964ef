#!/usr/bin/env bash
# ifru-unanchored (calibrated for itself) and uncalibrated, next to ifru-uncalibrated, on the matrix cells
# whose models earlier runs cached (runs/fill, runs/amz: see reports/fidelity-poison-tail and
# reports/fidelity-plateaus for the commands that build them). Works on copies in runs/unanch, so the
# cached Originals keep their calibration for ifru.
set -uo pipefail
cd "$(dirname "$0")/../.."
U=runs/unanch; HERE=reports/fidelity-unanchored
METHODS=ifru-unanchored,ifru-unanchored-uncalibrated,ifru-uncalibrated
cell() {  # name source-dir threads args...; DIR=folder: the models' folder under $U (default: name)
  local name=$1 src=$2 threads=$3 dir=$U/${DIR:-$1}; shift 3
  mkdir -p "$dir"; cp -n "$src"/*.pt "$dir/" 2>/dev/null
  echo "$(date +%T) start $name"
  .venv/bin/ifru fidelity --methods $METHODS --calibrate-for ifru-unanchored --threads "$threads" "$@" --out "$dir" > "$U/$name.log" 2>&1
  local status=$?
  cp "$dir/report.md" "$HERE/$name.md"; cp "$dir/report.json" "$HERE/$name.json"
  echo "$(date +%T) done $name rc=$status"
}
source reports/fidelity-movielens-shaped/datasets.sh  # AM, ML100K, ML1M, ML (the shaped files, generated if missing)
shaped_files
stages=("$@"); [ $# -gt 0 ] || stages=(shaped planted users lightgcn)
for stage in "${stages[@]}"; do case $stage in
shaped)
  cell bx-mf-poison-0.08 runs/amz/bx-mf-poison 2 --model mf --scenario poison --fraction 0.08 --seeds 1
  for s in poison genuine users; do
    cell amazon-mf-$s-0.02 runs/fill/amazon-mf 2 --model mf "${AM[@]}" --scenario $s --fraction 0.02 --seeds 1
  done
  for s in poison genuine users; do
    cell 100k-mf-$s-0.02 runs/fill/100k-mf 2 --model mf --dataset "$ML100K" "${ML[@]}" --scenario $s --fraction 0.02 --seeds 1
  done
  cell amazon-lightgcn-poison-0.02 runs/amz/poison 2 --model lightgcn "${AM[@]}" --scenario poison --fraction 0.02 --seeds 1
  cell bookcrossing-lightgcn-poison-0.01 runs/amz/bx-lgn-poison 2 --model lightgcn --scenario poison --fraction 0.01 --seeds 1
  cell bookcrossing-lightgcn-genuine-0.02 runs/amz/bx-lgn 2 --model lightgcn --scenario genuine --fraction 0.02 --seeds 1
  cell bookcrossing-lightgcn-users-0.01 runs/amz/bx-lgn 2 --model lightgcn --scenario users --fraction 0.01 --seeds 1
  for s in genuine users; do
    cell 1m-mf-$s-0.02 runs/amz/1m-mf 2 --model mf --dataset "$ML1M" "${ML[@]}" --scenario $s --fraction 0.02 --seeds 1
  done
  cell 1m-lightgcn-poison-0.02 runs/amz/1m-poison 2 --model lightgcn --dataset "$ML1M" "${ML[@]}" --scenario poison --fraction 0.02 --seeds 1
;;
planted)  # reports/fidelity-plateaus' planted cells (runs/fidelity-synthetic, runs/fill)
  for s in poison genuine users; do for f in 0.02 0.08; do
    cell planted-1e5-mf-$s-$f runs/fidelity-synthetic/mf-1e5-plateaus 2 --model mf --dataset planted:1e5 --scenario $s --fraction $f --seeds 1
  done; done
  for s in poison genuine; do
    cell planted-1e6-mf-$s-0.02 runs/fidelity-synthetic/mf-1e6-plateaus 2 --model mf --dataset planted:1e6 --scenario $s --fraction 0.02 --seeds 1
  done
  for size in 1e4 1e5; do
    cell planted-$size-lightgcn-users-0.02 runs/fill/planted-$size-lightgcn 2 --model lightgcn --dataset planted:$size --scenario users --fraction 0.02 --seeds 1
  done
;;
users)  # BookCrossing MF on a seeded 25% / 50% of the users (reports/fidelity-endpoint/mf/users-*), seeds 1-3,
  # trained here (no cached models): poisoned rows at 2% and 8%, genuine rows at 8%
  for share in 0.25 0.5; do for cell_of in poison-0.02 poison-0.08 genuine-0.08; do
    cell bookcrossing-mf-users-$share-$cell_of runs/unanch/none 2 --model mf --scenario ${cell_of%-*} \
      --fraction ${cell_of#*-} --seeds 1,2,3 --user-fraction $share
  done; done
;;
lightgcn)  # LightGCN cells of reports/fidelity-plateaus whose models were not cached, trained here
  for s in poison genuine users; do
    DIR=100k-lightgcn cell 100k-lightgcn-$s-0.02 none 2 --model lightgcn --dataset "$ML100K" "${ML[@]}" \
      --scenario $s --fraction 0.02 --seeds 1
  done
  for s in genuine users; do
    DIR=amazon-lightgcn cell amazon-lightgcn-$s-0.02 none 2 --model lightgcn "${AM[@]}" --scenario $s --fraction 0.02 --seeds 1
  done
;;
*) echo "unknown stage $stage (shaped, planted, users, lightgcn)"; exit 2 ;;
esac; done
echo "$(date +%T) all done"
