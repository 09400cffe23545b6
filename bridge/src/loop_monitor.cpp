// ferry/bridge/src/loop_monitor.cpp — the lag probe and the watchdog (see loop_monitor.hpp).
#include "loop_monitor.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>

#include "ferry/core/detail/pool_access.hpp"
#include "ferry/core/detail/spin.hpp"

extern char** environ;

namespace ferry::detail {
namespace {

using detail::now_ns;

constexpr std::size_t recent_kept = 8;
constexpr std::size_t captures_per_minute = 5;
constexpr std::int64_t minute_ns = 60'000'000'000;

// --- the signal handler ---------------------------------------------------------------------

void on_capture_signal(int, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  auto* slot = static_cast<io_thread_slot*>(info->si_value.sival_ptr);
  if (info->si_code == SI_QUEUE && info->si_pid == ::getpid() && slot != nullptr) {
    void* frames[io_thread_slot::max_frames + 4];
    const int n = ::backtrace(frames, static_cast<int>(std::size(frames)));
    // Frames 0 and 1 are this handler and the kernel's signal trampoline; start at the
    // interrupted instruction.
    int first = std::min(2, n);
#if defined(__x86_64__)
    const auto* uc = static_cast<const ucontext_t*>(context);
    void* const pc = reinterpret_cast<void*>(uc->uc_mcontext.gregs[REG_RIP]);
    for (int i = 0; i < n; ++i) {
      if (frames[i] == pc) {
        first = i;
        break;
      }
    }
#else
    (void)context;
#endif
    int depth = 0;
    for (int i = first; i < n && depth < io_thread_slot::max_frames; ++i, ++depth) {
      slot->frames[depth].store(frames[i], std::memory_order_relaxed);
    }
    slot->depth.store(depth, std::memory_order_relaxed);
    slot->captured.store(slot->requested.load(std::memory_order_relaxed),
                         std::memory_order_release);
  }
  errno = saved_errno;
}

// Installs the handler once per process; false when the signal already had another one.
bool capture_installed() {
  static const bool installed = [] {
    // backtrace() loads libgcc_s on its first call (dlopen, malloc): do it here, not in the
    // handler.
    void* warm[4];
    (void)::backtrace(warm, 4);
    struct sigaction previous {};
    if (::sigaction(capture_signal(), nullptr, &previous) != 0) return false;
    if ((previous.sa_flags & SA_SIGINFO) == 0 && previous.sa_handler != SIG_DFL) return false;
    if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) return false;
    struct sigaction action {};
    action.sa_sigaction = &on_capture_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    return ::sigaction(capture_signal(), &action, nullptr) == 0;
  }();
  return installed;
}

// --- symbolization (watchdog thread) --------------------------------------------------------

std::string demangled(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d != nullptr ? d : name;
  std::free(d);
  return out;
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// `addr2line -f -C -e object offset...`: one line pair (function, file:line) per offset. Empty
// when addr2line is not installed or fails.
std::vector<std::pair<std::string, std::string>> addr2line(const std::string& object,
                                                           const std::vector<std::uintptr_t>& at) {
  std::vector<std::pair<std::string, std::string>> out;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return out;
  std::vector<std::string> args = {"addr2line", "-f", "-C", "-e", object};
  for (std::uintptr_t a : at) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%zx", static_cast<std::size_t>(a));
    args.emplace_back(hex);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, "addr2line", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return out;
  }
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      text.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return out;
  std::istringstream lines(text);
  std::string fn, loc;
  while (std::getline(lines, fn) && std::getline(lines, loc)) out.emplace_back(fn, loc);
  if (out.size() != at.size()) out.clear();
  return out;
}

bool system_object(const std::string& path) {
  return path.rfind("/lib", 0) == 0 || path.rfind("/usr/lib", 0) == 0;
}

// One line per frame: "#i function at file:line", else "#i function+0xoff (object)", else
// "#i 0xaddr (object+0xoff)".
std::string symbolize(const std::vector<void*>& frames) {
  struct frame_info {
    std::string name;
    std::string location;
    std::string object;
    std::uintptr_t offset = 0;  // in the object (for addr2line)
    std::uintptr_t from_symbol = 0;
  };
  std::vector<frame_info> info(frames.size());
  std::map<std::string, std::vector<std::size_t>> by_object;  // frames addr2line should see
  const std::string exe = self_exe();
  for (std::size_t i = 0; i < frames.size(); ++i) {
    // A return address points after the call: look up the call itself (frame 0 is the
    // interrupted instruction).
    const auto addr = reinterpret_cast<std::uintptr_t>(frames[i]) - (i == 0 ? 0 : 1);
    Dl_info dl{};
    link_map* map = nullptr;
    if (::dladdr1(
            reinterpret_cast<void*>(addr), &dl, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) ==
            0 ||
        map == nullptr) {
      continue;
    }
    frame_info& f = info[i];
    f.object = map->l_name != nullptr && map->l_name[0] != '\0' ? map->l_name : exe;
    f.offset = addr - map->l_addr;
    if (dl.dli_sname != nullptr) {
      f.name = demangled(dl.dli_sname);
      f.from_symbol = addr - reinterpret_cast<std::uintptr_t>(dl.dli_saddr);
    }
    if (!system_object(f.object)) by_object[f.object].push_back(i);
  }
  for (const auto& [object, indexes] : by_object) {
    std::vector<std::uintptr_t> offsets;
    for (std::size_t i : indexes) offsets.push_back(info[i].offset);
    const auto found = addr2line(object, offsets);
    for (std::size_t k = 0; k < found.size(); ++k) {
      frame_info& f = info[indexes[k]];
      if (found[k].first != "??" && !found[k].first.empty()) f.name = found[k].first;
      if (found[k].second.rfind("??", 0) != 0) f.location = found[k].second;
    }
  }
  std::string out;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const frame_info& f = info[i];
    // Below the coroutine machinery there is only the loop's own dispatching: cut there.
    if (i > 0 && (f.name.rfind("boost::asio::detail::awaitable_thread<", 0) == 0 ||
                  f.name.rfind("boost::asio::detail::scheduler::", 0) == 0 ||
                  f.name.rfind("ferry::detail::loop_monitor::io_thread_loop", 0) == 0)) {
      char more[64];
      std::snprintf(more, sizeof more, "(%zu more frames: the loop)\n", frames.size() - i);
      out += more;
      break;
    }
    char head[48];
    std::snprintf(head, sizeof head, "#%zu ", i);
    out += head;
    std::string name = f.name;
    if (name.size() > 240) name = name.substr(0, 237) + "...";
    char hex[64];
    if (!name.empty() && !f.location.empty()) {
      out += name + " at " + f.location;
    } else if (!name.empty()) {
      std::snprintf(hex, sizeof hex, "+0x%zx", static_cast<std::size_t>(f.from_symbol));
      out += name + hex + " (" + f.object + ")";
    } else {
      std::snprintf(hex, sizeof hex, "%p", frames[i]);
      out += hex;
      if (!f.object.empty()) {
        std::snprintf(hex, sizeof hex, "+0x%zx", static_cast<std::size_t>(f.offset));
        out += " (" + f.object + hex + ")";
      }
    }
    out += '\n';
  }
  if (!out.empty()) out.pop_back();
  return out;
}

// A parked io thread (in run_one) whose count has not moved is waiting for work when the
// kernel says it sleeps in futex or epoll_wait; anything else means the handler run_one
// started is stuck.
bool waiting_for_work(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/syscall", static_cast<int>(tid));
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) return true;  // cannot tell: do not accuse it
  long nr = -2;
  const int got = std::fscanf(f, "%ld", &nr);
  std::fclose(f);
  if (got != 1) return false;  // "running"
  return nr == SYS_futex || nr == SYS_epoll_wait || nr == SYS_epoll_pwait
#ifdef SYS_epoll_pwait2
         || nr == SYS_epoll_pwait2
#endif
      ;
}

void print_slow_callback(const slow_callback_report& r) {
  std::ostringstream who;
  if (r.thread == std::thread::id()) {
    who << "every io thread";
  } else {
    who << "io thread " << r.thread;
  }
  const double ms = std::chrono::duration<double, std::milli>(r.blocked_for).count();
  std::string where;
  if (!r.where.empty()) {
    // One frame per line, indented.
    where = ", stack:\n  ";
    for (char c : r.where) {
      where += c;
      if (c == '\n') where += "  ";
    }
  }
  std::fprintf(stderr,
               "ferry: slow callback: %s %s %.1f ms%s\n",
               who.str().c_str(),
               r.ongoing ? "has not returned to the loop for" : "was blocked for",
               ms,
               r.ongoing ? where.c_str() : "");
}

}  // namespace

int capture_signal() noexcept { return SIGRTMIN + 4; }

loop_monitor::loop_monitor(boost::asio::io_context& io,
                           const runtime_options& options,
                           cpu_pool* pool)
    : io_(io),
      timer_(io),
      interval_(options.lag_probe_interval),
      pool_(pool),
      threshold_ns_(std::chrono::nanoseconds(options.slow_callback_threshold).count()),
      per_thread_(options.io_threads > 1 && threshold_ns_ > 0) {
  report_ = options.on_slow_callback
                ? options.on_slow_callback
                : std::function<void(const slow_callback_report&)>(&print_slow_callback);
  for (std::size_t i = 0; i < options.io_threads; ++i) {
    slots_.push_back(std::make_unique<io_thread_slot>());
  }
  states_.resize(options.io_threads);
  if (threshold_ns_ > 0) (void)capture_installed();
  if (interval_.count() > 0) arm_lag_probe();
}

loop_monitor::~loop_monitor() { stop(); }

void loop_monitor::io_thread_loop(std::size_t index) {
  io_thread_slot& slot = *slots_.at(index);
  if (slot.tid.load(std::memory_order_relaxed) == 0) {
    slot.handle = ::pthread_self();
    slot.id = std::this_thread::get_id();
    slot.tid.store(static_cast<pid_t>(::syscall(SYS_gettid)), std::memory_order_release);
  }
  if (!per_thread_) {
    io_.run();
    return;
  }
  // Entered again after an exception escaped a handler of run_one: the thread is not parked.
  slot.parked.store(false, std::memory_order_relaxed);
  for (;;) {
    while (io_.poll_one() != 0) slot.handlers.fetch_add(1, std::memory_order_relaxed);
    if (io_.stopped()) return;
    slot.parked.store(true, std::memory_order_relaxed);
    const std::size_t ran = io_.run_one();
    slot.handlers.fetch_add(ran, std::memory_order_relaxed);
    slot.parked.store(false, std::memory_order_relaxed);
    if (ran == 0 && io_.stopped()) return;
  }
}

void loop_monitor::start_watchdog() {
  if (threshold_ns_ == 0) return;
  reporter_ = std::thread([this] { report_loop(); });
  try {
    watchdog_ = std::thread([this] { watch(); });
  } catch (...) {
    stop();
    throw;
  }
}

void loop_monitor::stop() {
  {
    detail::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  {
    detail::lock_guard lock(mutex_);
    reporter_stopping_ = true;  // after the watchdog: it makes no report any more
  }
  reporter_cv_.notify_all();
  if (reporter_.joinable()) reporter_.join();
}

void loop_monitor::fill(loop_stats& s) const {
  s.lag = lag_.snapshot();
  s.slow_callbacks = slow_callbacks_.load(std::memory_order_relaxed);
  s.longest_stall = std::chrono::nanoseconds(longest_stall_ns_.load(std::memory_order_relaxed));
}

std::vector<slow_callback_report> loop_monitor::recent() const {
  detail::lock_guard lock(mutex_);
  return {recent_.begin(), recent_.end()};
}

// --- lag probe: one timer, rearmed by its own handler (one writer of lag_ at a time) ---------

void loop_monitor::arm_lag_probe() {
  due_ = std::chrono::steady_clock::now() + interval_;
  timer_.expires_at(due_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    const auto lag = std::chrono::steady_clock::now() - due_;
    lag_.record(lag);
    if (pool_ != nullptr) detail::pool_access::note_loop_lag(*pool_, lag);
    arm_lag_probe();
  });
}

// --- watchdog --------------------------------------------------------------------------------

void loop_monitor::watch() {
  const auto tick = std::clamp(std::chrono::nanoseconds(threshold_ns_ / 4),
                               std::chrono::nanoseconds(std::chrono::milliseconds(1)),
                               std::chrono::nanoseconds(std::chrono::milliseconds(250)));
  detail::unique_lock lock(mutex_);
  const std::int64_t start = now_ns();
  for (auto& s : states_) s.progress_ns = start;
  while (!stopping_) {
    if (per_thread_) {
      watch_threads(lock, now_ns());
    } else {
      watch_loop(lock, now_ns());
    }
    cv_.wait_for(lock.native(), tick, [this]() FERRY_REQUIRES(mutex_) { return stopping_; });
  }
}

// One io thread: the probe. states_[0].progress_ns is when the outstanding probe was posted
// (0: none).
void loop_monitor::watch_loop(detail::unique_lock& lock, std::int64_t now) {
  watch_state& st = states_[0];
  io_thread_slot& slot = *slots_[0];
  if (slot.tid.load(std::memory_order_acquire) == 0) return;  // not started yet
  if (st.seen != 0) {  // a probe is outstanding, posted at st.progress_ns
    const std::int64_t ran = probe_ran_ns_.load(std::memory_order_acquire);
    if (ran != 0) {
      if (st.reported) report_stall_ended(0, ran - st.progress_ns);
      st = watch_state{};
    } else if (!st.reported && now - st.progress_ns > threshold_ns_) {
      st.reported = true;
      report_stall(0, st.progress_ns, lock);
    }
  }
  if (st.seen == 0 && !stopping_) {
    st.seen = 1;
    st.progress_ns = now_ns();
    probe_ran_ns_.store(0, std::memory_order_relaxed);
    boost::asio::post(io_, [this] { probe_ran_ns_.store(now_ns(), std::memory_order_release); });
  }
}

// Several io threads: each one's handler count.
void loop_monitor::watch_threads(detail::unique_lock& lock, std::int64_t now) {
  for (std::size_t i = 0; i < slots_.size() && !stopping_; ++i) {
    io_thread_slot& slot = *slots_[i];
    watch_state& st = states_[i];
    const pid_t tid = slot.tid.load(std::memory_order_acquire);
    if (tid == 0) {
      st.progress_ns = now;
      continue;
    }
    const std::uint64_t n = slot.handlers.load(std::memory_order_relaxed);
    if (n != st.seen) {
      if (st.reported) report_stall_ended(i, now - st.stall_start_ns);
      st = watch_state{};
      st.seen = n;
      st.progress_ns = now;
      continue;
    }
    if (st.reported || now - st.progress_ns <= threshold_ns_) continue;
    if (slot.parked.load(std::memory_order_relaxed)) {
      if (waiting_for_work(tid)) {
        st.progress_ns = now;  // idle: a stall can only start from here
        st.suspect = false;
        continue;
      }
      // Seen running: it may have just woken for a short handler. Stalled only if the next
      // tick still sees no progress.
      if (!st.suspect) {
        st.suspect = true;
        continue;
      }
    }
    st.reported = true;
    st.stall_start_ns = st.progress_ns;
    report_stall(i, st.stall_start_ns, lock);
  }
}

loop_monitor::captured_stack loop_monitor::capture(io_thread_slot& slot,
                                                   detail::unique_lock& lock) {
  captured_stack out;
  if (!capture_installed()) {
    out.note = "(no stack: the capture signal has another handler)";
    return out;
  }
  const std::int64_t now = now_ns();
  while (!captures_ns_.empty() && now - captures_ns_.front() > minute_ns) captures_ns_.pop_front();
  if (captures_ns_.size() >= captures_per_minute) {
    out.note = "(no stack: more than 5 captures in the last minute)";
    return out;
  }
  captures_ns_.push_back(now);
  const std::uint64_t request = slot.requested.load(std::memory_order_relaxed) + 1;
  slot.requested.store(request, std::memory_order_relaxed);
  sigval value{};
  value.sival_ptr = &slot;
  if (::pthread_sigqueue(slot.handle, capture_signal(), value) != 0) {
    out.note = "(no stack: the io thread could not be signalled)";
    return out;
  }
  lock.unlock();
  bool got = false;
  for (int i = 0; i < 1000 && !got; ++i) {  // up to ~200 ms: the handler is short
    got = slot.captured.load(std::memory_order_acquire) == request;
    if (!got) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (got) {
    const int depth = slot.depth.load(std::memory_order_relaxed);
    for (int i = 0; i < depth; ++i) {
      out.frames.push_back(slot.frames[i].load(std::memory_order_relaxed));
    }
  } else {
    out.note = "(no stack: the io thread did not answer the capture signal)";
  }
  lock.lock();
  return out;
}

// A stall of io thread `i` that began at `since_ns` and goes on: its stack, and the report.
void loop_monitor::report_stall(std::size_t i, std::int64_t since_ns, detail::unique_lock& lock) {
  io_thread_slot& slot = *slots_[i];
  captured_stack stack = capture(slot, lock);
  slow_callbacks_.fetch_add(1, std::memory_order_relaxed);  // after the capture
  slow_callback_report r;
  r.blocked_for = std::chrono::nanoseconds(now_ns() - since_ns);
  r.thread = slot.id;
  enqueue(std::move(r), i, std::move(stack));
}

// The reported stall of io thread `i` has ended after `stall_ns`.
void loop_monitor::report_stall_ended(std::size_t i, std::int64_t stall_ns) {
  if (stall_ns > longest_stall_ns_.load(std::memory_order_relaxed)) {
    longest_stall_ns_.store(stall_ns, std::memory_order_relaxed);
  }
  slow_callback_report r;
  r.blocked_for = std::chrono::nanoseconds(stall_ns);
  r.thread = slots_[i]->id;
  r.ongoing = false;
  enqueue(std::move(r), i, {});
}

void loop_monitor::enqueue(slow_callback_report r, std::size_t slot, captured_stack stack) {
  pending_.push_back(pending_report{std::move(r), slot, std::move(stack)});
  reporter_cv_.notify_one();
}

// The reporter thread: names the frames and calls on_slow_callback, so that neither slows the
// watchdog down. Delivers what is queued before it stops.
void loop_monitor::report_loop() {
  std::vector<std::string> last_where(slots_.size());
  detail::unique_lock lock(mutex_);
  for (;;) {
    reporter_cv_.wait(lock.native(), [this]() FERRY_REQUIRES(mutex_) {
      return reporter_stopping_ || !pending_.empty();
    });
    if (pending_.empty()) return;  // stopping, nothing left
    pending_report p = std::move(pending_.front());
    pending_.pop_front();
    lock.unlock();
    if (p.report.ongoing) {
      last_where[p.slot] = p.stack.note.empty() ? symbolize(p.stack.frames) : p.stack.note;
    }
    p.report.where = last_where[p.slot];
    lock.lock();
    if (!p.report.ongoing) {
      recent_.push_back(p.report);
      if (recent_.size() > recent_kept) recent_.pop_front();
    }
    lock.unlock();
    try {
      report_(p.report);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ferry: on_slow_callback threw: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "ferry: on_slow_callback threw\n");
    }
    lock.lock();
  }
}

}  // namespace ferry::detail
