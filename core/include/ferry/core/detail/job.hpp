// ferry/core/detail/job.hpp — the intrusive unit of work the pools run.
//
// A job is a node owned by whoever submitted it. A pool never allocates, copies or frees a job:
// it links it into its queue and calls `run` exactly once. `run` may free the job (its memory is
// the submitter's business); the pool does not touch the job after calling it.
#pragma once

#include <cstdint>

namespace ferry::detail {

/// What a job's `run` reports, for the pools' counters.
enum class job_outcome : unsigned char {
  ran,      // the work ran and returned
  failed,   // the work ran and threw (the job delivered the exception elsewhere)
  skipped,  // the work never ran (cancelled before it started)
};

struct job {
  using run_fn = job_outcome (*)(job*) noexcept;

  explicit job(run_fn run) noexcept : run_(run) {}
  job(const job&) = delete;
  job& operator=(const job&) = delete;

  job_outcome run() noexcept { return run_(this); }

  run_fn run_;
  // Links for the queue that holds the job while it waits (blocking pool queue, cpu pool
  // admission queue). Only the pool that holds the job touches them, under its own lock.
  job* next_ = nullptr;
  job* prev_ = nullptr;
  // Set by cpu_pool on submission: when (steady_clock, ns), when it got its admission slot, and
  // whether it holds one. Not touched by the job itself.
  std::int64_t submitted_ns_ = 0;
  std::int64_t admitted_ns_ = 0;
  bool bounded_ = false;
};

}  // namespace ferry::detail
