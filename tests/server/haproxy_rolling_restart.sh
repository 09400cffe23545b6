#!/usr/bin/env bash
# tests/server/haproxy_rolling_restart.sh — the drain protocol behind a real load balancer.
#
#   tests/server/haproxy_rolling_restart.sh path/to/ferry_server
#
# Two `ferry_server --mode offload --drain-ms DRAIN` backends behind HAProxy (its own process,
# config and stats socket in a temporary directory, loopback ports picked free): health check
# GET /health every 200 ms (fall 2, rise 2), no retries, no redispatch. wrk sends constant load on
# /work?us=2000 through HAProxy while each backend is restarted ROUNDS times, one at a time:
# SIGTERM, wait for exit 0, start a new process on the same port, wait until HAProxy has it up
# again. Passes when wrk saw 0 non-2xx responses and 0 socket errors and HAProxy counted no retry,
# no redispatch and no error. Prints the counts. Bounded: every wait has a limit, and the script
# cleans up whatever it started on exit.
set -euo pipefail

server=${1:?usage: haproxy_rolling_restart.sh path/to/ferry_server}
rounds=${ROUNDS:-3}
drain_ms=${DRAIN_MS:-1500}  # > fall (2) x inter (200 ms) + a check's own time
connections=${CONNECTIONS:-16}

log() { printf '[haproxy-test] %s\n' "$*"; }
die() {
  printf '[haproxy-test] FAILED: %s\n' "$*" >&2
  exit 1
}
for tool in haproxy wrk python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps installs it)"
done
[[ -x $server ]] || die "not an executable: $server"

dir=$(mktemp -d)
declare -A pid=() port=()
haproxy_pid='' wrk_pid=''
cleanup() {
  local p
  for p in "${pid[@]}" "$haproxy_pid" "$wrk_pid"; do
    [[ -n $p ]] && kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_ports() {  # N free loopback ports
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Waits (at most $2 s) until the file $1 contains a line matching $3.
wait_for_line() {
  local deadline=$((SECONDS + $2))
  until grep -q "$3" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

# --max-offloads: a fixed bound that wrk's connections never reach. The default (adaptive
# admission) answers 503 once 2 workers have more than 5 ms of /work queued, which wrk's 16
# closed-loop connections on this machine's 2 cores always cause; this test is about restarts.
start_backend() {  # name port
  local name=$1 p=$2 out=$dir/$1.$RANDOM.out
  "$server" --mode offload --port "$p" --cpu-threads 2 --max-offloads 1024 --drain-ms "$drain_ms" \
    --shutdown-deadline-ms 10000 --slow-callback-ms 0 >"$out" 2>>"$dir/$name.err" &
  pid[$name]=$!
  wait_for_line "$out" 30 '^listening on ' || die "$name did not start (see its stderr below)
$(cat "$dir/$name.err")"
}

haproxy_cmd() {  # a command on HAProxy's stats socket, its output on stdout
  python3 - "$dir/haproxy.sock" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while chunk := s.recv(65536):
    out += chunk
sys.stdout.write(out.decode())
EOF
}

# A field of `show stat` for backend "be", row $1 ("s1", "s2" or "BACKEND").
stat_field() {
  haproxy_cmd "show stat" | python3 -c '
import csv, sys
row, field = sys.argv[1], sys.argv[2]
lines = sys.stdin.read().lstrip("# ").splitlines()
for r in csv.DictReader(lines):
    if r["pxname"] == "be" and r["svname"] == row:
        print(r[field] or 0)
' "$1" "$2"
}

wait_up() {  # name: until HAProxy's health check has it UP (at most 30 s)
  local deadline=$((SECONDS + 30))
  until [[ $(stat_field "$1" status) == UP ]]; do
    ((SECONDS < deadline)) || die "HAProxy never marked $1 up"
    sleep 0.05
  done
}

read -r port[s1] port[s2] front < <(free_ports 3)
start_backend s1 "${port[s1]}"
start_backend s2 "${port[s2]}"

cat >"$dir/haproxy.cfg" <<EOF
global
  maxconn 4096
  stats socket $dir/haproxy.sock mode 600 level admin
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout check 1s
frontend fe
  bind 127.0.0.1:$front
  default_backend be
backend be
  balance roundrobin
  retries 0
  retry-on none
  no option redispatch
  option httpchk GET /health
  http-check expect status 200
  default-server inter 200ms fastinter 200ms downinter 200ms fall 2 rise 2
  server s1 127.0.0.1:${port[s1]} check
  server s2 127.0.0.1:${port[s2]} check
EOF
haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 &
haproxy_pid=$!
deadline=$((SECONDS + 30))
until [[ -S $dir/haproxy.sock ]]; do
  ((SECONDS < deadline)) || die "HAProxy did not start: $(cat "$dir/haproxy.log")"
  sleep 0.05
done
wait_up s1
wait_up s2
log "HAProxy on 127.0.0.1:$front, backends s1 on ${port[s1]}, s2 on ${port[s2]}, drain ${drain_ms} ms"

# Load for far longer than the restarts take; stopped with SIGINT (wrk then prints its counts).
wrk -t1 -c"$connections" -d600s --timeout 20s "http://127.0.0.1:$front/work?us=2000" \
  >"$dir/wrk.out" 2>&1 &
wrk_pid=$!
sleep 1

restarts=0
for ((round = 1; round <= rounds; ++round)); do
  for name in s1 s2; do
    kill -TERM "${pid[$name]}"
    rc=0
    wait "${pid[$name]}" || rc=$?
    [[ $rc -eq 0 ]] || die "$name (round $round) exited with $rc: $(tail -5 "$dir/$name.err")"
    start_backend "$name" "${port[$name]}"
    wait_up "$name"
    restarts=$((restarts + 1))
    log "round $round: $name restarted (exit 0, up again)"
  done
done
sleep 1
kill -INT "$wrk_pid"
wait "$wrk_pid" || die "wrk failed: $(cat "$dir/wrk.out")"
wrk_pid=''

cat "$dir/wrk.out"
requests=$(awk '/requests in/ {print $1}' "$dir/wrk.out")
non2xx=$(awk -F: '/Non-2xx or 3xx responses/ {gsub(/ /, "", $2); print $2}' "$dir/wrk.out")
non2xx=${non2xx:-0}
socket_errors=$(awk '/Socket errors/ {
  n = 0; for (i = 1; i <= NF; ++i) if ($i ~ /^[0-9]+,?$/) n += $i; print n }' "$dir/wrk.out")
socket_errors=${socket_errors:-0}
retries=$(stat_field BACKEND wretr)
redispatches=$(stat_field BACKEND wredis)
haproxy_5xx=$(stat_field BACKEND hrsp_5xx)
conn_errors=$(stat_field BACKEND econ)
resp_errors=$(stat_field BACKEND eresp)
log "requests $requests, restarts $restarts, non-2xx $non2xx, socket errors $socket_errors;" \
  "HAProxy: 5xx $haproxy_5xx, connection errors $conn_errors, response errors $resp_errors," \
  "retries $retries, redispatches $redispatches"
[[ ${requests:-0} -gt 0 ]] || die "wrk sent no request"
((restarts >= 2 * rounds)) || die "only $restarts restarts"
((non2xx == 0 && socket_errors == 0)) || die "$non2xx non-2xx responses, $socket_errors socket errors"
((haproxy_5xx == 0 && conn_errors == 0 && resp_errors == 0)) || die "HAProxy counted errors"
((retries == 0 && redispatches == 0)) || die "HAProxy retried or redispatched"
log "passed"
