#!/usr/bin/env bash
# Regression: a worker told to stop (SIGTERM) after its broker is gone used to
# wait out its drain and then hang for ever in the final offset commit and
# rd_kafka_consumer_close(), which need a group coordinator. The final commit
# and the close are now bounded by HL_WORKER_CLOSE_TIMEOUT: hl-passthrough
# must exit within HL_DRAIN_TIMEOUT + HL_WORKER_CLOSE_TIMEOUT (+ slack) with
# status 3 (stopped at the deadline; what was not committed is delivered
# again). With the broker up, the same stop is clean (status 0, fast).
. "$(dirname "$0")/lib.sh"
[ -x "$PASSTHROUGH" ] || skip_all "hl-passthrough is not built"

DRAIN_S=2
CLOSE_S=3
run_passthrough() { # group admin
  env HL_KAFKA_BROKERS="$BOOTSTRAP" HL_KAFKA_GROUP="$1" HL_PT_INPUT_TOPIC=it.close.in \
    HL_PT_OUTPUT_TOPIC=it.close.out HL_ADMIN_ADDR="$2" HL_DRAIN_TIMEOUT=${DRAIN_S}s \
    HL_WORKER_CLOSE_TIMEOUT=${CLOSE_S}s HL_KAFKA_STATS_INTERVAL=500ms HL_LOG_LEVEL=info \
    "$PASSTHROUGH" 2>>"$TMP/passthrough.err" &
  PT_PID=$!
  PIDS+=("$PT_PID")
}

# 1. Control: broker up, the stop is clean and quick.
start_devbroker HL_DEVBROKER_BROKERS=1 HL_DEVBROKER_EXTRA_TOPICS=it.close.in:4,it.close.out:4
A1=127.0.0.1:$(free_port)
run_passthrough it-close-a "$A1"
wait_for 60 admin_ready "$A1" || fail "hl-passthrough becomes ready"
produce_keyed it.close.in 500 1 || fail "produce 500 messages"
wait_for 60 topic_has it.close.out 500 || fail "the 500 messages are copied"
stop_within "$PT_PID" 60
[ "$RC" = 0 ] || fail "with the broker up, SIGTERM stops hl-passthrough cleanly (status $RC)"
ok "control: broker up, SIGTERM -> status 0 in ${ELAPSED_MS} ms"

# 2. The broker is killed (SIGKILL) under a worker holding stored, uncommitted offsets.
A2=127.0.0.1:$(free_port)
run_passthrough it-close-b "$A2"
wait_for 60 admin_ready "$A2" || fail "a second hl-passthrough becomes ready"
produce_keyed it.close.in 2000 501 || fail "produce 2000 more messages"
wait_for 60 topic_has it.close.out 2500 || fail "the 2000 messages are copied"
stop_without_broker hl-passthrough "$PT_PID" "$TMP/passthrough.err" "$DRAIN_S" "$CLOSE_S" or-0
done_testing
