#!/usr/bin/env bash
# At-least-once under SIGKILL: hl-passthrough copies N keyed messages while
# it is killed at random points (SIGKILL, no drain) and restarted several
# times; then it finishes. Every key must be in the output topic; duplicates
# are allowed (and counted), losses are not.
. "$(dirname "$0")/lib.sh"
[ -x "$PASSTHROUGH" ] || skip_all "hl-passthrough is not built"
command -v python3 >/dev/null || skip_all "python3 is not installed"

N=${HL_IT_KILL_MESSAGES:-30000}
KILLS=${HL_IT_KILLS:-5}
RTT_MS=${HL_IT_KILL_RTT_MS:-20}

start_devbroker HL_DEVBROKER_BROKERS=3 HL_DEVBROKER_BYTE_METRICS=false \
  HL_DEVBROKER_EXTRA_TOPICS=it.kill.in:16,it.kill.out:16
produce_keyed it.kill.in "$N" || fail "produce $N messages"
wait_for 30 topic_has it.kill.in "$N" || fail "the input topic holds $N messages"
ok "produced $N keyed messages"

# A little latency on every broker answer keeps produce requests in flight
# long enough for the kills to land in the middle of the copy.
curl -sf -XPOST "http://$ADMIN/control/latency" -d "{\"rtt_ms\":$RTT_MS}" >/dev/null ||
  fail "set latency"

# A short session and poll interval let the group evict a killed member in
# seconds instead of the default 45 s (the mock waits for it to rejoin).
export HL_KAFKA_BROKERS=$BOOTSTRAP HL_KAFKA_GROUP=it-kill HL_PT_INPUT_TOPIC=it.kill.in \
  HL_PT_OUTPUT_TOPIC=it.kill.out HL_KAFKA_STATS_INTERVAL=500ms HL_WORKER_MAX_INFLIGHT=1000 \
  HL_KAFKA_PROPS="session.timeout.ms=3000,heartbeat.interval.ms=300,max.poll.interval.ms=4000"

start_passthrough() { # run number
  : >"$TMP/passthrough-$1.err"
  HL_ADMIN_ADDR=127.0.0.1:$PT_PORT "$PASSTHROUGH" 2>"$TMP/passthrough-$1.err" &
  PT_PID=$!
  PIDS+=("$PT_PID")
}

out_messages() { topic_messages it.kill.out; }
# Distinct keys in the output: a replay after a kill writes duplicates, so the
# message count passes N before every key has been copied.
out_keys() { consume_keys it.kill.out "$TMP/kill.keys" && sort -u "$TMP/kill.keys" | wc -l; }
past() { local n; n=$(out_messages); [ -n "$n" ] && [ "$n" -ge "$1" ]; }

PT_PORT=$(free_port)
mid=0
for k in $(seq 1 "$KILLS"); do
  start_passthrough "$k"
  # Kill once the output passes a random mark in this run's share of the copy;
  # a run that is slow to get its partitions is killed on a deadline instead.
  share=$((N / (KILLS + 1)))
  before=$(out_messages)
  mark=$((before + share / 4 + RANDOM % (share / 2 + 1)))
  wait_for 40 past "$mark"
  kill -KILL "$PT_PID"
  wait "$PT_PID" 2>/dev/null
  forget_pid "$PT_PID"
  after=$(out_messages)
  keys=$(out_keys)
  [ "$keys" -lt "$N" ] && mid=$((mid + 1))
  echo "# kill $k: output $before -> $after messages, $keys distinct keys (mark $mark)"
done
ok "SIGKILLed hl-passthrough $KILLS times ($mid of them before the output held all $N keys)"
[ $mid -ge 4 ] || fail "at least 4 kills landed in the middle of the copy"

# The last run finishes: every key reaches the output, then SIGTERM drains it.
start_passthrough final
wait_all_keys it.kill.out "$N" 120 ||
  fail "the last run copies every key (worker lag $(worker_lag "127.0.0.1:$PT_PORT" it.kill.in))"
kill -TERM "$PT_PID"
wait "$PT_PID"
rc=$?
forget_pid "$PT_PID"
[ $rc = 0 ] || fail "the last run stops cleanly on SIGTERM (status $rc)"
ok "the last run copied every key and stopped cleanly"

consume_keys it.kill.out "$TMP/out.keys" || fail "consume the output"
total=$(wc -l <"$TMP/out.keys")
sort -u "$TMP/out.keys" >"$TMP/out.unique"
unique=$(wc -l <"$TMP/out.unique")
seq 1 "$N" | awk '{ printf "key-%06d\n", $1 }' >"$TMP/want.keys"
missing=$(comm -23 "$TMP/want.keys" "$TMP/out.unique" | wc -l)
extra=$(comm -13 "$TMP/want.keys" "$TMP/out.unique" | wc -l)
echo "# output: $total messages, $unique distinct keys, $((total - unique)) duplicates"
[ "$missing" = 0 ] || fail "$missing keys lost, e.g. $(comm -23 "$TMP/want.keys" "$TMP/out.unique" | head -3 | tr '\n' ' ')"
[ "$extra" = 0 ] || fail "$extra keys that were never produced"
ok "no key lost: all $N keys present, $((total - unique)) duplicates"
done_testing
