# FlashInfer's header-only C++ library, from the flashinfer-python wheel (scripts/fetch_flashinfer.sh
# unpacks it; nothing of the wheel is installed or built). Included from the top CMakeLists.txt only
# when CUDA is enabled. Defines the INTERFACE target `tandem_flashinfer`:
#   - the wheel's bundled CCCL (cub, libcudacxx, thrust) BEFORE the CUDA toolkit's own: FlashInfer
#     and its CUTLASS were written against that CCCL (nvcc 13 adds the toolkit's own as
#     `-isystem <cuda>/include/cccl` after the command line's include paths);
#   - FlashInfer's include/, then CUTLASS (include/ and tools/util/include/) as SYSTEM includes so
#     their warnings stay out of our builds;
#   - FLASHINFER_ENABLE_BF16 (tandem's attention is bf16 only) and --expt-relaxed-constexpr.
set(_tandem_flashinfer_version "0.7.2.post1")
if(DEFINED ENV{TANDEM_CACHE} AND NOT "$ENV{TANDEM_CACHE}" STREQUAL "")
  set(_tandem_flashinfer_default "$ENV{TANDEM_CACHE}/flashinfer-${_tandem_flashinfer_version}")
else()
  set(_tandem_flashinfer_default "$ENV{HOME}/.cache/tandem/flashinfer-${_tandem_flashinfer_version}")
endif()
set(TANDEM_FLASHINFER_DIR "${_tandem_flashinfer_default}" CACHE PATH
    "FlashInfer ${_tandem_flashinfer_version} headers unpacked by scripts/fetch_flashinfer.sh")

set(_tandem_fi_data "${TANDEM_FLASHINFER_DIR}/flashinfer/data")
set(_tandem_fi_required
    "${_tandem_fi_data}/include/flashinfer/attention/decode.cuh"
    "${_tandem_fi_data}/include/flashinfer/attention/hopper/prefill_sm90.cuh"
    "${_tandem_fi_data}/cccl/cub/cub/cub.cuh"
    "${_tandem_fi_data}/cccl/libcudacxx/include/cuda/std/version"
    "${_tandem_fi_data}/cccl/thrust/thrust/version.h"
    "${_tandem_fi_data}/cutlass/include/cutlass/cutlass.h"
    "${_tandem_fi_data}/cutlass/tools/util/include/cutlass/util/packed_stride.hpp")
foreach(_tandem_fi_file IN LISTS _tandem_fi_required)
  if(NOT EXISTS "${_tandem_fi_file}")
    message(FATAL_ERROR
      "FlashInfer headers not found: ${_tandem_fi_file} is missing.\n"
      "Run scripts/fetch_flashinfer.sh (it unpacks flashinfer-python==${_tandem_flashinfer_version} into "
      "\${TANDEM_CACHE:-\$HOME/.cache/tandem}/flashinfer-${_tandem_flashinfer_version}), or point "
      "-DTANDEM_FLASHINFER_DIR at the directory it printed, or configure with -DTANDEM_CUDA=OFF.")
  endif()
endforeach()

add_library(tandem_flashinfer INTERFACE)
# BEFORE and not SYSTEM: CMake emits every -I before any -isystem, and CUDA::cudart's toolkit include
# directory is an -isystem one (it held cub/thrust/cuda/std itself before CUDA 13).
target_include_directories(tandem_flashinfer BEFORE INTERFACE
  "${_tandem_fi_data}/cccl/cub"
  "${_tandem_fi_data}/cccl/libcudacxx/include"
  "${_tandem_fi_data}/cccl/thrust")
target_include_directories(tandem_flashinfer INTERFACE "${_tandem_fi_data}/include")
target_include_directories(tandem_flashinfer SYSTEM INTERFACE
  "${_tandem_fi_data}/cutlass/include"
  "${_tandem_fi_data}/cutlass/tools/util/include")
target_compile_definitions(tandem_flashinfer INTERFACE FLASHINFER_ENABLE_BF16)
# Two front-end warnings FlashInfer's headers raise under nvcc 13 in C++17 mode (SYSTEM does not
# silence nvcc's front end): 20012 (__host__ __device__ on a defaulted constructor in CUTLASS's sm100
# tile scheduler) and 3357 (lambdas capturing structured bindings in hopper/sparse_mainloop.cuh, a
# C++20 feature nvcc accepts as an extension; CMake 3.25 cannot ask nvcc for C++20).
target_compile_options(tandem_flashinfer INTERFACE
  $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr --diag-suppress=20012,3357>)
message(STATUS "tandem: FlashInfer ${_tandem_flashinfer_version} headers at ${TANDEM_FLASHINFER_DIR}")
