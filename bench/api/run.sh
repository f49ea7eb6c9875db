#!/usr/bin/env bash
# bench/api: hl-api-gateway against nginx serving the same response bodies,
# both on 127.0.0.1, measured with wrk in the same run.
#
#   bench/api/run.sh [BUILD_DIR]          10 s per case, 64 connections
#   bench/api/run.sh [BUILD_DIR] --soak   adds 60 s at 1,000 connections (errors, RSS before/after)
#
# Cases: GET Patient/{id} with a valid RS256 token, and a Patient name
# search with 20 results. Prints requests/s, p99 latency and the ratio to
# nginx; targets (issue 6): read >= 0.5 of nginx with p99 <= 10 ms, search
# >= 10,000 requests/s. Environment: BENCH_DURATION (10s), BENCH_CONNS (64),
# BENCH_PATIENTS (2000).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=build
SOAK=0
for a in "$@"; do
  case "$a" in
    --soak) SOAK=1 ;;
    *) BUILD="$a" ;;
  esac
done
DUR=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNS:-64}
PATIENTS=${BENCH_PATIENTS:-2000}
for b in wrk nginx curl sqlite3; do
  command -v "$b" >/dev/null || { echo "bench/api: $b is not installed" >&2; exit 77; }
done
GW=$BUILD/workers/api-gateway/hl-api-gateway
TOK=$BUILD/tools/api-token/hl-api-token
[ -x "$GW" ] || { echo "bench/api: build first (ninja -C $BUILD)" >&2; exit 1; }

W=$(mktemp -d /tmp/hl-bench-api.XXXXXX)
chmod 755 "$W" # nginx workers run as another user when started by root
GWPID= NGPID=
cleanup() {
  [ -n "$GWPID" ] && kill "$GWPID" 2>/dev/null || true
  [ -n "$NGPID" ] && kill "$NGPID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

"$BUILD/synthetic/hl-synth" --patients "$PATIENTS" --orgs 1 --seed 7 --out "$W/fhir" --progress never --threads 2 >/dev/null
"$BUILD/tests/integration/hl-test-whload" "$W/fhir" "$W/wh.db" >/dev/null
"$TOK" keygen --key-out "$W/key.json" --jwks-out "$W/jwks.json" >/dev/null
TOKEN=$("$TOK" mint --key "$W/key.json" --tenant org-1 --scope "system/*.read" --ttl 7200)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GPORT=$(free_port)
HL_API_ADDR=127.0.0.1:$GPORT HL_WAREHOUSE_PATH=$W/wh.db HL_API_JWKS_FILE=$W/jwks.json HL_API_RATE_LIMIT=0 \
  HL_API_AUDIT=/dev/null HL_API_MAX_CONNECTIONS=2000 HL_LOG_LEVEL=warn "$GW" 2>"$W/gw.err" &
GWPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GPORT/readyz" >/dev/null && break; sleep 0.1; done

PID=$(sqlite3 "$W/wh.db" "SELECT id FROM curated_patient ORDER BY id LIMIT 1 OFFSET 17")
# A family-name prefix that matches the fewest patients with at least 20 matches.
NAME=$(sqlite3 "$W/wh.db" "SELECT p FROM (SELECT substr(value,1,3) p, count(DISTINCT id) n FROM curated_string WHERE param='name' GROUP BY p) WHERE n >= 20 AND p GLOB '[a-z][a-z][a-z]' ORDER BY n, p LIMIT 1")
READ=/v1/fhir/Patient/$PID
SEARCH="/v1/fhir/Patient?name=$NAME&_count=20"
mkdir -p "$W/www/v1/fhir/Patient"
curl -sf -H "Authorization: Bearer $TOKEN" -H "Host: 127.0.0.1:$GPORT" "http://127.0.0.1:$GPORT$READ" >"$W/www/read.json"
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GPORT$SEARCH" >"$W/www/search.json"
N=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["entry"]))' "$W/www/search.json")
echo "search: $SEARCH"
[ "$N" = 20 ] || { echo "bench/api: the search returned $N entries, not 20" >&2; exit 1; }

NPORT=$(free_port)
cat >"$W/nginx.conf" <<NGX
worker_processes 2;
pid $W/nginx.pid;
error_log $W/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $W/tmp; proxy_temp_path $W/tmp; fastcgi_temp_path $W/tmp;
  uwsgi_temp_path $W/tmp; scgi_temp_path $W/tmp;
  server {
    listen 127.0.0.1:$NPORT;
    default_type application/fhir+json;
    location = /read { alias $W/www/read.json; }
    location = /search { alias $W/www/search.json; }
  }
}
NGX
mkdir -p "$W/tmp"
nginx -c "$W/nginx.conf" -p "$W" -g 'daemon off;' 2>>"$W/nginx.err" &
NGPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$NPORT/read" >/dev/null && break; sleep 0.1; done
cmp -s <(curl -sf "http://127.0.0.1:$NPORT/search") "$W/www/search.json" || { echo "bench/api: nginx does not serve the bodies" >&2; cat "$W/nginx.err" >&2; exit 1; }

# wrk: prints "rps p99_ms errors" for one run.
measure() {
  local url=$1 conns=$2 dur=$3; shift 3
  local out
  out=$(wrk -t2 -c"$conns" -d"$dur" --latency "$@" "$url")
  python3 - "$out" <<'PY'
import re, sys
o = sys.argv[1]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)", o)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
err = 0
for k in ("Non-2xx or 3xx responses", "Socket errors"):
    mm = re.search(k + r":\s+(.*)", o)
    if mm:
        err += sum(int(x) for x in re.findall(r"\d+", mm.group(1)))
print(f"{rps:.0f} {p99:.2f} {err}")
PY
}

echo "bench/api: $PATIENTS patients, $CONNS connections, $DUR per case, wrk -t2 (2 cores shared by wrk, server and nginx)"
printf "%-28s %12s %9s %7s\n" case "requests/s" "p99 ms" errors
read -r g_rps g_p99 g_err <<<"$(measure "http://127.0.0.1:$GPORT$READ" "$CONNS" "$DUR" -H "Authorization: Bearer $TOKEN")"
read -r n_rps n_p99 n_err <<<"$(measure "http://127.0.0.1:$NPORT/read" "$CONNS" "$DUR")"
printf "%-28s %12s %9s %7s\n" "read  hl-api-gateway" "$g_rps" "$g_p99" "$g_err" "read  nginx (same body)" "$n_rps" "$n_p99" "$n_err"
RATIO=$(python3 -c "print(f'{$g_rps/$n_rps:.2f}')")
echo "read ratio gateway/nginx: $RATIO (target >= 0.5, p99 <= 10 ms)"
read -r s_rps s_p99 s_err <<<"$(measure "http://127.0.0.1:$GPORT$SEARCH" "$CONNS" "$DUR" -H "Authorization: Bearer $TOKEN")"
read -r m_rps m_p99 m_err <<<"$(measure "http://127.0.0.1:$NPORT/search" "$CONNS" "$DUR")"
printf "%-28s %12s %9s %7s\n" "search hl-api-gateway" "$s_rps" "$s_p99" "$s_err" "search nginx (same body)" "$m_rps" "$m_p99" "$m_err"
echo "search ratio gateway/nginx: $(python3 -c "print(f'{$s_rps/$m_rps:.2f}')") (target >= 10000 requests/s)"

if [ "$SOAK" = 1 ]; then
  rss() { awk '/VmRSS/ {print $2}' "/proc/$GWPID/status"; }
  r0=$(rss)
  read -r k_rps k_p99 k_err <<<"$(measure "http://127.0.0.1:$GPORT$READ" 1000 60s -H "Authorization: Bearer $TOKEN")"
  r1=$(rss)
  echo "soak 60 s, 1000 connections: $k_rps requests/s, p99 $k_p99 ms, errors $k_err, RSS ${r0} kB -> ${r1} kB"
fi
