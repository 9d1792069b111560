#!/usr/bin/env bash
# bench/gpu-prepare.sh — run HERE (the build machine) before a device run:
# a GPU machine's image has CUDA, CMake and a compiler but not OpenBLAS,
# which the CPU twins in the gpu tests need. This copies this machine's
# OpenBLAS (OpenMP flavour, from deploy/setup.sh's packages) and its Fortran
# runtime into .devdeps/ (git-ignored) with a relocatable pkg-config file,
# about 40 MB: name .devdeps in the device call's carry. bench/gpu.sh finds it.
set -euo pipefail
cd "$(dirname "$0")/.."
pc=$(pkg-config --variable=pcfiledir openblas)/openblas.pc
libdir=$(pkg-config --variable=libdir openblas)
incdir=$(pkg-config --variable=includedir openblas)
rm -rf .devdeps
mkdir -p .devdeps/lib .devdeps/include
cp -L "$incdir"/cblas.h "$incdir"/openblas_config.h .devdeps/include/
[ -f "$incdir"/f77blas.h ] && cp -L "$incdir"/f77blas.h .devdeps/include/
cp -L "$libdir"/libopenblas.so.0 .devdeps/lib/
ln -s libopenblas.so.0 .devdeps/lib/libopenblas.so
for lib in libgfortran.so.5 libquadmath.so.0; do
  cp -L "$(ldconfig -p | awk -v l=$lib '$1 == l && /x86-64/ {print $NF; exit}')" .devdeps/lib/
done
cat > .devdeps/openblas.pc <<PC
prefix=\${pcfiledir}
libdir=\${prefix}/lib
includedir=\${prefix}/include
Name: openblas
Description: OpenBLAS (OpenMP flavour) copied from $pc for a device run
Version: $(pkg-config --modversion openblas)
Libs: -L\${libdir} -lopenblas
Cflags: -I\${includedir}
PC
du -sh .devdeps
