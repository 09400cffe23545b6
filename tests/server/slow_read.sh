#!/usr/bin/env bash
# tests/server/slow_read.sh — the write timeout against slowhttptest's slow-read attack.
#
#   tests/server/slow_read.sh path/to/ferry_server
#
# One `ferry_server --mode offload --write-timeout-ms 2000 --send-buffer 4096
# --max-connections-per-client 0 --admin-port 0` on a free loopback port (every connection comes
# from 127.0.0.1; the small send buffer: the kernel would otherwise take the whole pipeline of
# responses and the server's writes would never block); slowhttptest -X opens CONNECTIONS
# connections that each pipeline 10 GET /rrr...r (a 404 echoing its path, about 1 KB:
# slowhttptest cuts the URL there), advertise a window of a few bytes and read 32 bytes every
# 5 s. Passes when the server cut connections off by its write timeout (/stats on the admin
# listener: write_timeouts > 0), slowhttptest's probe found the service available throughout,
# the server still answers /ping at the end, and it exits 0 on SIGTERM. Prints the
# counts. Bounded: slowhttptest runs for LENGTH seconds (default 20).
set -euo pipefail

server=${1:?usage: slow_read.sh path/to/ferry_server}
connections=${CONNECTIONS:-1000}
length=${LENGTH:-20}

log() { printf '[slow-read] %s\n' "$*"; }
die() {
  printf '[slow-read] FAILED: %s\n' "$*" >&2
  exit 1
}
for tool in slowhttptest curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps installs it)"
done

dir=$(mktemp -d)
server_pid=''
cleanup() {
  [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$server" --mode offload --port 0 --write-timeout-ms 2000 --send-buffer 4096 \
  --slow-callback-ms 0 --max-connections-per-client 0 --admin-port 0 \
  >"$dir/server.out" 2>"$dir/server.err" &
server_pid=$!
deadline=$((SECONDS + 30))
until grep -q '^admin listening on ' "$dir/server.out"; do
  ((SECONDS < deadline)) || die "the server did not start: $(cat "$dir/server.err")"
  sleep 0.05
done
address=$(sed -n 's/^listening on //p' "$dir/server.out")
admin=$(sed -n 's/^admin listening on //p' "$dir/server.out")
# Each response a 404 that echoes its path: ten of them pipelined are more than the small send
# buffer takes.
target="/$(printf 'r%.0s' $(seq 7000))"
log "server on $address; slowhttptest -X, $connections connections, ${length} s"

ulimit -n "$(ulimit -Hn)"
(cd "$dir" && timeout $((length + 60)) slowhttptest -X -c "$connections" -r 500 -k 10 -n 5 -z 32 \
  -w 2 -y 24 -l "$length" -p 3 -u "http://$address$target" >"$dir/slowhttptest.out" 2>&1) ||
  die "slowhttptest failed: $(tail -20 "$dir/slowhttptest.out")"

stats=$(curl -sf --max-time 5 "http://$admin/stats") || die "the server stopped answering /stats"
pong=$(curl -sf --max-time 5 "http://$address/ping") || die "the server stopped answering /ping"
write_timeouts=$(grep -o '"write_timeouts":[0-9]*' <<<"$stats" | cut -d: -f2)
unavailable=$(grep -c 'service available:[[:space:]]*NO' "$dir/slowhttptest.out" || true)
exit_status=$(grep -m1 -o 'Exit status:.*' "$dir/slowhttptest.out" || true)
kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=''
log "write timeouts ${write_timeouts:-?}, probes that found the service unavailable $unavailable," \
  "/ping '$pong', slowhttptest '${exit_status:-?}', server exit $rc"
[[ ${write_timeouts:-0} -gt 0 ]] || die "no connection was cut off by the write timeout"
((unavailable == 0)) || die "slowhttptest found the service unavailable"
[[ $pong == pong ]] || die "/ping did not answer pong"
((rc == 0)) || die "the server exited with $rc"
log "passed"
