# tandem_add_module(NAME SOURCES ... DEPS ...): a static library `tandem_<NAME>` whose public
# headers live in include/tandem/<NAME>/.
function(tandem_add_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(tandem_${name} STATIC ${ARG_SOURCES})
  target_include_directories(tandem_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_BINARY_DIR}/include)
  target_link_libraries(tandem_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  set_target_properties(tandem_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  tandem_set_warnings(tandem_${name})
endfunction()

# tandem_add_test(NAME LABEL unit|golden|e2e|gpu SOURCES ... DEPS ... [TIMEOUT s]): a GoogleTest
# binary registered with ctest under the given label. Tests run from the source tree root so
# fixtures resolve as tests/golden/...
function(tandem_add_test name)
  cmake_parse_arguments(ARG "" "LABEL;TIMEOUT" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_definitions(${name} PRIVATE TANDEM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)  # support/*.h
  tandem_set_warnings(${name})
  add_test(NAME ${name} COMMAND ${name} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABEL}" TIMEOUT ${ARG_TIMEOUT})
endfunction()

# A pytest suite under ctest, label e2e: the repo's .venv Python (scripts/setup.sh), run in the file's
# folder with TANDEM_BIN set to the tandem binary. ARGS: extra pytest flags (e.g. -s).
function(tandem_add_pytest name)
  cmake_parse_arguments(ARG "" "FILE;TIMEOUT" "ARGS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 900)
  endif()
  get_filename_component(dir ${ARG_FILE} DIRECTORY)
  add_test(NAME ${name}
    COMMAND ${PROJECT_SOURCE_DIR}/.venv/bin/python -m pytest -q -p no:cacheprovider ${ARG_ARGS} ${ARG_FILE}
    WORKING_DIRECTORY ${dir})
  set_tests_properties(${name} PROPERTIES LABELS e2e TIMEOUT ${ARG_TIMEOUT} ENVIRONMENT "TANDEM_BIN=$<TARGET_FILE:tandem>")
endfunction()
