// ferry/bridge/src/task_dump.cpp — runtime::dump_tasks: the tree of run's main, the task_groups
// and their children (see io/detail/task_registry.hpp for what is recorded).
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ferry/bridge/runtime.hpp"
#include "ferry/io/detail/task_registry.hpp"

namespace ferry {
namespace {

using detail::group_info;
using detail::task_info;
using detail::task_node;

struct tree {
  std::vector<group_info> groups;
  std::map<const task_node*, std::vector<std::size_t>> groups_of;  // task -> groups it made
  std::set<const void*> shown;
  std::int64_t now = 0;
  std::string out;

  std::string state(const task_info& t) const {
    if (!t.started) return "not started";
    if (t.waiting != nullptr) {
      char buf[128];
      const double ms = static_cast<double>(now - t.since_ns) / 1e6;
      std::snprintf(buf, sizeof buf, "suspended in %s for %.1f ms", t.waiting, ms < 0 ? 0 : ms);
      return buf;
    }
    return "running, or awaiting an operation ferry does not track";
  }

  void line(const std::string& prefix, bool last, const std::string& text) {
    out += prefix;
    out += last ? "└── " : "├── ";
    out += text;
    out += '\n';
  }

  static std::string child_prefix(const std::string& prefix, bool last) {
    return prefix + (last ? "    " : "│   ");
  }

  void task(const std::string& prefix, bool last, const task_info& t, const std::string& name) {
    line(prefix, last, name + ": " + state(t));
    auto it = groups_of.find(t.node);
    if (it == groups_of.end()) return;
    const std::string p = child_prefix(prefix, last);
    for (std::size_t k = 0; k < it->second.size(); ++k) {
      group(p, k + 1 == it->second.size(), it->second[k]);
    }
  }

  void group(const std::string& prefix, bool last, std::size_t index) {
    const group_info& g = groups[index];
    if (!shown.insert(g.id).second) return;  // a node address reused: never loop
    char head[96];
    std::snprintf(head,
                  sizeof head,
                  "task_group %p: %zu unfinished %s",
                  g.id,
                  g.children.size(),
                  g.children.size() == 1 ? "child" : "children");
    line(prefix, last, head);
    const std::string p = child_prefix(prefix, last);
    for (std::size_t k = 0; k < g.children.size(); ++k) {
      const task_info& c = g.children[k];
      task(p,
           k + 1 == g.children.size(),
           c,
           std::string("task spawned at ") + c.file + ":" + std::to_string(c.line));
    }
  }
};

}  // namespace

std::string runtime::dump_tasks() const {
  std::shared_ptr<run_state> run;
  {
    detail::lock_guard lock(run_mutex_);
    run = active_run_;
  }
  tree t;
  // The children of every group are copied under that group's lock; main is read while `run`
  // keeps its state alive.
  t.groups = detail::group_registry::instance().snapshot(
      {&io_, static_cast<const boost::asio::execution_context*>(cpu_.get())});
  t.now = task_node::now_ns();
  std::set<const task_node*> known;
  for (const auto& g : t.groups) {
    for (const auto& c : g.children) known.insert(c.node);
  }
  const task_node* main = run ? &run->main_task : nullptr;
  std::vector<std::size_t> orphans;
  for (std::size_t i = 0; i < t.groups.size(); ++i) {
    const task_node* parent = t.groups[i].parent;
    if (parent != nullptr && (parent == main || known.count(parent) != 0)) {
      t.groups_of[parent].push_back(i);
    } else {
      orphans.push_back(i);
    }
  }
  char head[96];
  std::snprintf(head,
                sizeof head,
                "runtime: %zu io thread%s, %zu task_group%s\n",
                options_.io_threads,
                options_.io_threads == 1 ? "" : "s",
                t.groups.size(),
                t.groups.size() == 1 ? "" : "s");
  t.out = head;
  const bool has_main = main != nullptr;
  if (has_main) t.task("", orphans.empty(), task_info::of(*main), "run main");
  for (std::size_t k = 0; k < orphans.size(); ++k) {
    t.group("", k + 1 == orphans.size(), orphans[k]);
  }
  return t.out;
}

}  // namespace ferry
