#!/usr/bin/env bash
# deploy/test.sh — builds and runs every foil test that this machine can run:
#   1. the Release build (./build): ctest labels unit, reference, integration,
#      and gpu. FOIL_CUDA=AUTO compiles and links the CUDA backend wherever
#      nvcc is found, so it cannot rot; its `gpu` tests report SKIPPED (not
#      passed) where no GPU is visible;
#   2. an ASan+UBSan build (./build-asan): the same tests again, so memory
#      and undefined-behaviour errors in kernels, model and parsers fail CI.
#      FOIL_CUDA=OFF there: the CUDA runtime maps memory ASan reserves for
#      its shadow (it needs protect_shadow_gap=0 and still reports the
#      driver's allocations as leaks), the gpu tests would only skip, and
#      CI is spared a second nvcc build;
#   3. a portable build (./build-portable, FOIL_NATIVE=OFF: baseline
#      x86-64, SSE2 vectors): the kernels' and models' unit tests, since
#      the other builds are -march=native and would not see a path that
#      only breaks without AVX (~30 s);
#   4. deploy/fuzz.sh: every libFuzzer target (tests/fuzz) for 30 s
#      (FOIL_FUZZ_SECONDS), built with clang into ./build-fuzz.
# Needs what deploy/setup.sh installs. Exit status: 0 only if all passed.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

run_suite() { # build-dir extra-cmake-args...
  local dir=$1; shift
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j "$jobs" >/dev/null
  ctest --test-dir "$dir" --output-on-failure -j "$jobs"
}

echo "== Release build: unit, reference and integration tests"
run_suite build -DCMAKE_BUILD_TYPE=Release -DFOIL_CUDA=AUTO
echo "== ASan+UBSan build: the same tests"
# Leak checking stays on; ASan needs to come first among preloaded runtimes.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  run_suite build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFOIL_SANITIZE=ON -DFOIL_CUDA=OFF
echo "== portable build (FOIL_NATIVE=OFF): kernel and model unit tests"
portable="kernels decoder encoder decode vsearch"
cmake -S . -B build-portable -DCMAKE_BUILD_TYPE=Release -DFOIL_CUDA=OFF -DFOIL_NATIVE=OFF >/dev/null
cmake --build build-portable -j "$jobs" --target $(printf 'test_%s ' $portable) >/dev/null
ctest --test-dir build-portable --output-on-failure -R "^unit\.($(echo $portable | tr ' ' '|'))\$"
echo "== libFuzzer targets (clang, ASan+UBSan): ${FOIL_FUZZ_SECONDS:-30} s each"
bash deploy/fuzz.sh
