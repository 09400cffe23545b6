// docs/examples/task_group_cancel.cpp — a task group whose failing child cancels the rest.
//
// asyncio:
//     async with asyncio.TaskGroup() as tg:
//         tg.create_task(download("a"))      # slow
//         tg.create_task(download("b"))      # slow
//         tg.create_task(validate("c"))      # fails fast
//         await report_progress()            # the block itself: cancelled too
//     # -> ExceptionGroup: the downloads were cancelled, nothing outlives the group
//
// ferry: the same structure, with task_group::scope. Two children wait on slow work (a timer and
// an offloaded computation that polls its std::stop_token); the third fails. The group cancels
// the siblings and the body, waits for every one of them, and the scope throws
// ferry::exception_group with the one failure. Each child reports how it ended, so the output
// shows that nothing was left running.
#include <atomic>
#include <cstdio>
#include <ferry/ferry.hpp>
#include <ferry/io/task_group.hpp>
#include <stdexcept>
#include <string>
#include <thread>

using namespace std::chrono_literals;

std::atomic<int> finished_children{0};

ferry::task<std::string> slow_download(std::string name) {
  try {
    co_await ferry::sleep(10s);
    co_return name + ": downloaded";
  } catch (const boost::system::system_error& e) {
    std::printf("  %s: cancelled while waiting (%s)\n", name.c_str(), e.code().message().c_str());
    ++finished_children;
    throw;  // let the group see the cancellation
  }
}

ferry::task<long> slow_compute(std::string name) {
  // Offloaded CPU work that checks its stop token: cancelling the child stops the work, and the
  // child resumes only after the function has returned.
  auto work = [](std::stop_token st) {
    long rounds = 0;
    while (!st.stop_requested()) {
      ++rounds;
      std::this_thread::sleep_for(1ms);  // stands for a slice of real computation
    }
    return rounds;
  };
  const long rounds = co_await ferry::offload(std::move(work));
  std::printf("  %s: stopped after %ld rounds of work (the offload saw its stop token)\n",
              name.c_str(),
              rounds);
  ++finished_children;
  co_return rounds;
}

ferry::task<int> failing_validate(std::string name) {
  co_await ferry::sleep(20ms);
  ++finished_children;
  throw std::invalid_argument(name + ": checksum mismatch");
}

ferry::task<int> main_task() {
  bool body_cancelled = false;
  // The scope's body: a named local (g++ 12 mishandles a capturing lambda written inside a
  // co_await expression).
  auto body = [&](ferry::task_group& tg) -> ferry::task<void> {
    tg.spawn(slow_download("a"));
    tg.spawn(slow_compute("b"));
    tg.spawn(failing_validate("c"));
    try {
      co_await ferry::sleep(10s);  // the block's own work: cancelled when c fails
    } catch (const boost::system::system_error&) {
      body_cancelled = true;
      throw;
    }
  };
  std::string caught;
  std::size_t failures = 0;
  try {
    co_await ferry::task_group::scope(body);
  } catch (const ferry::exception_group& group) {
    caught = group.what();
    failures = group.exceptions().size();
  }
  std::printf("scope threw: %s\n", caught.c_str());
  std::printf("body cancelled: %s\n", body_cancelled ? "yes" : "no");
  std::printf("children finished before the scope returned: %d of 3\n", finished_children.load());

  const bool ok = failures == 1 && finished_children.load() == 3 && body_cancelled &&
                  caught.find("checksum mismatch") != std::string::npos;
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  co_return ok ? 0 : 1;
}

int main() { return ferry::run(main_task()); }
