#!/usr/bin/env bash
# hl-loader on a full disk: the warehouse lives on a small tmpfs that fills
# up while records arrive. The failing transaction is not committed, nor are
# the offsets of its records: hl-loader logs the storage error and exits
# non-zero (in Kubernetes the pod restarts and stays unready meanwhile).
# Once there is room again the next run loads every record exactly once.
# Mounting needs root: the test skips itself otherwise.
. "$(dirname "$0")/lib.sh"
LOADER=$BUILD/workers/loader/hl-loader
[ -x "$LOADER" ] || skip_all "hl-loader is not built"
command -v sqlite3 >/dev/null || skip_all "sqlite3 is not installed"
MNT=$TMP/small
mkdir -p "$MNT"
mount -t tmpfs -o size=3m,mode=0700 hl-it-full "$MNT" 2>/dev/null ||
  skip_all "cannot mount a small tmpfs (needs root)"
# Unmounted once the workers have stopped, before the temporary directory goes.
AFTER_STOP+=("umount '$MNT' 2>/dev/null")

N=1500
DB=$MNT/wh.db
start_devbroker HL_DEVBROKER_BROKERS=1 HL_DEVBROKER_BYTE_METRICS=false
# Records of about 4 KiB: 1,500 of them need twice the room the disk has.
PAD=$(head -c 4000 /dev/zero | tr '\0' 'x')
seq 1 "$N" | awk -v pad="$PAD" '{ printf "org-1/Patient/p%06d\t{\"resourceType\":\"Patient\",\"id\":\"p%06d\",\"text\":{\"status\":\"generated\",\"div\":\"<div>%s</div>\"}}\n", $1, $1, pad }' |
  kcat -b "$BOOTSTRAP" -P -t hl.fhir.valid -K $'\t' -H hl-job=j1 -H hl-source=file:///a.ndjson 2>>"$TMP/kcat.err" ||
  fail "produce $N records"
ok "$N records of about 4 KiB on hl.fhir.valid, warehouse on a 3 MiB file system"

raw_count() { sqlite3 -cmd ".timeout 5000" "$DB" "SELECT COUNT(*) FROM raw" 2>/dev/null; }
raw_is() { [ "$(raw_count)" = "$1" ]; }
export HL_KAFKA_BROKERS=$BOOTSTRAP HL_KAFKA_GROUP=it-full HL_KAFKA_STATS_INTERVAL=500ms \
  HL_WAREHOUSE_PATH=$DB HL_WORKER_BATCH_MAX=100 HL_WORKER_BATCH_WAIT=20ms \
  HL_KAFKA_PROPS="session.timeout.ms=6000,heartbeat.interval.ms=500"
PORT=$(free_port)

HL_ADMIN_ADDR=127.0.0.1:$PORT "$LOADER" 2>"$TMP/loader-1.log" &
LD_PID=$!
PIDS+=("$LD_PID")
gone() { ! kill -0 "$LD_PID" 2>/dev/null; }
wait_for 120 gone || fail "hl-loader stops when the disk is full"
wait "$LD_PID"
RC=$?
forget_pid "$LD_PID"
[ "$RC" != 0 ] || fail "hl-loader exits non-zero on a full disk"
grep -q 'warehouse storage unavailable' "$TMP/loader-1.log" || fail "the log names the storage error"
grep -q '"sqlite":"database or disk is full"' "$TMP/loader-1.log" || fail "the log gives SQLite's reason"
loaded=$(raw_count)
[ -n "$loaded" ] && [ "$loaded" -lt "$N" ] || fail "the disk filled before every record was loaded (RAW $loaded)"
ok "disk full after $loaded of $N records: status $RC, the log names the storage error and SQLite's reason (disk full)"

# The same again with the disk still full: the next run fails the same way and loses nothing.
HL_ADMIN_ADDR=127.0.0.1:$PORT "$LOADER" 2>"$TMP/loader-2.log" &
LD_PID=$!
PIDS+=("$LD_PID")
wait_for 120 gone || fail "a second run on the full disk stops too"
wait "$LD_PID"
RC=$?
forget_pid "$LD_PID"
[ "$RC" != 0 ] || fail "the second run exits non-zero"
ok "a run on the still-full disk stops too (status $RC, RAW $(raw_count))"

mount -o remount,size=64m "$MNT" || fail "make room on the file system"
HL_ADMIN_ADDR=127.0.0.1:$PORT "$LOADER" 2>"$TMP/loader-3.log" &
LD_PID=$!
PIDS+=("$LD_PID")
wait_for 60 admin_ready "127.0.0.1:$PORT" || fail "hl-loader becomes ready once there is room"
wait_for 120 raw_is "$N" || fail "every record is loaded (RAW $(raw_count))"
wait_for 60 worker_caught_up "127.0.0.1:$PORT" hl.fhir.valid || fail "and its offset committed"
distinct=$(sqlite3 "$DB" "SELECT COUNT(DISTINCT id) FROM raw")
current=$(sqlite3 "$DB" "SELECT COUNT(*) FROM curated_patient")
[ "$distinct" = "$N" ] && [ "$current" = "$N" ] ||
  fail "each record once (RAW distinct ids $distinct, curated patients $current)"
ok "with room again: all $N records loaded exactly once, offsets committed"
done_testing
