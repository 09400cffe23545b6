// ferry/ferry.hpp — everything ferry offers, in one include.
#pragma once

#include "ferry/bridge/offload.hpp"
#include "ferry/bridge/run_in_executor.hpp"
#include "ferry/bridge/runtime.hpp"
#include "ferry/bridge/to_thread.hpp"
#include "ferry/core/blocking_pool.hpp"
#include "ferry/core/cpu_pool.hpp"
#include "ferry/io/sleep.hpp"
#include "ferry/io/task.hpp"
