// bench/loadgen/loadgen.cpp — ferry_loadgen: the HTTP/1.1 load generator of W5
// (docs/workloads.md), built on ferry and Boost.Beast.
//
// Two traffic classes in one run, each either
//  - closed loop: `--<class>-connections N` keep-alive connections, each sending its next request
//    as soon as the previous response arrived; latency from send to response; or
//  - fixed-rate open loop (`--<class>-rate R` > 0): requests are scheduled every 1/R s from the
//    start of the run whatever happens to the earlier ones, and sent over
//    `--<class>-connections N` connections — a request whose connection is still busy waits for
//    the next free one. Latency is measured from the *intended* send time, so a server (or a
//    client) that stalls is charged for every request that should have gone out meanwhile
//    (coordinated omission is not hidden).
// W5: heavy `/work?us=10000` closed loop on enough connections to saturate the server's cores,
// light `/ping` at a fixed rate; the light class's p99 shows what the heavy work does to the loop.
// W6 (overload): an open-loop class at 0.5x .. 10x the server's capacity, by a schedule of
// rates (`--<class>-schedule R1@S1,...`), each request with a client deadline from its intended
// send time (`--deadline-ms`, default 1000): one not answered by then is given up (the
// connection closed), one not sent by then is never sent (`expired_unsent`). Goodput is the
// number of 2xx responses within the deadline, per class and per segment, with the latencies of
// the successful and of the rejected (non-2xx) requests, and the recovery time after the
// schedule's peak (overload.hpp).
//
// The run: `--warmup` seconds whose requests are not counted, then `--duration` measured
// seconds; a request belongs to the measured window when its (intended) start does. Closed-loop
// connections stop sending at the end of the window and finish the request in flight. Open-loop
// requests scheduled in the window are all sent; those still waiting for a connection one
// timeout after the window are counted as `not_sent` errors. Throughput (`ok/s`, JSON `ok_rps`)
// is the number of measured requests answered 2xx (within the deadline) divided by the window;
// `throughput_rps` counts every measured request.
//
// Errors are counted per class and kind: connect (connecting failed or timed out), timeout (no
// complete response within --timeout-ms), status (a response other than 2xx; counted per code),
// io (reset, truncated or malformed response), deadline (open loop: no complete response before
// the client deadline), not_sent (see above), expired_unsent (open loop: still unsent at the
// deadline). A keep-alive connection the server closed while idle is reconnected and the
// request sent again (counted as a stale retry, not an error; see http_connection.hpp). Failed
// requests are not in the latency histograms; rejected ones (status) have one of their own.
//
// Everything runs on one io thread (ferry::run with io_threads = 1), so the counters need no
// synchronisation. Output: a progress line on stderr every second, a summary on stdout, and with
// `--json FILE` every figure as JSON. With `--server-pid PID`, the CPU time (utime + stime from
// /proc/PID/stat) the server used during the measured window is reported, as are the load
// generator's own and the share of the machine used by other processes (/proc/stat), which tells
// whether the figures were taken on a quiet machine. `--self-test` checks the latency histogram
// instead (ctest loadgen.self_test).
#include <unistd.h>

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ferry/ferry.hpp"
#include "histogram.hpp"
#include "http_connection.hpp"
#include "overload.hpp"
#include "self_test.hpp"

namespace ferry::loadgen {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---- options ------------------------------------------------------------------------------

struct class_options {
  std::string path;
  std::size_t connections = 0;
  double rate = 0;                // requests per second; 0 = closed loop (unless a schedule)
  std::string schedule_spec;      // --<class>-schedule as given
  std::vector<segment> schedule;  // open loop by segments; replaces rate and --duration

  bool open_loop() const { return rate > 0 || !schedule.empty(); }
};

struct options {
  std::string host = "127.0.0.1";
  unsigned port = 8080;
  class_options heavy{"/work?us=10000", 4, 0, "", {}};
  class_options light{"/ping", 4, 0, "", {}};
  double duration_s = 10;
  double warmup_s = 2;
  std::chrono::milliseconds timeout{10'000};
  std::chrono::milliseconds deadline{1'000};  // open-loop classes; 0 = none
  double capacity = 0;                        // requests/s, 0 = not given
  std::string json_path;
  long server_pid = 0;
  bool progress = true;
  bool self_test = false;
};

constexpr const char* usage_text =
    R"(usage: ferry_loadgen [options]
HTTP/1.1 load in two traffic classes, heavy and light (W5 of docs/workloads.md).

  --host H                 server address (default 127.0.0.1)
  --port N                 server port (default 8080)
  --heavy-path P           heavy request target (default /work?us=10000)
  --heavy-connections N    heavy connections (default 4; 0 = no heavy traffic)
  --heavy-rate R           heavy requests per second, fixed-rate open loop (default 0 = closed loop)
  --light-path P           light request target (default /ping)
  --light-connections N    light connections (default 4; 0 = no light traffic)
  --light-rate R           light requests per second, fixed-rate open loop over the light
                           connections, latency from the intended send time (default 0 = closed loop)
  --heavy-schedule SPEC    heavy open loop by segments "R1@S1,R2@S2,...": R1 requests/s for S1
  --light-schedule SPEC    seconds, then R2 for S2, ...; replaces --<class>-rate and --duration
                           for the class (the warm-up runs at R1)
  --duration S             measured seconds (default 10)
  --warmup S               seconds before the measurement, not counted (default 2)
  --timeout-ms N           per connect and per request from its actual start (default 10000)
  --deadline-ms D          open-loop client deadline from the intended send time: a request not
                           answered by then is given up (connection closed), one not sent by then
                           is never sent (default 1000; 0 = none)
  --capacity R             the server's capacity in requests/s: goodput is also reported as a
                           share of it
  --json FILE              write every result as JSON to FILE
  --server-pid PID         report the CPU time PID used during the measured window
  --no-progress            no progress line on stderr
  --self-test              check the latency histogram against sorted random data and exit
  --help                   this text
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "ferry_loadgen: %s (see --help)\n", message.c_str());
  std::exit(2);
}

double parse_number(const std::string& flag, const std::string& text, double lo, double hi) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v) && v >= lo && v <= hi) return v;
  } catch (const std::exception&) {
  }
  std::ostringstream message;
  message << flag << ": expected a number in [" << lo << ", " << hi << "], got '" << text << "'";
  usage_error(message.str());
}

std::size_t parse_count(const std::string& flag, const std::string& text, double hi) {
  const double v = parse_number(flag, text, 0, hi);
  if (v != std::floor(v)) usage_error(flag + ": expected a whole number, got '" + text + "'");
  return static_cast<std::size_t>(v);
}

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::optional<std::string> inline_value;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag.resize(eq);
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) usage_error(flag + " needs a value");
      return argv[++i];
    };
    auto path = [&]() {
      std::string p = value();
      if (p.empty() || p[0] != '/') usage_error(flag + ": expected a path starting with '/'");
      return p;
    };
    if (flag == "--help" || flag == "-h") {
      std::fputs(usage_text, stdout);
      std::exit(0);
    } else if (flag == "--self-test") {
      o.self_test = true;
    } else if (flag == "--no-progress") {
      o.progress = false;
    } else if (flag == "--host") {
      o.host = value();
    } else if (flag == "--port") {
      o.port = static_cast<unsigned>(parse_count(flag, value(), 65535));
    } else if (flag == "--heavy-path") {
      o.heavy.path = path();
    } else if (flag == "--heavy-connections") {
      o.heavy.connections = parse_count(flag, value(), 100'000);
    } else if (flag == "--heavy-rate") {
      o.heavy.rate = parse_number(flag, value(), 0, 1e7);
    } else if (flag == "--light-path") {
      o.light.path = path();
    } else if (flag == "--light-connections") {
      o.light.connections = parse_count(flag, value(), 100'000);
    } else if (flag == "--light-rate") {
      o.light.rate = parse_number(flag, value(), 0, 1e7);
    } else if (flag == "--heavy-schedule" || flag == "--light-schedule") {
      class_options& c = flag == "--heavy-schedule" ? o.heavy : o.light;
      c.schedule_spec = value();
      parsed_schedule parsed = parse_schedule(c.schedule_spec);
      if (!parsed.error.empty()) usage_error(flag + ": " + parsed.error);
      c.schedule = std::move(parsed.segments);
    } else if (flag == "--deadline-ms") {
      o.deadline = std::chrono::milliseconds(parse_count(flag, value(), 3'600'000));
    } else if (flag == "--capacity") {
      o.capacity = parse_number(flag, value(), 0, 1e9);
      if (o.capacity <= 0) usage_error("--capacity: must be above 0");
    } else if (flag == "--duration") {
      o.duration_s = parse_number(flag, value(), 0.001, 86'400);
    } else if (flag == "--warmup") {
      o.warmup_s = parse_number(flag, value(), 0, 86'400);
    } else if (flag == "--timeout-ms") {
      o.timeout = std::chrono::milliseconds(parse_count(flag, value(), 3'600'000));
      if (o.timeout.count() == 0) usage_error("--timeout-ms: must be at least 1");
    } else if (flag == "--json") {
      o.json_path = value();
    } else if (flag == "--server-pid") {
      o.server_pid = static_cast<long>(parse_count(flag, value(), 1e9));
    } else {
      usage_error("unknown option '" + flag + "'");
    }
  }
  if (o.port == 0 && !o.self_test) usage_error("--port: must be in [1, 65535]");
  if (o.heavy.rate > 0 && o.heavy.connections == 0) {
    usage_error("--heavy-rate needs --heavy-connections > 0");
  }
  if (o.light.rate > 0 && o.light.connections == 0) {
    usage_error("--light-rate needs --light-connections > 0");
  }
  for (const auto* c : {&o.heavy, &o.light}) {
    if (c->schedule.empty()) continue;
    const std::string name = c == &o.heavy ? "heavy" : "light";
    if (c->rate > 0) {
      usage_error("--" + name + "-schedule and --" + name + "-rate exclude each other");
    }
    if (c->connections == 0) {
      usage_error("--" + name + "-schedule needs --" + name + "-connections > 0");
    }
  }
  return o;
}

// ---- CPU time of a process -------------------------------------------------------------------

// utime + stime of every thread of `pid` ("self" for this process), from /proc/<pid>/stat.
std::optional<double> cpu_seconds(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const auto paren = line.rfind(')');  // the command name may contain spaces and parentheses
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(paren + 1));
  std::string field;
  // Fields from 3 (state) on; utime and stime are fields 14 and 15.
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int n = 3; n <= 15 && fields >> field; ++n) {
    if (n == 14) utime = std::stoull(field);
    if (n == 15) stime = std::stoull(field);
  }
  if (!fields) return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct cpu_window {
  std::string pid;
  std::optional<double> before;
  std::optional<double> after;
  clock_type::time_point t0;
  clock_type::time_point t1;

  bool valid() const { return before && after && t1 > t0; }
  double used_s() const { return *after - *before; }
  double wall_s() const { return std::chrono::duration<double>(t1 - t0).count(); }
  double percent_of_machine(double cores) const { return 100.0 * used_s() / (wall_s() * cores); }
};

// Busy and total time of all CPUs together, in ticks, from the first line of /proc/stat (busy:
// everything but idle and iowait; steal counts as busy, the cores were not ours).
struct machine_ticks {
  double busy = 0;
  double total = 0;
};

std::optional<machine_ticks> machine_cpu() {
  std::ifstream in("/proc/stat");
  std::string name;
  if (!(in >> name) || name != "cpu") return std::nullopt;
  // user nice system idle iowait irq softirq steal (guest time is already in user and nice)
  double fields[8];
  for (double& f : fields) {
    if (!(in >> f)) return std::nullopt;
  }
  machine_ticks t;
  for (double f : fields) t.total += f;
  t.busy = t.total - fields[3] - fields[4];
  return t;
}

struct machine_window {
  std::optional<machine_ticks> before;
  std::optional<machine_ticks> after;

  bool valid() const { return before && after && after->total > before->total; }
  double busy_percent() const {
    return 100.0 * (after->busy - before->busy) / (after->total - before->total);
  }
};

// ---- the run ---------------------------------------------------------------------------------

constexpr std::size_t failure_kinds = 6;  // failure::none .. failure::deadline

// The counters of the measured requests of a class, or of one segment of its schedule.
struct tally {
  histogram latency;           // successful (2xx within the deadline) requests
  histogram rejected_latency;  // complete non-2xx responses within the deadline
  std::uint64_t requests = 0;
  std::uint64_t ok = 0;  // the goodput: 2xx within the deadline
  std::array<std::uint64_t, failure_kinds> failures{};
  std::uint64_t not_sent = 0;
  std::uint64_t expired_unsent = 0;
  std::map<unsigned, std::uint64_t> statuses;  // non-2xx responses by code
  std::uint64_t connects = 0;
  std::uint64_t stale_retries = 0;

  std::uint64_t errors() const {
    std::uint64_t n = not_sent + expired_unsent;
    for (std::size_t k = 1; k < failure_kinds; ++k) n += failures[k];
    return n;
  }
  std::uint64_t rejected() const { return failures[static_cast<std::size_t>(failure::status)]; }
  std::uint64_t deadline() const { return failures[static_cast<std::size_t>(failure::deadline)]; }

  void record(std::uint64_t ns, const request_result& r) {
    ++requests;
    connects += r.connects;
    stale_retries += r.stale_retries;
    if (r.error == failure::none) {
      ++ok;
      latency.record(ns);
      return;
    }
    ++failures[static_cast<std::size_t>(r.error)];
    if (r.error == failure::status) {
      ++statuses[r.status];
      rejected_latency.record(ns);
    }
  }
};

struct class_state {
  std::string name;
  class_options opt;
  clock_type::time_point measure_end;     // the class's window: [run.measure_begin, measure_end)
  std::chrono::milliseconds deadline{0};  // from the intended send time; 0 = none

  tally total;                                     // the measured window
  std::vector<tally> segments;                     // per segment of the schedule, if any
  std::vector<sample> successes;                   // with a schedule: for the recovery time
  std::map<std::string, std::string> first_error;  // kind -> first message seen

  // Since the last progress line (warm-up included).
  histogram interval_latency;
  std::uint64_t interval_done = 0;
  std::uint64_t interval_errors = 0;

  bool active() const { return opt.connections > 0; }
  bool open_loop() const { return opt.open_loop(); }
  std::uint64_t errors() const { return total.errors(); }
};

// Where an open-loop request belongs: its schedule segment (none: no schedule, or the warm-up)
// and its nominal offset from the start of the schedule.
struct slot {
  std::optional<std::size_t> segment;
  std::uint64_t offset_ns = 0;
};

struct due_request {
  clock_type::time_point intended;
  slot where;
};

struct run_state {
  options opt;
  std::vector<tcp::endpoint> endpoints;
  std::string host_header;
  clock_type::time_point start;
  clock_type::time_point measure_begin;
  clock_type::time_point measure_end;     // the end of the longest class window
  clock_type::time_point drain_deadline;  // open loop: later requests are not sent
  class_state heavy;
  class_state light;
  cpu_window server_cpu;
  cpu_window own_cpu;
  machine_window machine;

  // A scheduled class's request is measured when it belongs to a segment (not to the warm-up);
  // any other when its (intended) start is in the class's window.
  bool measured(const class_state& c, clock_type::time_point t, const slot& where) const {
    if (!c.segments.empty()) return where.segment.has_value();
    return t >= measure_begin && t < c.measure_end;
  }

  void record(class_state& c,
              clock_type::time_point start_time,
              clock_type::time_point end_time,
              const request_result& r,
              const slot& where = {}) {
    const auto ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(end_time - start_time).count());
    ++c.interval_done;
    if (r.error == failure::none) {
      c.interval_latency.record(ns);
    } else {
      ++c.interval_errors;
    }
    if (!measured(c, start_time, where)) return;
    c.total.record(ns, r);
    if (where.segment) {
      c.segments[*where.segment].record(ns, r);
      if (r.error == failure::none) c.successes.push_back({where.offset_ns, ns});
    }
    if (r.error != failure::none) c.first_error.try_emplace(to_string(r.error), r.detail);
  }

  // A request that was never sent: `not_sent` (no connection before the drain deadline) or
  // expired (still unsent at its client deadline).
  void record_unsent(class_state& c, const due_request& d, bool expired_deadline) {
    ++c.interval_done;
    ++c.interval_errors;
    if (!measured(c, d.intended, d.where)) return;
    tally* seg = d.where.segment ? &c.segments[*d.where.segment] : nullptr;
    for (tally* t : {&c.total, seg}) {
      if (t == nullptr) continue;
      ++t->requests;
      ++(expired_deadline ? t->expired_unsent : t->not_sent);
    }
    if (expired_deadline) {
      c.first_error.try_emplace("expired_unsent",
                                "no free connection before the request's deadline");
    } else {
      c.first_error.try_emplace("not_sent", "no free connection before the drain deadline");
    }
  }
};

task<void> sleep_until(clock_type::time_point t) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_at(t);
  co_await timer.async_wait(asio::use_awaitable);
}

// One closed-loop connection: send, wait for the response, send again, until the window ends.
task<void> closed_loop(run_state& run, class_state& c) {
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  http_connection conn(ex, run.endpoints, run.host_header, run.opt.timeout);
  const std::string_view target = c.opt.path;
  while (clock_type::now() < c.measure_end) {
    const auto start = clock_type::now();
    const request_result r = co_await conn.get(target);
    run.record(c, start, clock_type::now(), r);
    // Do not spin against a server that refuses or drops connections.
    if (r.error == failure::connect || r.error == failure::io) co_await ferry::sleep(10ms);
  }
  conn.close();
}

clock_type::duration seconds_to_duration(double s) {
  return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s));
}

// The open-loop schedule: within each part (start, rate, seconds), request i is due at
// start + i / rate while i / rate < seconds, whatever happened to the others. A fixed rate is one
// part from the start of the run to the end of the class's window; a schedule runs its first
// rate during the warm-up, then its segments from the start of the measured window, each request
// tagged with its segment and its nominal offset in the schedule (what the accounting and the
// recovery time use, free of rounding at the segments' boundaries).
task<void> schedule(run_state& run, class_state& c, ferry::queue<due_request>& due) {
  struct part {
    clock_type::time_point base;  // offsets are from here
    double start_s;               // the part's start, from `base`
    segment seg;
    std::optional<std::size_t> index;  // the schedule's segment
  };
  std::vector<part> parts;
  if (c.opt.schedule.empty()) {
    parts.push_back({run.start,
                     0,
                     {c.opt.rate, std::chrono::duration<double>(c.measure_end - run.start).count()},
                     std::nullopt});
  } else {
    if (run.opt.warmup_s > 0) {
      parts.push_back(
          {run.start, 0, {c.opt.schedule.front().rate, run.opt.warmup_s}, std::nullopt});
    }
    double offset = 0;
    for (std::size_t k = 0; k < c.opt.schedule.size(); ++k) {
      parts.push_back({run.measure_begin, offset, c.opt.schedule[k], k});
      offset += c.opt.schedule[k].seconds;
    }
  }
  for (const part& p : parts) {
    const std::uint64_t n = segment_requests(p.seg);
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint64_t offset_ns = request_offset_ns(p.start_s, p.seg.rate, i);
      due_request d;
      d.intended = p.base + std::chrono::duration_cast<clock_type::duration>(
                                std::chrono::nanoseconds(offset_ns));
      d.where = {p.index, offset_ns};
      co_await sleep_until(d.intended);
      due.try_put(d);  // unbounded: never full
    }
  }
  due.close();
}

// One open-loop connection: takes the next due request as soon as it is free. A request whose
// deadline has passed by then is not sent; one answered after its deadline closes the connection
// (the client gave up on it).
task<void> open_loop(run_state& run, class_state& c, ferry::queue<due_request>& due) {
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  http_connection conn(ex, run.endpoints, run.host_header, run.opt.timeout);
  const std::string_view target = c.opt.path;
  const std::chrono::nanoseconds deadline = c.deadline;
  for (;;) {
    due_request d;
    try {
      d = co_await due.get();
    } catch (const ferry::queue_closed&) {
      break;
    }
    const clock_type::time_point intended = d.intended;
    const auto now = clock_type::now();
    if (expired(intended.time_since_epoch(), now.time_since_epoch(), deadline)) {
      run.record_unsent(c, d, true);
      continue;
    }
    if (now >= run.drain_deadline) {
      run.record_unsent(c, d, false);
      continue;
    }
    std::optional<clock_type::time_point> give_up;
    if (deadline.count() > 0) give_up = intended + deadline;
    request_result r = co_await conn.get(target, give_up);
    const auto end = clock_type::now();
    const bool responded = r.error == failure::none || r.error == failure::status;
    const verdict v = classify(
        responded ? std::optional<unsigned>(r.status) : std::nullopt, end - intended, deadline);
    if (v == verdict::deadline && r.error != failure::deadline) {
      // Complete (or failed) only after the deadline: too late, the client has given up.
      conn.close();
      r.error = failure::deadline;
      r.detail = "complete only after the deadline";
    }
    run.record(c, intended, end, r, d.where);
  }
  conn.close();
}

std::string format_ms(std::uint64_t ns) {
  char text[32];
  const double ms = static_cast<double>(ns) / 1e6;
  std::snprintf(text, sizeof text, ms < 10 ? "%.2f" : ms < 100 ? "%.1f" : "%.0f", ms);
  return text;
}

// Once a second on stderr: `[loadgen] 7/12 s  heavy 189 req/s  light p99 0.42 ms`.
task<void> progress(run_state& run) {
  const auto total = run.measure_end - run.start;
  const double total_s = std::chrono::duration<double>(total).count();
  auto last = run.start;
  for (int second = 1;; ++second) {
    const auto tick = run.start + std::chrono::seconds(second);
    if (tick > run.measure_end + 500ms) break;
    co_await sleep_until(std::min(tick, run.measure_end));
    const auto now = clock_type::now();
    const double span_s = std::chrono::duration<double>(now - last).count();
    last = now;
    char head[64];
    std::snprintf(head,
                  sizeof head,
                  "[loadgen] %.0f/%.0f s",
                  std::min<double>(second, std::ceil(total_s)),
                  std::ceil(total_s));
    std::string line = head;
    for (class_state* c : {&run.heavy, &run.light}) {
      if (!c->active()) continue;
      char part[128];
      if (c == &run.heavy) {
        std::snprintf(part,
                      sizeof part,
                      "  heavy %.0f req/s",
                      static_cast<double>(c->interval_done) / span_s);
      } else {
        std::snprintf(part,
                      sizeof part,
                      "  light p99 %s ms",
                      c->interval_latency.count() == 0
                          ? "-"
                          : format_ms(c->interval_latency.percentile(99)).c_str());
      }
      line += part;
      if (c->interval_errors != 0) {
        line += " (" + std::to_string(c->interval_errors) + " errors)";
      }
      c->interval_latency.reset();
      c->interval_done = 0;
      c->interval_errors = 0;
    }
    if (tick <= run.measure_begin) line += "  (warm-up)";
    if (run.opt.progress) std::fprintf(stderr, "%s\n", line.c_str());
    if (tick >= run.measure_end) break;
  }
}

// Samples the CPU time of the server and of this process at both ends of the window.
task<void> sample_cpu(run_state& run) {
  co_await sleep_until(run.measure_begin);
  run.server_cpu.t0 = run.own_cpu.t0 = clock_type::now();
  if (!run.server_cpu.pid.empty()) run.server_cpu.before = cpu_seconds(run.server_cpu.pid);
  run.own_cpu.before = cpu_seconds("self");
  run.machine.before = machine_cpu();
  co_await sleep_until(run.measure_end);
  run.server_cpu.t1 = run.own_cpu.t1 = clock_type::now();
  if (!run.server_cpu.pid.empty()) run.server_cpu.after = cpu_seconds(run.server_cpu.pid);
  run.own_cpu.after = cpu_seconds("self");
  run.machine.after = machine_cpu();
}

// ---- the report --------------------------------------------------------------------------------

constexpr double report_percentiles[] = {50, 90, 99, 99.9};
constexpr double curve_percentiles[] = {
    0, 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.75, 99.9, 99.95, 99.975, 99.99, 100};

std::string describe_load(const class_state& c) {
  std::ostringstream s;
  if (!c.opt.schedule.empty()) {
    s << "schedule (" << c.opt.schedule.size() << " seg), " << c.opt.connections << " conn";
  } else if (c.open_loop()) {
    s << c.opt.rate << "/s open loop, " << c.opt.connections << " conn";
  } else {
    s << "closed loop, " << c.opt.connections << " conn";
  }
  return s.str();
}

double cores() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<double>(n) : 1.0;
}

// The share of the machine that neither the server (when watched) nor the load generator used.
std::optional<double> others_percent(const run_state& run) {
  if (!run.machine.valid() || !run.own_cpu.valid()) return std::nullopt;
  double others = run.machine.busy_percent() - run.own_cpu.percent_of_machine(cores());
  if (run.server_cpu.valid()) others -= run.server_cpu.percent_of_machine(cores());
  return std::max(0.0, others);
}

double window_seconds(const run_state& run, const class_state& c) {
  return std::chrono::duration<double>(c.measure_end - run.measure_begin).count();
}

// The windows in which the recovery after a schedule's peak is looked for.
constexpr std::chrono::milliseconds recovery_window{250};

std::string percent_of_capacity(double per_s, double capacity) {
  if (capacity <= 0) return "";
  char text[64];
  std::snprintf(
      text, sizeof text, " (%.1f%% of %g/s capacity)", 100.0 * per_s / capacity, capacity);
  return text;
}

std::string ms_or_dash(const histogram& h, double q) {
  return h.count() == 0 ? "-" : format_ms(h.percentile(q));
}

std::string status_list(const std::map<unsigned, std::uint64_t>& statuses) {
  std::string out;
  for (const auto& [code, n] : statuses) {
    out += (out.empty() ? "" : ", ") + std::to_string(code) + ": " + std::to_string(n);
  }
  return out;
}

// "goodput 980 = 98.0/s ...; rejected 20, p99 1.20 ms (503: 20); deadline 5, expired unsent 3"
std::string describe_tally(const tally& t, double window_s, double capacity) {
  std::ostringstream s;
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.1f/s", static_cast<double>(t.ok) / window_s);
  s << "goodput " << t.ok << " = " << rate
    << percent_of_capacity(static_cast<double>(t.ok) / window_s, capacity) << ", p50 "
    << ms_or_dash(t.latency, 50) << " p99 " << ms_or_dash(t.latency, 99) << " ms; rejected "
    << t.rejected();
  if (t.rejected() != 0) {
    s << ", p99 " << ms_or_dash(t.rejected_latency, 99) << " ms (" << status_list(t.statuses)
      << ")";
  }
  s << "; deadline " << t.deadline() << ", expired unsent " << t.expired_unsent;
  return s.str();
}

void print_report(const run_state& run) {
  std::printf("ferry_loadgen: %s:%u, %.1f s warm-up, %.2f s measured\n",
              run.opt.host.c_str(),
              run.opt.port,
              run.opt.warmup_s,
              std::chrono::duration<double>(run.measure_end - run.measure_begin).count());
  std::printf("  %-6s %-16s %-26s %9s %7s %9s %8s %8s %8s %8s %8s\n",
              "class",
              "path",
              "load",
              "requests",
              "errors",
              "ok/s",
              "p50 ms",
              "p90 ms",
              "p99 ms",
              "p99.9 ms",
              "max ms");
  for (const class_state* c : {&run.heavy, &run.light}) {
    if (!c->active()) continue;
    std::printf("  %-6s %-16s %-26s %9" PRIu64 " %7" PRIu64 " %9.1f",
                c->name.c_str(),
                c->opt.path.c_str(),
                describe_load(*c).c_str(),
                c->total.requests,
                c->errors(),
                static_cast<double>(c->total.ok) / window_seconds(run, *c));
    for (double q : report_percentiles)
      std::printf(" %8s", ms_or_dash(c->total.latency, q).c_str());
    std::printf(" %8s\n",
                c->total.latency.count() == 0 ? "-" : format_ms(c->total.latency.max()).c_str());
  }
  for (const class_state* c : {&run.heavy, &run.light}) {
    if (!c->active()) continue;
    const double window_s = window_seconds(run, *c);
    const std::string deadline =
        c->deadline.count() == 0 ? "none" : std::to_string(c->deadline.count()) + " ms";
    std::printf("  %s (client deadline %s): %s\n",
                c->name.c_str(),
                deadline.c_str(),
                describe_tally(c->total, window_s, run.opt.capacity).c_str());
    double offset = 0;
    for (std::size_t i = 0; i < c->segments.size(); ++i) {
      const segment& seg = c->opt.schedule[i];
      std::printf("    segment %zu (%g/s for %g s from %g s): %" PRIu64 " requests, %s\n",
                  i + 1,
                  seg.rate,
                  seg.seconds,
                  offset,
                  c->segments[i].requests,
                  describe_tally(c->segments[i], seg.seconds, run.opt.capacity).c_str());
      offset += seg.seconds;
    }
    if (c->total.expired_unsent != 0) {
      std::printf("    note: %" PRIu64
                  " requests expired unsent: the load generator fell behind (README.md, Client "
                  "deadline)\n",
                  c->total.expired_unsent);
    }
    if (!c->segments.empty()) {
      const recovery r = compute_recovery(c->successes, c->opt.schedule, recovery_window);
      if (r.seconds) {
        std::printf(
            "    recovery: %.2f s after the end of segment %zu (the %lld ms-window p99 "
            "back within 2 x %s ms)\n",
            *r.seconds,
            r.peak + 1,
            static_cast<long long>(recovery_window.count()),
            format_ms(*r.baseline_p99).c_str());
      } else {
        std::printf(
            "    recovery: not recovered after segment %zu (baseline p99 %s ms, %zu "
            "windows)\n",
            r.peak + 1,
            r.baseline_p99 ? format_ms(*r.baseline_p99).c_str() : "-",
            r.windows);
      }
    }
  }
  for (const class_state* c : {&run.heavy, &run.light}) {
    if (!c->active() || (c->errors() == 0 && c->total.stale_retries == 0)) continue;
    const tally& t = c->total;
    std::printf("  %s errors: connect %" PRIu64 ", timeout %" PRIu64 ", status %" PRIu64
                ", io %" PRIu64 ", deadline %" PRIu64 ", not sent %" PRIu64
                ", expired unsent %" PRIu64 "; stale keep-alive retries %" PRIu64 "\n",
                c->name.c_str(),
                t.failures[static_cast<std::size_t>(failure::connect)],
                t.failures[static_cast<std::size_t>(failure::timeout)],
                t.failures[static_cast<std::size_t>(failure::status)],
                t.failures[static_cast<std::size_t>(failure::io)],
                t.deadline(),
                t.not_sent,
                t.expired_unsent,
                t.stale_retries);
    for (const auto& [kind, message] : c->first_error) {
      std::printf("    first %s error: %s\n", kind.c_str(), message.c_str());
    }
  }
  for (const cpu_window* w : {&run.server_cpu, &run.own_cpu}) {
    if (!w->valid()) continue;
    std::printf("  %s cpu: %.2f s in %.2f s = %.1f%% of %.0f cores\n",
                w == &run.own_cpu ? "loadgen" : ("server (pid " + w->pid + ")").c_str(),
                w->used_s(),
                w->wall_s(),
                w->percent_of_machine(cores()),
                cores());
  }
  if (const auto others = others_percent(run)) {
    std::printf("  machine: %.1f%% busy during the window; other processes %.1f%%\n",
                run.machine.busy_percent(),
                *others);
  }
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", u);
      out += esc;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char text[40];
  std::snprintf(text, sizeof text, "%.6g", v);
  return text;
}

std::string ns_to_ms(std::uint64_t ns) { return json_number(static_cast<double>(ns) / 1e6); }

// A percentile in ms, null when the histogram is empty.
std::string json_percentile(const histogram& h, double q) {
  return h.count() == 0 ? "null" : ns_to_ms(h.percentile(q));
}

std::string json_cpu(const cpu_window& w) {
  if (!w.valid()) return "null";
  std::ostringstream s;
  s << "{\"pid\": " << json_string(w.pid) << ", \"cpu_s\": " << json_number(w.used_s())
    << ", \"wall_s\": " << json_number(w.wall_s())
    << ", \"percent_of_one_core\": " << json_number(100.0 * w.used_s() / w.wall_s())
    << ", \"percent_of_machine\": " << json_number(w.percent_of_machine(cores())) << "}";
  return s.str();
}

std::string json_statuses(const std::map<unsigned, std::uint64_t>& statuses) {
  std::ostringstream s;
  s << "{";
  const char* sep = "";
  for (const auto& [code, n] : statuses) {
    s << sep << "\"" << code << "\": " << n;
    sep = ", ";
  }
  s << "}";
  return s.str();
}

// The counters of a class or a segment, as JSON members (no braces), each on a line of its own
// starting with `in`.
std::string json_tally(const tally& t, double window_s, double capacity, const std::string& in) {
  std::ostringstream s;
  const double goodput_per_s = static_cast<double>(t.ok) / window_s;
  s << in << "\"requests\": " << t.requests << "," << in << "\"ok\": " << t.ok << "," << in
    << "\"errors\": " << t.errors() << "," << in << "\"errors_by_kind\": {";
  for (std::size_t k = 1; k < failure_kinds; ++k) {
    s << json_string(to_string(static_cast<failure>(k))) << ": " << t.failures[k] << ", ";
  }
  s << "\"not_sent\": " << t.not_sent << ", \"expired_unsent\": " << t.expired_unsent << "}," << in
    << "\"status_codes\": " << json_statuses(t.statuses) << "," << in
    << "\"throughput_rps\": " << json_number(static_cast<double>(t.requests) / window_s) << ","
    << in << "\"ok_rps\": " << json_number(goodput_per_s) << "," << in
    << "\"goodput\": {\"count\": " << t.ok << ", \"per_s\": " << json_number(goodput_per_s)
    << ", \"share_of_capacity\": "
    << (capacity > 0 ? json_number(goodput_per_s / capacity) : "null")
    << ", \"p50_ms\": " << json_percentile(t.latency, 50)
    << ", \"p99_ms\": " << json_percentile(t.latency, 99) << "}," << in
    << "\"rejected\": {\"count\": " << t.rejected()
    << ", \"p50_ms\": " << json_percentile(t.rejected_latency, 50)
    << ", \"p99_ms\": " << json_percentile(t.rejected_latency, 99)
    << ", \"status_codes\": " << json_statuses(t.statuses) << "}," << in
    << "\"latency_ms\": {\"min\": " << ns_to_ms(t.latency.min())
    << ", \"mean\": " << json_number(t.latency.mean() / 1e6)
    << ", \"p50\": " << ns_to_ms(t.latency.percentile(50))
    << ", \"p90\": " << ns_to_ms(t.latency.percentile(90))
    << ", \"p99\": " << ns_to_ms(t.latency.percentile(99))
    << ", \"p99_9\": " << ns_to_ms(t.latency.percentile(99.9))
    << ", \"max\": " << ns_to_ms(t.latency.max()) << "}";
  return s.str();
}

std::string json_schedule(const class_state& c, double capacity) {
  if (c.segments.empty()) return "null";
  std::ostringstream s;
  s << "{\n        \"spec\": " << json_string(c.opt.schedule_spec) << ",\n        \"segments\": [";
  double offset = 0;
  const char* sep = "";
  for (std::size_t i = 0; i < c.segments.size(); ++i) {
    const segment& seg = c.opt.schedule[i];
    const std::string in = "\n            ";
    s << sep << "\n          {" << in << "\"segment\": " << i + 1 << "," << in
      << "\"rate\": " << json_number(seg.rate) << "," << in
      << "\"start_s\": " << json_number(offset) << "," << in
      << "\"duration_s\": " << json_number(seg.seconds) << "," << in
      << "\"offered_share_of_capacity\": "
      << (capacity > 0 ? json_number(seg.rate / capacity) : "null") << ","
      << json_tally(c.segments[i], seg.seconds, capacity, in) << "\n          }";
    offset += seg.seconds;
    sep = ",";
  }
  const recovery r = compute_recovery(c.successes, c.opt.schedule, recovery_window);
  s << "\n        ],\n        \"recovery\": {\"window_ms\": " << recovery_window.count()
    << ", \"peak_segment\": " << r.peak + 1
    << ", \"baseline_p99_ms\": " << (r.baseline_p99 ? ns_to_ms(*r.baseline_p99) : "null")
    << ", \"threshold_ms\": " << (r.baseline_p99 ? ns_to_ms(2 * *r.baseline_p99) : "null")
    << ", \"windows\": " << r.windows << ", \"recovered\": " << (r.seconds ? "true" : "false")
    << ", \"recovery_s\": " << (r.seconds ? json_number(*r.seconds) : "null") << "}\n      }";
  return s.str();
}

std::string json_class(const run_state& run, const class_state& c) {
  const double window_s = window_seconds(run, c);
  const std::string in = "\n      ";
  std::ostringstream s;
  s << "{" << in << "\"path\": " << json_string(c.opt.path) << "," << in
    << "\"mode\": " << json_string(c.open_loop() ? "open-loop" : "closed-loop") << "," << in
    << "\"connections\": " << c.opt.connections << "," << in
    << "\"rate\": " << (c.open_loop() && c.segments.empty() ? json_number(c.opt.rate) : "null")
    << "," << in
    << "\"deadline_ms\": " << (c.deadline.count() > 0 ? std::to_string(c.deadline.count()) : "null")
    << "," << in << "\"measured_s\": " << json_number(window_s) << ","
    << json_tally(c.total, window_s, run.opt.capacity, in) << "," << in << "\"first_errors\": {";
  const char* sep = "";
  for (const auto& [kind, message] : c.first_error) {
    s << sep << json_string(kind) << ": " << json_string(message);
    sep = ", ";
  }
  s << "}," << in << "\"connects\": " << c.total.connects << "," << in
    << "\"stale_retries\": " << c.total.stale_retries << "," << in << "\"percentiles_ms\": [";
  sep = "";
  for (double q : curve_percentiles) {
    s << sep << "[" << json_number(q) << ", " << ns_to_ms(c.total.latency.percentile(q)) << "]";
    sep = ", ";
  }
  s << "]," << in << "\"schedule\": " << json_schedule(c, run.opt.capacity) << "\n    }";
  return s.str();
}

bool write_json(const run_state& run) {
  std::ostringstream s;
  s << "{\n  \"tool\": \"ferry_loadgen\",\n  \"host\": " << json_string(run.opt.host)
    << ",\n  \"port\": " << run.opt.port << ",\n  \"warmup_s\": " << json_number(run.opt.warmup_s)
    << ",\n  \"duration_s\": " << json_number(run.opt.duration_s) << ",\n  \"measured_s\": "
    << json_number(std::chrono::duration<double>(run.measure_end - run.measure_begin).count())
    << ",\n  \"timeout_ms\": " << run.opt.timeout.count()
    << ",\n  \"deadline_ms\": " << run.opt.deadline.count()
    << ",\n  \"capacity_rps\": " << (run.opt.capacity > 0 ? json_number(run.opt.capacity) : "null")
    << ",\n  \"cores\": " << cores() << ",\n  \"classes\": {";
  const char* sep = "";
  for (const class_state* c : {&run.heavy, &run.light}) {
    if (!c->active()) continue;
    s << sep << "\n    " << json_string(c->name) << ": " << json_class(run, *c);
    sep = ",";
  }
  s << "\n  },\n  \"server_cpu\": " << json_cpu(run.server_cpu)
    << ",\n  \"loadgen_cpu\": " << json_cpu(run.own_cpu) << ",\n  \"machine_cpu\": ";
  if (const auto others = others_percent(run)) {
    s << "{\"percent_busy\": " << json_number(run.machine.busy_percent())
      << ", \"others_percent\": " << json_number(*others) << "}";
  } else {
    s << "null";
  }
  s << "\n}\n";
  std::ofstream out(run.opt.json_path);
  out << s.str();
  out.close();
  if (!out) {
    std::fprintf(stderr, "ferry_loadgen: cannot write %s\n", run.opt.json_path.c_str());
    return false;
  }
  return true;
}

// ---- main ------------------------------------------------------------------------------------

task<int> main_task(options opt, std::vector<tcp::endpoint> endpoints) {
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  run_state run;
  run.opt = opt;
  run.endpoints = std::move(endpoints);
  run.host_header = opt.host + ":" + std::to_string(opt.port);
  run.heavy.name = "heavy";
  run.heavy.opt = opt.heavy;
  run.light.name = "light";
  run.light.opt = opt.light;
  if (opt.server_pid != 0) run.server_cpu.pid = std::to_string(opt.server_pid);
  run.own_cpu.pid = "self";

  run.start = clock_type::now();
  run.measure_begin = run.start + seconds_to_duration(opt.warmup_s);
  run.measure_end = run.measure_begin;
  for (class_state* c : {&run.heavy, &run.light}) {
    const bool scheduled = !c->opt.schedule.empty();
    c->measure_end =
        run.measure_begin +
        seconds_to_duration(scheduled ? schedule_seconds(c->opt.schedule) : opt.duration_s);
    if (c->open_loop()) c->deadline = opt.deadline;
    if (scheduled) c->segments.resize(c->opt.schedule.size());
    if (c->active()) run.measure_end = std::max(run.measure_end, c->measure_end);
  }
  run.drain_deadline = run.measure_end + opt.timeout;

  ferry::queue<due_request> heavy_due(ferry::queue<due_request>::unbounded);
  ferry::queue<due_request> light_due(ferry::queue<due_request>::unbounded);
  try {
    ferry::task_group group(ex);
    for (auto [c, due] : {std::pair{&run.heavy, &heavy_due}, std::pair{&run.light, &light_due}}) {
      if (!c->active()) continue;
      if (c->open_loop()) group.spawn(schedule(run, *c, *due));
      for (std::size_t i = 0; i < c->opt.connections; ++i) {
        if (c->open_loop()) {
          group.spawn(open_loop(run, *c, *due));
        } else {
          group.spawn(closed_loop(run, *c));
        }
      }
    }
    group.spawn(progress(run));
    group.spawn(sample_cpu(run));
    co_await group.join();
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::operation_aborted) throw;
    std::fprintf(stderr, "ferry_loadgen: interrupted\n");
    co_return 130;
  }

  print_report(run);
  if (!opt.json_path.empty() && !write_json(run)) co_return 1;
  co_return 0;
}

}  // namespace
}  // namespace ferry::loadgen

int main(int argc, char** argv) {
  using namespace ferry::loadgen;
  const options opt = parse_options(argc, argv);
  if (opt.self_test) return run_self_test();
  if (!opt.heavy.connections && !opt.light.connections) {
    usage_error("nothing to do: both classes have 0 connections");
  }

  std::vector<tcp::endpoint> endpoints;
  try {
    boost::asio::io_context io;
    tcp::resolver resolver(io);
    for (const auto& entry : resolver.resolve(opt.host, std::to_string(opt.port))) {
      endpoints.push_back(entry.endpoint());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferry_loadgen: cannot resolve %s: %s\n", opt.host.c_str(), e.what());
    return 1;
  }

  try {
    ferry::runtime_options runtime;
    runtime.io_threads = 1;
    runtime.cpu_threads = 1;  // nothing is offloaded: the load generator only does I/O
    runtime.blocking_threads = 1;
    return ferry::run(main_task(opt, std::move(endpoints)), std::move(runtime));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferry_loadgen: %s\n", e.what());
    return 1;
  }
}
