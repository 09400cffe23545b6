#!/usr/bin/python3
"""An asyncio HTTP server on aiohttp.web, written the way the asyncio guides recommend.

The Python side of docs/threads-vs-async.md (scripts/threads-vs-async), with the endpoints of
ferry_server that the comparison uses:

    GET /ping            -> "pong", no CPU
    GET /work?us=N       -> about N microseconds of CPU (the W5 heavy endpoint), run where
                            --mode says:
                              inline   on the event loop itself (what the guides warn about)
                              thread   `await asyncio.to_thread(work, n)` (the GIL serialises it)
                              process  `await loop.run_in_executor(ProcessPoolExecutor(), ...)`
    GET /agg?calls=C&ms=M&how=sequential|gather
                         -> C calls to the backend's /delay?ms=M (--backend-port), awaited one
                            after the other or with asyncio.gather, through one ClientSession

The work kernel is the xorshift64 loop of ferry's benchmarks written in Python and calibrated at
start-up (the best of several short runs), so that /work?us=10000 costs about 10 ms of CPU here
as it does in ferry_server. Once listening, prints "listening on 127.0.0.1:<port>"; SIGTERM or
SIGINT stops it cleanly (exit 0).

    bench/python/aio_server.py --port 8080 --mode process [--loop uvloop]
"""

import argparse
import asyncio
import concurrent.futures
import os
import resource
import signal
import sys
import time

import aiohttp
from aiohttp import web

MASK = (1 << 64) - 1


def xorshift(iterations, seed=1):
    """`iterations` steps of xorshift64 (the CPU work of /work)."""
    x = seed | 1
    for _ in range(iterations):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
    return x


def calibrate():
    """xorshift iterations per microsecond: the best of 51 runs of about 1 ms (short runs, so
    that some run is not preempted on a shared machine)."""
    iterations = 5_000
    best = float("inf")
    for _ in range(51):
        start = time.perf_counter()
        xorshift(iterations)
        best = min(best, time.perf_counter() - start)
    return iterations / (best * 1e6)


routes = web.RouteTableDef()


@routes.get("/ping")
async def ping(request):
    return web.Response(text="pong")


@routes.get("/work")
async def work(request):
    try:
        us = int(request.query["us"])
    except (KeyError, ValueError):
        raise web.HTTPBadRequest(text="us must be an integer")
    if not 1 <= us <= 1_000_000:
        raise web.HTTPBadRequest(text="us must be in [1, 1000000]")
    app = request.app
    n = round(us * app["iterations_per_us"])
    mode = app["mode"]
    if mode == "inline":
        result = xorshift(n)
    elif mode == "thread":
        result = await asyncio.to_thread(xorshift, n)
    else:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(app["process_pool"], xorshift, n)
    return web.Response(text=f"{result}\n")


@routes.get("/agg")
async def agg(request):
    calls = int(request.query.get("calls", "3"))
    ms = int(request.query.get("ms", "200"))
    how = request.query.get("how", "sequential")
    session = request.app["client"]
    url = f"http://127.0.0.1:{request.app['backend_port']}/delay?ms={ms}"

    async def call():
        async with session.get(url) as response:
            response.raise_for_status()
            return await response.text()

    if how == "gather":
        await asyncio.gather(*(call() for _ in range(calls)))
    else:
        for _ in range(calls):
            await call()
    return web.Response(text="ok")


async def client_session(app):
    # One session for the whole server, as aiohttp's documentation recommends. limit=0: no cap
    # on connections to the backend (the default of 100 would be the bottleneck at high rates).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        app["client"] = session
        yield


async def process_pool(app):
    if app["mode"] != "process":
        yield
        return
    with concurrent.futures.ProcessPoolExecutor() as pool:  # one worker per core
        # Start the workers now, not on the first request.
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(pool, xorshift, 1) for _ in range(os.cpu_count())))
        app["process_pool"] = pool
        yield


async def serve(args):
    app = web.Application()
    app.add_routes(routes)
    app["mode"] = args.mode
    app["backend_port"] = args.backend_port
    app["iterations_per_us"] = calibrate()
    app.cleanup_ctx.append(client_session)
    app.cleanup_ctx.append(process_pool)
    # Idle keep-alive connections stay open (the default closes them after 75 s).
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=args.keepalive_timeout)
    await runner.setup()
    site = web.TCPSite(runner, args.address, args.port, backlog=4096)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(
        f"aio_server: mode {args.mode}, loop {args.loop}, work kernel calibrated at "
        f"{app['iterations_per_us']:.2f} iterations/us",
        file=sys.stderr,
    )
    print(f"listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--mode", choices=("inline", "thread", "process"), default="inline")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--backend-port", type=int, default=0, help="for /agg")
    parser.add_argument("--keepalive-timeout", type=float, default=3600.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
