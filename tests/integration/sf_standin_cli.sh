#!/usr/bin/env bash
# hl-sf-standin as a process: --help, a missing variable (exit 2), start
# with a key and a port file, a request, SIGTERM and a clean exit. TAP.
# Usage: sf_standin_cli.sh HL_SF_STANDIN_BINARY
set -uo pipefail
BIN=$1
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; fail=1; }
fail=0
echo "1..5"

"$BIN" --help >"$tmp/help" 2>&1 && grep -q HL_SF_STANDIN_DIR "$tmp/help" && ok "--help lists the variables" || notok "--help"
env -u HL_SF_STANDIN_DIR "$BIN" >/dev/null 2>&1; [ $? -eq 2 ] && ok "a missing required variable exits 2" || notok "exit 2"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/key.pem" 2>/dev/null
openssl pkey -in "$tmp/key.pem" -pubout -out "$tmp/pub.pem" 2>/dev/null
HL_SF_STANDIN_DIR="$tmp/data" HL_SF_STANDIN_PUBLIC_KEY_FILE="$tmp/pub.pem" HL_SF_STANDIN_PORT_FILE="$tmp/port" \
  "$BIN" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port=$(cat "$tmp/port" 2>/dev/null)
[ -n "$port" ] && ok "listening on 127.0.0.1:$port" || notok "port file"
code=$(curl -s -o "$tmp/stats" -w '%{http_code}' "http://127.0.0.1:$port/_standin/stats")
[ "$code" = 200 ] && grep -q '"executions"' "$tmp/stats" && ok "serves /_standin/stats" || notok "stats ($code)"
kill -TERM "$pid"
wait "$pid"; rc=$?
pid=
[ $rc -eq 0 ] && ok "SIGTERM: clean exit" || notok "SIGTERM exit $rc"
exit $fail
