// ferry/bridge/src/default_pool.cpp — the process-wide pools used outside any runtime.
#include "ferry/bridge/detail/context_lookup.hpp"
#include "ferry/core/blocking_pool.hpp"
#include "ferry/core/cpu_pool.hpp"

namespace ferry::detail {

cpu_pool& default_cpu_pool() {
  static cpu_pool pool;
  return pool;
}

blocking_pool& default_blocking_pool() {
  static blocking_pool pool;
  return pool;
}

}  // namespace ferry::detail
