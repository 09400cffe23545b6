#!/usr/bin/python3
"""Opens N keep-alive HTTP connections to a server and holds them idle (claim 1 of
docs/threads-vs-async.md).

Each connection is opened without blocking (epoll, at most --concurrency handshakes at once),
sends one `GET /ping` and reads its 200 answer — so the server has accepted it and set it up
(a coroutine, or a thread in thread-per-connection mode) — and then stays idle. Once every
connection is held or has failed, prints one JSON line: requested, held, failed, errors by kind,
seconds. Then, for each line "check" read on stdin, prints {"open": K}: how many held connections
the server has not closed. Closes everything and exits at the end of stdin.

The soft RLIMIT_NOFILE is raised to the hard limit. The sockets are bound to source addresses
127.S.0.1, 127.S.1.1, ... (S = --source, 10,000 connections per address), so that neither the
ephemeral port range nor the TIME_WAIT sockets of an earlier run slow the connects down.

    bench/python/hold_connections.py --port 8080 --count 10000
"""

import argparse
import errno
import json
import resource
import select
import socket
import sys
import time

REQUEST = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PER_SOURCE_ADDRESS = 10_000


def error_name(code):
    return errno.errorcode.get(code, str(code))


def hold(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ep = select.epoll()
    pending = {}  # fd -> [socket, state, received bytes]
    held = []
    errors = {}
    started = 0
    failed = 0
    start = time.monotonic()
    deadline = start + args.timeout

    def fail(fd, kind):
        nonlocal failed
        sock = pending.pop(fd)[0]
        ep.unregister(fd)
        sock.close()
        failed += 1
        errors[kind] = errors.get(kind, 0) + 1

    out_of_fds = False
    last_progress = start
    while (started < args.count and not out_of_fds) or pending:
        while started < args.count and len(pending) < args.concurrency and not out_of_fds:
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as e:
                out_of_fds = True
                errors[f"holder: socket() {error_name(e.errno)}"] = args.count - started
                failed += args.count - started
                break
            sock.setblocking(False)
            sock.bind((f"127.{args.source}.{started // PER_SOURCE_ADDRESS}.1", 0))
            started += 1
            code = sock.connect_ex((args.host, args.port))
            if code not in (0, errno.EINPROGRESS):
                sock.close()
                failed += 1
                errors[f"connect {error_name(code)}"] = errors.get(f"connect {error_name(code)}", 0) + 1
                continue
            pending[sock.fileno()] = [sock, "connecting", b""]
            ep.register(sock.fileno(), select.EPOLLOUT)
        if time.monotonic() > deadline:
            for fd in list(pending):
                fail(fd, "timeout")
            break
        if args.progress and time.monotonic() - last_progress >= 1:
            last_progress = time.monotonic()
            print(f"{last_progress - start:.1f} s: held {len(held)}, pending {len(pending)}", file=sys.stderr)
        for fd, event in ep.poll(0.5):
            entry = pending.get(fd)
            if entry is None:
                continue
            sock, state, data = entry
            if state == "connecting":
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code != 0:
                    fail(fd, f"connect {error_name(code)}")
                    continue
                try:
                    sock.send(REQUEST)
                except OSError as e:
                    fail(fd, f"send {error_name(e.errno)}")
                    continue
                entry[1] = "sent"
                ep.modify(fd, select.EPOLLIN)
                continue
            try:
                chunk = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError as e:
                fail(fd, f"recv {error_name(e.errno)}")
                continue
            if not chunk:
                fail(fd, "closed by the server before answering")
                continue
            data += chunk
            entry[2] = data
            head_end = data.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            status_line = data.split(b"\r\n", 1)[0].decode("latin-1")
            parts = status_line.split(" ")
            if len(parts) < 2 or parts[1] != "200":
                fail(fd, f"answered {' '.join(parts[1:2]) or status_line}")
                continue
            ep.unregister(fd)
            held.append(pending.pop(fd)[0])
    return {
        "requested": args.count,
        "held": len(held),
        "failed": failed,
        "errors": errors,
        "seconds": time.monotonic() - start,
        "nofile_soft_before": soft,
        "nofile_limit": hard,
    }, held


def still_open(sockets):
    count = 0
    for sock in sockets:
        try:
            if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                count += 1  # unexpected data, but open
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=256, help="handshakes at once")
    parser.add_argument("--source", type=int, default=1, choices=range(1, 255),
                        help="second byte of the source addresses")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for all of them")
    args = parser.parse_args()
    summary, held = hold(args)
    print(json.dumps(summary), flush=True)
    for line in sys.stdin:
        if line.strip() == "check":
            print(json.dumps({"open": still_open(held)}), flush=True)
    for sock in held:
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
