# ccache as the compiler launcher of every ferry build, when it is installed (scripts/install-deps
# installs Debian's package) and the user has not chosen a launcher of their own: a rebuild, a
# second clone of the same commit, or CI's run after a session's builds on the same machine
# compiles only what changed. -DFERRY_CCACHE=OFF turns it off.
#
# What makes a fresh clone hit the cache that another clone filled:
#   CCACHE_BASEDIR      the source tree (which holds build/<preset>): absolute paths under it are
#                       hashed relative to the compiler's working directory, so two clones at
#                       different paths produce the same hashes;
#   CCACHE_NOHASHDIR    the working directory is left out of the hash although objects carry -g.
#                       An object from the cache names the directory of the build that filled
#                       it, in its debug info and in __FILE__ (a test's failure message may show
#                       another clone's path); line numbers and function names are exact;
#   CCACHE_DEPEND       the dependencies come from the compiler's own -MD output: a miss costs one
#                       compilation, not a run of the preprocessor first (about 1 s for a file
#                       that includes <ferry/ferry.hpp>);
#   CCACHE_SLOPPINESS   precompiled headers (pch_defines, time_macros) and a clone's fresh file
#                       times (include_file_mtime, include_file_ctime) do not disable caching.
# g++'s precompiled header is found through `-include <path>`, which ccache rewrites like any
# other path; clang's is passed as `-Xclang -include-pch -Xclang <path>`, which it does not, so
# the tests build without one under clang when ccache is in use (tests/CMakeLists.txt).
include_guard(GLOBAL)

option(FERRY_CCACHE "Compile through ccache when it is installed" ON)

set(FERRY_CCACHE_IN_USE OFF)
if(FERRY_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(FERRY_CCACHE_PROGRAM ccache)
  if(FERRY_CCACHE_PROGRAM)
    set(CMAKE_CXX_COMPILER_LAUNCHER
      env
      "CCACHE_BASEDIR=${PROJECT_SOURCE_DIR}"
      CCACHE_NOHASHDIR=1
      CCACHE_DEPEND=1
      "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      "${FERRY_CCACHE_PROGRAM}")
    set(FERRY_CCACHE_IN_USE ON)
  endif()
endif()
