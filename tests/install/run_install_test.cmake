# Install test driver (cmake -P). Installs a ferry build tree into a scratch prefix, then
# configures, builds and runs tests/install against it with find_package(ferry CONFIG REQUIRED).
#
# Required: -DFERRY_BINARY_DIR=<ferry build tree>  -DWORK_DIR=<scratch dir, wiped>
#           -DGENERATOR=<cmake generator>          -DCXX=<C++ compiler>
# Optional: -DCONSUMER_SOURCE_DIR (default: this file's directory)  -DBUILD_TYPE  -DMAKE_PROGRAM
#           -DCONSUMER_CXX_FLAGS (e.g. the sanitizer of the ferry build; for CXX only)  -DTBB_DIR (a non-system TBB)
#           -DEXPECT_COROUTINE_WARNING=ON|OFF: whether configuring with CXX must print ferry's
#             warning about g++ destroying co_await temporaries twice (exactly once), and that
#             -DFERRY_NO_GCC_COROUTINE_WARNING=ON silences it
#           -DOTHER_CXX=<another compiler>: also configure the consumer with it; a clang consumer
#             must not see the warning, a g++ consumer must see it or the probe's "once" verdict
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

# The consumer's configure arguments for compiler `cxx` and build directory `dir`.
function(consumer_args result cxx dir)
  set(args
    -S "${CONSUMER_SOURCE_DIR}" -B "${dir}" -G "${GENERATOR}"
    "-DCMAKE_CXX_COMPILER=${cxx}"
    "-DCMAKE_PREFIX_PATH=${prefix}")
  if(MAKE_PROGRAM)
    list(APPEND args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  if(BUILD_TYPE)
    list(APPEND args "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
  endif()
  # The sanitizer flags are the build's own compiler's (clang's -fno-sanitize=function is not
  # g++'s); the other compiler only configures the consumer.
  if(CONSUMER_CXX_FLAGS AND cxx STREQUAL CXX)
    list(APPEND args
      "-DCMAKE_CXX_FLAGS=${CONSUMER_CXX_FLAGS}"
      "-DCMAKE_EXE_LINKER_FLAGS=${CONSUMER_CXX_FLAGS}")
  endif()
  if(TBB_DIR)
    list(APPEND args "-DTBB_DIR=${TBB_DIR}")
  endif()
  set(${result} ${args} PARENT_SCOPE)
endfunction()
consumer_args(configure_args "${CXX}" "${build}")
step(configure "${CMAKE_COMMAND}" ${configure_args})
set(configure_output "${step_output}")

# ferry's configure-time warning about co_await temporaries (cmake/FerryCompilerCheck.cmake).
# (one word: CMake wraps warning text at spaces)
set(warning_marker "-DFERRY_NO_GCC_COROUTINE_WARNING=ON\\.")
function(count_warnings output result)
  string(REGEX MATCHALL "${warning_marker}" hits "${output}")
  list(LENGTH hits n)
  set(${result} ${n} PARENT_SCOPE)
endfunction()
if(DEFINED EXPECT_COROUTINE_WARNING AND NOT EXPECT_COROUTINE_WARNING STREQUAL "")
  count_warnings("${configure_output}" n)
  if(EXPECT_COROUTINE_WARNING AND NOT n EQUAL 1)
    message(FATAL_ERROR "install test: configuring with ${CXX} printed ferry's coroutine warning "
      "${n} times, expected once\n---- output ----\n${configure_output}")
  elseif(NOT EXPECT_COROUTINE_WARNING AND NOT n EQUAL 0)
    message(FATAL_ERROR "install test: configuring with ${CXX} printed ferry's coroutine warning, "
      "expected none\n---- output ----\n${configure_output}")
  endif()
  message(STATUS "install test: coroutine warning with ${CXX}: ${n} (as expected)")
  if(EXPECT_COROUTINE_WARNING)
    step(configure-silenced "${CMAKE_COMMAND}" ${configure_args} -DFERRY_NO_GCC_COROUTINE_WARNING=ON)
    count_warnings("${step_output}" n)
    if(NOT n EQUAL 0)
      message(FATAL_ERROR "install test: -DFERRY_NO_GCC_COROUTINE_WARNING=ON did not silence the "
        "warning\n---- output ----\n${step_output}")
    endif()
    # Back to the unsilenced configuration for the build below.
    step(configure-again "${CMAKE_COMMAND}" ${configure_args} -DFERRY_NO_GCC_COROUTINE_WARNING=OFF)
  endif()
endif()
if(OTHER_CXX)
  consumer_args(other_args "${OTHER_CXX}" "${build}-other")
  step(configure-other "${CMAKE_COMMAND}" ${other_args})
  count_warnings("${step_output}" n)
  if(step_output MATCHES "The CXX compiler identification is Clang")
    if(NOT n EQUAL 0)
      message(FATAL_ERROR "install test: a clang consumer (${OTHER_CXX}) saw ferry's coroutine "
        "warning\n---- output ----\n${step_output}")
    endif()
  elseif(step_output MATCHES "The CXX compiler identification is GNU")
    if(NOT n EQUAL 1 AND NOT step_output MATCHES "destroys co_await temporaries once")
      message(FATAL_ERROR "install test: a g++ consumer (${OTHER_CXX}) got neither the coroutine "
        "warning nor the probe's verdict\n---- output ----\n${step_output}")
    endif()
  endif()
  message(STATUS "install test: coroutine warning with ${OTHER_CXX}: ${n}")
endif()
step(build "${CMAKE_COMMAND}" --build "${build}" ${config_args})

find_program(consumer ferry_install_consumer
  PATHS "${build}" "${build}/${BUILD_TYPE}" NO_DEFAULT_PATH NO_CACHE REQUIRED)
step(run "${consumer}")
message(STATUS "install test: passed: ${step_output}")
