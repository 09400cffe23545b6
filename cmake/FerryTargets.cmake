# Build flags for ferry's own targets (libraries, tests, benchmarks, examples). Never exported:
# a project that consumes ferry keeps its own warnings and sanitizers.
#
#   ferry_build_flags          INTERFACE target: warnings (+ -Werror), sanitizer compile/link flags
#   ferry_configure_target(t)  links t PRIVATE to ferry_build_flags, only in the build tree

include_guard(GLOBAL)

add_library(ferry_build_flags INTERFACE)

target_compile_options(ferry_build_flags INTERFACE -Wall -Wextra -Wpedantic)
# clang checks the locking annotations (base/include/ferry/detail/thread_annotations.hpp): with
# -Werror (the dev-clang and asan-clang presets) an access to guarded state without its lock
# fails the build.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  target_compile_options(ferry_build_flags INTERFACE -Wthread-safety)
endif()
if(FERRY_WARNINGS_AS_ERRORS)
  target_compile_options(ferry_build_flags INTERFACE -Werror)
endif()

if(FERRY_SANITIZE STREQUAL "")
  # no sanitizer
elseif(FERRY_SANITIZE STREQUAL "address,undefined" OR FERRY_SANITIZE STREQUAL "address"
       OR FERRY_SANITIZE STREQUAL "undefined")
  set(_ferry_san_flags -fsanitize=${FERRY_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  # clang 14's -fsanitize=function (part of undefined) fails on coroutines at -O0 and -O1:
  # "error: Cannot represent a difference across sections".
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND FERRY_SANITIZE MATCHES "undefined")
    list(APPEND _ferry_san_flags -fno-sanitize=function)
  endif()
  target_compile_options(ferry_build_flags INTERFACE ${_ferry_san_flags})
  target_link_options(ferry_build_flags INTERFACE ${_ferry_san_flags})
elseif(FERRY_SANITIZE STREQUAL "thread")
  target_compile_options(ferry_build_flags INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(ferry_build_flags INTERFACE -fsanitize=thread)
  # g++'s -Wtsan fires on Asio's std::atomic_thread_fence in every translation unit.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(ferry_build_flags INTERFACE -Wno-tsan)
  endif()
else()
  message(FATAL_ERROR
    "FERRY_SANITIZE='${FERRY_SANITIZE}': expected empty, 'address,undefined' or 'thread'")
endif()

# Links `tgt` to ferry_build_flags without leaking it into the installed export set (a static
# library's PRIVATE links are exported as $<LINK_ONLY:...>, hence the BUILD_INTERFACE guard).
function(ferry_configure_target tgt)
  get_target_property(_type ${tgt} TYPE)
  if(_type STREQUAL "INTERFACE_LIBRARY")
    return()
  endif()
  target_link_libraries(${tgt} PRIVATE $<BUILD_INTERFACE:ferry_build_flags>)
endfunction()

# ferry_add_library(<module> [INTERFACE] [<source>...])
# Defines the library ferry_<module> (alias ferry::<module>, exported as <module>): C++20, its
# public headers in <module>/include, built with ferry_build_flags. INTERFACE: header-only.
function(ferry_add_library module)
  cmake_parse_arguments(PARSE_ARGV 1 arg "INTERFACE" "" "")
  set(tgt ferry_${module})
  if(arg_INTERFACE)
    add_library(${tgt} INTERFACE)
    set(scope INTERFACE)
  else()
    add_library(${tgt} ${arg_UNPARSED_ARGUMENTS})
    set_target_properties(${tgt} PROPERTIES OUTPUT_NAME ${tgt})
    set(scope PUBLIC)
  endif()
  add_library(ferry::${module} ALIAS ${tgt})
  set_target_properties(${tgt} PROPERTIES EXPORT_NAME ${module})
  target_compile_features(${tgt} ${scope} cxx_std_20)
  target_include_directories(${tgt} ${scope}
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  ferry_configure_target(${tgt})
endfunction()

# Under FERRY_SANITIZE=thread, Debian's (uninstrumented) libtbb makes TSan report false races
# inside TBB: scripts/build-tsan-tbb builds an instrumented one. Warn when it is not in use.
function(ferry_check_tsan_tbb)
  if(NOT FERRY_SANITIZE STREQUAL "thread")
    return()
  endif()
  if(TBB_DIR MATCHES "^/usr/")
    message(WARNING
      "FERRY_SANITIZE=thread with the system oneTBB (${TBB_DIR}), which is not instrumented: "
      "expect false races inside TBB. Run scripts/build-tsan-tbb and configure with "
      "FERRY_TSAN_TBB_DIR=<its output> (preset tsan) or -DTBB_DIR=<its output>.")
  endif()
endfunction()
