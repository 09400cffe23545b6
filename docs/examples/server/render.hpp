// docs/examples/server/render.hpp — the plain-text responses the router and the error paths build
// (render.cpp; it also renders /stats and /metrics, as http_handler::stats_json and metrics_text).
#pragma once

#include <string>

#include "http_handler.hpp"

namespace ferry_server {

/// A text/plain response: `status`, counted under `e`, with `body`; `close`: the connection is
/// closed after it.
response plain(unsigned status, endpoint e, std::string body, bool close = false);

}  // namespace ferry_server
