# FoilCuda.cmake — decides whether foil builds its CUDA backend.
#
# FOIL_CUDA=AUTO builds it when nvcc is found, ON fails the configure without
# it, OFF skips it. nvcc is looked for as CMake does (CUDACXX, PATH), then in
# CUDAToolkit_ROOT/bin (variable or environment) and the toolkit's usual
# install prefix. Sets, for the rest of the tree:
#   FOIL_HAVE_CUDA  the CUDA kernels (foil_kernels_cuda) and gpu tests build
#   FOIL_HAVE_NCCL  foil-run's comm also speaks NCCL (needs FOIL_HAVE_CUDA)
# Architectures: CMAKE_CUDA_ARCHITECTURES, default "90-real;90-virtual"
# (sm_90 machine code for H100/H200 plus PTX that newer GPUs JIT-compile).
# Override with -DCMAKE_CUDA_ARCHITECTURES="80-real;90-real;90-virtual" etc.
# Each architecture is one more nvcc pass per .cu file: keep the list short
# where the build machine has few cores.
set(FOIL_HAVE_CUDA OFF)
set(FOIL_HAVE_NCCL OFF)
if(NOT FOIL_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "FOIL_CUDA must be AUTO, ON or OFF (got '${FOIL_CUDA}')")
endif()

if(NOT FOIL_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(FOIL_NVCC nvcc
                 HINTS ${CUDAToolkit_ROOT} $ENV{CUDAToolkit_ROOT} $ENV{CUDA_PATH}
                 PATHS /usr/local/cuda
                 PATH_SUFFIXES bin)
    if(FOIL_NVCC)
      set(CMAKE_CUDA_COMPILER ${FOIL_NVCC} CACHE FILEPATH "CUDA compiler")
    endif()
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
      set(CMAKE_CUDA_ARCHITECTURES "90-real;90-virtual" CACHE STRING
          "CUDA architectures (default: sm_90 + PTX)" FORCE)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit)
  endif()
  if(CMAKE_CUDA_COMPILER AND CUDAToolkit_FOUND AND TARGET CUDA::cublasLt)
    set(FOIL_HAVE_CUDA ON)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(NCCL)
    if(NCCL_FOUND)
      set(FOIL_HAVE_NCCL ON)
    endif()
  endif()
  # The GPU-only tree (kernels, gpu tests, bench_gpu) has no ranks: no NCCL.
  if(FOIL_GPU_ONLY)
    set(_foil_need_nccl OFF)
  else()
    set(_foil_need_nccl ON)
  endif()
  if(FOIL_CUDA STREQUAL "ON" AND NOT (FOIL_HAVE_CUDA AND (FOIL_HAVE_NCCL OR NOT _foil_need_nccl)))
    message(FATAL_ERROR "FOIL_CUDA=ON but the CUDA backend cannot be built: "
            "nvcc='${CMAKE_CUDA_COMPILER}' toolkit=${CUDAToolkit_FOUND} "
            "NCCL=${NCCL_FOUND}. Set CUDAToolkit_ROOT / NCCL_ROOT, or FOIL_CUDA=AUTO|OFF.")
  endif()
endif()

if(FOIL_HAVE_CUDA)
  message(STATUS "foil: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES}, NCCL ${FOIL_HAVE_NCCL})")
else()
  message(STATUS "foil: CUDA backend OFF (FOIL_CUDA=${FOIL_CUDA})")
endif()
