#!/usr/bin/env bash
# hl-parser's downstream bound: while the group that reads hl.fhir.raw is more
# than HL_PARSER_MAX_DOWNSTREAM_LAG messages behind, the parser holds back
# in the middle of an object (hl_parser_lag_waits_total counts it) instead of
# filling the broker past what it keeps; once the group catches up, the rest
# of the object comes out; a SIGTERM while it waits stops it promptly (the
# object is delivered again), where it used to give up after 60 s and then
# stop the worker with a fatal error after its retries.
source "$(dirname "$0")/lib.sh"

PARSER=$BUILD/workers/parser/hl-parser
[ -x "$PARSER" ] || skip_all "hl-parser is not built"
LANDING=$TMP/landing
N=12000
BOUND=2000
start_devbroker HL_DEVBROKER_BROKERS=1

A=127.0.0.1:$(free_port)
env HL_KAFKA_BROKERS="$BOOTSTRAP" HL_ADMIN_ADDR="$A" HL_PARSER_LANDING_DIR="$LANDING" \
  HL_PARSER_DOWNSTREAM_GROUP=it-slow HL_PARSER_MAX_DOWNSTREAM_LAG=$BOUND HL_DRAIN_TIMEOUT=5s \
  HL_KAFKA_STATS_INTERVAL=500ms HL_LOG_LEVEL=info "$PARSER" 2>>"$TMP/parser.err" &
PARSER_PID=$!
PIDS+=("$PARSER_PID")
wait_for 60 admin_ready "$A" || fail "hl-parser becomes ready"

# 1. Nobody reads: the parser stops near the bound (a check every 5,000 resources).
announce_patients ds first $N
waits() { [ "$(metric "$A" hl_parser_lag_waits_total)" -ge "${1:-1}" ] 2>/dev/null; }
wait_for 60 waits || fail "the parser waits for the downstream group"
holds_between hl.fhir.raw $BOUND $((BOUND + 5000 + BOUND / 4)) "it holds back near the bound $BOUND"
ok "no reader: the parser waits with $HELD of $N resources out (bound $BOUND)"

# 2. The group reads (and commits): the parser goes on to the end of the object.
read_until it-slow hl.fhir.raw $N
ok "the group reads: all $N resources out, $(metric "$A" hl_parser_lag_waits_total) wait(s)"

# 3. A second object while nobody reads, then SIGTERM during the wait: a prompt, clean stop.
before=$(metric "$A" hl_parser_lag_waits_total)
announce_patients ds second $N
wait_for 60 waits $((before + 1)) || fail "the parser waits again"
stop_within "$PARSER_PID" 60
[ "$RC" != hung ] && [ "$ELAPSED_MS" -le 20000 ] || fail "SIGTERM during the wait stops hl-parser within 20 s (took ${ELAPSED_MS} ms, status $RC)"
[ "$RC" = 0 ] || [ "$RC" = 3 ] || fail "exit status 0 or 3, not $RC"
ok "SIGTERM while waiting: stopped in ${ELAPSED_MS} ms, status $RC (the object is delivered again)"
! grep -q '"level":"error"' "$TMP/parser.err" || fail "no error logged: $(grep '"level":"error"' "$TMP/parser.err" | head -2)"
ok "no error logged"
done_testing
