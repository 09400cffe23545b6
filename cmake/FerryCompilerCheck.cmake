# Warns, once per configure, when the C++ compiler destroys twice a capturing lambda written
# inside a `co_await` (g++ 11 and 12: GCC PR 100611), the most natural way to call
# `ferry::offload`. Used by ferry's own build and by the installed package (ferryConfig.cmake),
# so a project that consumes ferry sees the warning too.
#
#   ferry_check_coroutine_compiler()
#
# With g++ it compiles and runs ferry_coroutine_probe.cpp (Asio only) with the project's
# compiler and flags, and counts constructions and destructions; when cross-compiling without an
# emulator, or when the probe cannot be built or run, it falls back to the version (11 and 12 are
# affected). The result is cached per compiler (FERRY_GCC_COROUTINE_BUG). Never runs for clang
# or any other compiler. Silence it with -DFERRY_NO_GCC_COROUTINE_WARNING=ON.
include_guard(GLOBAL)

function(ferry_check_coroutine_compiler)
  if(FERRY_NO_GCC_COROUTINE_WARNING)
    return()
  endif()
  if(NOT CMAKE_CXX_COMPILER_LOADED OR NOT CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    return()
  endif()
  get_property(done GLOBAL PROPERTY FERRY_COROUTINE_COMPILER_CHECKED)
  if(done)
    return()   # once per configure, however many times find_package(ferry) runs
  endif()
  set_property(GLOBAL PROPERTY FERRY_COROUTINE_COMPILER_CHECKED TRUE)

  set(compiler "${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} (${CMAKE_CXX_COMPILER})")
  set(key "${compiler} ${CMAKE_CXX_FLAGS}")
  if(NOT DEFINED FERRY_GCC_COROUTINE_BUG OR NOT FERRY_GCC_COROUTINE_BUG_KEY STREQUAL key)
    set(how "")
    if(NOT CMAKE_CROSSCOMPILING OR CMAKE_CROSSCOMPILING_EMULATOR)
      try_run(ferry_probe_run ferry_probe_compile
        "${CMAKE_BINARY_DIR}/CMakeFiles/ferry_coroutine_probe"
        "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/ferry_coroutine_probe.cpp"
        LINK_LIBRARIES Boost::headers Threads::Threads
        CXX_STANDARD 20
        CXX_STANDARD_REQUIRED ON
        COMPILE_OUTPUT_VARIABLE compile_output
        RUN_OUTPUT_VARIABLE run_output)
      if(ferry_probe_compile AND "${ferry_probe_run}" STREQUAL "0")
        set(bug OFF)
        set(how "probe: ${run_output}")
      elseif(ferry_probe_compile AND "${ferry_probe_run}" STREQUAL "1")
        set(bug ON)
        set(how "probe: ${run_output}")
      endif()
      unset(ferry_probe_run CACHE)
      unset(ferry_probe_compile CACHE)
    endif()
    if(how STREQUAL "")
      if(CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 11
         AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
        set(bug ON)
      else()
        set(bug OFF)
      endif()
      set(how "by version, the probe was not run")
    endif()
    string(STRIP "${how}" how)
    set(FERRY_GCC_COROUTINE_BUG ${bug} CACHE INTERNAL
      "The compiler destroys a capturing lambda written inside a co_await twice")
    set(FERRY_GCC_COROUTINE_BUG_KEY "${key}" CACHE INTERNAL "What FERRY_GCC_COROUTINE_BUG was found for")
    set(FERRY_GCC_COROUTINE_BUG_HOW "${how}" CACHE INTERNAL "How FERRY_GCC_COROUTINE_BUG was found")
  endif()

  if(FERRY_GCC_COROUTINE_BUG)
    message(STATUS "ferry: ${compiler} destroys co_await temporaries twice (${FERRY_GCC_COROUTINE_BUG_HOW})")
    message(WARNING
      "ferry: this compiler, ${compiler}, destroys twice a capturing lambda with a non-trivial "
      "destructor written inside a co_await (GCC PR 100611): for example\n"
      "  co_await ferry::offload([p = std::make_unique<int>(7)] { return *p; });\n"
      "is a double free (the same holds for to_thread, run_in_executor and any Asio operation). "
      "Either pass the data as arguments, which ferry decay-copies into the operation:\n"
      "  co_await ferry::offload([](std::unique_ptr<int> p) { return *p; }, std::make_unique<int>(7));\n"
      "or name the lambda first and move it in:\n"
      "  auto f = [p = std::make_unique<int>(7)] { return *p; };\n"
      "  co_await ferry::offload(std::move(f));\n"
      "clang is not affected. See \"Known compiler issues\" in ferry's docs/guide.md. "
      "Silence this warning with -DFERRY_NO_GCC_COROUTINE_WARNING=ON.")
  else()
    message(STATUS "ferry: ${compiler} destroys co_await temporaries once (${FERRY_GCC_COROUTINE_BUG_HOW})")
  endif()
endfunction()
