#!/usr/bin/python3
"""Runs the measurements of docs/threads-vs-async.md and writes them to one JSON file.

    scripts/threads_vs_async_run.py --build build/release --out build/release/threads-vs-async/run.json

Called by scripts/threads-vs-async after the build; scripts/threads_vs_async_report.py turns the
JSON into the page. Four claims of the asyncio guides, each against ferry, threads and Python
asyncio (aiohttp, bench/python/), in one run on one machine:

  1. connections: 1,000, 10,000 and as many idle keep-alive connections as RLIMIT_NOFILE allows
     (bench/python/hold_connections.py) against ferry_server --mode offload, --mode thread and
     bench/python/aio_server.py (asyncio, uvloop): server RSS and threads (/proc/PID/status),
     /ping p50/p99 at 200/s from ferry_loadgen while they are held, and what stopped it.
  2. fan-out: 100 GETs to a backend answering after 100 ms and 1 s (fanout_bench backend):
     sequential, ferry::gather, gather under ferry::semaphore(10), one std::thread per request
     (fanout_bench client), and aiohttp sequential / asyncio.gather (bench/python/aio_fanout.py):
     wall time, VmHWM, peak threads (sampled from /proc every 5 ms).
  3. aggregation: /agg?calls=3&ms=200 at fixed rates from ferry_loadgen (open loop, latency from
     the intended send time), sequential vs gather, in ferry (fanout_bench aggregator), with
     threads (fanout_bench aggregator-threads) and aiohttp: p50/p99, and the highest rate of a
     ladder each sustains.
  4. CPU-bound: W5's load (ferry_loadgen: /work?us=10000 closed loop on 2 connections per core,
     /ping at 200/s on 4) against ferry_server inline/offload/thread and aio_server
     inline/thread(to_thread)/process(ProcessPoolExecutor): light p99, heavy req/s, CPU of the
     server's process tree over the measured window.

Other processes' share of the machine (/proc/stat minus this run's own processes, the method of
scripts/bench) is recorded per section and per CPU-bound row. Progress goes to stderr.
"""

import argparse
import datetime
import json
import math
import os
import platform
import resource
import select
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
HZ = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def log(msg):
    print(f"[threads-vs-async] {msg}", file=sys.stderr, flush=True)


# --- /proc ------------------------------------------------------------------------------------


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads", "VmSize"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def proc_stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(proc_stat_fields(entry)[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pid, with_reaped_children=False):
    try:
        f = proc_stat_fields(pid)
    except OSError:
        return 0.0
    ticks = int(f[11]) + int(f[12])  # utime, stime
    if with_reaped_children:
        ticks += int(f[13]) + int(f[14])  # cutime, cstime
    return ticks / HZ


def tree_cpu_seconds(pid):
    """CPU of `pid` and its live descendants (their reaped children included)."""
    return cpu_seconds(pid, True) + sum(cpu_seconds(c, True) for c in descendants(pid))


def machine_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return busy, busy + v[3] + v[4]


class Others:
    """Other processes' share of the machine: /proc/stat's busy time minus this run's own
    (this process, its reaped children, and its live descendants)."""

    def __init__(self):
        self.mark()

    def _ours(self):
        return tree_cpu_seconds(os.getpid())

    def mark(self):
        self.busy, self.total = machine_ticks()
        self.ours = self._ours()

    def since(self):
        busy, total = machine_ticks()
        ours = self._ours()
        wall = (total - self.total) / HZ / CORES
        others = max(0.0, (busy - self.busy) / HZ - (ours - self.ours))
        result = {
            "wall_s": wall,
            "machine_busy_percent": 100.0 * (busy - self.busy) / max(1, total - self.total),
            "ours_percent": 100.0 * (ours - self.ours) / max(1e-9, wall * CORES),
            "others_percent": 100.0 * others / max(1e-9, wall * CORES),
        }
        self.busy, self.total, self.ours = busy, total, ours
        return result


# --- processes --------------------------------------------------------------------------------


class Server:
    """A child that prints "listening on 127.0.0.1:<port>" once it listens."""

    def __init__(self, name, argv, logdir, timeout=30.0):
        self.name = name
        self.err_path = os.path.join(logdir, f"{name}.err")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.pid = self.proc.pid
        self.port = None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("listening on "):
                    self.port = int(line.strip().rsplit(":", 1)[1])
                    break
                if not line:
                    break
            if self.proc.poll() is not None:
                break
        if self.port is None:
            self.kill()
            raise RuntimeError(f"{name} did not start (got {line!r}): {self.stderr_tail()}")

    def stderr_tail(self, n=600):
        self.err.flush()
        try:
            with open(self.err_path) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=15.0):
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.err.close()


def start_server(row, rows, name, argv, logdir):
    """Starts a Server; if it fails to start, records why in `row`, appends it to `rows` and
    returns None."""
    try:
        return Server(name, argv, logdir)
    except Exception as e:
        row["error"] = str(e)
        rows.append(row)
        return None


class ThreadPeak:
    """Samples Threads of /proc/PID/status every 5 ms while a child runs."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            self.peak = max(self.peak, proc_status(self.pid).get("Threads", 0))
            time.sleep(0.005)

    def done(self):
        self.stop = True
        self.thread.join()
        return self.peak


def run_json(argv, timeout):
    """Runs a client that prints one JSON line; returns (json, peak threads)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = ThreadPeak(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    threads = peak.done()
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"{os.path.basename(argv[0])} printed no result (exit {proc.returncode}): {err[-400:]}")
    result = json.loads(lines[-1])
    result["exit"] = proc.returncode
    result["threads_peak"] = threads
    return result


class Tools:
    def __init__(self, build, logdir):
        self.server = os.path.join(build, "docs/examples/server/ferry_server")
        self.loadgen = os.path.join(build, "bench/loadgen/ferry_loadgen")
        self.fanout = os.path.join(build, "bench/fanout_bench")
        self.aio_server = os.path.join(ROOT, "bench/python/aio_server.py")
        self.aio_fanout = os.path.join(ROOT, "bench/python/aio_fanout.py")
        self.holder = os.path.join(ROOT, "bench/python/hold_connections.py")
        self.logdir = logdir
        self.runs = 0

    def loadgen_run(self, port, name, light_path, rate, light_connections, warmup, duration,
                    heavy_path=None, heavy_connections=0, server_pid=None, timeout_ms=10000):
        self.runs += 1
        path = os.path.join(self.logdir, f"loadgen-{self.runs:03d}-{name}.json")
        argv = [self.loadgen, "--port", str(port), "--light-path", light_path,
                "--light-rate", str(rate), "--light-connections", str(light_connections),
                "--heavy-connections", str(heavy_connections),
                "--warmup", str(warmup), "--duration", str(duration),
                "--timeout-ms", str(timeout_ms), "--deadline-ms", "0", "--json", path]
        if heavy_path:
            argv += ["--heavy-path", heavy_path]
        if server_pid:
            argv += ["--server-pid", str(server_pid)]
        with open(os.path.join(self.logdir, f"loadgen-{self.runs:03d}-{name}.out"), "w") as out:
            subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                           timeout=warmup + duration + timeout_ms / 1000 + 60)
        with open(path) as f:
            return json.load(f)


def latency(cls):
    if not cls or cls.get("ok", 0) == 0:
        return {"p50_ms": None, "p99_ms": None}
    return {"p50_ms": cls["latency_ms"]["p50"], "p99_ms": cls["latency_ms"]["p99"]}


# --- claim 1: connections ----------------------------------------------------------------------


def server_configs(tools, mode_python):
    """The servers of claims 1 and 4: name -> argv (port 0)."""
    # --max-offloads: a fixed bound, as each claim loads the pool with a bounded number of
    # closed-loop clients (admission under overload is W6's measurement, not these claims').
    ferry_flags = ["--port", "0", "--max-connections", "10000000", "--idle-timeout-ms", "86400000",
                   "--read-timeout-ms", "86400000", "--max-connections-per-client", "0",
                   "--max-offloads", "1024"]
    return {
        "ferry offload": [tools.server, "--mode", "offload"] + ferry_flags,
        "ferry thread": [tools.server, "--mode", "thread"] + ferry_flags,
        "ferry inline": [tools.server, "--mode", "inline"] + ferry_flags,
        "asyncio": [PY, tools.aio_server, "--port", "0", "--mode", mode_python],
        "uvloop": [PY, tools.aio_server, "--port", "0", "--mode", mode_python, "--loop", "uvloop"],
    }


def hold_level(tools, name, argv, count, args):
    server = Server(f"conn-{name.replace(' ', '-')}-{count}", argv, tools.logdir)
    row = {"server": name, "requested": count}
    try:
        tools.loadgen_run(server.port, "warm", "/ping", 100, 2, 0, 0.5)
        base = proc_status(server.pid)
        row["base_rss_kib"] = base.get("VmRSS")
        row["base_threads"] = base.get("Threads")
        holder = subprocess.Popen([PY, tools.holder, "--port", str(server.port), "--count",
                                   str(count), "--timeout", str(args.hold_timeout),
                                   "--source", str(1 + tools.runs % 250)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            summary = json.loads(holder.stdout.readline() or "{}")
            row.update({k: summary.get(k) for k in ("held", "failed", "errors", "seconds",
                                                    "nofile_limit")})
            time.sleep(0.5)  # let the server settle (threads started, buffers allocated)
            st = proc_status(server.pid)
            row["rss_kib"] = st.get("VmRSS")
            row["hwm_kib"] = st.get("VmHWM")
            row["threads"] = st.get("Threads")
            row["vm_size_kib"] = st.get("VmSize")
            if server.alive():
                lg = tools.loadgen_run(server.port, f"ping-{name.replace(' ', '-')}-{count}",
                                       "/ping", 200, 4, 1, args.ping_seconds)
                light = lg["classes"]["light"]
                row.update(latency(light))
                row["ping_ok"] = light["ok"]
                row["ping_errors"] = light["errors"]
            holder.stdin.write("check\n")
            holder.stdin.flush()
            row["still_open"] = json.loads(holder.stdout.readline() or "{}").get("open")
        finally:
            holder.stdin.close()
            holder.wait(60)
        row["server_alive"] = server.alive()
        held = row.get("held") or 0
        if held and row.get("rss_kib") and row.get("base_rss_kib"):
            row["rss_per_connection_kib"] = (row["rss_kib"] - row["base_rss_kib"]) / held
    finally:
        row["server_exit"] = server.stop()
        row["server_stderr_tail"] = server.stderr_tail(400) if row.get("failed") else ""
    return row


def claim_connections(tools, args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = min(hard - 100, args.max_connections)
    levels = sorted({l for l in (1000, 10000, top) if l <= top})
    configs = server_configs(tools, "inline")
    rows = []
    for name in ("ferry offload", "ferry thread", "asyncio", "uvloop"):
        for count in levels:
            log(f"1/4 connections: {name}, {count} idle keep-alive connections")
            try:
                rows.append(hold_level(tools, name, configs[name], count, args))
            except Exception as e:  # recorded, the run goes on
                rows.append({"server": name, "requested": count, "error": str(e)})
                log(f"  failed: {e}")
    limits = {"nofile_soft": soft, "nofile_hard": hard, "top_level": top,
              "max_connections_cap": args.max_connections}
    for key, path in (("threads_max", "/proc/sys/kernel/threads-max"),
                      ("pid_max", "/proc/sys/kernel/pid_max"),
                      ("max_map_count", "/proc/sys/vm/max_map_count"),
                      ("nr_open", "/proc/sys/fs/nr_open")):
        with open(path) as f:
            limits[key] = int(f.read())
    limits["nproc_soft"], limits["nproc_hard"] = resource.getrlimit(resource.RLIMIT_NPROC)
    limits["stack_kib"] = resource.getrlimit(resource.RLIMIT_STACK)[0] // 1024
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        limits["ephemeral_ports"] = f.read().split()
    return {"levels": levels, "rows": rows, "limits": limits}


# --- claim 2: fan-out --------------------------------------------------------------------------


def fanout_rows(tools, port, delay_ms, kinds, args):
    rows = []
    for kind in kinds:
        log(f"2/4 fan-out: {args.requests} requests of {delay_ms} ms, {kind}")
        if kind.startswith("ferry "):
            mode = kind.split()[1]
            argv = [tools.fanout, "client", "--port", str(port), "--mode", mode, "--requests",
                    str(args.requests), "--delay-ms", str(delay_ms), "--limit", "10"]
        else:
            mode = kind.split()[1]
            argv = [PY, tools.aio_fanout, "--port", str(port), "--mode", mode, "--requests",
                    str(args.requests), "--delay-ms", str(delay_ms)]
        try:
            r = run_json(argv, timeout=args.requests * delay_ms / 1000 * 1.5 + 60)
        except Exception as e:
            r = {"error": str(e)}
            log(f"  failed: {e}")
        r["kind"] = kind
        r["delay_ms"] = delay_ms
        rows.append(r)
    return rows


FANOUT_CONCURRENT = ["ferry gather", "ferry semaphore", "ferry threads", "python gather"]
FANOUT_SEQUENTIAL = ["ferry sequential", "python sequential"]


class Background:
    """The sequential fan-out at the long delay (about 100 s of idle waiting): two clients, run
    while the later sections are measured, collected at the end."""

    def __init__(self, tools, port, delay_ms, args):
        self.rows = []
        self.thread = threading.Thread(target=self._run, args=(tools, port, delay_ms, args))
        self.thread.start()

    def _run(self, tools, port, delay_ms, args):
        inner = []
        threads = [threading.Thread(target=lambda k=k: inner.extend(
            fanout_rows(tools, port, delay_ms, [k], args))) for k in FANOUT_SEQUENTIAL]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.rows = sorted(inner, key=lambda r: FANOUT_SEQUENTIAL.index(r["kind"]))

    def join(self):
        self.thread.join()
        return self.rows


def claim_fanout_start(tools, args):
    backend = Server("fanout-backend", [tools.fanout, "backend", "--port", "0"], tools.logdir)
    rows = fanout_rows(tools, backend.port, args.short_delay_ms,
                       FANOUT_SEQUENTIAL + FANOUT_CONCURRENT, args)
    background = None
    if args.long_delay_ms:
        rows += fanout_rows(tools, backend.port, args.long_delay_ms, FANOUT_CONCURRENT, args)
        log(f"2/4 fan-out: the sequential runs at {args.long_delay_ms} ms "
            f"(~{args.requests * args.long_delay_ms / 1000:.0f} s) continue in the background")
        background = Background(tools, backend.port, args.long_delay_ms, args)
    return {"backend": backend, "rows": rows, "background": background,
            "requests": args.requests, "delays_ms": [d for d in (args.short_delay_ms,
                                                                 args.long_delay_ms) if d]}


def claim_fanout_finish(state):
    if state["background"]:
        log("2/4 fan-out: waiting for the background sequential runs")
        state["rows"] += state["background"].join()
        state["background_sequential"] = True
    state["backend_exit"] = state.pop("backend").stop()
    state.pop("background")
    return state


# --- claim 3: aggregation ----------------------------------------------------------------------


def claim_aggregation(tools, args):
    backend = Server("agg-backend", [tools.fanout, "backend", "--port", "0"], tools.logdir)
    bp = str(backend.port)
    configs = {
        "ferry": [tools.fanout, "aggregator", "--port", "0", "--backend-port", bp],
        "threads": [tools.fanout, "aggregator-threads", "--port", "0", "--backend-port", bp],
        "asyncio": [PY, tools.aio_server, "--port", "0", "--backend-port", bp],
    }
    calls, ms = 3, args.agg_ms
    rows = []
    try:
        for name, argv in configs.items():
            for how in ("sequential", "gather"):
                ideal_ms = ms * (calls if how == "sequential" else 1)
                key = f"{name} {how}"
                row = {"config": key, "server": name, "how": how, "ideal_ms": ideal_ms,
                       "steps": []}
                server = start_server(row, rows, f"agg-{name}-{how}", argv, tools.logdir)
                if server is None:
                    continue
                try:
                    for rate in args.agg_rates:
                        log(f"3/4 aggregation: {key}, {rate} req/s")
                        connections = min(4000, int(math.ceil(rate * ideal_ms / 1000 * 2)) + 8)
                        path = f"/agg?calls={calls}&ms={ms}&how={how}"
                        lg = tools.loadgen_run(server.port, f"agg-{name}-{how}-{rate}", path, rate,
                                               connections, 1, args.agg_seconds,
                                               server_pid=server.pid, timeout_ms=10000)
                        light = lg["classes"]["light"]
                        step = {"rate": rate, "connections": connections, **latency(light),
                                "ok_rps": light["ok_rps"], "requests": light["requests"],
                                "errors": light["errors"],
                                "server_cpu_percent": (lg.get("server_cpu") or {}).get(
                                    "percent_of_machine")}
                        step["sustained"] = (
                            light["requests"] > 0
                            and light["errors"] <= 0.01 * light["requests"]
                            and light["ok_rps"] >= 0.95 * rate
                            and step["p99_ms"] is not None
                            and step["p50_ms"] <= 1.25 * ideal_ms
                            and step["p99_ms"] <= 2 * ideal_ms)
                        row["steps"].append(step)
                        if not step["sustained"]:
                            break
                finally:
                    row["server_exit"] = server.stop()
                sustained = [s["rate"] for s in row["steps"] if s["sustained"]]
                row["highest_sustained_rate"] = max(sustained) if sustained else None
                row["ladder_exhausted"] = bool(row["steps"]) and row["steps"][-1]["sustained"] \
                    and len(row["steps"]) == len(args.agg_rates)
                rows.append(row)
    finally:
        backend_exit = backend.stop()
    return {"calls": calls, "ms": ms, "rates": args.agg_rates, "fixed_rate": args.agg_rates[0],
            "rows": rows, "backend_exit": backend_exit,
            "sustained_means": "errors <= 1%, answered >= 95% of the offered rate, "
                               "p50 <= 1.25 x and p99 <= 2 x the ideal latency"}


# --- claim 4: CPU-bound ------------------------------------------------------------------------


def claim_cpu(tools, args, others):
    heavy_connections = 2 * CORES
    rows = []
    configs = []
    for mode in ("inline", "offload", "thread"):
        configs.append((f"ferry {mode}", server_configs(tools, "inline")[f"ferry {mode}"]))
    for mode, label in (("inline", "inline"), ("thread", "to_thread"), ("process", "process pool")):
        configs.append((f"asyncio {label}", server_configs(tools, mode)["asyncio"]))
    configs.append(("uvloop process pool", server_configs(tools, "process")["uvloop"]))
    for name, argv in configs:
        log(f"4/4 CPU-bound: {name}")
        row = {"config": name}
        others.mark()
        server = start_server(row, rows, f"cpu-{name.replace(' ', '-')}", argv, tools.logdir)
        if server is None:
            continue
        try:
            result = {}

            def sample():
                time.sleep(args.cpu_warmup)
                result["cpu0"] = tree_cpu_seconds(server.pid)
                result["t0"] = time.monotonic()
                time.sleep(args.cpu_seconds / 2)
                result["threads"] = proc_status(server.pid).get("Threads")
                result["processes"] = 1 + len(descendants(server.pid))
                time.sleep(args.cpu_seconds / 2)
                result["cpu1"] = tree_cpu_seconds(server.pid)
                result["t1"] = time.monotonic()

            sampler = threading.Thread(target=sample)
            sampler.start()
            lg = tools.loadgen_run(server.port, f"cpu-{name.replace(' ', '-')}", "/ping", 200, 4,
                                   args.cpu_warmup, args.cpu_seconds,
                                   heavy_path=f"/work?us={args.work_us}",
                                   heavy_connections=heavy_connections, server_pid=server.pid)
            sampler.join()
            heavy, light = lg["classes"]["heavy"], lg["classes"]["light"]
            row.update({"light_" + k: v for k, v in latency(light).items()})
            row["light_ok"], row["light_errors"] = light["ok"], light["errors"]
            row["heavy_rps"] = heavy["ok_rps"]
            row["heavy_errors"] = heavy["errors"]
            row["heavy_capacity_rps"] = CORES * 1e6 / args.work_us
            row["tree_cpu_percent"] = 100.0 * (result["cpu1"] - result["cpu0"]) / (
                (result["t1"] - result["t0"]) * CORES)
            row["processes"] = result["processes"]  # in the middle of the measured window
            row["threads"] = result["threads"]
        except Exception as e:
            row["error"] = str(e)
            log(f"  failed: {e}")
        finally:
            row["server_exit"] = server.stop()
        row["others"] = others.since()
        rows.append(row)
    return {"work_us": args.work_us, "heavy_connections": heavy_connections,
            "light_rate": 200, "light_connections": 4, "warmup_s": args.cpu_warmup,
            "duration_s": args.cpu_seconds, "rows": rows}


# --- the run -----------------------------------------------------------------------------------


def machine():
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    distro = "Linux"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    versions = {}
    try:
        import aiohttp

        versions["aiohttp"] = aiohttp.__version__
        import uvloop

        versions["uvloop"] = uvloop.__version__
    except ImportError:
        pass
    versions["python"] = platform.python_version()
    return {"cpu": model, "cores": CORES, "mem_gib": mem_kib / 1024 / 1024, "os": distro,
            "kernel": platform.release(), "versions": versions}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--command", default="scripts/threads-vs-async")
    p.add_argument("--setup-seconds", type=float, help="what the driver spent before (build)")
    p.add_argument("--quick", action="store_true", help="short runs, 1 s fan-out skipped")
    p.add_argument("--max-connections", type=int, default=50_000,
                   help="cap on the top connection level (below RLIMIT_NOFILE)")
    p.add_argument("--sections", default="1,2,3,4")
    args = p.parse_args()
    args.requests = 100
    args.short_delay_ms = 100
    args.long_delay_ms = 0 if args.quick else 1000
    args.hold_timeout = 120
    args.ping_seconds = 1 if args.quick else 2
    args.agg_ms = 200
    args.agg_rates = [50, 200, 800] if args.quick else [50, 200, 800, 1600]
    args.agg_seconds = 2 if args.quick else 3
    args.work_us = 10000
    args.cpu_warmup = 1 if args.quick else 2
    args.cpu_seconds = 3 if args.quick else 6
    sections = set(args.sections.split(","))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    logdir = os.path.join(os.path.dirname(os.path.abspath(args.out)), "raw")
    os.makedirs(logdir, exist_ok=True)
    tools = Tools(args.build, logdir)
    started = time.monotonic()
    result = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": args.command, "quick": args.quick, "machine": machine(),
              "setup_seconds": args.setup_seconds,
              "nofile_soft_at_start": soft, "sections_others": {}}
    others = Others()
    others_all = Others()
    section_others = Others()
    fan = None
    if "2" in sections:
        fan = claim_fanout_start(tools, args)
        result["sections_others"]["fan-out"] = section_others.since()
    if "3" in sections:
        result["aggregation"] = claim_aggregation(tools, args)
        result["sections_others"]["aggregation"] = section_others.since()
    if "4" in sections:
        result["cpu"] = claim_cpu(tools, args, others)
        section_others.since()  # claim_cpu records its own per row
    if "1" in sections:
        result["connections"] = claim_connections(tools, args)
        result["sections_others"]["connections"] = section_others.since()
    if fan:
        result["fanout"] = claim_fanout_finish(fan)
    result["sections_others"]["whole run"] = others_all.since()
    result["run_seconds"] = time.monotonic() - started
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    log(f"measurements took {result['run_seconds']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
