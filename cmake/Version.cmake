# Generates include/tandem/core/build_info.h with the version, git hash and dependency versions.
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  OUTPUT_VARIABLE TANDEM_GIT_HASH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT TANDEM_GIT_HASH)
  set(TANDEM_GIT_HASH "unknown")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/build_info.h.in ${PROJECT_BINARY_DIR}/include/tandem/core/build_info.h @ONLY)
