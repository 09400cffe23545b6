#!/usr/bin/python3
"""W5 report: turns the per-mode JSON of ferry_loadgen into one JSON, a markdown table and a PNG.

    scripts/w5_report.py --json OUT.json --png OUT.png --markdown OUT.md \
        inline:loadgen-inline.json:0 offload:loadgen-offload.json:0 thread:loadgen-thread.json:0

Each positional argument is MODE:LOADGEN_JSON:SERVER_EXIT_STATUS. The table compares the modes
against W5's targets (docs/workloads.md): light-request p99 <= 1 ms while the heavy endpoint
saturates the cores, and heavy throughput >= 95% of cores x (1 / work time). A missed target is
reported, never an error. The exit status is 1 only when a run is broken: the server did not
exit 0, a class got no successful response, or more than --max-error-fraction of a class's
requests failed. Run with Debian's /usr/bin/python3 and python3-matplotlib (Agg backend).
"""

import argparse
import datetime
import json
import os
import platform
import re
import sys

LIGHT_P99_TARGET_MS = 1.0
HEAVY_FRACTION_TARGET = 0.95
# With the io thread at SCHED_FIFO (offload-fifo) W5 asks heavy >= 90% of capacity.
HEAVY_FRACTION_TARGET_FIFO = 0.90


def heavy_target_of(mode):
    return HEAVY_FRACTION_TARGET_FIFO if mode.endswith("-fifo") else HEAVY_FRACTION_TARGET


def parse_run(spec):
    mode, path, status = spec.rsplit(":", 2)
    with open(path) as f:
        data = json.load(f)
    return mode, data, int(status)


def work_us(path):
    match = re.search(r"[?&]us=(\d+)", path)
    return int(match.group(1)) if match else None


def summarise(mode, data, server_exit):
    heavy = data["classes"].get("heavy")
    light = data["classes"].get("light")
    cores = data["cores"]
    row = {"mode": mode, "server_exit": server_exit, "cores": cores}
    if light and light["ok"] > 0:
        row["light_p50_ms"] = light["latency_ms"]["p50"]
        row["light_p99_ms"] = light["latency_ms"]["p99"]
        row["light_p99_9_ms"] = light["latency_ms"]["p99_9"]
        row["light_max_ms"] = light["latency_ms"]["max"]
    if heavy and heavy["ok"] > 0:
        us = work_us(heavy["path"])
        capacity = cores * 1e6 / us if us else None
        row["heavy_rps"] = heavy["ok_rps"]
        row["heavy_capacity_rps"] = capacity
        row["heavy_fraction"] = heavy["ok_rps"] / capacity if capacity else None
        row["heavy_p50_ms"] = heavy["latency_ms"]["p50"]
        row["heavy_p99_ms"] = heavy["latency_ms"]["p99"]
    cpu = data.get("server_cpu")
    row["server_cpu_percent"] = cpu["percent_of_machine"] if cpu else None
    loadgen_cpu = data.get("loadgen_cpu")
    row["loadgen_cpu_percent"] = loadgen_cpu["percent_of_machine"] if loadgen_cpu else None
    machine = data.get("machine_cpu")
    row["others_cpu_percent"] = machine["others_percent"] if machine else None
    row["light_p99_target_met"] = (
        row.get("light_p99_ms") is not None and row["light_p99_ms"] <= LIGHT_P99_TARGET_MS
    )
    row["heavy_target_met"] = (
        row.get("heavy_fraction") is not None
        and row["heavy_fraction"] >= heavy_target_of(row["mode"])
    )
    if light:
        row["light_requests"] = light["requests"]
        row["light_errors"] = light["errors"]
    if heavy:
        row["heavy_requests"] = heavy["requests"]
        row["heavy_errors"] = heavy["errors"]
    return row


def problems_of(row, data, max_error_fraction):
    problems = []
    if row["server_exit"] != 0:
        problems.append(f"{row['mode']}: the server exited with status {row['server_exit']}")
    for name, cls in data["classes"].items():
        if cls["requests"] == 0 or cls["ok"] == 0:
            problems.append(f"{row['mode']}: {name} got no successful response")
        elif cls["errors"] > max_error_fraction * cls["requests"]:
            problems.append(
                f"{row['mode']}: {name}: {cls['errors']} of {cls['requests']} requests failed "
                f"({cls['errors_by_kind']}, first: {cls['first_errors']})"
            )
    return problems


def fmt(value, pattern, missing="-"):
    return missing if value is None else pattern.format(value)


def markdown_table(rows):
    lines = [
        "| mode | light p50 | light p99 | heavy req/s | heavy vs capacity | server CPU | "
        f"other processes' CPU | light p99 ≤ {LIGHT_P99_TARGET_MS:g} ms | "
        f"heavy ≥ {HEAVY_FRACTION_TARGET:.0%} (fifo {HEAVY_FRACTION_TARGET_FIFO:.0%}) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        capacity = r.get("heavy_capacity_rps")
        vs = (
            f"{r['heavy_fraction']:.0%} of {capacity:.0f}"
            if r.get("heavy_fraction") is not None
            else "-"
        )
        lines.append(
            f"| {r['mode']} | {fmt(r.get('light_p50_ms'), '{:.2f} ms')} | "
            f"{fmt(r.get('light_p99_ms'), '{:.2f} ms')} | {fmt(r.get('heavy_rps'), '{:.1f}')} | "
            f"{vs} | {fmt(r.get('server_cpu_percent'), '{:.0f}%')} | "
            f"{fmt(r.get('others_cpu_percent'), '{:.0f}%')} | "
            f"{'met' if r['light_p99_target_met'] else 'missed'} | "
            f"{'met' if r['heavy_target_met'] else 'missed'} |"
        )
    return "\n".join(lines)


def draw(rows, runs, png, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter

    colors = {"inline": "#d62728", "offload": "#2ca02c", "thread": "#1f77b4", "offload-fifo": "#98df8a"}
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.6, 1]}
    )

    # Left: the light requests' latency by percentile, on a "number of nines" axis.
    for mode, data, _ in runs:
        light = data["classes"].get("light")
        if not light or light["ok"] == 0:
            continue
        xs, ys = [], []
        for q, ms in light["percentiles_ms"]:
            if q >= 100:
                continue
            xs.append(1.0 / (1.0 - q / 100.0))
            ys.append(max(ms, 1e-3))
        left.plot(xs, ys, marker="o", ms=3, label=mode, color=colors.get(mode))
    left.axhline(LIGHT_P99_TARGET_MS, color="grey", ls="--", lw=1)
    left.axvline(100, color="grey", ls=":", lw=1)
    left.text(1.05, LIGHT_P99_TARGET_MS * 1.12, "target: p99 ≤ 1 ms", color="grey", fontsize=8)
    left.set_xscale("log")
    left.set_yscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000]
    labels = ["p0", "p50", "p90", "p99", "p99.9", "p99.99"]
    left.xaxis.set_major_locator(FixedLocator(ticks))
    left.xaxis.set_major_formatter(FuncFormatter(lambda x, _: labels[ticks.index(x)] if x in ticks else ""))
    left.xaxis.set_minor_locator(FixedLocator([]))
    left.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    left.set_xlabel("percentile")
    left.set_ylabel("light request (/ping) latency, ms (log)")
    left.set_title("light requests while heavy ones run")
    left.grid(True, which="major", alpha=0.3)
    left.legend(title="server mode")

    # Right: heavy throughput against the cores' capacity.
    modes = [r["mode"] for r in rows if r.get("heavy_rps") is not None]
    values = [r["heavy_rps"] for r in rows if r.get("heavy_rps") is not None]
    bars = right.bar(modes, values, color=[colors.get(m, "#7f7f7f") for m in modes])
    capacity = next((r["heavy_capacity_rps"] for r in rows if r.get("heavy_capacity_rps")), None)
    if capacity:
        right.axhline(capacity, color="black", lw=1)
        right.axhline(HEAVY_FRACTION_TARGET * capacity, color="grey", ls="--", lw=1)
        right.text(-0.4, capacity * 1.01, f"capacity {capacity:.0f}/s", fontsize=8)
        right.text(-0.4, HEAVY_FRACTION_TARGET * capacity * 0.94, "target 95%", color="grey",
                   fontsize=8)
    if values:
        top = max([capacity * 1.15 if capacity else 0] + [v * 1.1 for v in values])
        right.set_ylim(0, top)
    for bar, r in zip(bars, [r for r in rows if r.get("heavy_rps") is not None]):
        cpu = r.get("server_cpu_percent")
        label = f"{r['heavy_rps']:.0f}/s"
        if cpu is not None:
            label += f"\nCPU {cpu:.0f}%"
        right.text(bar.get_x() + bar.get_width() / 2, bar.get_height() * 0.5, label,
                   ha="center", va="center", color="white", fontsize=9)
    right.set_ylabel("heavy requests (/work?us=10000) per s")
    right.set_title("heavy throughput")

    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="MODE:LOADGEN_JSON:SERVER_EXIT_STATUS")
    parser.add_argument("--json", required=True, help="combined JSON to write")
    parser.add_argument("--png", help="chart to write")
    parser.add_argument("--markdown", help="markdown table to write")
    parser.add_argument("--max-error-fraction", type=float, default=0.01)
    args = parser.parse_args()

    runs = [parse_run(spec) for spec in args.runs]
    rows = [summarise(mode, data, status) for mode, data, status in runs]
    problems = []
    for row, (_, data, _) in zip(rows, runs):
        problems += problems_of(row, data, args.max_error_fraction)

    now = datetime.datetime.now().astimezone()
    first = runs[0][1]
    light = first["classes"].get("light", {})
    heavy = first["classes"].get("heavy", {})
    describe = (
        f"W5 on {first['cores']} cores, {now:%Y-%m-%d %H:%M %Z}: heavy {heavy.get('path')} "
        f"closed loop on {heavy.get('connections')} connections;\nlight {light.get('path')} "
        + (f"at {light.get('rate'):g}/s" if light.get("rate") else "closed loop")
        + f" on {light.get('connections')} connections; {first['measured_s']:g} s measured "
        f"after {first['warmup_s']:g} s warm-up"
    )
    table = markdown_table(rows)

    combined = {
        "workload": "W5",
        "date": now.isoformat(timespec="seconds"),
        "machine": {"cores": first["cores"], "kernel": platform.release(),
                    "hostname": platform.node()},
        "targets": {"light_p99_ms": LIGHT_P99_TARGET_MS,
                    "heavy_fraction_of_capacity": HEAVY_FRACTION_TARGET},
        "summary": rows,
        "problems": problems,
        "runs": {mode: {"server_exit": status, "loadgen": data} for mode, data, status in runs},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(combined, f, indent=2)
        f.write("\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(describe + "\n\n" + table + "\n")
    if args.png:
        draw(rows, runs, args.png, describe)

    print(describe)
    print()
    print(table)
    print()
    print("W5 targets apply to ferry (mode offload; offload-fifo, its io thread at SCHED_FIFO, aims at"
          " light p99 <= 1 ms and heavy >= 90%); inline and thread are the baselines.")
    print("CPU as % of the whole machine; other processes' CPU over 5% means the figures are noisy.")
    busy = [r["mode"] for r in rows if (r.get("others_cpu_percent") or 0) > 5]
    if busy:
        print(f"warning: other processes used more than 5% of the machine during {', '.join(busy)}:"
              " those figures are noisy")
    for problem in problems:
        print(f"broken: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
