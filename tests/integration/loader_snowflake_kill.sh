#!/usr/bin/env bash
# Exactly-once into Snowflake under SIGKILL: the real hl-loader with
# HL_WAREHOUSE_BACKEND=snowflake streams N records of hl.fhir.valid from
# hl-devbroker into hl-sf-standin's RAW.FHIR_RESOURCES while it is killed
# (SIGKILL, no drain) and restarted several times; then it finishes. RAW
# must end with exactly one row per Kafka record: none lost (offsets are
# stored only after Snowflake reports them committed), none twice (a
# restarted loader skips records at or below each channel's committed
# offset token). Rows are counted in the stand-in's SQLite file.
. "$(dirname "$0")/lib.sh"
LOADER=$BUILD/workers/loader/hl-loader
STANDIN=$BUILD/tools/sf-standin/hl-sf-standin
[ -x "$LOADER" ] || skip_all "hl-loader is not built"
[ -x "$STANDIN" ] || skip_all "hl-sf-standin is not built"
command -v sqlite3 >/dev/null || skip_all "sqlite3 is not installed"
command -v openssl >/dev/null || skip_all "openssl is not installed"

N=${HL_IT_SF_MESSAGES:-3000}
KILLS=${HL_IT_SF_KILLS:-3}
SF=$TMP/sf

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TMP/key.pem" 2>/dev/null ||
  fail "generate an RSA key"
HL_SF_STANDIN_DIR=$SF HL_SF_STANDIN_PUBLIC_KEY_FILE=$TMP/key.pem HL_SF_STANDIN_PORT_FILE=$TMP/sf.port \
  HL_SF_STANDIN_INIT_SQL=$SRC/tests/integration/sf_raw.sql HL_SF_STANDIN_SPEC=$BUILD/tools/sf-standin/sqlapi.json \
  "$STANDIN" >"$TMP/standin.log" 2>"$TMP/standin.err" &
PIDS+=("$!")
wait_for 30 test -s "$TMP/sf.port" || fail "hl-sf-standin did not start"
ok "hl-sf-standin on port $(cat "$TMP/sf.port") with the RAW tables"

start_devbroker HL_DEVBROKER_BROKERS=1 HL_DEVBROKER_BYTE_METRICS=false
seq 1 "$N" | awk '{ printf "org-1/Patient/p%06d\t{\"resourceType\":\"Patient\",\"id\":\"p%06d\",\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"2024-01-01T00:00:00Z\"}}\n", $1, $1 }' |
  kcat -b "$BOOTSTRAP" -P -t hl.fhir.valid -K $'\t' -H hl-job=j1 -H hl-source=s3://landing/org-1/a.ndjson \
    -X enable.idempotence=true -X linger.ms=5 2>>"$TMP/kcat.err" || fail "produce $N records"
wait_for 30 topic_has hl.fhir.valid "$N" || fail "hl.fhir.valid holds $N records"
ok "produced $N records"

raw_count() { sqlite3 -cmd ".timeout 5000" "$SF/RAW.sqlite" "SELECT COUNT(*) FROM FHIR_RESOURCES" 2>/dev/null; }
past() { local n; n=$(raw_count); [ -n "$n" ] && [ "$n" -ge "$1" ]; }

export HL_KAFKA_BROKERS=$BOOTSTRAP HL_KAFKA_GROUP=it-sf-loader HL_KAFKA_STATS_INTERVAL=500ms \
  HL_KAFKA_PROPS="session.timeout.ms=3000,heartbeat.interval.ms=300,max.poll.interval.ms=10000" \
  HL_WAREHOUSE_BACKEND=snowflake HL_SNOWFLAKE_URL=http://127.0.0.1:$(cat "$TMP/sf.port") \
  HL_SNOWFLAKE_ACCOUNT=HLTEST HL_SNOWFLAKE_USER=LOADER HL_SNOWFLAKE_PRIVATE_KEY_FILE=$TMP/key.pem \
  HL_SNOWFLAKE_RETRY_BASE=20ms HL_SNOWFLAKE_RETRY_MAX=500ms HL_WORKER_BATCH_MAX=${HL_IT_SF_BATCH:-100}
LD_PORT=$(free_port)
start_loader() { # run name
  HL_ADMIN_ADDR=127.0.0.1:$LD_PORT "$LOADER" 2>"$TMP/loader-$1.err" &
  LD_PID=$!
  PIDS+=("$LD_PID")
}

mid=0
for k in $(seq 1 "$KILLS"); do
  start_loader "$k"
  share=$((N / (KILLS + 1)))
  before=$(raw_count)
  mark=$((before + share / 4 + RANDOM % (share / 2 + 1)))
  wait_for 60 past "$mark"
  kill -KILL "$LD_PID"
  wait "$LD_PID" 2>/dev/null
  forget_pid "$LD_PID"
  after=$(raw_count)
  [ "$after" -lt "$N" ] && mid=$((mid + 1))
  echo "# kill $k: RAW $before -> $after rows (mark $mark)"
done
ok "SIGKILLed hl-loader $KILLS times ($mid of them before RAW reached $N rows)"
# On a loaded machine a kill can land after the last row; one in the middle
# of the stream is what the test needs.
[ $mid -ge 1 ] || fail "a kill landed in the middle of the stream"

start_loader final
wait_for 120 past "$N" || fail "the last run loads every record (RAW holds $(raw_count))"
wait_for 60 worker_caught_up "127.0.0.1:$LD_PORT" hl.fhir.valid ||
  fail "the last run commits its offsets (lag $(worker_lag "127.0.0.1:$LD_PORT" hl.fhir.valid))"
kill -TERM "$LD_PID"
wait "$LD_PID"
rc=$?
forget_pid "$LD_PID"
[ $rc = 0 ] || fail "the last run stops cleanly on SIGTERM (status $rc)"
ok "the last run loaded everything, committed its offsets and stopped cleanly"

q() { sqlite3 -cmd ".timeout 5000" "$SF/RAW.sqlite" "$1"; }
total=$(q "SELECT COUNT(*) FROM FHIR_RESOURCES")
coords=$(q "SELECT COUNT(*) FROM (SELECT DISTINCT kafka_topic, kafka_partition, kafka_offset FROM FHIR_RESOURCES)")
ids=$(q "SELECT COUNT(DISTINCT id) FROM FHIR_RESOURCES")
echo "# RAW: $total rows, $coords distinct Kafka coordinates, $ids distinct ids"
[ "$total" = "$N" ] || fail "RAW holds exactly $N rows (got $total)"
[ "$coords" = "$N" ] && [ "$ids" = "$N" ] || fail "one row per Kafka record ($coords coordinates, $ids ids)"
ok "exactly one RAW row per Kafka record: $N rows"
loaded=$(q "SELECT loaded FROM JOBS WHERE tenant = 'org-1' AND job = 'j1'")
[ "$loaded" = "$N" ] || fail "the job's loaded count is $N (got $loaded)"
ok "the job's loaded count, recomputed from RAW, is $N"
done_testing
