// ferry/core/detail/job.hpp — the intrusive unit of work the pools run.
//
// A job is a node owned by whoever submitted it. A pool never allocates, copies or frees a job:
// it links it into its queue and calls `run` exactly once. `run` may free the job (its memory is
// the submitter's business); the pool does not touch the job after calling it.
#pragma once

namespace ferry::detail {

struct job {
  using run_fn = void (*)(job*) noexcept;

  explicit job(run_fn run) noexcept : run_(run) {}
  job(const job&) = delete;
  job& operator=(const job&) = delete;

  void run() noexcept { run_(this); }

  run_fn run_;
  // Links for the queue that holds the job while it waits (blocking pool queue, cpu pool
  // admission queue). Only the pool that holds the job touches them, under its own lock.
  job* next_ = nullptr;
  job* prev_ = nullptr;
};

}  // namespace ferry::detail
