#!/usr/bin/env bash
# docs/examples/server/smoke_test.sh <ferry_server> [flags...] — the ctest smoke test example.server.
# Starts the server on port 0 with an admin listener on another, reads its two "listening on"
# lines, sends a few requests over one keep-alive connection, /stats and /metrics over one to the
# admin listener and a malformed one over another (bash's /dev/tcp, no other tool), then
# stops it with SIGTERM and expects exit status 0.
set -euo pipefail
export LC_ALL=C

server=${1:?usage: smoke_test.sh <path to ferry_server> [server flags...]}
shift
work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  printf 'example.server: FAILED: %s\n' "$*" >&2
  printf -- '--- server stderr ---\n' >&2
  cat "$work/stderr" >&2 || true
  exit 1
}

"$server" --port 0 --admin-port 0 "$@" >"$work/stdout" 2>"$work/stderr" &
pid=$!
for _ in $(seq 1200); do
  [[ $(wc -l <"$work/stdout") -ge 2 ]] && break
  kill -0 "$pid" 2>/dev/null || fail "the server exited before listening"
  sleep 0.05
done
line=$(head -n1 "$work/stdout")
[[ $line =~ ^listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]] || fail "first line on stdout: '$line'"
port=${BASH_REMATCH[1]}
printf 'example.server: %s\n' "$line"
admin_line=$(sed -n 2p "$work/stdout")
[[ $admin_line =~ ^admin\ listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]] ||
  fail "second line on stdout: '$admin_line'"
admin_port=${BASH_REMATCH[1]}
printf 'example.server: %s\n' "$admin_line"

# read_response <fd>: sets status (the status line) and body (Content-Length bytes).
read_response() {
  local fd=$1 line length=0
  IFS= read -r -t 60 line <&"$fd" || fail "no status line"
  status=${line%$'\r'}
  while IFS= read -r -t 60 line <&"$fd"; do
    line=${line%$'\r'}
    [[ -z $line ]] && break
    if [[ ${line,,} =~ ^content-length:\ *([0-9]+)$ ]]; then length=${BASH_REMATCH[1]}; fi
  done
  body=
  if ((length > 0)); then
    IFS= read -r -t 60 -N "$length" body <&"$fd" || fail "short body after '$status'"
  fi
}

# expect <fd> <request> <status line> [<body pattern>]
expect() {
  local fd=$1 request=$2 want=$3 pattern=${4:-}
  printf '%b' "$request" >&"$fd"
  read_response "$fd"
  [[ $status == "$want" ]] || fail "${request%%\\r*}: got '$status', expected '$want'"
  if [[ -n $pattern && ! $body =~ $pattern ]]; then
    fail "${request%%\\r*}: body '$body' does not match '$pattern'"
  fi
  printf 'example.server: %-28s -> %s\n' "${request%%\\r*}" "$status"
}

exec 3<>"/dev/tcp/127.0.0.1/$port"
expect 3 'GET /ping HTTP/1.1\r\nHost: smoke\r\n\r\n' 'HTTP/1.1 200 OK' '^pong'
expect 3 'GET /work?us=1000 HTTP/1.1\r\nHost: smoke\r\n\r\n' 'HTTP/1.1 200 OK' '^[0-9a-f]{16}'
expect 3 'POST /hash?rounds=3 HTTP/1.1\r\nHost: smoke\r\nContent-Length: 5\r\n\r\nhello' \
  'HTTP/1.1 200 OK' '^[0-9a-f]{16}'
expect 3 'GET /work?us=0 HTTP/1.1\r\nHost: smoke\r\n\r\n' 'HTTP/1.1 400 Bad Request'
expect 3 'GET /nowhere HTTP/1.1\r\nHost: smoke\r\n\r\n' 'HTTP/1.1 404 Not Found'
expect 3 'GET /stats HTTP/1.1\r\nHost: smoke\r\n\r\n' 'HTTP/1.1 404 Not Found'
exec 3>&-

exec 5<>"/dev/tcp/127.0.0.1/$admin_port"
expect 5 'GET /stats HTTP/1.1\r\nHost: smoke\r\n\r\n' 'HTTP/1.1 200 OK' '"connections"'
expect 5 'GET /metrics HTTP/1.1\r\nHost: smoke\r\n\r\n' 'HTTP/1.1 200 OK' 'ferry_server_requests_total'
exec 5>&-

exec 4<>"/dev/tcp/127.0.0.1/$port"
expect 4 'NOT AN HTTP REQUEST\r\n\r\n' 'HTTP/1.1 400 Bad Request'
if IFS= read -r -t 60 line <&4; then fail "the connection stayed open after a 400: '$line'"; fi
exec 4>&-

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
((rc == 0)) || fail "exit status $rc after SIGTERM"
printf 'example.server: stopped by SIGTERM, exit status 0\n'
