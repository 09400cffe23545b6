// tests/bridge/offload_stress_test.cpp — exactly-once completion under random cancellation.
//
// Clients on strands of a multi-threaded runtime each run a chain of offloads. Each offload is,
// at random, left alone, cancelled at once, or cancelled after a few hops through the strand
// (so cancellation lands before, during and after f runs), with a random cancellation type; some
// functions throw. Every operation must complete exactly once, with an outcome that matches what
// happened to f: aborted ⇒ f never ran; a value ⇒ f ran once and it is f's value; an exception ⇒
// f's exception. Runs with and without an admission bound, on 1, 2 and 3 io threads, with the
// completion batch window at its default, longer, and off.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <ferry/ferry.hpp>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ferry_test.hpp"
#include "stress_counts.hpp"

namespace {

struct op_record {
  std::atomic<int> ran{0};
  std::atomic<int> completions{0};
  std::atomic<int> outcome{0};  // 1 value, 2 aborted, 3 f's exception, 4 wrong
};

class stress_run {
 public:
  // The clients' strands belong to rt's io_context: a stress_run must not outlive rt.
  stress_run(ferry::runtime& rt, std::vector<op_record>& records, int clients, int ops_per_client)
      : records_(records) {
    for (int c = 0; c < clients; ++c) {
      clients_.push_back(std::make_unique<client>(rt.io_context(), c, ops_per_client));
    }
  }

  void start() {
    for (auto& c : clients_) {
      asio::post(c->strand, [this, c = c.get()] { next(*c); });
    }
  }

  bool wait() {
    return ferry::test::wait_until([&] { return finished_.load() == clients_.size(); },
                                   std::chrono::minutes(10));
  }

 private:
  struct client {
    client(asio::io_context& io, int index, int ops)
        : strand(asio::make_strand(io)),
          rng(static_cast<unsigned>(index) * 7919u + 1u),
          first(index * ops),
          end(first + ops),
          next(first) {}
    asio::strand<asio::io_context::executor_type> strand;
    std::mt19937 rng;
    int first;
    int end;
    int next;
    asio::cancellation_signal signal;
  };

  // Runs on c.strand.
  void next(client& c) {
    if (c.next == c.end) {
      ++finished_;
      return;
    }
    const int id = c.next++;
    const unsigned mode = c.rng() % 4;   // 0 leave alone, 1 cancel now, 2-3 cancel after hops
    const unsigned spin = c.rng() % 64;  // f's busy time, in polls of its stop token
    const bool throws = id % 11 == 0;
    op_record& rec = records_[static_cast<std::size_t>(id)];

    auto f = [&rec, id, spin, throws](std::stop_token st) {
      rec.ran.fetch_add(1, std::memory_order_relaxed);
      for (unsigned i = 0; i < spin && !st.stop_requested(); ++i) std::this_thread::yield();
      if (throws) throw std::runtime_error("f" + std::to_string(id));
      return id;
    };
    auto handler = [this, &c, &rec, id](std::exception_ptr e, int v) {
      rec.completions.fetch_add(1, std::memory_order_relaxed);
      int outcome = 4;
      if (!e) {
        outcome = v == id ? 1 : 4;
      } else {
        try {
          std::rethrow_exception(e);
        } catch (const boost::system::system_error& error) {
          outcome = error.code() == asio::error::operation_aborted ? 2 : 4;
        } catch (const std::runtime_error& error) {
          outcome = std::string(error.what()) == "f" + std::to_string(id) ? 3 : 4;
        } catch (...) {
        }
      }
      rec.outcome.store(outcome, std::memory_order_relaxed);
      next(c);
    };
    ferry::offload(std::move(f),
                   asio::bind_cancellation_slot(c.signal.slot(),
                                                asio::bind_executor(c.strand, std::move(handler))));
    const auto type = ferry::test::random_cancellation_type(c.rng);
    if (mode == 1) {
      c.signal.emit(type);
    } else if (mode >= 2) {
      hop_then_cancel(c, c.rng() % 4, type);
    }
  }

  // Emits after `hops` trips through the strand. By then the operation may have completed and a
  // later one started: cancelling that one instead is also a valid random cancellation.
  void hop_then_cancel(client& c, unsigned hops, asio::cancellation_type type) {
    asio::post(c.strand, [this, &c, hops, type] {
      if (hops == 0) {
        c.signal.emit(type);
      } else {
        hop_then_cancel(c, hops - 1, type);
      }
    });
  }

  std::vector<op_record>& records_;
  std::vector<std::unique_ptr<client>> clients_;
  std::atomic<std::size_t> finished_{0};
};

struct config {
  std::size_t io_threads;
  std::size_t max_in_flight;
  std::chrono::nanoseconds batch_window = ferry::runtime_options{}.completion_batch_window;
};

// Each configuration is a test of its own, so that each has its own hang guard (ctest's
// timeout) and they run in parallel.
class OffloadStress : public testing::TestWithParam<config> {};

std::string config_name(const testing::TestParamInfo<config>& info) {
  const config& c = info.param;
  return "io" + std::to_string(c.io_threads) + "_bound" + std::to_string(c.max_in_flight) +
         "_window" + std::to_string(c.batch_window.count() / 1000) + "us";
}

}  // namespace

// 64 clients keep the pool of 2 saturated: completions are batched (the default window, a
// longer one with 2 io threads, and none for contrast).
INSTANTIATE_TEST_SUITE_P(Configs,
                         OffloadStress,
                         testing::Values(config{1, 0},
                                         config{2, 0},
                                         config{3, 0},
                                         config{1, 8},
                                         config{2, 8},
                                         config{1, 0, std::chrono::nanoseconds(0)},
                                         config{2, 0, 2ms}),
                         config_name);

TEST_P(OffloadStress, ExactlyOnceUnderRandomCancellation) {
  constexpr int kClients = 64;
  constexpr int kOpsPerClient = ferry::test::counts::offload_ops_per_client;
  const config& cfg = GetParam();
  std::vector<op_record> records(kClients * kOpsPerClient);
  {
    ferry::runtime rt({.io_threads = cfg.io_threads,
                       .cpu_threads = 2,
                       .max_offloads_in_flight = cfg.max_in_flight,
                       .completion_batch_window = cfg.batch_window});
    stress_run run(rt, records, kClients, kOpsPerClient);
    run.start();
    ASSERT_TRUE(run.wait());
    EXPECT_EQ(rt.stats().cpu.waiting, 0u);
  }
  int values = 0, aborted = 0, thrown = 0;
  for (std::size_t id = 0; id < records.size(); ++id) {
    const op_record& rec = records[id];
    ASSERT_EQ(rec.completions.load(), 1) << "op " << id;
    switch (rec.outcome.load()) {
      case 1:
        ++values;
        ASSERT_EQ(rec.ran.load(), 1) << "op " << id;
        break;
      case 2:
        ++aborted;
        ASSERT_EQ(rec.ran.load(), 0) << "op " << id << " was aborted after f ran";
        break;
      case 3:
        ++thrown;
        ASSERT_EQ(rec.ran.load(), 1) << "op " << id;
        break;
      default:
        FAIL() << "op " << id << " completed with a wrong outcome";
    }
  }
  // Both paths were exercised (with 32,000 random draws neither can be empty).
  EXPECT_GT(values, 0);
  EXPECT_GT(aborted, 0);
  EXPECT_GT(thrown, 0);
}
