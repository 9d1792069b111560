#!/usr/bin/env bash
# tests/fuzz/make_corpus.sh — (re)writes the seed corpora tests/fuzz/corpus/
# <target>/ with fuzz_seeds (tests/fuzz/seeds.c): valid inputs of every fuzz
# target, from foil's own writers and examples/. Run after a message, spec or
# file format changes, and commit the result.
#   bash tests/fuzz/make_corpus.sh [BUILD_DIR]   (default ./build)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-build}
cmake -S . -B "$dir" >/dev/null
cmake --build "$dir" --target fuzz_seeds >/dev/null
rm -rf tests/fuzz/corpus
"$dir/tests/fuzz/fuzz_seeds" tests/fuzz/corpus
du -sh tests/fuzz/corpus/*
