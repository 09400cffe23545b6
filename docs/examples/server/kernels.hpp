// docs/examples/server/kernels.hpp — the CPU kernels of the heavy endpoints (/work, /hash): plain
// functions of their input, no request, no socket, no counter. They poll a std::stop_token and
// throw system_error(operation_aborted) once stop is requested, so an offloaded or thread-run
// request whose client has gone (or whose server stops) ends early.
//
// Thread safety: every function may be called from any thread concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stop_token>
#include <string>
#include <string_view>

namespace ferry_server {

/// Iterations of the work kernel per microsecond on this machine (best of a few short runs).
double calibrate_work_kernel();

/// `iterations` steps of xorshift64 from `seed`; polls `stop` every few thousand steps and throws
/// system_error(operation_aborted) once it is requested. Returns the final state (the checksum).
std::uint64_t run_work_kernel(std::uint64_t iterations, std::uint64_t seed, std::stop_token stop);

/// The /hash digest of `body` after `rounds` rounds, as 16 lowercase hex digits. Bodies of at
/// least `chunked_from` bytes are hashed in 64 KiB chunks (then the chunk digests are hashed):
/// the digest is the same whether the chunks run in parallel or not.
std::string hash_digest(std::string_view body,
                        std::uint64_t rounds,
                        std::size_t chunked_from,
                        bool parallel,
                        std::stop_token stop = {});

/// `v` as 16 lowercase hex digits (the body of /work and /hash).
std::string hex16(std::uint64_t v);

}  // namespace ferry_server
