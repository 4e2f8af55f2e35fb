#!/usr/bin/env bash
# The whole GPU check in one run of at most 10 minutes (docs/performance.md, "GPU").
#
#   scripts/gpu_check.sh build        here, on any machine: release binaries for CUDA (fusion and
#                                     autotune on, the default GPU build) and WGPU, stripped, in
#                                     gpu-bin/ (ignored by git; CUDA compiles without a toolkit)
#   scripts/gpu_check.sh run OUT      on the GPU machine, from the repository root, with gpu-bin/
#                                     carried there: everything below, written under OUT
#
# With the device tool: run(command="scripts/gpu_check.sh run $OUT", carry=["gpu-bin"],
# timeout_s=600). What `run` does, each stage under its own time limit so that the whole fits:
#   1. the machine: nvidia-smi, the driver, PyTorch's version and GPU
#   2. `electra bench` (CUDA build), batch 32 and 128: the first run compiles and autotunes the
#      kernels and fills the tune cache (OUT/tune-cache), its time per stage is the cost of tuning
#   3. the same bench again: the steady-state numbers (ours against PyTorch, kernel launches per
#      step, GPU memory), report in OUT/bench-2.json
#   4. `electra pretrain` quick run for 40 steps: the first-step line (tuning from the cache)
#   4b. `electra bench --precision bf16` (both sides in bf16; 1 warm-up + 2 timed steps), report
#      in OUT/bench-bf16.json
#   5. an Nsight Systems profile of pre-training steps (nsys; else ncu on a few kernels; else a
#      note that neither is installed), with its kernel summary as text
#   6. the WGPU build's bench (Vulkan), if time is left
# Every stage's output is in OUT/<stage>.txt; OUT/summary.txt lists each stage's exit status and
# seconds.
set -uo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
build)
  set -e
  mkdir -p gpu-bin
  for backend in cuda wgpu; do
    cargo build --release -p electra-cli --no-default-features --features "$backend"
    cp target/release/electra "gpu-bin/electra-$backend"
    strip "gpu-bin/electra-$backend"
  done
  ls -l gpu-bin/
  exit 0
  ;;
run)
  out="${2:?usage: scripts/gpu_check.sh run OUT}"
  ;;
*)
  sed -n 2,25p "$0"
  exit 2
  ;;
esac

mkdir -p "$out"
out="$(cd "$out" && pwd)"
bin="$PWD/gpu-bin"
[ -x "$bin/electra-cuda" ] || { echo "no $bin/electra-cuda: run 'scripts/gpu_check.sh build' first and carry gpu-bin"; exit 1; }
export ELECTRA_TUNE_CACHE="$out/tune-cache"
export RUST_LOG=warn
started=$(date +%s)
summary="$out/summary.txt"
: >"$summary"

# stage NAME LIMIT_S COMMAND...: runs COMMAND with its output in OUT/NAME.txt, under LIMIT_S.
stage() {
  local name=$1 limit=$2
  shift 2
  local t0 rc
  t0=$(date +%s)
  echo "== $name (limit ${limit}s): $*" | tee -a "$out/$name.txt"
  timeout --kill-after=10 "$limit" "$@" >>"$out/$name.txt" 2>&1
  rc=$?
  pkill -f "$bin/electra-" 2>/dev/null  # workers of a stage that ran out of time
  echo "$name: exit $rc, $(($(date +%s) - t0)) s" | tee -a "$summary"
  tail -n 30 "$out/$name.txt"
}
left() { echo $((570 - ($(date +%s) - started))); }

stage machine 30 bash -c 'nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv;
  python3 -c "import torch, transformers; print(\"torch\", torch.__version__, \"transformers\", transformers.__version__, torch.cuda.get_device_name())";
  command -v nsys ncu || true'
stage bench-1 300 "$bin/electra-cuda" bench --threads 8 --peak-size 8192 --batch 32,128 --out "$out/bench-1.json"
stage bench-2 120 "$bin/electra-cuda" bench --threads 8 --peak-size 8192 --batch 32,128 --out "$out/bench-2.json"
stage pretrain 45 "$bin/electra-cuda" pretrain --steps 40 --out "$out/pretrain-run" --overwrite
# Both sides in bf16 (ours --precision bf16, PyTorch under torch.autocast), leaving 70 s for the
# profile.
bf16_limit=$(( $(left) - 70 )); [ "$bf16_limit" -gt 150 ] && bf16_limit=150
[ "$bf16_limit" -gt 30 ] && stage bench-bf16 "$bf16_limit" "$bin/electra-cuda" bench --threads 8 --quick --precision bf16 \
  --batch 32,128 --out "$out/bench-bf16.json"
if command -v nsys >/dev/null; then
  stage profile "$(( $(left) < 60 ? $(left) : 60 ))" nsys profile --stats=true --force-overwrite=true -o "$out/pretrain-step" \
    "$bin/electra-cuda" bench --worker pretrain --batch 32 --seq 128 --warmup 3 --reps 2
elif command -v ncu >/dev/null; then
  stage profile "$(( $(left) < 60 ? $(left) : 60 ))" ncu --launch-skip 2000 --launch-count 200 --csv \
    "$bin/electra-cuda" bench --worker pretrain --batch 32 --seq 128 --warmup 3 --reps 1
else
  echo "profile: skipped, neither nsys nor ncu is installed" | tee -a "$summary"
fi
if [ -x "$bin/electra-wgpu" ] && [ "$(left)" -gt 60 ]; then
  stage wgpu-bench "$(left)" "$bin/electra-wgpu" bench --no-python --batch 32 --out "$out/wgpu-bench.json"
fi
echo "total: $(($(date +%s) - started)) s" | tee -a "$summary"
du -sh "$out"/* | tee -a "$summary"
