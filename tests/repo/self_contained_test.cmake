# cmake -DSOURCE_DIR=<checkout> -P self_contained_test.cmake
#
# The repository stands alone (issue 11): a fresh clone in an empty folder builds and passes its
# tests, so no tracked file may refer to a folder beside the checkout, neither as a path
# (dot-dot slash "shared") nor as a Python path join of ".." and "shared". The patterns are put
# together from pieces so that this file does not match them itself. Binary files are not
# searched. Outside a git checkout (an unpacked release tarball) there is no list of tracked
# files, and the test says SKIPPED.
if(NOT SOURCE_DIR)
  message(FATAL_ERROR "expected -DSOURCE_DIR=<checkout>, found none")
endif()
if(NOT EXISTS "${SOURCE_DIR}/.git")
  message("SKIPPED: ${SOURCE_DIR} is not a git checkout, so there are no tracked files to check")
  return()
endif()
find_program(GIT_EXECUTABLE git)
if(NOT GIT_EXECUTABLE)
  message(FATAL_ERROR "expected git on PATH to list the tracked files of ${SOURCE_DIR}, found none")
endif()

set(up "..")
set(as_path "${up}/shared")
set(as_join "\"${up}\", \"shared\"")
execute_process(
  COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" grep -n -I -F -e "${as_path}" -e "${as_join}"
  OUTPUT_VARIABLE hits
  ERROR_VARIABLE error
  RESULT_VARIABLE rc)
if(rc EQUAL 0)
  message(FATAL_ERROR
    "expected no tracked file to refer to ${as_path} (the repository must stand alone), found:\n${hits}")
elseif(NOT rc EQUAL 1)
  message(FATAL_ERROR "git grep in ${SOURCE_DIR} failed (exit ${rc}): ${error}")
endif()
message("no tracked file refers to ${as_path}")
