#!/usr/bin/env bash
# ifru-nonlinear-neighbours (calibrated for itself) and uncalibrated, next to ifru-uncalibrated, on the MF
# cells whose models earlier runs cached (runs/fill, runs/amz, runs/fidelity-synthetic: see
# reports/fidelity-poison-tail and reports/fidelity-plateaus for the commands that build them), and on
# BookCrossing MF at 2% (trained here). Works on copies in runs/neigh, one folder per Original, so the
# cached Originals keep their calibration for ifru and each copy is calibrated once.
set -uo pipefail
cd "$(dirname "$0")/../.."
U=${U:-runs/neigh}; HERE=${HERE:-reports/fidelity-neighbours}
METHODS=ifru-nonlinear-neighbours,ifru-nonlinear-neighbours-uncalibrated,ifru-uncalibrated
cell() {  # name source-dir (or -) models-folder args...
  local name=$1 src=$2 dir=$U/$3; shift 3
  mkdir -p "$dir"; [ "$src" = - ] || cp -n "$src"/*.pt "$dir/" 2>/dev/null
  echo "$(date +%T) start $name"
  .venv/bin/ifru fidelity --methods $METHODS --calibrate-for ifru-nonlinear-neighbours --threads 2 "$@" --out "$dir" \
    > "$U/$name.log" 2>&1
  local status=$?
  cp "$dir/report.md" "$HERE/$name.md"; cp "$dir/report.json" "$HERE/$name.json"
  echo "$(date +%T) done $name rc=$status"
}
source reports/fidelity-movielens-shaped/datasets.sh  # AM, ML100K, ML1M, ML (the shaped files, generated if missing)
shaped_files
stages=("$@"); [ $# -gt 0 ] || stages=(shaped planted bookcrossing)
for stage in "${stages[@]}"; do case $stage in
shaped)
  cell bx-mf-poison-0.08 runs/amz/bx-mf-poison bx-mf-poison-0.08 --model mf --scenario poison --fraction 0.08 --seeds 1
  for s in poison genuine users; do
    cell amazon-mf-$s-0.02 runs/fill/amazon-mf amazon-mf --model mf "${AM[@]}" --scenario $s --fraction 0.02 --seeds 1
    cell 100k-mf-$s-0.02 runs/fill/100k-mf 100k-mf --model mf --dataset "$ML100K" "${ML[@]}" --scenario $s --fraction 0.02 --seeds 1
  done
  for s in genuine users; do
    cell 1m-mf-$s-0.02 runs/amz/1m-mf 1m-mf --model mf --dataset "$ML1M" "${ML[@]}" --scenario $s --fraction 0.02 --seeds 1
  done
;;
planted)  # reports/fidelity-plateaus' planted MF cells
  for s in poison genuine users; do for f in 0.02 0.08; do
    cell planted-1e5-mf-$s-$f runs/fidelity-synthetic/mf-1e5-plateaus planted-1e5-mf --model mf --dataset planted:1e5 --scenario $s --fraction $f --seeds 1
  done; done
  for s in poison genuine; do
    cell planted-1e6-mf-$s-0.02 runs/fidelity-synthetic/mf-1e6-plateaus planted-1e6-mf --model mf --dataset planted:1e6 --scenario $s --fraction 0.02 --seeds 1
  done
;;
bookcrossing)  # the paper's dataset, trained here (seeds 1-3)
  for s in poison genuine; do
    cell bookcrossing-mf-$s-0.02 - bookcrossing-mf --model mf --scenario $s --fraction 0.02 --seeds 1,2,3
  done
  cell bookcrossing-mf-users-0.01 - bookcrossing-mf --model mf --scenario users --fraction 0.01 --seeds 1,2,3
;;
planted-1e4)  # reports/fidelity-plateaus' planted:1e4 MF cells (seeds 1-3, trained here)
  for s in poison genuine users; do for f in 0.02 0.08; do
    cell planted-1e4-mf-$s-$f - planted-1e4-mf --model mf --dataset planted:1e4 --scenario $s --fraction $f --seeds 1,2,3
  done; done
;;
users)  # BookCrossing MF on a seeded 25% / 50% of the users (seeds 1-3, trained here): poisoned rows at 2% and
  # 8%, genuine rows at 8%
  for share in 0.25 0.5; do for cell_of in poison-0.02 poison-0.08 genuine-0.08; do
    cell bookcrossing-mf-users-$share-$cell_of - bookcrossing-mf-users-$share --model mf --scenario ${cell_of%-*} \
      --fraction ${cell_of#*-} --seeds 1,2,3 --user-fraction $share
  done; done
;;
*) echo "unknown stage $stage (shaped, planted, planted-1e4, bookcrossing, users)"; exit 2;;
esac; done
