#!/usr/bin/env bash
# bench/gpu.sh — the ONE prepared device check of the CUDA backend: build
# with CUDA, run the `gpu` tests, run the GPU benchmarks, keep everything
# under $OUT (default ./gpu-out). For a session with the device machine:
#   here:   bash bench/gpu-prepare.sh          (OpenBLAS for the CPU twins)
#   device: run(command="bash bench/gpu.sh", carry=[".devdeps"], timeout_s=540)
# On a full build machine (all of deploy/setup.sh) it builds the whole
# tree; on a bare CUDA image it configures FOIL_GPU_ONLY (kernels, gpu
# tests, bench_gpu). Budget: build ~1 min on 16 cores, tests < 1 min,
# benchmarks a few minutes; each step has its own timeout so a hang leaves
# the rest of the results. Files: build.log, ctest.log, bench.jsonl,
# bench.log, env.txt. The exit status is ctest's.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
jobs=$(nproc)

{
  date -u
  nvidia-smi -L 2>&1 || true
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
  nvcc --version 2>&1 | tail -2
  cmake --version | head -1
} > "$OUT/env.txt"
cat "$OUT/env.txt"

if [ -f .devdeps/openblas.pc ]; then
  export OpenBLAS_ROOT=$PWD/.devdeps
  export PKG_CONFIG_PATH=$PWD/.devdeps${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  export LD_LIBRARY_PATH=$PWD/.devdeps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export LIBRARY_PATH=$PWD/.devdeps/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
fi

# Full tree where its dependencies are installed, else the GPU-only tree.
bdir=build-gpu
if ! cmake -S . -B $bdir -DCMAKE_BUILD_TYPE=Release -DFOIL_CUDA=ON > "$OUT/build.log" 2>&1; then
  echo "== full configure failed (see build.log); configuring FOIL_GPU_ONLY"
  rm -rf $bdir
  cmake -S . -B $bdir -DCMAKE_BUILD_TYPE=Release -DFOIL_CUDA=ON -DFOIL_GPU_ONLY=ON >> "$OUT/build.log" 2>&1 ||
    { tail -30 "$OUT/build.log"; exit 1; }
fi
t0=$(date +%s)
timeout 300 cmake --build $bdir -j "$jobs" >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "== built in $(( $(date +%s) - t0 )) s"

echo "== ctest -L gpu"
timeout 240 ctest --test-dir $bdir -L gpu --output-on-failure 2>&1 | tee "$OUT/ctest.log"
status=${PIPESTATUS[0]}

echo "== benchmarks"
bench() { # timeout args...
  local t=$1; shift
  echo "-- bench_gpu $*" >> "$OUT/bench.log"
  timeout "$t" $bdir/bench/bench_gpu "$@" 2>> "$OUT/bench.log" | tee -a "$OUT/bench.jsonl"
}
bench 60 gemm
bench 90 train small 20
bench 90 train minilm 20
bench 120 train bert 10
bench 60 model small 20
bench 120 model bert 5
bench 120 model bert 5 bf16
bench 120 search 10000000 256 1 10
bench 120 search 10000000 256 16 10
bench 120 search 10000000 256 128 10
bench 90 decode 32 512 20
bench 90 decode 1 512 20
bench 120 serve 2000000 256 256 10
bench 120 lm gpt2 10 8 1024
bench 120 lm gpt2 10 8 1024 bf16
bench 90 generate gpt2 greedy 8 64
bench 90 generate gpt2 cs 8 64
bench 90 generate gpt2 dola 8 64
echo "== done; ctest status $status"
exit "$status"
