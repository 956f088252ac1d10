# UCX, the library under the `ucx` transport. Included from the top CMakeLists.txt after
# CudaOptions, because which UCX depends on CUDA:
#   - CUDA builds use UCX 1.22 built with CUDA (the cuda_copy and cuda_ipc transports) from the
#     libucx-cu13 wheel, which scripts/fetch_ucx.sh unpacks into the tandem cache (Debian's UCX 1.13
#     has no CUDA transports, so it cannot move device memory). Headers and libucp/libuct/libucs come
#     from there; the executables get its lib directory in their RPATH, and UCX itself loads its
#     transport modules from the `ucx/` directory next to the libucs it was loaded from (UCX's
#     own rule, ucs/sys/module.c), which is why the tree keeps the wheel's layout.
#   - builds without CUDA use the distribution's UCX through pkg-config, as before.
# Defines the INTERFACE target `tandem_ucx` and TANDEM_UCX_VERSION (cmake/build_info.h.in), and
# TANDEM_UCX_LIBRARY_DIR (the wheel's lib directory; empty for the distribution's UCX).
if(TANDEM_CUDA_ENABLED)
  set(_tandem_ucx_version "1.22.0")
  if(DEFINED ENV{TANDEM_CACHE} AND NOT "$ENV{TANDEM_CACHE}" STREQUAL "")
    set(_tandem_ucx_default "$ENV{TANDEM_CACHE}/ucx-cu13-${_tandem_ucx_version}")
  else()
    set(_tandem_ucx_default "$ENV{HOME}/.cache/tandem/ucx-cu13-${_tandem_ucx_version}")
  endif()
  set(TANDEM_UCX_DIR "${_tandem_ucx_default}" CACHE PATH
      "UCX ${_tandem_ucx_version} with CUDA, unpacked from libucx-cu13 by scripts/fetch_ucx.sh")

  set(_tandem_ucx_prefix "${TANDEM_UCX_DIR}/libucx")
  set(_tandem_ucx_required
      "${_tandem_ucx_prefix}/include/ucp/api/ucp.h"
      "${_tandem_ucx_prefix}/include/uct/api/uct.h"
      "${_tandem_ucx_prefix}/lib/libucp.so.0"
      "${_tandem_ucx_prefix}/lib/ucx/libuct_cuda.so.0"
      "${_tandem_ucx_prefix}/lib/cmake/ucx/ucx-config.cmake")
  foreach(_tandem_ucx_file IN LISTS _tandem_ucx_required)
    if(NOT EXISTS "${_tandem_ucx_file}")
      message(FATAL_ERROR
        "UCX with CUDA not found: ${_tandem_ucx_file} is missing.\n"
        "Run scripts/fetch_ucx.sh (it unpacks libucx-cu13==${_tandem_ucx_version} into "
        "\${TANDEM_CACHE:-\$HOME/.cache/tandem}/ucx-cu13-${_tandem_ucx_version}), or point "
        "-DTANDEM_UCX_DIR at the directory it printed, or configure with -DTANDEM_CUDA=OFF.")
    endif()
  endforeach()
  find_package(ucx ${_tandem_ucx_version} EXACT CONFIG REQUIRED
               PATHS "${_tandem_ucx_prefix}/lib/cmake/ucx" NO_DEFAULT_PATH)

  # The wheel's imported targets name lib/libuc*.so (links to the .so.0 files); their include
  # directory is a SYSTEM one for us, and it comes before /usr/include, where Debian's 1.13 headers
  # may also be installed.
  add_library(tandem_ucx INTERFACE)
  target_link_libraries(tandem_ucx INTERFACE ucx::ucp ucx::uct ucx::ucs)
  set(TANDEM_UCX_VERSION "${ucx_VERSION}")
  set(TANDEM_UCX_LIBRARY_DIR "${_tandem_ucx_prefix}/lib")
  message(STATUS "tandem: UCX ${TANDEM_UCX_VERSION} with CUDA at ${TANDEM_UCX_DIR}")
else()
  pkg_check_modules(UCX REQUIRED IMPORTED_TARGET ucx)
  add_library(tandem_ucx INTERFACE)
  target_link_libraries(tandem_ucx INTERFACE PkgConfig::UCX)
  set(TANDEM_UCX_VERSION "${UCX_VERSION}")
  set(TANDEM_UCX_LIBRARY_DIR "")
  message(STATUS "tandem: UCX ${TANDEM_UCX_VERSION} from the system (no CUDA transports)")
endif()
