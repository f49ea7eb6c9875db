#!/usr/bin/env bash
# hl-loader with a busy warehouse: another process holds SQLite's write lock
# while records arrive. The writer thread retries the transaction with
# backoff (hl_loader_commits_total{result="busy"} grows), nothing is
# written meanwhile, and once the lock is released every record is loaded
# and its offset committed. Then the lock is taken again and hl-loader is
# stopped with SIGTERM: the stop gives the busy transaction up, the process
# exits 0 without committing it (nor the offsets of its records: the next
# run loads those records, exactly once).
. "$(dirname "$0")/lib.sh"
LOADER=$BUILD/workers/loader/hl-loader
[ -x "$LOADER" ] || skip_all "hl-loader is not built"
command -v sqlite3 >/dev/null || skip_all "sqlite3 is not installed"
command -v python3 >/dev/null || skip_all "python3 is not installed"

N=400
DB=$TMP/wh.db
start_devbroker HL_DEVBROKER_BROKERS=1 HL_DEVBROKER_BYTE_METRICS=false
produce() { # first count
  seq "$1" $(($1 + $2 - 1)) | awk '{ printf "org-1/Patient/p%06d\t{\"resourceType\":\"Patient\",\"id\":\"p%06d\"}\n", $1, $1 }' |
    kcat -b "$BOOTSTRAP" -P -t hl.fhir.valid -K $'\t' -H hl-job=j1 -H hl-source=file:///a.ndjson 2>>"$TMP/kcat.err" ||
    fail "produce $2 records"
}
raw_count() { sqlite3 -cmd ".timeout 5000" "$DB" "SELECT COUNT(*) FROM raw" 2>/dev/null; }
raw_is() { [ "$(raw_count)" = "$1" ]; }
# Holds the write lock of the warehouse until the file $TMP/unlock appears.
hold_lock() {
  rm -f "$TMP/unlock" "$TMP/locked"
  python3 - "$DB" "$TMP" <<'PY' &
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(os.path.join(sys.argv[2], "locked"), "w").close()
while not os.path.exists(os.path.join(sys.argv[2], "unlock")):
    time.sleep(0.05)
c.execute("ROLLBACK")
PY
  LOCK_PID=$!
  PIDS+=("$LOCK_PID")
  wait_for 30 test -e "$TMP/locked" || fail "take the warehouse's write lock"
}
release_lock() { touch "$TMP/unlock"; wait "$LOCK_PID"; forget_pid "$LOCK_PID"; }

export HL_KAFKA_BROKERS=$BOOTSTRAP HL_KAFKA_GROUP=it-busy HL_KAFKA_STATS_INTERVAL=500ms \
  HL_WAREHOUSE_PATH=$DB HL_WAREHOUSE_BUSY_TIMEOUT=50ms HL_WAREHOUSE_RETRY_BUDGET=100ms \
  HL_WORKER_BATCH_MAX=100 HL_WORKER_BATCH_WAIT=20ms
PORT=$(free_port)
start_loader() { # name
  HL_ADMIN_ADDR=127.0.0.1:$PORT "$LOADER" 2>"$TMP/loader-$1.log" &
  LD_PID=$!
  PIDS+=("$LD_PID")
  wait_for 60 admin_ready "127.0.0.1:$PORT" || fail "hl-loader ($1) becomes ready"
}
busy() { metric "127.0.0.1:$PORT" 'hl_loader_commits_total{result="busy"}'; }
busy_past() { local b; b=$(busy); [ -n "$b" ] && [ "${b%.*}" -ge "$1" ]; }

produce 1 "$N"
start_loader 1
wait_for 60 raw_is "$N" || fail "the first $N records are loaded (RAW holds $(raw_count))"
wait_for 60 worker_caught_up "127.0.0.1:$PORT" hl.fhir.valid || fail "their offsets are committed"
ok "hl-loader loaded $N records and committed their offsets"
# Its threads carry names (top -H, /proc/<pid>/task/*/comm): the warehouse writer and the admin server.
threads=$(cat /proc/"$LD_PID"/task/*/comm 2>/dev/null | sort -u | tr '\n' ' ')
for t in hl-wh-writer hl-admin; do
  [[ " $threads" == *" $t "* ]] || fail "a thread named $t (threads: $threads)"
done
ok "threads named: $threads"

hold_lock
produce $((N + 1)) "$N"
wait_for 60 busy_past 2 || fail "the writer retries the busy transaction (busy commits: $(busy))"
sleep 1
[ "$(raw_count)" = "$N" ] || fail "nothing is written while the lock is held"
admin_ready "127.0.0.1:$PORT" || fail "a busy warehouse does not turn readiness down"
ok "warehouse locked: the transaction is retried ($(busy) busy attempts), nothing written"
release_lock
wait_for 60 raw_is $((2 * N)) || fail "after the lock is released every record is loaded (RAW $(raw_count))"
wait_for 60 worker_caught_up "127.0.0.1:$PORT" hl.fhir.valid || fail "and its offset committed"
ok "lock released: $((2 * N)) records loaded, offsets committed"

hold_lock
produce $((2 * N + 1)) "$N"
wait_for 60 busy_past 3 || fail "the writer retries again"
stop_within "$LD_PID" 60
[ "$RC" = 0 ] || fail "SIGTERM stops hl-loader while the warehouse is busy, status 0 (got $RC)"
release_lock
[ "$(raw_count)" = $((2 * N)) ] || fail "the given-up transaction wrote nothing (RAW $(raw_count))"
ok "SIGTERM during a busy retry: the transaction is given up, exit status 0"

start_loader 2
wait_for 60 raw_is $((3 * N)) || fail "the next run loads the rest (RAW $(raw_count))"
wait_for 60 worker_caught_up "127.0.0.1:$PORT" hl.fhir.valid || fail "and commits its offsets"
distinct=$(sqlite3 "$DB" "SELECT COUNT(DISTINCT id) FROM raw")
[ "$distinct" = $((3 * N)) ] || fail "each record once ($distinct distinct ids)"
ok "the next run loaded the rest exactly once: $((3 * N)) rows"
done_testing
