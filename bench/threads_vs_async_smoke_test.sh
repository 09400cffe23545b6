#!/usr/bin/env bash
# ctest bench.threads_vs_async_smoke: the programs of scripts/threads-vs-async answer correctly
# (no timing is checked). fanout_bench's backend, its four fan-out clients, both aggregators;
# bench/python's aiohttp server in its three /work modes and with /agg, the aiohttp fan-out client,
# and the connection holder. Skipped (exit 77) when /usr/bin/python3 has no aiohttp.
#
#   bench/threads_vs_async_smoke_test.sh build/dev/bench/fanout_bench
set -euo pipefail
fanout=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# start NAME CMD...: runs CMD in the background until it prints "listening on 127.0.0.1:<port>";
# sets port and pid.
start() {
  local name=$1 line=
  shift
  : >"$tmp/$name.out"
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 600); do # until it listens (it calibrates first) or dies; 60 s at most
    line=$(grep -m1 '^listening on ' "$tmp/$name.out" || true)
    [[ -n $line ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ $line =~ :([0-9]+)$ ]] || fail "$name did not start: $(cat "$tmp/$name.err")"
  port=${BASH_REMATCH[1]}
}

# get PORT MODE TARGET: fanout_bench client, 4 requests, all answered 200.
get() {
  "$fanout" client --port "$1" --mode "$2" --requests 4 --target "$3" >"$tmp/client.out" ||
    fail "client --mode $2 $3 on port $1: $(cat "$tmp/client.out")"
}

# stop PID NAME: SIGTERM, and the exit status must be 0.
stop() {
  kill -TERM "$1"
  local status=0
  wait "$1" || status=$?
  ((status == 0)) || fail "$2 exited $status after SIGTERM"
}

start backend "$fanout" backend --port 0
backend=$port
backend_pid=$pid
for mode in sequential gather semaphore threads; do get "$backend" "$mode" '/delay?ms=1'; done
grep -q '"ok": 4' "$tmp/client.out" || fail "client output: $(cat "$tmp/client.out")"

for role in aggregator aggregator-threads; do
  start "$role" "$fanout" "$role" --port 0 --backend-port "$backend"
  for how in sequential gather; do get "$port" gather "/agg?calls=3&ms=1&how=$how"; done
  [[ $role == aggregator ]] && stop "$pid" "$role" # the threaded one has no graceful stop
done

if ! "$py" -c 'import aiohttp' 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 has no aiohttp (scripts/install-deps installs python3-aiohttp)"
  exit 77
fi
for mode in inline thread process; do
  start "aio-$mode" "$py" "$here/python/aio_server.py" --port 0 --mode "$mode" \
    --backend-port "$backend"
  get "$port" gather /ping
  get "$port" gather '/work?us=100'
  get "$port" sequential "/agg?calls=3&ms=1&how=gather"
  stop "$pid" "aio_server --mode $mode"
done

for mode in sequential gather; do
  "$py" "$here/python/aio_fanout.py" --port "$backend" --mode "$mode" --requests 5 --delay-ms 1 \
    >"$tmp/aio_fanout.out" || fail "aio_fanout --mode $mode: $(cat "$tmp/aio_fanout.out")"
done

held=$(printf 'check\n' | "$py" "$here/python/hold_connections.py" --port "$backend" --count 50)
grep -q '"held": 50' <<<"$held" || fail "hold_connections: $held"
grep -q '"open": 50' <<<"$held" || fail "hold_connections check: $held"
stop "$backend_pid" backend
echo "threads-vs-async programs: all checks passed"
