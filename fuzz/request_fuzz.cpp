// fuzz/request_fuzz.cpp — libFuzzer target: ferry_server's request path, without sockets.
//
// Each input is the byte stream a client sends on one connection. It goes through
// ferry_server::respond_to_bytes — the same parser set-up, limits, error mapping, routing,
// endpoints (CPU work inline) and serialisation as the server's connections — and the output is
// checked: a sequence of well-formed HTTP/1.1 responses (an optional "100 Continue" before a
// final one), each with a Content-Length that matches its body, and nothing after a response
// that says "Connection: close". ASan and UBSan watch the rest.
//
// Built by scripts/fuzz (clang, -DFERRY_BUILD_FUZZERS=ON); the seeds are in fuzz/corpus/.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http_handler.hpp"

namespace {

const ferry_server::http_handler& handler() {
  static ferry_server::server_counters counters;
  static const ferry_server::http_handler h(
      [] {
        ferry_server::handler_config c;
        c.mode = ferry_server::execution_mode::inline_;
        c.iterations_per_us = 1;  // /work?us=1000000 is a million steps: fast, deterministic
        c.max_hash_rounds = 16;   // keeps every input within milliseconds
        c.max_blocking_ms = 0;    // /blocking?ms=0 only: no sleeping in the fuzzer
        return c;
      }(),
      counters,
      nullptr);
  return h;
}

[[noreturn]] void fail(const char* what, std::string_view output) {
  std::fprintf(stderr,
               "request_fuzz: %s\n--- output (%zu bytes) ---\n%.*s\n",
               what,
               output.size(),
               static_cast<int>(std::min<std::size_t>(output.size(), 4096)),
               output.data());
  std::abort();
}

/// Checks that `out` is a sequence of well-formed responses (see the file comment); `heads`
/// says which final responses answer a HEAD (no body after their Content-Length).
void check_output(std::string_view out, const std::vector<bool>& heads) {
  const std::string_view whole = out;
  std::size_t final_responses = 0;
  while (!out.empty()) {
    if (out.substr(0, 9) != "HTTP/1.1 ") fail("a response does not start with HTTP/1.1", whole);
    const std::size_t end = out.find("\r\n\r\n");
    if (end == std::string_view::npos) fail("a response header does not end", whole);
    const std::string_view head = out.substr(0, end + 2);
    const std::string_view status = out.substr(9, 3);
    for (char ch : status) {
      if (ch < '0' || ch > '9') fail("the status is not three digits", whole);
    }
    out.remove_prefix(end + 4);
    if (status == "100") {
      if (head != "HTTP/1.1 100 Continue\r\n") fail("a malformed 100 Continue", whole);
      continue;
    }
    const std::size_t cl = head.find("\r\nContent-Length: ");
    if (cl == std::string_view::npos) fail("a response without Content-Length", whole);
    std::size_t length = 0;
    for (std::size_t i = cl + 18; i < head.size() && head[i] != '\r'; ++i) {
      if (head[i] < '0' || head[i] > '9') fail("a malformed Content-Length", whole);
      length = length * 10 + static_cast<std::size_t>(head[i] - '0');
    }
    if (final_responses >= heads.size())
      fail("more responses than respond_to_bytes counted", whole);
    if (heads[final_responses++]) length = 0;  // a HEAD's answer: the header only
    if (head.find("\r\nDate: ") == std::string_view::npos) fail("a response without Date", whole);
    if (length > out.size()) fail("a body shorter than its Content-Length", whole);
    const std::string_view body = out.substr(0, length);
    out.remove_prefix(length);
    const bool closes = head.find("\r\nConnection: close\r\n") != std::string_view::npos;
    const bool keeps = head.find("\r\nConnection: keep-alive\r\n") != std::string_view::npos;
    if (closes == keeps) fail("a response without exactly one Connection header", whole);
    if (closes && !out.empty()) fail("a response after Connection: close", whole);
    // A request that could not be read (413, 431, a malformed 400) closes the connection; a 400
    // about a query parameter is an answer like any other.
    const bool unreadable = status == "413" || status == "414" || status == "431" ||
                            body.substr(0, 22) == "bad request: malformed";
    if (unreadable && !closes) fail("an unreadable request left the connection open", whole);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // As the public listener sees it, then as the admin listener (/stats, /metrics, /debug/tasks).
  for (const bool admin : {false, true}) {
    std::vector<bool> heads;
    const std::string out = ferry_server::respond_to_bytes(
        handler(),
        input,
        ferry_server::parser_limits{.max_header = 8 * 1024, .max_body = 64 * 1024},
        &heads,
        admin);
    check_output(out, heads);
  }
  return 0;
}
