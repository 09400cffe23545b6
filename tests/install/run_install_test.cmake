# Install test driver (cmake -P). Installs a ferry build tree into a scratch prefix, then
# configures, builds and runs tests/install against it with find_package(ferry CONFIG REQUIRED).
#
# Required: -DFERRY_BINARY_DIR=<ferry build tree>  -DWORK_DIR=<scratch dir, wiped>
#           -DGENERATOR=<cmake generator>          -DCXX=<C++ compiler>
# Optional: -DCONSUMER_SOURCE_DIR (default: this file's directory)  -DBUILD_TYPE  -DMAKE_PROGRAM
#           -DCONSUMER_CXX_FLAGS (e.g. the sanitizer of the ferry build)  -DTBB_DIR (a non-system TBB)
cmake_minimum_required(VERSION 3.25)

foreach(var FERRY_BINARY_DIR WORK_DIR GENERATOR CXX)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_install_test.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT CONSUMER_SOURCE_DIR)
  set(CONSUMER_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}")
endif()

set(prefix "${WORK_DIR}/prefix")
set(build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# Runs one step; on failure prints the command and everything it printed, then fails.
function(step name)
  string(JOIN " " pretty ${ARGN})
  message(STATUS "install test: ${name}: ${pretty}")
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR
      "install test: step '${name}' FAILED (exit ${rc})\n"
      "command: ${pretty}\n"
      "---- output ----\n${out}\n---- end of output ----")
  endif()
  message(STATUS "install test: ${name}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

set(config_args "")
if(BUILD_TYPE)
  set(config_args --config "${BUILD_TYPE}")
endif()
step(install "${CMAKE_COMMAND}" --install "${FERRY_BINARY_DIR}" --prefix "${prefix}" ${config_args})

set(configure_args
  -S "${CONSUMER_SOURCE_DIR}" -B "${build}" -G "${GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CXX}"
  "-DCMAKE_PREFIX_PATH=${prefix}")
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(BUILD_TYPE)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
endif()
if(CONSUMER_CXX_FLAGS)
  list(APPEND configure_args
    "-DCMAKE_CXX_FLAGS=${CONSUMER_CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${CONSUMER_CXX_FLAGS}")
endif()
if(TBB_DIR)
  list(APPEND configure_args "-DTBB_DIR=${TBB_DIR}")
endif()
step(configure "${CMAKE_COMMAND}" ${configure_args})
step(build "${CMAKE_COMMAND}" --build "${build}" ${config_args})

find_program(consumer ferry_install_consumer
  PATHS "${build}" "${build}/${BUILD_TYPE}" NO_DEFAULT_PATH NO_CACHE REQUIRED)
step(run "${consumer}")
message(STATUS "install test: passed: ${step_output}")
