#!/usr/bin/env bash
# Checks the CUDA kernels on a GPU machine (torch 2.11+cu130, nvcc 13.0, H100/H200, no internet):
# builds the CUDA extension, runs the CUDA and op tests, runs the CUDA tests under
# compute-sanitizer memcheck, renders bench/reports/cuda.md, and summarises everything in
# bench/reports/gpu_check.md.
#
#   bench/gpu_check.sh                  # build test sanitizer bench, then the summary
#   bench/gpu_check.sh build test       # only these stages (the summary always runs)
#   bench/gpu_check.sh initcheck        # extra: compute-sanitizer initcheck on the CUDA tests
#
# Stage logs and results are kept in build/gpu_check/ (so stages run in separate calls on the same
# machine still add up to one summary) and, when $OUT is set, copied there with the reports.
# Environment: PYTHON (default python), MAX_JOBS (default nproc). Exits 1 if any stage failed;
# later stages still run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
STATE=build/gpu_check
mkdir -p "$STATE" bench/reports
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build test sanitizer bench)

exec > >(tee -a "$STATE/gpu_check.log") 2>&1
echo "== gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname): stages ${stages[*]}"

sanitizer_binary() {
  command -v compute-sanitizer 2>/dev/null || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1 || true
}

# Stage functions run as `if stage | tee`, where `set -e` does not apply: every step checks itself.
stage_build() {
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| GPU",
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)' || return
  nvcc --version | tail -n 2 || return
  MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PYTHON" -m pip install --no-build-isolation --no-deps -v -e . || return
  "$PYTHON" -c 'import torch, ifru_ext
print("with_cuda", ifru_ext.with_cuda(), "| cuda_version", torch.ops.ifru.cuda_version())
assert ifru_ext.with_cuda(), "the extension was built without its CUDA kernels"'
}

stage_test() {
  "$PYTHON" -m pytest python_tests/test_cuda.py python_tests/test_ops.py -q -rfEs -p no:cacheprovider
}

stage_sanitizer() {
  local sanitizer
  sanitizer=$(sanitizer_binary)
  if [ -z "$sanitizer" ]; then
    echo "compute-sanitizer not found: skipped"
    return 0
  fi
  # Without the caching allocator every tensor is its own allocation, so memcheck sees overruns.
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$sanitizer" --tool memcheck --leak-check no --error-exitcode 99 \
    "$PYTHON" -m pytest python_tests/test_cuda.py -q -x -k "not gradcheck" -p no:cacheprovider
}

stage_initcheck() {
  local sanitizer
  sanitizer=$(sanitizer_binary)
  [ -n "$sanitizer" ] || { echo "compute-sanitizer not found: skipped"; return 0; }
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$sanitizer" --tool initcheck --error-exitcode 99 \
    "$PYTHON" -m pytest python_tests/test_cuda.py -q -x -k "not gradcheck and not opcheck" -p no:cacheprovider
}

stage_bench() {
  "$PYTHON" -c 'import pytest_benchmark, scipy' || { echo "pytest-benchmark or scipy missing: no report"; return 1; }
  "$PYTHON" bench/report.py
}

failed=0
for stage in "${stages[@]}"; do
  if ! declare -F "stage_$stage" >/dev/null; then
    echo "unknown stage '$stage' (build test sanitizer bench initcheck)"
    failed=1
    continue
  fi
  echo "== $stage"
  start=$SECONDS
  if "stage_$stage" 2>&1 | tee "$STATE/$stage.log"; then
    result="ok"
  else
    result="FAILED (exit ${PIPESTATUS[0]})"
    failed=1
  fi
  echo "$result in $((SECONDS - start)) s (finished $(date -u +%H:%M:%SZ))" > "$STATE/$stage.status"
  echo "== $stage: $(cat "$STATE/$stage.status")"
done

# ---------------------------------------------------------------- summary
status_of() { [ -f "$STATE/$1.status" ] && cat "$STATE/$1.status" || echo "not run"; }
last_match() { [ -f "$STATE/$1.log" ] && grep -E "$2" "$STATE/$1.log" | tail -n 1 || true; }
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1 || true)
versions=$("$PYTHON" -c 'import torch, platform
print(f"torch {torch.__version__}, torch CUDA {torch.version.cuda}, python {platform.python_version()}")' \
  2>/dev/null || echo "torch not importable")
nvcc_release=$(nvcc --version 2>/dev/null | grep -oE 'release [0-9.]+' | head -n 1 || true)
counts='[0-9]+ (passed|failed|error)'
{
  echo "# GPU check — ${gpu:-no GPU visible}"
  echo
  echo "Written by \`bench/gpu_check.sh\` on $(date -u +%Y-%m-%d) ($(hostname))."
  echo
  echo "- device (nvidia-smi): ${gpu:-none}"
  echo "- ${versions}; nvcc ${nvcc_release:-not found}"
  echo "- build: $(last_match build '^ifru_ext build:') $(last_match build '^with_cuda')"
  echo "- tests (\`pytest python_tests/test_cuda.py python_tests/test_ops.py\`): $(last_match test "$counts")"
  echo "- compute-sanitizer memcheck on test_cuda.py (\`-k 'not gradcheck'\`):" \
    "$(last_match sanitizer 'ERROR SUMMARY|not found') $(last_match sanitizer "$counts")"
  if [ -f "$STATE/initcheck.status" ]; then
    echo "- compute-sanitizer initcheck: $(last_match initcheck 'ERROR SUMMARY|not found') $(last_match initcheck "$counts")"
  fi
  echo "- benchmark report: bench/reports/cuda.md ($(status_of bench))"
  echo
  echo "| stage | result |"
  echo "|---|---|"
  for stage in build test sanitizer initcheck bench; do
    echo "| $stage | $(status_of "$stage") |"
  done
} > bench/reports/gpu_check.md
echo "== summary (bench/reports/gpu_check.md)"
cat bench/reports/gpu_check.md

if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/gpu_check"
  cp "$STATE"/*.log "$STATE"/*.status "$OUT/gpu_check/" 2>/dev/null || true
  cp bench/reports/gpu_check.md "$OUT/gpu_check/"
  if [ -f "$STATE/bench.status" ]; then
    for report in bench/reports/cuda.md bench/reports/latest.json; do
      [ -f "$report" ] && cp "$report" "$OUT/gpu_check/"
    done
  fi
fi
exit "$failed"
