#!/usr/bin/env bash
# tests/fuzz/make_corpus.sh — (re)writes the seed corpora tests/fuzz/corpus/
# <target>/ with fuzz_seeds (tests/fuzz/seeds.c): valid inputs of every fuzz
# target, from foil's own writers and examples/. Run after a message, spec or
# file format changes, and commit the result.
#   bash tests/fuzz/make_corpus.sh [BUILD_DIR] [TARGET...]   (default ./build, all)
# With targets, only their folders are rewritten (the message targets
# envelope, coord_api, worker_proto, serve and spec are written together).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-build}
[ $# -gt 0 ] && shift
cmake -S . -B "$dir" >/dev/null
cmake --build "$dir" --target fuzz_seeds >/dev/null
if [ $# -eq 0 ]; then
  rm -rf tests/fuzz/corpus
else
  for t in "$@"; do rm -rf "tests/fuzz/corpus/$t"; done
fi
"$dir/tests/fuzz/fuzz_seeds" tests/fuzz/corpus "$@"
du -sh tests/fuzz/corpus/*
