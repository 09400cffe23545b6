#!/usr/bin/python3
"""Turns the Google Benchmark JSON written by scripts/bench into docs/benchmarks.md and its charts.

Every figure is the median of the repetitions of one run (each repetition is one whole run of the
workload: one benchmark iteration), and ratios are taken against a baseline measured in the same
run (the naive TBB + Asio bridge; one OS thread per task for W4). The targets are those of
docs/workloads.md.

    /usr/bin/python3 scripts/bench_report.py --results build/release/bench-results --out docs \\
        --build-dir build/release --command "scripts/bench" --repetitions 3 --measure-seconds 120

Needs Debian's python3-matplotlib (the Agg backend: no display).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

# Contenders of offload_bench, in table order, with the words the report uses for them.
OFFLOAD_CONTENDERS = [
    ("Ferry", "ferry (`ferry::offload`), coroutines on the bare io_context"),
    ("FerryStrand", "ferry from task_group children, each on its own strand"),
    ("FerryStrandIo2", "ferry from task_group children on strands, `io_threads = 2`"),
    ("NaiveBridge", "naive bridge (`task_arena::enqueue` + `asio::post`, arena sized)"),
    ("AsioThreadPool", "`asio::thread_pool` hop"),
    ("StdAsync", "`std::async` + `asio::post` back"),
    ("TaskGroup", "raw `tbb::task_group` (ceiling: no loop)"),
]
SHORT = {
    "Ferry": "ferry",
    "FerryStrand": "ferry\n(strands)",
    "FerryStrandIo2": "ferry\n(strands, 2 io)",
    "NaiveBridge": "naive bridge",
    "AsioThreadPool": "asio::thread_pool",
    "StdAsync": "std::async",
    "TaskGroup": "tbb::task_group\n(ceiling)",
}
FAN_OUT = [
    ("Coroutines", "coroutines: `ferry::run`, `ferry::sleep(100ms)`"),
    ("CoroutinesSteadyTimer", "coroutines: `ferry::run`, own `asio::steady_timer`"),
    ("Threads", "one OS thread per task, default stack"),
    ("Threads64KiB", "one OS thread per task, 64 KiB stack"),
    ("EmptyChild", "empty child process (floor: this binary and its libraries)"),
]
LOOP_LAG = [
    ("Inline", "inline on the loop"),
    ("Offload", "`ferry::offload` (2 pool threads)"),
    ("Threads", "one `std::thread` per job"),
]
IDLE = [
    ("Constructed", "`ferry::runtime rt;` constructed, main thread sleeping"),
    ("SleepingMain", "`ferry::run(main)`, main sleeping after 1,000 offloads"),
]


class Target:
    """A target of docs/workloads.md, stated once: the report's targets table and the charts'
    target lines both come from it. `label` holds `{bound}`, which becomes e.g. "≤ 1 µs"."""

    def __init__(self, label, op=None, value=None, unit=""):
        self.label_template, self.op, self.value, self.unit = label, op, value, unit

    @property
    def bound(self):
        """The comparison, the value and its unit: "≤ 1 µs", "≥ 1.5M ops/s", "≤ 3×"."""
        shown = f"{self.value / 1e6:g}M" if self.value >= 1e6 else f"{self.value:g}"
        return f"{'≤' if self.op == '<=' else '≥'} {shown}{self.unit}"

    @property
    def label(self):
        return self.label_template.format(bound=self.bound) if self.op else self.label_template

    def met(self, measured):
        return measured <= self.value if self.op == "<=" else measured >= self.value


TARGETS = {
    "w1_p50": Target("W1 p50 {bound}", "<=", 1, " µs"),
    "w1_p99": Target("W1 p99 {bound}", "<=", 2, " µs"),
    "w1_strand_p50": Target("W1 from a task_group child: p50 {bound} bare", "<=", 3, "×"),
    "w1_strand_p99": Target("W1 from a task_group child: p99 {bound}", "<=", 2, " µs"),
    "w2_ops": Target("W2 {bound} with 1 µs of work", ">=", 1.5e6, " ops/s"),
    "w2_vs_ceiling": Target("W2 {bound} the raw tbb::task_group", ">=", 0.8, "×"),
    "w2_strand": Target("W2 from 1,024 strands {bound} bare", ">=", 0.9, "×"),
    "w3_efficiency": Target("W3 efficiency {bound}", ">=", 0.97),
    "w4_wall": Target("W4 wall {bound}", "<=", 105, " ms"),
    "w4_rss": Target("W4 peak RSS {bound}", "<=", 8, " MB"),
    # Measured by scripts/demo, not by scripts/bench.
    "w5": Target("W5 light-request p99 ≤ 1 ms, heavy throughput ≥ 95%"),
    "idle": Target("idle cost {bound} of one core", "<=", 1, "%"),
}


# --- reading ---------------------------------------------------------------------------------


class Suite:
    """One JSON file: its context and, per benchmark name, the list of its repetitions."""

    def __init__(self, path):
        data = json.loads(Path(path).read_text())
        # The share of the machine's CPU that other processes used during the suite, written by
        # scripts/bench next to the JSON (None when absent).
        others = Path(path).with_suffix(".others")
        self.others_pct = float(others.read_text()) if others.exists() else None
        self.context = data.get("context", {})
        self.runs = {}    # "BM_Offload_RoundTrip_Ferry" -> [dict per repetition]
        self.errors = {}  # name -> error message
        for b in data.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration":
                continue
            name = b["name"].split("/")[0]
            if b.get("error_occurred"):
                self.errors[name] = b.get("error_message", "error")
                continue
            self.runs.setdefault(name, []).append(b)

    def median(self, name, counter):
        values = [r[counter] for r in self.runs.get(name, []) if counter in r]
        return statistics.median(values) if values else None

    def spread(self, name, counter):
        values = [r[counter] for r in self.runs.get(name, []) if counter in r]
        return (min(values), max(values)) if values else None

    def count(self, name):
        return len(self.runs.get(name, []))


def load_suites(results):
    suites = {}
    for name in ("w1", "w2", "w3", "w4", "loop_lag", "idle"):
        path = Path(results) / f"{name}.json"
        if path.exists():
            suites[name] = Suite(path)
    return suites


# --- formatting ------------------------------------------------------------------------------


def fmt(value, digits=3):
    """A number with `digits` significant digits, thousands separated; an em dash when absent."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10 ** digits:
        return f"{value:,.0f}"
    decimals = max(0, digits - 1 - int(f"{magnitude:e}".split("e")[1]))
    return f"{value:,.{decimals}f}"


def fmt_count(value):
    return "—" if value is None else f"{round(value):,}"


def fmt_rate(value):
    if value is None:
        return "—"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    return f"{value / 1e3:.0f}k"


def ratio(value, base):
    if value is None or base in (None, 0):
        return "—"
    return f"{value / base:.2f}×"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def failed(suite, name):
    message = suite.errors.get(name) if suite else None
    return f"failed: {message}" if message else None


# --- the machine -----------------------------------------------------------------------------


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def compiler(build_dir):
    cache = Path(build_dir) / "CMakeCache.txt"
    path = None
    build_type = None
    flags = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            if line.startswith("CMAKE_CXX_COMPILER:"):
                path = line.split("=", 1)[1]
            elif line.startswith("CMAKE_BUILD_TYPE:"):
                build_type = line.split("=", 1)[1]
            elif line.startswith("CMAKE_CXX_FLAGS_RELEASE:"):
                flags["Release"] = line.split("=", 1)[1]
    version = "unknown"
    if path:
        try:
            version = subprocess.run([path, "--version"], capture_output=True, text=True,
                                     check=True).stdout.splitlines()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            version = path
    return version, build_type, flags.get(build_type or "", "")


def git_revision():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        # What the binaries are built from: the library, its headers, the benchmarks, the build.
        sources = ["core", "io", "bridge", "include", "bench", "cmake", "CMakeLists.txt"]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--"]
                               + sources, capture_output=True, text=True, check=True).stdout
        changed = sorted({line[3:].split("/")[0] for line in dirty.splitlines() if line})
        if changed:
            return f"{head}, with uncommitted changes in {', '.join(changed)}"
        return f"{head} (library and benchmark sources as committed)"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --- charts ------------------------------------------------------------------------------------


def bar_labels(ax, bars, texts):
    for bar, text in zip(bars, texts):
        if text:
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=8)


def grouped_bars(ax, labels, series, width=0.38):
    """series: [(legend, values, colour)]; None values are left out. Returns the bar containers."""
    containers = []
    offsets = [(i - (len(series) - 1) / 2) * width for i in range(len(series))]
    for (legend, values, colour), offset in zip(series, offsets):
        xs = [i + offset for i, v in enumerate(values) if v is not None]
        ys = [v for v in values if v is not None]
        containers.append((ax.bar(xs, ys, width, label=legend, color=colour), ys))
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return containers


def save_chart(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def finish_log_chart(fig, ax, path, ylabel, title):
    """Log-scale y axis, labels and legend, then saves the chart to `path`."""
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    save_chart(fig, path)


def chart_w1(suite, path):
    names = [c for c, _ in OFFLOAD_CONTENDERS if f"BM_Offload_RoundTrip_{c}" in suite.runs]
    p50 = [suite.median(f"BM_Offload_RoundTrip_{c}", "p50_us") for c in names]
    p99 = [suite.median(f"BM_Offload_RoundTrip_{c}", "p99_us") for c in names]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for bars, ys in grouped_bars(ax, [SHORT[c] for c in names],
                                 [("p50", p50, "#4c72b0"), ("p99", p99, "#dd8452")]):
        bar_labels(ax, bars, [fmt(y) for y in ys])
    for key, colour, what in (("w1_p50", "#4c72b0", "p50"), ("w1_p99", "#dd8452", "p99")):
        t = TARGETS[key]
        ax.axhline(t.value, color=colour, ls="--", lw=1, label=f"target {what} {t.bound}")
    finish_log_chart(fig, ax, path, "round trip, µs (log scale; lower is better)",
                     "W1 offload round trip (median of runs)")


def chart_w2(suite, path):
    names = [c for c, _ in OFFLOAD_CONTENDERS
             if f"BM_Offload_Throughput1us_{c}" in suite.runs
             or f"BM_Offload_Throughput0us_{c}" in suite.runs]
    one = [suite.median(f"BM_Offload_Throughput1us_{c}", "ops_per_s") for c in names]
    zero = [suite.median(f"BM_Offload_Throughput0us_{c}", "ops_per_s") for c in names]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for bars, ys in grouped_bars(ax, [SHORT[c] for c in names],
                                 [("~1 µs of work", one, "#4c72b0"),
                                  ("no work", zero, "#55a868")]):
        bar_labels(ax, bars, [fmt_rate(y) for y in ys])
    t = TARGETS["w2_ops"]
    ax.axhline(t.value, color="#4c72b0", ls="--", lw=1, label=f"target {t.bound} (1 µs)")
    finish_log_chart(fig, ax, path, "offloads per second (log scale; higher is better)",
                     "W2 offload throughput, ≤ 1,024 in flight (median of runs)")


def chart_w4(suite, path):
    names = [c for c, _ in FAN_OUT if f"BM_FanOut_{c}" in suite.runs and c != "EmptyChild"]
    labels = {"Coroutines": "coroutines\nferry::sleep", "CoroutinesSteadyTimer":
              "coroutines\nsteady_timer", "Threads": "threads\n8 MiB stack",
              "Threads64KiB": "threads\n64 KiB stack"}
    wall = [suite.median(f"BM_FanOut_{c}", "wall_ms") for c in names]
    rss = [suite.median(f"BM_FanOut_{c}", "peak_rss_mb") for c in names]
    floor = suite.median("BM_FanOut_EmptyChild", "peak_rss_mb")
    colours = ["#4c72b0" if c.startswith("Coroutines") else "#c44e52" for c in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, values, target, title in (
            (left, wall, TARGETS["w4_wall"], "wall time, ms (lower is better)"),
            (right, rss, TARGETS["w4_rss"], "peak RSS, MB (lower is better)")):
        bars = ax.bar(range(len(names)), [v or 0 for v in values], 0.6, color=colours)
        bar_labels(ax, bars, [fmt(v) for v in values])
        ax.axhline(target.value, color="black", ls="--", lw=1, label=f"ferry target {target.bound}")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([labels.get(c, c) for c in names], fontsize=9)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    if floor is not None:
        right.axhline(floor, color="grey", ls=":", lw=1.5,
                      label=f"empty child process: {fmt(floor)} MB")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.suptitle("W4: 10,000 tasks each waiting 100 ms (median of runs)")
    save_chart(fig, path)


def chart_loop_lag(suite, path):
    names = [c for c, _ in LOOP_LAG if f"BM_LoopLag_{c}" in suite.runs]
    labels = {"Inline": "inline\non the loop", "Offload": "ferry::offload",
              "Threads": "std::thread\nper job"}
    p99 = [suite.median(f"BM_LoopLag_{c}", "lag_p99_ms") for c in names]
    worst = [suite.median(f"BM_LoopLag_{c}", "lag_max_ms") for c in names]
    wall = [suite.median(f"BM_LoopLag_{c}", "wall_ms") for c in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5),
                                      gridspec_kw={"width_ratios": [3, 2]})
    for bars, ys in grouped_bars(left, [labels[c] for c in names],
                                 [("p99", p99, "#dd8452"), ("max", worst, "#c44e52")]):
        bar_labels(left, bars, [fmt(y) for y in ys])
    left.set_yscale("log")
    left.set_ylabel("how late a 1 ms tick fired, ms (log scale)")
    left.set_title("loop lag while the jobs run (lower is better)", fontsize=10)
    left.legend(fontsize=8)
    bars = right.bar(range(len(names)), [w or 0 for w in wall], 0.6, color="#8172b2")
    bar_labels(right, bars, [fmt(w) for w in wall])
    right.set_xticks(range(len(names)))
    right.set_xticklabels([labels[c] for c in names], fontsize=9)
    right.set_title("wall time of the 32 jobs, ms", fontsize=10)
    right.grid(axis="y", alpha=0.3)
    right.set_axisbelow(True)
    fig.suptitle("32 jobs × 10 ms of CPU work on a 1-I/O-thread runtime (median of runs)")
    save_chart(fig, path)


# --- the report --------------------------------------------------------------------------------


def target_rows(s):
    """(target, ferry's median, met?) for every target of docs/workloads.md."""
    rows = []

    def add(key, value, text):
        target = TARGETS[key]
        verdict = "—" if value is None else ("met" if target.met(value) else "**missed**")
        rows.append([target.label, text if value is not None else "not measured", verdict])

    w1, w2, w3, w4, idle = (s.get(k) for k in ("w1", "w2", "w3", "w4", "idle"))
    p50 = w1.median("BM_Offload_RoundTrip_Ferry", "p50_us") if w1 else None
    p99 = w1.median("BM_Offload_RoundTrip_Ferry", "p99_us") if w1 else None
    add("w1_p50", p50, f"{fmt(p50)} µs")
    add("w1_p99", p99, f"{fmt(p99)} µs")
    sp50 = w1.median("BM_Offload_RoundTrip_FerryStrand", "p50_us") if w1 else None
    sp99 = w1.median("BM_Offload_RoundTrip_FerryStrand", "p99_us") if w1 else None
    ratio = sp50 / p50 if sp50 is not None and p50 else None
    add("w1_strand_p50", ratio,
        f"{fmt(sp50)} µs = {fmt(ratio)}× bare" if ratio is not None else "")
    add("w1_strand_p99", sp99, f"{fmt(sp99)} µs")
    ops = w2.median("BM_Offload_Throughput1us_Ferry", "ops_per_s") if w2 else None
    add("w2_ops", ops, f"{fmt_rate(ops)} ops/s")
    ceiling = w2.median("BM_Offload_Throughput1us_TaskGroup", "ops_per_s") if w2 else None
    vs_ceiling = ops / ceiling if ops is not None and ceiling else None
    add("w2_vs_ceiling", vs_ceiling,
        f"{fmt(vs_ceiling)}× ({fmt_rate(ceiling)} ops/s)" if vs_ceiling is not None else "")
    sops = w2.median("BM_Offload_Throughput1us_FerryStrand", "ops_per_s") if w2 else None
    vs_bare = sops / ops if sops is not None and ops else None
    add("w2_strand", vs_bare,
        f"{fmt_rate(sops)} ops/s = {fmt(vs_bare)}× bare" if vs_bare is not None else "")
    eff = w3.median("BM_Offload_Parallel_Ferry", "efficiency") if w3 else None
    add("w3_efficiency", eff, fmt(eff, 4))
    wall = w4.median("BM_FanOut_Coroutines", "wall_ms") if w4 else None
    rss = w4.median("BM_FanOut_Coroutines", "peak_rss_mb") if w4 else None
    add("w4_wall", wall, f"{fmt(wall)} ms")
    add("w4_rss", rss, f"{fmt(rss)} MB")
    rows.append([TARGETS["w5"].label, "not measured by scripts/bench", "—"])
    if idle:
        values = [idle.median(f"BM_Idle_{c}", "cpu_pct_of_core") for c, _ in IDLE]
        present = [v for v in values if v is not None]
        worst = max(present) if present else None
        add("idle", worst,
            " / ".join(f"{fmt(v)}%" for v in values) + " (constructed / sleeping main)")
    else:
        add("idle", None, "")
    return rows


def medians(suite, name, *counters):
    """The formatted median of each of `counters` over the runs of `name`."""
    return [fmt(suite.median(name, counter)) for counter in counters]


def ran(rows, suite, prefix, contenders, width):
    """(c, name, label) of each contender whose benchmark `prefix + c` ran; one that failed gets a
    row of `width` cells in `rows` saying so instead."""
    for c, label in contenders:
        name = f"{prefix}{c}"
        if failed(suite, name):
            rows.append([label, failed(suite, name)] + [""] * (width - 2))
        elif name in suite.runs:
            yield c, name, label


def offload_section_w1(w1):
    base = "BM_Offload_RoundTrip_NaiveBridge"
    b50, b99 = w1.median(base, "p50_us"), w1.median(base, "p99_us")
    rows = []
    for c, name, label in ran(rows, w1, "BM_Offload_RoundTrip_", OFFLOAD_CONTENDERS, 7):
        p50, p99 = w1.median(name, "p50_us"), w1.median(name, "p99_us")
        lo, hi = w1.spread(name, "p50_us")
        rows.append([label, fmt(p50), fmt(p99), fmt(w1.median(name, "mean_us")),
                     f"{fmt(lo)}–{fmt(hi)}", ratio(p50, b50), ratio(p99, b99)])
    n = w1.median("BM_Offload_RoundTrip_Ferry", "n") or w1.median(base, "n")
    return ("One coroutine on the I/O thread offloads `return v;` and awaits it, "
            f"{fmt_count(n)} times after 1,000 warm-up calls; every resumption is checked to be "
            "on the I/O thread with the right value. Ratio = contender ÷ naive bridge (below 1 "
            "is faster).\n\n"
            + table(["contender", "p50 µs", "p99 µs", "mean µs", "p50 range over runs",
                     "p50 vs naive", "p99 vs naive"], rows)
            + "\n\n![W1 round trip](img/w1_round_trip.png)\n")


def offload_section_w2(w2):
    rows = []
    bases = {w: w2.median(f"BM_Offload_Throughput{w}_NaiveBridge", "ops_per_s")
             for w in ("1us", "0us")}
    for c, label in OFFLOAD_CONTENDERS:
        cells = [label]
        present = False
        for w in ("1us", "0us"):
            name = f"BM_Offload_Throughput{w}_{c}"
            if failed(w2, name):
                cells += [failed(w2, name), "", ""]
                present = True
                continue
            ops = w2.median(name, "ops_per_s")
            present = present or ops is not None
            spread = w2.spread(name, "ops_per_s")
            cells += [fmt_rate(ops),
                      f"{fmt_rate(spread[0])}–{fmt_rate(spread[1])}" if spread else "—",
                      ratio(ops, bases[w])]
        n = w2.median(f"BM_Offload_Throughput1us_{c}", "n")
        cells.append(fmt_count(n))
        if present:
            rows.append(cells)
    return ("1,024 coroutines share the offloads, each offloading its share in sequence (at most "
            "1,024 in flight); each offload runs ~1 µs of xorshift work, or none. `std::async` "
            "runs a tenth of n (one thread per offload); the `tbb::task_group` ceiling runs "
            "1,024 chains of tasks with no loop and no hand-back. Ratio = contender ÷ naive "
            "bridge (above 1 is faster).\n\n"
            + table(["contender", "ops/s, 1 µs", "range", "vs naive", "ops/s, no work", "range",
                     "vs naive", "n"], rows)
            + "\n\n![W2 throughput](img/w2_throughput.png)\n")


def offload_section_w3(w3):
    base = w3.median("BM_Offload_Parallel_NaiveBridge", "efficiency")
    rows = []
    for c, name, label in ran(rows, w3, "BM_Offload_Parallel_", OFFLOAD_CONTENDERS, 5):
        eff = w3.median(name, "efficiency")
        lo, hi = w3.spread(name, "efficiency")
        rows.append([label, fmt(eff, 4), f"{fmt(lo, 4)}–{fmt(hi, 4)}",
                     fmt(w3.median(name, "wall_ms")), ratio(eff, base)])
    cores = w3.median("BM_Offload_Parallel_Ferry", "cores") or w3.median(
        "BM_Offload_Parallel_NaiveBridge", "cores")
    ideal = w3.median("BM_Offload_Parallel_Ferry", "ideal_ms") or w3.median(
        "BM_Offload_Parallel_NaiveBridge", "ideal_ms")
    return (f"64 jobs of 10 ms of work, all offloaded at once, then awaited. Efficiency = ideal "
            f"({fmt(ideal)} ms = 64 × 10 ms / {fmt_count(cores)} cores) ÷ wall. The job length "
            "comes from the calibration (the fastest of 31 short runs), so a job under load takes "
            "a little longer and even the ceiling stays under 1.\n\n"
            + table(["contender", "efficiency", "range", "wall ms", "vs naive"], rows) + "\n")


def fan_out_section(w4):
    base_wall = w4.median("BM_FanOut_Threads", "wall_ms")
    base_rss = w4.median("BM_FanOut_Threads", "peak_rss_mb")
    rows = []
    for c, name, label in ran(rows, w4, "BM_FanOut_", FAN_OUT, 7):
        wall = w4.median(name, "wall_ms")
        rss = w4.median(name, "peak_rss_mb")
        empty = c == "EmptyChild"
        rows.append([label, "—" if empty else fmt(wall), fmt(rss),
                     fmt(w4.median(name, "vm_hwm_mb")), fmt(w4.median(name, "vm_peak_mb")),
                     "—" if empty else ratio(wall, base_wall), ratio(rss, base_rss)])
    stack = w4.median("BM_FanOut_Threads", "stack_kib")
    stack_text = f" ({fmt(stack / 1024)} MiB here: RLIMIT_STACK)" if stack else ""
    return ("10,000 tasks started at once, each waits 100 ms, then adds its index to a sum (the "
            "sum is checked). Each variant runs in a fresh child process (the benchmark binary "
            "re-executed); wall time is measured by the child from the first task started to "
            "the last finished. Peak RSS is the child's `ru_maxrss` from `wait4`; Linux folds "
            "into it the RSS the parent had when it forked, so the parent forks these children "
            "first, and the child's own high-water mark (`VmHWM`) is shown beside it. `VmPeak` "
            f"is the peak virtual size, where the default thread stack{stack_text} shows. MB = "
            "10⁶ bytes. Ratio = variant ÷ one thread per task (default stack).\n\n"
            + table(["variant", "wall ms", "peak RSS MB (ru_maxrss)", "own VmHWM MB",
                     "VmPeak MB", "wall vs threads", "RSS vs threads"], rows)
            + "\n\n![W4 threads vs coroutines](img/w4_threads_vs_async.png)\n")


def loop_lag_section(lag):
    rows = []
    for c, name, label in ran(rows, lag, "BM_LoopLag_", LOOP_LAG, 6):
        rows.append([label,
                     *medians(lag, name, "wall_ms", "lag_p50_ms", "lag_p99_ms", "lag_max_ms"),
                     fmt_count(lag.median(name, "ticks"))])
    return ("A runtime with one I/O thread and 2 pool threads; a ticker coroutine on the loop "
            "waits 1 ms on a timer, records how late it resumed, and repeats. Meanwhile 32 jobs "
            "of 10 ms of CPU work, started at once, run inline on the loop, through "
            "`ferry::offload`, or on one `std::thread` each (which posts its result back). Lag "
            "figures cover the ticks that fired while the jobs ran (ticks = how many did: a "
            "blocked loop fires few).\n\n"
            + table(["CPU work runs", "wall ms", "lag p50 ms", "lag p99 ms", "lag max ms",
                     "ticks"], rows)
            + "\n\n![loop lag](img/loop_lag.png)\n")


def idle_section(idle):
    rows = []
    for c, name, label in ran(rows, idle, "BM_Idle_", IDLE, 5):
        rows.append([label, *medians(idle, name, "cpu_pct_of_core", "cpu_ms", "wall_ms",
                                     "peak_rss_mb")])
    return ("A runtime with default options and nothing to do, in a fresh child process: the "
            "CPU time of the whole process (`CLOCK_PROCESS_CPUTIME_ID`) over the idle window, "
            "as a share of one core.\n\n"
            + table(["runtime", "CPU % of one core", "CPU ms", "window ms", "peak RSS MB"], rows)
            + "\n")


def calibration_rows(suites):
    rows = []
    for key, title in (("w1", "offload_bench (W1)"), ("w2", "offload_bench (W2)"),
                       ("w3", "offload_bench (W3)"), ("w4", "threads_vs_async_bench (W4)"),
                       ("loop_lag", "threads_vs_async_bench (loop lag)"),
                       ("idle", "threads_vs_async_bench (idle)")):
        suite = suites.get(key)
        value = suite.context.get("xorshift_iterations_per_us") if suite else None
        if value is None:
            continue
        per_us = float(value)
        load = suite.context.get("load_avg", [])
        others = "—" if suite.others_pct is None else f"{suite.others_pct:.1f}%"
        rows.append([title, f"{per_us:.0f}", f"{per_us * 10_000:,.0f}", others,
                     " / ".join(f"{x:.2f}" for x in load) or "—"])
    return rows


def write_report(args, suites, img_dir):
    version, build_type, flags = compiler(args.build_dir)
    cores = len(os.sched_getaffinity(0))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    minutes = args.measure_seconds / 60
    parts = [
        "# ferry benchmarks",
        "",
        "Generated by `scripts/bench` (`scripts/bench_report.py` from Google Benchmark's JSON); "
        "do not edit by hand. The workloads are defined in docs/workloads.md; the sources are "
        "`bench/offload_bench.cpp` (W1–W3) and `bench/threads_vs_async_bench.cpp` (W4, loop "
        "lag, idle cost). Every baseline runs in the same binary and the same run as ferry. "
        f"Each figure is the **median of {args.repetitions} runs** (one run = one whole "
        "workload); \"range\" is the lowest and highest of those runs.",
        "",
        "ferry_server at 10,000 connections (offload and thread modes under h2load, RSS per idle "
        "connection): [benchmarks_server.md](benchmarks_server.md), written by "
        "`scripts/bench_server_connections`.",
        "",
        "## Machine and run",
        "",
        table(["", ""], [
            ["CPU", f"{cpu_model()}, {cores} cores available to the process"],
            ["kernel", f"{platform.system()} {platform.release()}"],
            ["compiler", f"{version}; CMake build type {build_type or '?'} (`{flags}`)"],
            ["ferry", git_revision()],
            ["date", date],
            ["command", f"`{args.command}`"],
            ["measurements took", f"{args.measure_seconds} s ({minutes:.1f} min), build excluded"],
        ]),
        "",
        "The machine may be shared: the calibration table below gives, for each suite, the share "
        "of the machine's CPU that other processes used while it ran (the machine's busy time "
        "minus the benchmarks' own). Other processes lower every contender's figures, which is "
        "why the comparisons are ratios within one run.",
        "",
        "## Calibration",
        "",
        "The work kernel is a xorshift64 loop; each binary measures its speed at start-up (the "
        "fastest of 31 runs of 10⁶ iterations). docs/workloads.md's reference: 710 iterations ≈ "
        "1 µs.",
        "",
        table(["binary (suite)", "iterations per µs", "iterations for 10 ms",
               "other processes' CPU during the suite", "load average at its start (1/5/15 min)"],
              calibration_rows(suites)),
        "",
        "## Targets (docs/workloads.md)",
        "",
        table(["target", "ferry, median", "verdict"], target_rows(suites)),
        "",
    ]
    sections = (("w1", "W1 offload round trip", offload_section_w1),
                ("w2", "W2 offload throughput", offload_section_w2),
                ("w3", "W3 CPU-parallel efficiency", offload_section_w3),
                ("w4", "W4 I/O-bound fan-out: coroutines vs threads", fan_out_section),
                ("loop_lag", "Loop lag under CPU work: inline, offloaded, threads",
                 loop_lag_section),
                ("idle", "Idle cost", idle_section))
    for key, title, section in sections:
        parts += [f"## {title}", ""]
        parts += [section(suites[key]) if key in suites else "Not run.\n"]
    parts += ["W5 (the compute-heavy HTTP server) is not part of `scripts/bench`.", ""]
    out = Path(args.out) / "benchmarks.md"
    out.write_text("\n".join(parts))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="directory of the suites' JSON files")
    parser.add_argument("--out", required=True, help="where benchmarks.md and img/ go")
    parser.add_argument("--build-dir", default="build/release")
    parser.add_argument("--command", default="scripts/bench")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--measure-seconds", type=int, default=0)
    args = parser.parse_args()

    suites = load_suites(args.results)
    if not suites:
        raise SystemExit(f"bench_report: no results in {args.results}")
    img_dir = Path(args.out) / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    charts = (("w1", chart_w1, "w1_round_trip.png"), ("w2", chart_w2, "w2_throughput.png"),
              ("w4", chart_w4, "w4_threads_vs_async.png"),
              ("loop_lag", chart_loop_lag, "loop_lag.png"))
    for key, chart, filename in charts:
        if key in suites:
            chart(suites[key], img_dir / filename)
            print(f"bench_report: wrote {img_dir / filename}")
    print(f"bench_report: wrote {write_report(args, suites, img_dir)}")


if __name__ == "__main__":
    main()
