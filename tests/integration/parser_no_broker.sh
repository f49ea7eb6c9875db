#!/usr/bin/env bash
# hl-parser runs through libstream's hl_worker_main, so a stop without a
# broker is bounded as for every worker: with the broker up, SIGTERM stops it
# cleanly (status 0); after the broker is killed under a parser holding
# consumed, uncommitted input, it exits within HL_DRAIN_TIMEOUT +
# HL_WORKER_CLOSE_TIMEOUT (+ slack) with status 3 (stopped at the close
# deadline; the input is delivered again). Before, its own main loop returned
# 0 or 1 and never 3.
source "$(dirname "$0")/lib.sh"

PARSER=$BUILD/workers/parser/hl-parser
[ -x "$PARSER" ] || skip_all "hl-parser is not built"
LANDING=$TMP/landing
DRAIN_S=2
CLOSE_S=3
start_devbroker HL_DEVBROKER_BROKERS=1

run_parser() { # group admin
  env HL_KAFKA_BROKERS="$BOOTSTRAP" HL_KAFKA_GROUP="$1" HL_ADMIN_ADDR="$2" \
    HL_PARSER_LANDING_DIR="$LANDING" HL_PARSER_DOWNSTREAM_GROUP= HL_DRAIN_TIMEOUT=${DRAIN_S}s \
    HL_WORKER_CLOSE_TIMEOUT=${CLOSE_S}s HL_KAFKA_STATS_INTERVAL=500ms HL_LOG_LEVEL=info \
    "$PARSER" 2>>"$TMP/parser.err" &
  PARSER_PID=$!
  PIDS+=("$PARSER_PID")
}

# 1. Control: broker up, the stop is clean.
A1=127.0.0.1:$(free_port)
run_parser it-pnb-a "$A1"
wait_for 60 admin_ready "$A1" || fail "hl-parser becomes ready"
announce_patients nb first 200
wait_for 60 topic_has hl.fhir.raw 200 || fail "the 200 resources are parsed"
stop_within "$PARSER_PID" 60
[ "$RC" = 0 ] || fail "with the broker up, SIGTERM stops hl-parser cleanly (status $RC)"
ok "control: broker up, SIGTERM -> status 0 in ${ELAPSED_MS} ms"

# 2. The broker is killed (SIGKILL) under a parser that consumed input it has not committed.
A2=127.0.0.1:$(free_port)
run_parser it-pnb-b "$A2"
wait_for 60 admin_ready "$A2" || fail "a second hl-parser becomes ready"
announce_patients nb second 200
wait_for 60 topic_has hl.fhir.raw 600 || fail "both objects are parsed by the second parser"
stop_without_broker hl-parser "$PARSER_PID" "$TMP/parser.err" "$DRAIN_S" "$CLOSE_S"
done_testing
