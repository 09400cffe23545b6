// bench/loadgen/self_test.hpp — `ferry_loadgen --self-test`.
#pragma once

namespace ferry::loadgen {

/// Checks the histogram (bucket arithmetic; percentiles, min, max, mean and merge against
/// sorted vectors of random data, within the documented error bound). Prints a summary; returns
/// 0 when every check passed, 1 otherwise.
int run_self_test();

}  // namespace ferry::loadgen
