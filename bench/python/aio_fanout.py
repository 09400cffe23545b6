#!/usr/bin/python3
"""Fetch N URLs with aiohttp: one after the other, or all at once with asyncio.gather.

The Python row of claim 2 in docs/threads-vs-async.md ("fetch 100 URLs concurrently: ~1 s instead
of 100 s"), written as the asyncio guides write it: one ClientSession, `async with
session.get(url)`, `await asyncio.gather(*(fetch(session, url) for url in urls))`. Prints one JSON
line: wall_ms (first request to last answer), ok, vm_hwm_kib and threads (from
/proc/self/status at the end).

    bench/python/aio_fanout.py --port P --mode gather --requests 100 --delay-ms 100
"""

import argparse
import asyncio
import json
import time

import aiohttp


async def fetch(session, url):
    async with session.get(url) as response:
        await response.text()
        return response.status == 200


async def fan_out(args):
    urls = [f"http://127.0.0.1:{args.port}/delay?ms={args.delay_ms}" for _ in range(args.requests)]
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        if args.mode == "gather":
            results = await asyncio.gather(*(fetch(session, url) for url in urls))
        else:
            results = [await fetch(session, url) for url in urls]
        wall = time.perf_counter() - start
    return wall, sum(results)


def status(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("sequential", "gather"), default="gather")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--delay-ms", type=int, default=100)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    wall, ok = asyncio.run(fan_out(args))
    print(
        json.dumps(
            {
                "mode": args.mode,
                "requests": args.requests,
                "delay_ms": args.delay_ms,
                "ok": ok,
                "wall_ms": wall * 1e3,
                "vm_hwm_kib": status("VmHWM"),
                "threads_at_end": status("Threads"),
            }
        )
    )
    return 0 if ok == args.requests else 1


if __name__ == "__main__":
    raise SystemExit(main())
