#!/usr/bin/env bash
# hl-parser's downstream bound counts bytes too: hl-devbroker keeps 5 MiB a
# partition, and a bound of HL_PARSER_MAX_DOWNSTREAM_LAG messages (by default
# 100,000 over 64 partitions, ~1,560 a partition) is ~1.5 MiB of 1 KB
# resources but far more of large ones. With 8 KB resources and
# HL_PARSER_MAX_DOWNSTREAM_PARTITION_BYTES=64KiB (8 resources a partition)
# the parser holds back long before the message bound (100,000); it used to
# send all 3,000 out. Once the group reads, the rest comes out.
source "$(dirname "$0")/lib.sh"

PARSER=$BUILD/workers/parser/hl-parser
[ -x "$PARSER" ] || skip_all "hl-parser is not built"
LANDING=$TMP/landing
N=3000
start_devbroker HL_DEVBROKER_BROKERS=1

A=127.0.0.1:$(free_port)
env HL_KAFKA_BROKERS="$BOOTSTRAP" HL_ADMIN_ADDR="$A" HL_PARSER_LANDING_DIR="$LANDING" \
  HL_PARSER_DOWNSTREAM_GROUP=it-big HL_PARSER_MAX_DOWNSTREAM_LAG=100000 \
  HL_PARSER_MAX_DOWNSTREAM_PARTITION_BYTES=64KiB HL_DRAIN_TIMEOUT=5s \
  HL_LOG_LEVEL=info "$PARSER" 2>>"$TMP/parser.err" &
PARSER_PID=$!
PIDS+=("$PARSER_PID")
wait_for 60 admin_ready "$A" || fail "hl-parser becomes ready"

# N Patients of ~8 KB each (a long narrative), announced as hl-s3-notifier would.
mkdir -p "$LANDING/org=big"
F=$LANDING/org=big/big.ndjson
awk -v n=$N 'BEGIN {
  pad = sprintf("%8000s", ""); gsub(/ /, "x", pad)
  for (i = 1; i <= n; i++)
    printf "{\"resourceType\":\"Patient\",\"id\":\"big-%06d\",\"gender\":\"female\",\"text\":{\"status\":\"generated\",\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">%s</div>\"}}\n", i, pad
}' >"$F"
printf 'landing/org=big/big.ndjson\t{"uri":"file://%s","bucket":"landing","key":"org=big/big.ndjson","size":%s,"event_time":"2026-11-25T00:00:00.000Z","org":"big","job":"big"}\n' \
  "$F" "$(stat -c %s "$F")" | kcat -b "$BOOTSTRAP" -P -t hl.landing.objects -K $'\t' 2>>"$TMP/kcat.err"

waits() { [ "$(metric "$A" hl_parser_lag_waits_total)" -ge 1 ] 2>/dev/null; }
wait_for 60 waits || fail "the parser waits for the downstream group (by bytes: $(topic_messages hl.fhir.raw) of $N out)"
holds_between hl.fhir.raw 8 1500 "it holds back by bytes (8 a partition, 64 partitions)"
ok "no reader: the parser waits with $HELD of $N resources of ~8 KB out (message bound 100,000)"

read_until it-big hl.fhir.raw $N
ok "the group reads: all $N resources out, $(metric "$A" hl_parser_lag_waits_total) wait(s)"
! grep -q '"level":"error"' "$TMP/parser.err" || fail "no error logged: $(grep '"level":"error"' "$TMP/parser.err" | head -2)"
ok "no error logged"
done_testing
