#!/usr/bin/env bash
# hl-devbroker as a user meets it: --help, bad configuration, kcat round trip,
# the control API, /metrics through promtool, clean stop.
. "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null || skip_all "promtool is not installed"

# --help lists every variable; bad configuration exits 2 naming the variable.
help=$("$DEVBROKER" --help) || fail "--help exits 0"
for v in HL_DEVBROKER_BROKERS HL_DEVBROKER_TOPICS_FILE HL_DEVBROKER_EXTRA_TOPICS \
  HL_DEVBROKER_ADDR_FILE HL_DEVBROKER_METRICS_INTERVAL HL_DEVBROKER_BYTE_METRICS HL_ADMIN_ADDR; do
  grep -q "$v" <<<"$help" || fail "--help lists $v"
done
ok "--help lists every variable"

bad_config() { # expected-word VAR=value...
  local word=$1 rc
  shift
  env HL_DEVBROKER_ADDR_FILE= HL_ADMIN_ADDR= HL_DEVBROKER_TOPICS_FILE="$TOPICS_FILE" "$@" "$DEVBROKER" \
    >/dev/null 2>"$TMP/bad.log"
  rc=$?
  [ $rc = 2 ] || { echo "# $* exited $rc"; return 1; }
  grep -q "$word" "$TMP/bad.log" || { echo "# message: $(cat "$TMP/bad.log")"; return 1; }
}
check "HL_DEVBROKER_BROKERS=0 exits 2" bad_config HL_DEVBROKER_BROKERS HL_DEVBROKER_BROKERS=0
check "HL_DEVBROKER_BROKERS=x exits 2" bad_config HL_DEVBROKER_BROKERS HL_DEVBROKER_BROKERS=x
check "a missing topics file exits 2" bad_config HL_DEVBROKER_TOPICS_FILE \
  HL_DEVBROKER_TOPICS_FILE=/nonexistent.json
echo '{"version":1,"topics":[{"name":"bad name"}]}' >"$TMP/bad-topics.json"
check "an invalid topics file exits 2" bad_config "not a valid Kafka topic" \
  HL_DEVBROKER_TOPICS_FILE="$TMP/bad-topics.json"
check "a bad extra topic exits 2" bad_config HL_DEVBROKER_EXTRA_TOPICS \
  HL_DEVBROKER_EXTRA_TOPICS=nopartitions
check "HL_DEVBROKER_METRICS_INTERVAL=1ms exits 2" bad_config HL_DEVBROKER_METRICS_INTERVAL \
  HL_DEVBROKER_METRICS_INTERVAL=1ms
HL_DEVBROKER_ADDR_FILE= HL_ADMIN_ADDR= "$DEVBROKER" --frobnicate >/dev/null 2>"$TMP/bad.log"
[ $? = 2 ] && grep -q -- --frobnicate "$TMP/bad.log" || fail "an unknown argument exits 2"
ok "an unknown argument exits 2"

start_devbroker HL_DEVBROKER_BROKERS=2 HL_DEVBROKER_EXTRA_TOPICS=it.extra:5
[[ $BOOTSTRAP =~ ^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$ ]] || fail "two brokers on 127.0.0.1: $BOOTSTRAP"
[ "$(cat "$TMP/devbroker.addr")" = "$BOOTSTRAP" ] || fail "the address file holds the bootstrap list"
ok "prints bootstrap=$BOOTSTRAP and writes the address file"

# Every topic of topics.json exists with its partition count, as kcat sees it.
kcat -b "$BOOTSTRAP" -L -J >"$TMP/metadata.json" 2>>"$TMP/kcat.err" || fail "kcat -L"
want=$(jq -r '.topics[] | "\(.name) \(.partitions)"' "$TOPICS_FILE" | sort)
have=$(jq -r '.topics[] | "\(.topic) \(.partitions | length)"' "$TMP/metadata.json" | grep -v '^it\.' | sort)
[ "$want" = "$have" ] || fail "topics differ: want [$want] have [$have]"
jq -e '.topics[] | select(.topic == "it.extra") | (.partitions | length) == 5' "$TMP/metadata.json" \
  >/dev/null || fail "the extra topic has 5 partitions"
ok "kcat sees every topic of topics.json with its partition count"

# kcat round trip: keys, values and headers come back, each key once.
seq 1 2000 | awk '{ printf "org1/Observation/%d\t{\"id\":\"%d\"}\n", $1, $1 }' |
  kcat -b "$BOOTSTRAP" -P -t hl.fhir.raw -K $'\t' -H hl-org=org1 -H hl-job=job1 \
    2>>"$TMP/kcat.err" || fail "kcat produce"
timeout 60 kcat -b "$BOOTSTRAP" -C -t hl.fhir.raw -o beginning -e -q \
  -f '%k %s %h\n' >"$TMP/roundtrip.txt" 2>>"$TMP/kcat.err" || fail "kcat consume"
[ "$(wc -l <"$TMP/roundtrip.txt")" = 2000 ] || fail "2000 messages back, got $(wc -l <"$TMP/roundtrip.txt")"
[ "$(cut -d' ' -f1 "$TMP/roundtrip.txt" | sort -u | wc -l)" = 2000 ] || fail "2000 distinct keys"
grep -q '^org1/Observation/1234 {"id":"1234"} hl-org=org1,hl-job=job1$' "$TMP/roundtrip.txt" ||
  fail "key, value and headers intact"
ok "kcat round trip of 2000 keyed messages with headers"

# /metrics counts them and passes promtool.
wait_for 20 topic_has hl.fhir.raw 2000 || fail "state counts 2000 messages"
bytes=$(( $(cut -d' ' -f1,2 "$TMP/roundtrip.txt" | tr -d ' \n' | wc -c) ))
raw_bytes_are() { [ "$(metric "$ADMIN" 'hl_devbroker_bytes_total{topic="hl.fhir.raw"}')" = "$1" ]; }
wait_for 20 raw_bytes_are "$bytes" ||
  fail "bytes_total = $bytes, got $(metric "$ADMIN" 'hl_devbroker_bytes_total{topic="hl.fhir.raw"}')"
[ "$(metric "$ADMIN" 'hl_devbroker_messages_total{topic="hl.fhir.raw"}')" = 2000 ] || fail "messages_total"
[ "$(metric "$ADMIN" 'hl_devbroker_partitions{topic="hl.fhir.raw"}')" = 64 ] || fail "partitions"
ok "/metrics counts 2000 messages and $bytes payload bytes"
curl -sf "http://$ADMIN/metrics" >"$TMP/metrics.txt" || fail "GET /metrics"
promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.log" 2>&1 || fail "promtool check metrics: $(cat "$TMP/promtool.log")"
ok "promtool check metrics passes"
[ "$(http_status GET "http://$ADMIN/healthz")" = 200 ] || fail "/healthz"
[ "$(http_status GET "http://$ADMIN/readyz")" = 200 ] || fail "/readyz"
ok "/healthz and /readyz answer 200"

# Control: brokers down and up.
curl -sf "http://$ADMIN/control/state" >"$TMP/state.json" || fail "GET /control/state"
jq -e '.brokers | length == 2 and all(.up)' "$TMP/state.json" >/dev/null || fail "state: two brokers up"
[ "$(http_status POST "http://$ADMIN/control/broker/1/down")" = 200 ] || fail "broker 1 down"
[ "$(metric "$ADMIN" 'hl_devbroker_broker_up{broker="1"}')" = 0 ] || fail "broker_up{1} = 0"
[ "$(http_status GET "http://$ADMIN/readyz")" = 200 ] || fail "ready with one broker up"
[ "$(http_status POST "http://$ADMIN/control/broker/all/down")" = 200 ] || fail "all down"
[ "$(http_status GET "http://$ADMIN/readyz")" = 503 ] || fail "/readyz 503 with every broker down"
echo "k:v" | timeout 30 kcat -b "$BOOTSTRAP" -P -t hl.dlq -K: -X message.timeout.ms=1500 \
  2>>"$TMP/kcat.err" && fail "kcat cannot produce while every broker is down"
ok "brokers go down: metric 0, /readyz 503, kcat refused"
[ "$(http_status POST "http://$ADMIN/control/reset")" = 200 ] || fail "reset"
[ "$(metric "$ADMIN" 'hl_devbroker_broker_up{broker="1"}')" = 1 ] || fail "broker_up{1} = 1"
echo "k:v" | timeout 30 kcat -b "$BOOTSTRAP" -P -t hl.dlq -K: 2>>"$TMP/kcat.err" ||
  fail "kcat produces after reset"
ok "reset brings the brokers back; kcat produces"

# Control: injected errors reach the client, by name.
[ "$(http_status POST "http://$ADMIN/control/errors" \
  '{"api":"Produce","errors":["TOPIC_AUTHORIZATION_FAILED"]}')" = 200 ] || fail "POST /control/errors"
echo "k:v" | timeout 30 kcat -b "$BOOTSTRAP" -P -t hl.dlq -K: -X retries=0 2>"$TMP/inject.log" &&
  fail "the injected error fails the produce"
grep -q "Topic authorization failed" "$TMP/inject.log" || fail "kcat reports the injected error"
[ "$(metric "$ADMIN" 'hl_devbroker_injected_errors_total{api="Produce"}')" = 1 ] || fail "injected_errors_total"
ok "an injected Produce error reaches kcat"
[ "$(http_status POST "http://$ADMIN/control/errors" '{"api":"Produce","errors":["NOPE"]}')" = 400 ] ||
  fail "unknown error name: 400"
[ "$(http_status POST "http://$ADMIN/control/errors" 'not json')" = 400 ] || fail "not JSON: 400"
[ "$(http_status GET "http://$ADMIN/control/broker/1/down")" = 405 ] || fail "GET on a POST route: 405"
[ "$(http_status POST "http://$ADMIN/control/broker/7/down")" = 404 ] || fail "unknown broker: 404"
ok "bad control requests answer 400, 404, 405"

# Control: latency slows every answer.
[ "$(http_status POST "http://$ADMIN/control/latency" '{"rtt_ms":600}')" = 200 ] || fail "latency"
t0=$(now_ms)
kcat -b "$BOOTSTRAP" -L -t hl.dlq >/dev/null 2>>"$TMP/kcat.err" || fail "kcat -L with latency"
slow=$(($(now_ms) - t0))
[ $slow -ge 600 ] || fail "kcat -L took ${slow} ms with 600 ms of latency"
rtt=$(metric "$ADMIN" 'hl_devbroker_broker_rtt_seconds{broker="2"}')
awk -v v="$rtt" 'BEGIN { exit !(v > 0.599 && v < 0.601) }' || fail "rtt metric is 0.6, not $rtt"
curl -sf -XPOST "http://$ADMIN/control/reset" >/dev/null || fail "reset"
ok "latency of 600 ms slows kcat -L to ${slow} ms"

# Clean stop on SIGTERM; the address file goes away.
kill -TERM "$DEVBROKER_PID"
t0=$SECONDS
wait "$DEVBROKER_PID"
rc=$?
forget_pid "$DEVBROKER_PID"
[ $rc = 0 ] || fail "SIGTERM: exit status $rc"
[ $((SECONDS - t0)) -le 10 ] || fail "stopped within 10 s"
[ ! -e "$TMP/devbroker.addr" ] || fail "address file removed"
ok "SIGTERM stops it cleanly (status 0) and removes the address file"
done_testing
