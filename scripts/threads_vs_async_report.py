#!/usr/bin/python3
"""Writes docs/threads-vs-async.md and its charts from the JSON of scripts/threads_vs_async_run.py.

    scripts/threads_vs_async_report.py RUN.json --markdown docs/threads-vs-async.md \
        --img-dir docs/img --img-prefix img/

Every figure on the page comes from RUN.json (one run); each verdict is computed from those
figures by the rules written next to it here. Debian's /usr/bin/python3 and python3-matplotlib
(Agg backend).
"""

import argparse
import json
import os

CLAIMS = {
    "connections": "“10–100× more concurrent connections on the same hardware” than threads.",
    "fanout": "“Fetch 100 URLs concurrently: ~1 s instead of 100 s” sequentially.",
    "aggregation": "An endpoint aggregating three ~200 ms service calls: “~600 ms sequentially, "
    "~200 ms with gather”.",
    "cpu": "CPU-bound work blocks the event loop; `run_in_executor` / `to_thread` is the fix (in "
    "Python the GIL keeps threads from running it in parallel).",
}
COLORS = {"ferry": "#2ca02c", "thread": "#1f77b4", "asyncio": "#ff7f0e", "uvloop": "#d62728"}


def section_head(title, claim):
    """The first lines of a claim's section: its heading and the claim it tests."""
    return [f"## {title}", "", f"**Claim.** {CLAIMS[claim]}", ""]


def color_of(name):
    if "thread" in name and "ferry" in name:
        return COLORS["thread"]
    if name.startswith("threads"):
        return COLORS["thread"]
    for key in ("uvloop", "asyncio", "python"):
        if key in name:
            return COLORS["uvloop" if key == "uvloop" else "asyncio"]
    return COLORS["ferry"]


def f(value, pattern="{:.1f}", missing="–"):
    return missing if value is None else pattern.format(value)


def ms(value):
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.0f} ms"
    return f"{value:.2f} ms"


def mb(kib):
    return None if kib is None else kib * 1024 / 1e6


# --- claim 1 -----------------------------------------------------------------------------------


def thread_ceiling(limits):
    """Threads a process can have here: the smallest of threads-max, RLIMIT_NPROC, pid_max and
    max_map_count / 2 (a thread's stack is two mappings: the stack and its guard page)."""
    candidates = {
        "kernel.threads-max": limits["threads_max"],
        "RLIMIT_NPROC": limits["nproc_soft"] if limits["nproc_soft"] >= 0 else 1 << 62,
        "kernel.pid_max": limits["pid_max"],
        "vm.max_map_count / 2": limits["max_map_count"] // 2,
    }
    name = min(candidates, key=candidates.get)
    return name, candidates[name]


def stop_reason(row, limits):
    if row.get("error"):
        return f"did not run: {row['error'][:120]}"
    held, requested = row.get("held") or 0, row["requested"]
    if held >= requested and row.get("still_open", held) >= held:
        if requested >= limits["top_level"] and limits["top_level"] < limits["max_connections_cap"]:
            return f"held all; the fd limit (RLIMIT_NOFILE {limits['nofile_hard']}) is next"
        return "held all"
    kinds = ", ".join(f"{k}: {v}" for k, v in sorted((row.get("errors") or {}).items()))
    closed = ""
    if row.get("still_open") is not None and row["still_open"] < held:
        closed = f"; {held - row['still_open']} closed by the server while held"
    return f"held {held} of {requested} ({kinds}{closed})"


def connections_section(data, mem_gib):
    c = data["connections"]
    limits = c["limits"]
    tname, tmax = thread_ceiling(limits)
    lines = section_head("1. Concurrent connections", "connections") + [
        "**Measured.** `bench/python/hold_connections.py` opens idle keep-alive connections (each "
        "sends one `GET /ping`, reads the 200, then stays idle) to a freshly started server, "
        f"{', '.join(f'{n:,}' for n in c['levels'])} of them; the top level is as many as the "
        f"file-descriptor limit allows: RLIMIT_NOFILE {limits['nofile_hard']:,} (soft raised to "
        f"hard by the driver) minus 100 for the server's own descriptors"
        + (f", capped at {limits['max_connections_cap']:,} for the run time" if
           limits["top_level"] == limits["max_connections_cap"] else "")
        + ". While they are held: the server's RSS and threads (`/proc/PID/status`) and `/ping` "
        "latency from `ferry_loadgen` (200/s on 4 more connections, latency from the intended "
        "send time). RSS per connection = (RSS with them held − RSS before) / held. Servers: "
        "`ferry_server --mode offload` (one coroutine per connection), `--mode thread` (one "
        "`std::thread` per connection, blocking I/O), `bench/python/aio_server.py` on asyncio "
        "and on uvloop.",
        "",
        "| server | connections | held | server RSS | RSS per connection | threads | /ping p50 "
        "| /ping p99 | where it stops |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    per_conn = {}
    for r in c["rows"]:
        if r.get("rss_per_connection_kib") is not None:
            per_conn.setdefault(r["server"], {})[r["requested"]] = r["rss_per_connection_kib"]
        lines.append(
            f"| {r['server']} | {r['requested']:,} | {f(r.get('held'), '{:,}')} | "
            f"{f(mb(r.get('rss_kib')), '{:.0f} MB')} | "
            f"{f(r.get('rss_per_connection_kib'), '{:.1f} KiB')} | {f(r.get('threads'), '{:,}')} | "
            f"{ms(r.get('p50_ms'))} | {ms(r.get('p99_ms'))} | {stop_reason(r, limits)} |")
    top = max(c["levels"])
    at_top = {r["server"]: r for r in c["rows"] if r["requested"] == top and not r.get("error")}
    lines += ["", f"Limits on this machine: RLIMIT_NOFILE {limits['nofile_hard']:,}; "
              f"kernel.threads-max {limits['threads_max']:,}; RLIMIT_NPROC "
              f"{limits['nproc_soft']:,}; kernel.pid_max {limits['pid_max']:,}; vm.max_map_count "
              f"{limits['max_map_count']:,}; fs.nr_open {limits.get('nr_open', 0):,}; thread stacks {limits['stack_kib'] // 1024} MiB "
              f"(virtual; RSS counts only the pages touched); memory {mem_gib:.1f} GiB.", ""]

    # Where each would stop beyond the fd limit: memory / RSS per connection, and for thread
    # mode also the thread ceiling. Computed from the top level's RSS per connection.
    ceilings = {}
    for name, r in at_top.items():
        kib = r.get("rss_per_connection_kib")
        if not kib or kib <= 0:
            continue
        mem = mem_gib * 1024 * 1024 / kib
        limit, reason = mem, "memory, RSS only"
        if limits.get("nr_open") and limits["nr_open"] < limit:
            limit, reason = limits["nr_open"], "fs.nr_open, the most descriptors a process can have"
        if "thread" in name:
            if tmax < limit:
                limit, reason = tmax, tname
        ceilings[name] = (limit, reason)
    if ceilings:
        lines.append("Beyond the fd limit (computed, not measured: the top level's RSS per "
                     "connection against the memory, kernel socket memory not counted, and the "
                     "kernel's limits with this machine's settings): " + "; ".join(
                         f"{n} would stop at about {v:,.0f} connections ({why})"
                         for n, (v, why) in ceilings.items()) + ".")
        lines.append("")

    # Verdict: the claim is about how many connections; measured = connections held at the top
    # level, async / thread; then memory per connection and the computed ceilings.
    verdict = "not measured (a server did not run)"
    th, off = at_top.get("ferry thread"), at_top.get("ferry offload")
    if th and off and th.get("held") and off.get("held"):
        held_ratio = off["held"] / th["held"]
        mem_ratio = (th.get("rss_per_connection_kib") or 0) / max(
            1e-9, off.get("rss_per_connection_kib") or 1e-9)
        py = at_top.get("asyncio")
        py_text = ""
        if py and py.get("rss_per_connection_kib"):
            py_text = (f", asyncio {py['rss_per_connection_kib']:.1f} KiB")
        ceil_ratio = None
        if "ferry offload" in ceilings and "ferry thread" in ceilings:
            ceil_ratio = ceilings["ferry offload"][0] / ceilings["ferry thread"][0]
        if held_ratio >= 10:
            word = "holds"
        elif ceil_ratio is not None and ceil_ratio >= 10:
            held_text = (f"thread mode and ferry offload each held all {top:,}"
                         if th["held"] == off["held"] == top else
                         f"thread mode held {th['held']:,} and ferry offload {off['held']:,} "
                         f"of {top:,}")
            word = (f"does not hold up to the fd limit ({held_text}); beyond it, it would: "
                    f"{ceil_ratio:.0f}× (computed from the limits above, not measured)")
        else:
            word = (f"does not hold here: {held_ratio:.1f}× as many connections measured"
                    + (f", {ceil_ratio:.1f}× computed beyond the fd limit" if ceil_ratio else "")
                    + ", not 10–100×")
        verdict = (f"{word}. An idle connection costs "
                   f"{th['rss_per_connection_kib']:.1f}"
                   f" KiB of RSS with a thread, {off['rss_per_connection_kib']:.1f} KiB as a ferry "
                   f"coroutine{py_text} ({mem_ratio:.1f}× less than a thread).")
    lines += [f"**Verdict:** {verdict}", ""]
    return lines


def draw_connections(data, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = data["connections"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    servers = []
    for r in c["rows"]:
        if r["server"] not in servers:
            servers.append(r["server"])
    for name in servers:
        rows = [r for r in c["rows"] if r["server"] == name and r.get("rss_kib")]
        if not rows:
            continue
        xs = [r["held"] for r in rows]
        left.plot(xs, [mb(r["rss_kib"]) for r in rows], "o-", label=name, color=color_of(name))
        right.plot(xs, [r.get("p99_ms") for r in rows], "o-", label=name, color=color_of(name))
    left.set_xlabel("idle keep-alive connections held")
    left.set_ylabel("server RSS (MB)")
    left.set_title("Memory while connections are held")
    right.set_xlabel("idle keep-alive connections held")
    right.set_ylabel("/ping p99 (ms)")
    right.set_title("/ping p99 at 200/s while they are held")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- claim 2 -----------------------------------------------------------------------------------

FANOUT_LABELS = {
    "ferry sequential": "ferry, sequential (one coroutine)",
    "ferry gather": "ferry::gather",
    "ferry semaphore": "ferry::gather under ferry::semaphore(10)",
    "ferry threads": "one std::thread per request",
    "python sequential": "aiohttp, sequential awaits",
    "python gather": "aiohttp, asyncio.gather",
}


def fanout_section(data):
    fo = data["fanout"]
    n = fo["requests"]
    lines = section_head("2. Fan-out", "fanout") + [
        f"**Measured.** {n} `GET /delay?ms=D` to a local backend (`fanout_bench backend`: ferry, "
        "`co_await ferry::sleep(D)` per request) with D = "
        + " and ".join(f"{d:,} ms" for d in fo["delays_ms"])
        + ". Clients: `fanout_bench client` (C++: a keep-alive connection pool; blocking sockets "
        "for the threads row) and `bench/python/aio_fanout.py` (one `aiohttp.ClientSession`). "
        "Wall time from the first request to the last answer; peak RSS = the client's VmHWM at "
        "exit; threads = the most seen in `/proc/PID/status` (sampled every 5 ms)."
        + (" The sequential runs at the long delay (about 100 s of idle waiting each) ran in the "
           "background, at the same time as each other and sections 3, 4 and 1, so as to fit the "
           "run time; they wait on the backend and use almost no CPU." if fo.get(
               "background_sequential") else ""),
        "",
        "| client | backend delay | wall time | vs sequential | peak RSS | threads | ok |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    seq = {}
    for r in fo["rows"]:
        if r["kind"].endswith("sequential") and r.get("wall_ms"):
            seq[(r["kind"].split()[0], r["delay_ms"])] = r["wall_ms"]
    rows = sorted(fo["rows"], key=lambda r: (r["delay_ms"], list(FANOUT_LABELS).index(r["kind"])))
    for r in rows:
        base = seq.get((r["kind"].split()[0], r["delay_ms"]))
        speedup = (f"{base / r['wall_ms']:.0f}× faster" if base and r.get("wall_ms")
                   and not r["kind"].endswith("sequential") else "")
        lines.append(
            f"| {FANOUT_LABELS[r['kind']]} | {r['delay_ms']:,} ms | {ms(r.get('wall_ms'))} | "
            f"{speedup} | {f(mb(r.get('vm_hwm_kib')), '{:.1f} MB')} | "
            f"{f(r.get('threads_peak'), '{:,}')} | "
            f"{r.get('ok', '–')}/{n} |" if not r.get("error") else
            f"| {FANOUT_LABELS[r['kind']]} | {r['delay_ms']:,} ms | failed: {r['error'][:80]} "
            "| | | | |")
    # Verdict at the longest delay with both rows: gather vs sequential for ferry and Python.
    by = {(r["kind"], r["delay_ms"]): r for r in fo["rows"] if r.get("wall_ms")}
    delays = sorted(fo["delays_ms"], reverse=True)
    verdict = "not measured"
    for d in delays:
        fs, fg = by.get(("ferry sequential", d)), by.get(("ferry gather", d))
        ps, pg = by.get(("python sequential", d)), by.get(("python gather", d))
        ft = by.get(("ferry threads", d))
        if fs and fg:
            holds = fg["wall_ms"] <= 1.5 * d and fs["wall_ms"] >= 0.9 * n * d
            word = "holds" if holds else "does not hold here"
            verdict = (f"{word}: at {d:,} ms per request, {n} requests took "
                       f"{ms(fs['wall_ms'])} sequentially and {ms(fg['wall_ms'])} with "
                       f"ferry::gather ({fs['wall_ms'] / fg['wall_ms']:.0f}×)")
            if ps and pg:
                verdict += (f", {ms(ps['wall_ms'])} and {ms(pg['wall_ms'])} with aiohttp "
                            f"({ps['wall_ms'] / pg['wall_ms']:.0f}×)")
            if ft:
                verdict += (f". Async is not needed for it: one thread per request took "
                            f"{ms(ft['wall_ms'])} with {ft['threads_peak']} threads and "
                            f"{mb(ft['vm_hwm_kib']):.1f} MB")
            verdict += "."
            break
    lines += ["", f"**Verdict:** {verdict}", ""]
    return lines


# --- claim 3 -----------------------------------------------------------------------------------


def aggregation_section(data):
    a = data["aggregation"]
    fixed = a["fixed_rate"]
    lines = section_head("3. Aggregation", "aggregation") + [
        f"**Measured.** `GET /agg?calls={a['calls']}&ms={a['ms']}&how=sequential|gather`: the "
        f"server makes {a['calls']} calls to a backend that answers after {a['ms']} ms (the "
        "fan-out backend), one after the other or all at once, then answers. Servers: "
        "`fanout_bench aggregator` (ferry, one I/O thread, `ferry::gather`), `fanout_bench "
        "aggregator-threads` (a thread per connection with blocking sockets; `gather` = one "
        "`std::thread` per call, joined) and `bench/python/aio_server.py` (`asyncio.gather`, one "
        "ClientSession). `ferry_loadgen` sends at fixed rates (open loop, latency from the "
        "intended send time) up the ladder " + ", ".join(f"{r:,}" for r in a["rates"])
        + f" req/s, stopping at the first rate not sustained ({a['sustained_means']}).",
        "",
        f"| server | calls | p50 at {fixed}/s | p99 at {fixed}/s | highest rate sustained | p50 "
        "there | p99 there | server CPU there |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in a["rows"]:
        if r.get("error") or not r["steps"]:
            lines.append(f"| {r['server']} | {r['how']} | failed: {r.get('error', '')[:80]} "
                         "| | | | | |")
            continue
        first = r["steps"][0]
        best = max((s for s in r["steps"] if s["sustained"]), key=lambda s: s["rate"],
                   default=None)
        top = (f"{best['rate']:,}/s" + (" (top of the ladder)" if r.get("ladder_exhausted")
                                        else "")) if best else f"none (< {r['steps'][0]['rate']}/s)"
        lines.append(
            f"| {r['server']} | {r['how']} | {ms(first['p50_ms'])} | {ms(first['p99_ms'])} | "
            f"{top} | {ms(best['p50_ms']) if best else '–'} | {ms(best['p99_ms']) if best else '–'}"
            f" | {f(best.get('server_cpu_percent') if best else None, '{:.0f}%')} |")
    by = {r["config"]: r for r in a["rows"] if r.get("steps")}
    parts = []
    holds_all = True
    for name in ("ferry", "threads", "asyncio"):
        s, g = by.get(f"{name} sequential"), by.get(f"{name} gather")
        if not (s and g):
            holds_all = False
            continue
        sp, gp = s["steps"][0]["p50_ms"], g["steps"][0]["p50_ms"]
        if sp is None or gp is None:
            holds_all = False
            continue
        ok = abs(sp - a["calls"] * a["ms"]) <= 0.25 * a["calls"] * a["ms"] and gp <= 1.25 * a["ms"]
        holds_all = holds_all and ok
        parts.append(f"{name} {ms(sp)} → {ms(gp)}")
    rates = []
    for name in ("ferry", "threads", "asyncio"):
        for how in ("sequential", "gather"):
            r = by.get(f"{name} {how}")
            if r:
                best = r.get("highest_sustained_rate")
                rates.append(f"{name} {how} " + (f"{best:,}/s" if best else "none"))
    same, differs = [], []
    for name in ("ferry", "threads", "asyncio"):
        s_, g_ = by.get(f"{name} sequential"), by.get(f"{name} gather")
        if s_ and g_:
            (same if s_.get("highest_sustained_rate") == g_.get("highest_sustained_rate")
             else differs).append(name)
    rate_text = ""
    if same:
        rate_text += f" Gather does not change the highest rate sustained for {', '.join(same)}."
    if differs:
        rate_text += f" It changes it for {', '.join(differs)}."
    verdict = (("holds" if holds_all else "does not hold everywhere")
               + f": p50 at {fixed}/s, sequential → gather: " + "; ".join(parts)
               + ". Highest rate sustained: " + ", ".join(rates) + "." + rate_text)
    lines += ["", f"**Verdict:** {verdict}", ""]
    return lines


# --- claim 4 -----------------------------------------------------------------------------------


def cpu_per_request(row, cores):
    """The server's CPU time per heavy request: against the nominal work time, it shows how well
    the server's start-up calibration matched the run (a busy machine calibrates slow)."""
    if not row.get("heavy_rps"):
        return "–"
    return f"{row['tree_cpu_percent'] / 100 * cores * 1000 / row['heavy_rps']:.1f} ms"


def cpu_section(data):
    c = data["cpu"]
    lines = section_head("4. CPU-bound work", "cpu") + [
        f"**Measured.** W5's load, from the same load generator (`ferry_loadgen`) for every row: "
        f"`/work?us={c['work_us']}` (~{c['work_us'] / 1000:g} ms of CPU, the xorshift kernel "
        f"calibrated at start-up by each server) in a closed loop on {c['heavy_connections']} "
        f"connections, and `/ping` at {c['light_rate']}/s on {c['light_connections']} "
        f"connections (latency from the intended send time); {c['warmup_s']:g} s warm-up, "
        f"{c['duration_s']:g} s measured. Server CPU = the server's process tree (workers of a "
        "process pool included), sampled from `/proc` over the measured window, as a share of "
        "all cores. Python modes: `inline` (the work in the handler, on the loop), `to_thread` "
        "(`await asyncio.to_thread(work, n)`), `process pool` (`await loop.run_in_executor("
        "ProcessPoolExecutor(), work, n)`, one worker per core). CPU per heavy request = server "
        "CPU time / heavy requests answered (the pings' share included): near the nominal "
        "work time when the start-up calibration matched the run. ferry_server runs with its "
        "defaults, so its pool's workers are at `--cpu-nice 10`: on a machine busy with other "
        "processes they get less of it than the loop and the Python workers (nice 0).",
        "",
        "| server | light p50 | light p99 | heavy req/s | of capacity | server CPU | CPU per "
        "heavy request | processes, threads | other processes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in c["rows"]:
        if r.get("error"):
            lines.append(f"| {r['config']} | failed: {r['error'][:80]} | | | | | | | |")
            continue
        lines.append(
            f"| {r['config']} | {ms(r['light_p50_ms'])} | {ms(r['light_p99_ms'])} | "
            f"{r['heavy_rps']:.0f} | {100 * r['heavy_rps'] / r['heavy_capacity_rps']:.0f}% of "
            f"{r['heavy_capacity_rps']:.0f} | {r['tree_cpu_percent']:.0f}% | "
            f"{cpu_per_request(r, data['machine']['cores'])} | "
            f"{r.get('processes', '–')}, {f(r.get('threads'), '{:,}')} | "
            f"{r['others']['others_percent']:.0f}% |")
    by = {r["config"]: r for r in c["rows"] if not r.get("error")}
    verdict = "not measured"
    need = ("asyncio inline", "asyncio to_thread", "asyncio process pool", "ferry offload")
    if all(k in by for k in need):
        ai, at, ap, fo = (by[k] for k in need)
        # Blocks the loop: inline p99 over 100 ms and 10x the process pool's.
        blocked = (ai["light_p99_ms"] or 0) > max(100.0, 10 * (ap["light_p99_ms"] or 1e9))
        # to_thread frees the loop: its p99 within 2x the process pool's (or under 10 ms).
        freed = (at["light_p99_ms"] or 1e9) <= max(10.0, 2 * (ap["light_p99_ms"] or 0))
        # The GIL: to_thread's process uses at most about one core (110% of one), whatever the
        # number of cores; the process pool's tree may use them all.
        cores = data["machine"]["cores"]
        at_cores = at["tree_cpu_percent"] * cores / 100
        ap_cores = ap["tree_cpu_percent"] * cores / 100
        gil = at_cores <= 1.1
        parts = [
            ("holds" if blocked else "does not hold here")
            + f" that it blocks the loop (inline: ping p99 {ms(ai['light_p99_ms'])}, "
            f"{ai['heavy_rps']:.0f} heavy req/s)",
            ("`to_thread` frees the loop" if freed else "`to_thread` does not free the loop")
            + f" (p99 {ms(at['light_p99_ms'])})",
            ("the GIL holds `to_thread` to one core: " if gil else
             "`to_thread` used more than one core: ")
            + f"{at_cores:.2f} of {cores} cores, {at['heavy_rps']:.0f} req/s, against the "
            f"process pool's {ap_cores:.2f} cores, {ap['heavy_rps']:.0f} req/s (p99 "
            f"{ms(ap['light_p99_ms'])})",
        ]
        word = "holds" if blocked and freed and gil else "holds in part" if blocked else \
            "does not hold here"
        verdict = (f"{word}: " + "; ".join(parts) + f". ferry's offload: {fo['heavy_rps']:.0f} "
                   f"req/s, ping p99 {ms(fo['light_p99_ms'])}, in one process.")
    lines += ["", f"**Verdict:** {verdict}", ""]
    return lines


def draw_summary(data, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    # 1: RSS per connection at the top level.
    ax = axes[0][0]
    c = data.get("connections")
    if c:
        top = max(c["levels"])
        rows = [r for r in c["rows"] if r["requested"] == top and r.get("rss_per_connection_kib")]
        ax.bar([r["server"] for r in rows], [r["rss_per_connection_kib"] for r in rows],
               color=[color_of(r["server"]) for r in rows])
        for i, r in enumerate(rows):
            ax.text(i, r["rss_per_connection_kib"], f"{r['rss_per_connection_kib']:.1f}\n"
                    f"{r['threads']:,} thr", ha="center", va="bottom", fontsize=8)
        if rows:
            ax.set_ylim(0, 1.25 * max(r["rss_per_connection_kib"] for r in rows))
        ax.set_ylabel("server RSS per idle connection (KiB)")
        ax.set_title(f"1. {top:,} idle keep-alive connections")
    # 2: fan-out wall time at the longest delay.
    ax = axes[0][1]
    fo = data.get("fanout")
    if fo:
        d = max(fo["delays_ms"])
        rows = [r for r in fo["rows"] if r["delay_ms"] == d and r.get("wall_ms")]
        rows.sort(key=lambda r: list(FANOUT_LABELS).index(r["kind"]))
        short = {"ferry sequential": "ferry sequential", "ferry gather": "ferry::gather",
                 "ferry semaphore": "gather + semaphore(10)",
                 "ferry threads": "std::thread per request",
                 "python sequential": "aiohttp sequential", "python gather": "aiohttp gather"}
        labels = [short[r["kind"]] for r in rows]
        ax.barh(labels, [r["wall_ms"] / 1000 for r in rows],
                color=[color_of(r["kind"]) if "threads" not in r["kind"] else COLORS["thread"]
                       for r in rows])
        ax.set_xscale("log")
        ax.set_xlabel("wall time (s, log)")
        ax.set_title(f"2. {fo['requests']} requests to a {d:,} ms backend")
        for i, r in enumerate(rows):
            ax.text(r["wall_ms"] / 1000, i, f" {ms(r['wall_ms'])}", va="center", fontsize=8)
    # 3: aggregation p50 at the fixed rate.
    ax = axes[1][0]
    a = data.get("aggregation")
    if a:
        rows = [r for r in a["rows"] if r.get("steps") and r["steps"][0]["p50_ms"] is not None]
        ax.bar([r["config"].replace(" ", "\n") for r in rows],
               [r["steps"][0]["p50_ms"] for r in rows], color=[color_of(r["server"]) for r in rows])
        ax.set_ylabel(f"p50 latency at {a['fixed_rate']}/s (ms)")
        ax.set_title(f"3. {a['calls']} × {a['ms']} ms backend calls per request")
        for i, r in enumerate(rows):
            ax.text(i, r["steps"][0]["p50_ms"], f"{r['steps'][0]['p50_ms']:.0f}", ha="center",
                    va="bottom", fontsize=8)
    # 4: heavy throughput (bars) and light p99 (labels).
    ax = axes[1][1]
    cp = data.get("cpu")
    if cp:
        rows = [r for r in cp["rows"] if not r.get("error")]
        ax.bar([r["config"].replace(" ", "\n") for r in rows], [r["heavy_rps"] for r in rows],
               color=[color_of(r["config"]) for r in rows])
        ax.axhline(rows[0]["heavy_capacity_rps"] if rows else 0, color="grey", ls="--", lw=1)
        for i, r in enumerate(rows):
            ax.text(i, r["heavy_rps"], f"p99 {ms(r['light_p99_ms'])}", ha="center",
                    va="bottom", fontsize=7)
        ax.set_ylabel(f"/work?us={cp['work_us']} req/s (dashed: the cores' capacity)")
        ax.set_title("4. CPU-bound: heavy throughput, light /ping p99")
        ax.tick_params(axis="x", labelsize=7)
    for row in axes:
        for ax in row:
            ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"Threads vs async on {data['machine']['cores']} cores ({data['date_utc']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def header(data):
    m = data["machine"]
    v = m["versions"]
    lines = [
        "# Threads vs async, measured",
        "",
        "<!-- Generated by scripts/threads-vs-async (scripts/threads_vs_async_report.py); do not "
        "edit by hand. -->",
        "",
        f"Generated by `{data['command']}` on {data['date_utc']}: {m['cpu']}, {m['cores']} cores, "
        f"{m['mem_gib']:.1f} GiB, {m['os']}, Linux {m['kernel']}; Python {v.get('python')}, "
        f"aiohttp {v.get('aiohttp')}, uvloop {v.get('uvloop')} (Debian's packages). "
        f"Measurements took {data['run_seconds']:.0f} s"
        + (f", after {data['setup_seconds']:.0f} s of set-up and build"
           if data.get("setup_seconds") is not None else "")
        + ". Every figure below is from this one run.",
        "",
        "Four claims that asyncio guides make, each measured against ferry, threads and Python "
        "asyncio on the same machine. The Python side is `bench/python/` (aiohttp.web server, "
        "aiohttp client), the C++ side `ferry_server` (docs/examples/server), "
        "`bench/fanout_bench.cpp` and the load generator `ferry_loadgen` (bench/loadgen). "
        "Everything runs on 127.0.0.1, client and server sharing the cores.",
        "",
        "Other processes' share of the machine while each part ran (`/proc/stat` minus this "
        "run's own processes; on a shared machine, read the figures with it): "
        + "; ".join(f"{k} {v['others_percent']:.0f}%" for k, v in
                    data["sections_others"].items())
        + (("; CPU-bound rows " + ", ".join(f"{r['others']['others_percent']:.0f}%"
                                           for r in data["cpu"]["rows"] if r.get("others")))
           if data.get("cpu") else "") + ".",
        "",
    ]
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--markdown", required=True)
    p.add_argument("--img-dir", required=True)
    p.add_argument("--img-prefix", default="img/", help="the charts' path as the page links it")
    args = p.parse_args()
    with open(args.run) as fh:
        data = json.load(fh)
    os.makedirs(args.img_dir, exist_ok=True)
    lines = header(data)
    summary = os.path.join(args.img_dir, "tva-summary.png")
    draw_summary(data, summary)
    lines += [f"![Threads vs async: the four claims]({args.img_prefix}tva-summary.png)", ""]
    if data.get("connections"):
        lines += connections_section(data, data["machine"]["mem_gib"])
        draw_connections(data, os.path.join(args.img_dir, "tva-connections.png"))
        lines += [f"![Server RSS and /ping p99 by idle connections held]"
                  f"({args.img_prefix}tva-connections.png)", ""]
    if data.get("fanout"):
        lines += fanout_section(data)
    if data.get("aggregation"):
        lines += aggregation_section(data)
    if data.get("cpu"):
        lines += cpu_section(data)
    lines += ["## Reproduce", "", "```", "scripts/threads-vs-async          # installs, builds, "
              "runs, rewrites this page", "scripts/threads-vs-async --quick  # short runs; writes "
              "build/release/threads-vs-async/ only", "scripts/threads-vs-async --nofile 100000  "
              "# root: a higher hard fd limit, so the top connection level is 50,000", "```", "",
              "Raw files (every load generator JSON, every server's stderr) are in "
              "`build/release/threads-vs-async/raw/`, all figures in "
              "`build/release/threads-vs-async/run.json`.", ""]
    with open(args.markdown, "w") as fh:
        fh.write("\n".join(lines))
    print(f"wrote {args.markdown} and {args.img_dir}/tva-*.png")


if __name__ == "__main__":
    main()
