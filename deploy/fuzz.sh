#!/usr/bin/env bash
# deploy/fuzz.sh — builds foil's libFuzzer targets (tests/fuzz, clang with
# ASan+UBSan: -DFOIL_FUZZ=ON into ./build-fuzz) and runs each for a bounded
# time from its seed corpus (tests/fuzz/corpus/<target>) and its kept crash
# inputs (tests/fuzz/regress/<target>). New corpus entries go to a scratch
# folder (build-fuzz/corpus/<target>), never into the repository.
#
#   bash deploy/fuzz.sh                 # every target, 30 s each
#   FOIL_FUZZ_SECONDS=300 bash deploy/fuzz.sh spec h5   # longer, some targets
#   FOIL_FUZZ_BUILD_DIR=/tmp/ff bash deploy/fuzz.sh     # another build folder
#                           (absolute, or relative to the repository)
#
# Targets run $(nproc) at a time. A crash fails the run and names its input
# (build-fuzz/artifacts/<target>-crash-...): fix it, then copy the input to
# tests/fuzz/regress/<target>/ so ctest's fuzz.<target> replays it in every
# test run. One exception, reported but not failing (FOIL_FUZZ_STRICT=1
# makes it fail): a crash of the h5 target inside libhdf5 itself, which foil
# cannot fix (tests/fuzz/README.md "HDF5 itself"), on its re-signed path;
# on the raw path foil's integrity gate must stop the file, so a libhdf5
# crash there fails. Needs clang and
# libclang-rt-14-dev (deploy/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FOIL_FUZZ_SECONDS:-30}
dir=${FOIL_FUZZ_BUILD_DIR:-build-fuzz}
case $dir in /*) ;; *) dir="$PWD/$dir" ;; esac # absolute once: relative names are the repository's
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do t=${f##*/fuzz_}; targets+=("${t%.c}"); done
fi

CC=${FOIL_FUZZ_CC:-clang} cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFOIL_FUZZ=ON -DFOIL_CUDA=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" --target fuzz_all >/dev/null
mkdir -p "$dir/artifacts" "$dir/tmp"

run_one() { # target
  # h5: libhdf5's own leaks on damaged files are suppressed (tests/fuzz/lsan-h5.supp)
  local supp=tests/lsan-mpi.supp
  [ "$1" = h5 ] && supp=tests/fuzz/lsan-h5.supp
  local t=$1 scratch="$dir/corpus/$1" seeds=("tests/fuzz/corpus/$1")
  mkdir -p "$scratch"
  [ -d "tests/fuzz/regress/$t" ] && seeds+=("tests/fuzz/regress/$t")
  # -timeout: one input may take at most 20 s (a hang is a finding);
  # -rss_limit_mb: more is a finding too (inputs are at most 64 KiB);
  # -malloc_limit_mb: one allocation past it is reported with its own stack,
  # so a huge one inside libhdf5 is told apart from foil's
  if FOIL_TEST_TMP="$dir/tmp" \
     ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     LSAN_OPTIONS=suppressions=$PWD/$supp:print_suppressions=0 \
     "$dir/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
       -max_len=65536 -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" \
       "$scratch" "${seeds[@]}" >"$dir/fuzz_$t.log" 2>&1; then
    echo "fuzz_$t: clean for ${secs} s ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$dir/fuzz_$t.log" | grep -o '[0-9]*$') inputs)"
  else
    # A crash, hang or out-of-memory whose first frame past the sanitizer's
    # and libFuzzer's own is inside libhdf5
    # (a damaged file that HDF5 itself mis-parses) is not foil's: it is
    # reported, kept, and listed in tests/fuzz/README.md, but does not fail
    # the run unless FOIL_FUZZ_STRICT=1. Everything else fails it.
    local top
    top=$(sed -n '/ERROR: AddressSanitizer\|ERROR: libFuzzer\|runtime error/,$p' "$dir/fuzz_$t.log" |
          grep -E '^ +#[0-9]+ ' |
          grep -vE '__interceptor_|__asan|__sanitizer|libclang_rt|/compiler-rt/|fuzzer::| in (malloc|calloc|realloc) |libc\.so|nptl/|/stdlib/|/signal/|sysdeps/' |
          head -1)
    # ... but only on fuzz_h5's re-signed path (first byte / 3 odd): on the
    # raw path foil's integrity gate must have refused the file before
    # libhdf5 saw it, so a libhdf5 crash there is foil's failure.
    local input first=0
    input=$(grep -o "$dir/artifacts/$t-[a-z]*-[0-9a-f]*" "$dir/fuzz_$t.log" | head -1)
    [ -f "$input" ] && first=$(od -An -tu1 -N1 "$input" | tr -d ' ')
    if [ "$t" = h5 ] && [ "${FOIL_FUZZ_STRICT:-0}" != 1 ] && grep -q libhdf5 <<<"$top" &&
       [ $(( ${first:-0} / 3 % 2 )) = 1 ]; then
      echo "fuzz_$t: a crash INSIDE libhdf5 (not foil) on the re-signed path: $(grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer)|runtime error' "$dir/fuzz_$t.log")"
      echo "  at:$top"
      echo "  input: $input" \
           "(if it is a new one: add it to tests/fuzz/hdf5/ and tests/fuzz/README.md)"
      return 0
    fi
    echo "fuzz_$t: FAILED — see $dir/fuzz_$t.log; the input is in $dir/artifacts/"
    grep -E 'ERROR|SUMMARY|Test unit written' "$dir/fuzz_$t.log" | head -5
    return 1
  fi
}
export -f run_one
export dir secs
printf '%s\n' "${targets[@]}" | xargs -P "$(nproc)" -I{} bash -c 'run_one {}'
