#!/usr/bin/env bash
# deploy/setup.sh — install every Debian package that foil's build, tests and
# benchmarks need, then configure and build. Idempotent: run it again at will.
#
#   bash deploy/setup.sh            # install + build into ./build
#   FOIL_SKIP_APT=1 bash deploy/setup.sh   # build only (packages already there)
#   FOIL_BUILD_DIR=dir  FOIL_BUILD_TYPE=Debug ...    # where and how to build
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Build: compiler, CMake, pkg-config, OpenMP, OpenBLAS, MPI + parallel HDF5.
# OpenBLAS: foil links the OpenMP flavour explicitly (pkg-config openblas-openmp)
# so its own OpenMP loops and OpenBLAS's threads share one libgomp pool.
# The pthread flavour is installed too: it stays the system default
# libblas/libopenblas that Debian's PyTorch (the reference and benchmark
# anchor) loads, as a stock Debian machine has it.
PKGS_BUILD="build-essential cmake pkg-config git
  libopenblas-openmp-dev libopenblas0-pthread
  openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools"
# Tests and benchmarks: the PyTorch / h5py anchors, run with /usr/bin/python3.
PKGS_TEST="python3 python3-numpy python3-torch python3-h5py"

if [ "${FOIL_SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $PKGS_BUILD $PKGS_TEST
fi

BUILD_DIR="${FOIL_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${FOIL_BUILD_TYPE:-Release}"
cmake --build "$BUILD_DIR" -j "$(nproc)"
