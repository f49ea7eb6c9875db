#!/usr/bin/env bash
# A broker outage in the middle of a copy: hl-passthrough is copying when
# every broker of hl-devbroker goes down (control API). Its /readyz must turn
# non-200; when the brokers come back it must turn 200 again, finish the copy
# and lose nothing.
. "$(dirname "$0")/lib.sh"
[ -x "$PASSTHROUGH" ] || skip_all "hl-passthrough is not built"
command -v python3 >/dev/null || skip_all "python3 is not installed"

N=${HL_IT_OUTAGE_MESSAGES:-20000}
start_devbroker HL_DEVBROKER_BROKERS=3 HL_DEVBROKER_BYTE_METRICS=false \
  HL_DEVBROKER_EXTRA_TOPICS=it.outage.in:16,it.outage.out:16
PT_PORT=$(free_port)
PT_ADMIN=127.0.0.1:$PT_PORT
export HL_KAFKA_BROKERS=$BOOTSTRAP HL_KAFKA_GROUP=it-outage HL_PT_INPUT_TOPIC=it.outage.in \
  HL_PT_OUTPUT_TOPIC=it.outage.out HL_KAFKA_STATS_INTERVAL=500ms HL_WORKER_MAX_INFLIGHT=1000 \
  HL_ADMIN_ADDR=$PT_ADMIN HL_KAFKA_PROPS="session.timeout.ms=6000,heartbeat.interval.ms=500"
"$PASSTHROUGH" 2>"$TMP/passthrough.err" &
PT_PID=$!
PIDS+=("$PT_PID")

ready_is() { [ "$(http_status GET "http://$PT_ADMIN/readyz")" = "$1" ]; }
not_ready() { local s; s=$(http_status GET "http://$PT_ADMIN/readyz"); [ "$s" != 200 ] && [ "$s" != 000 ]; }
wait_for 60 ready_is 200 || fail "hl-passthrough becomes ready"
ok "hl-passthrough is ready"

# The first half is copied while the brokers are up.
produce_keyed it.outage.in $((N / 2)) 1 || fail "produce the first half"
wait_all_keys it.outage.out $((N / 2)) 60 || fail "the first half is copied"
ok "copied the first $((N / 2)) messages"

# The second half is produced with latency, and the brokers go down mid-copy.
curl -sf -XPOST "http://$ADMIN/control/latency" -d '{"rtt_ms":20}' >/dev/null || fail "set latency"
produce_keyed it.outage.in $((N / 2)) $((N / 2 + 1)) || fail "produce the second half"
out_past() { local n; n=$(topic_messages it.outage.out); [ -n "$n" ] && [ "$n" -ge "$1" ]; }
wait_for 60 out_past $((N / 2 + N / 8)) || fail "the copy of the second half starts"
[ "$(http_status POST "http://$ADMIN/control/broker/all/down")" = 200 ] || fail "take every broker down"
down_at=$(topic_messages it.outage.out)
ok "every broker down with $down_at of $N messages in the output"
wait_for 60 not_ready || fail "/readyz turns non-200 while every broker is down"
ok "hl-passthrough's /readyz answers $(http_status GET "http://$PT_ADMIN/readyz") during the outage"
curl -s "http://$PT_ADMIN/readyz" | sed 's/^/# readyz: /'
echo
sleep 2 # the outage lasts a little while the worker keeps retrying

[ "$(http_status POST "http://$ADMIN/control/reset")" = 200 ] || fail "bring the brokers back"
wait_for 90 ready_is 200 || fail "/readyz turns 200 again after the outage"
ok "ready again after the brokers came back"
if ! wait_all_keys it.outage.out "$N" 120; then
  # The worker's own view (paused, in flight, deliveries) goes with the failure.
  curl -s "http://$PT_ADMIN/metrics" | grep -E '^hl_(worker|consumer_lag)' >"$TMP/worker-metrics.log"
  fail "the copy finishes (worker lag $(worker_lag "$PT_ADMIN" it.outage.in))"
fi
kill -TERM "$PT_PID"
wait "$PT_PID"
rc=$?
forget_pid "$PT_PID"
[ $rc = 0 ] || fail "hl-passthrough stops cleanly on SIGTERM (status $rc)"

consume_keys it.outage.out "$TMP/out.keys" || fail "consume the output"
total=$(wc -l <"$TMP/out.keys")
sort -u "$TMP/out.keys" >"$TMP/out.unique"
seq 1 "$N" | awk '{ printf "key-%06d\n", $1 }' >"$TMP/want.keys"
missing=$(comm -23 "$TMP/want.keys" "$TMP/out.unique" | wc -l)
echo "# output: $total messages, $(wc -l <"$TMP/out.unique") distinct keys"
[ "$missing" = 0 ] || fail "$missing keys lost, e.g. $(comm -23 "$TMP/want.keys" "$TMP/out.unique" | head -3 | tr '\n' ' ')"
ok "no message lost across the outage: all $N keys present, $((total - N)) duplicates"
done_testing
