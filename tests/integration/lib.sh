# Shared helpers of the integration tests (sourced). Each test script is run
# by meson as: script BUILD_DIR SOURCE_DIR, speaks TAP on stdout, and cleans
# up every process it started (by pid) and its temporary directory on exit.
set -uo pipefail

BUILD=$(cd "${1:?build dir}" && pwd)
SRC=$(cd "${2:?source dir}" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hl-it.XXXXXX")
DEVBROKER=$BUILD/tools/devbroker/hl-devbroker
TOPICS_FILE=$SRC/schemas/topics/topics.json
PIDS=()
# Commands hl_cleanup runs once every process has stopped and before the
# temporary directory goes (e.g. unmounting a file system under $TMP).
AFTER_STOP=()
T=0

echo "TAP version 13"

# Stops the processes in reverse order of start (workers before the broker
# they drain to), runs AFTER_STOP, then removes the temporary directory.
hl_cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null
    wait "${PIDS[i]}" 2>/dev/null
  done
  for i in "${!AFTER_STOP[@]}"; do
    eval "${AFTER_STOP[i]}"
  done
  if [ "${HL_IT_KEEP:-0}" = 1 ]; then
    echo "# kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap hl_cleanup EXIT

# Drops a pid this script has reaped (waited for) from the cleanup list, so
# that cleanup never signals a pid the system may have given to another process.
forget_pid() {
  local p keep=()
  for p in "${PIDS[@]}"; do
    [ "$p" = "$1" ] || keep+=("$p")
  done
  PIDS=("${keep[@]}")
}

ok() {
  T=$((T + 1))
  echo "ok $T - $*"
}

# Fails the test: prints the reason, the tail of every log in $TMP, the plan, exits 1.
fail() {
  T=$((T + 1))
  echo "not ok $T - $*"
  local f
  for f in "$TMP"/*.err "$TMP"/*.log; do
    [ -f "$f" ] || continue
    echo "# --- tail of $(basename "$f")"
    tail -n 15 "$f" | sed 's/^/#   /'
  done
  echo "1..$T"
  exit 1
}

# Skips the whole test (one skipped case, as scripts/test counts them).
skip_all() {
  echo "ok 1 # SKIP $*"
  echo "1..1"
  exit 0
}

done_testing() {
  echo "1..$T"
  exit 0
}

check() { # description command...
  local d=$1
  shift
  if "$@"; then ok "$d"; else fail "$d"; fi
}

# Runs "$@" every 100 ms until it succeeds or timeout_s pass; returns its status.
wait_for() {
  local timeout=$1
  shift
  local end=$((SECONDS + timeout))
  while ! "$@" 2>/dev/null; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.1
  done
  return 0
}

now_ms() { date +%s%3N; }

for tool in kcat curl jq; do
  command -v $tool >/dev/null || skip_all "$tool is not installed (scripts/bootstrap installs it)"
done
[ -x "$DEVBROKER" ] || skip_all "hl-devbroker is not built"

# Starts hl-devbroker with extra VAR=value arguments; sets DEVBROKER_PID,
# BOOTSTRAP and ADMIN (host:port of its admin server).
start_devbroker() {
  : >"$TMP/devbroker.out" # truncated here, so no old line is read while the child starts
  env HL_ADMIN_ADDR=127.0.0.1:0 HL_DEVBROKER_ADDR_FILE="$TMP/devbroker.addr" \
    HL_DEVBROKER_TOPICS_FILE="$TOPICS_FILE" HL_DEVBROKER_METRICS_INTERVAL=200ms "$@" \
    "$DEVBROKER" >"$TMP/devbroker.out" 2>"$TMP/devbroker.err" &
  DEVBROKER_PID=$!
  PIDS+=("$DEVBROKER_PID")
  wait_for 30 grep -q '^admin=' "$TMP/devbroker.out" || fail "hl-devbroker did not start"
  BOOTSTRAP=$(sed -n 's/^bootstrap=//p' "$TMP/devbroker.out")
  ADMIN=$(sed -n 's/^admin=//p' "$TMP/devbroker.out")
}

# True while the admin server at host:port answers /readyz with 200.
admin_ready() { [ "$(http_status GET "http://$1/readyz")" = 200 ]; }

# Sends SIGTERM and waits up to $2 s; sets RC (exit status, or "hung") and ELAPSED_MS.
stop_within() { # pid limit_s
  local t0 end
  t0=$(now_ms)
  kill -TERM "$1"
  end=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
  ELAPSED_MS=$(($(now_ms) - t0))
  if kill -0 "$1" 2>/dev/null; then
    RC=hung
    kill -KILL "$1"
    wait "$1" 2>/dev/null
  else
    wait "$1"
    RC=$?
  fi
  forget_pid "$1"
}

# Kills hl-devbroker (SIGKILL) under a worker, stops the worker with SIGTERM
# and checks that it exits within drain + close + slack seconds with status 3
# (stopped at the close deadline; "0 or 3" when $6 is "or-0") and logs the
# abandoned close in its log file.
stop_without_broker() { # name pid log drain_s close_s [or-0]
  local slack=10 limit # a loaded machine; the bug was an unbounded wait
  kill -KILL "$DEVBROKER_PID"
  wait "$DEVBROKER_PID" 2>/dev/null
  forget_pid "$DEVBROKER_PID"
  ok "hl-devbroker killed with SIGKILL"
  limit=$(($4 + $5 + slack))
  stop_within "$2" $((limit + 30))
  [ "$RC" != hung ] || fail "$1 exits after SIGTERM with no broker (still running after $((limit + 30)) s)"
  [ "$ELAPSED_MS" -le $((limit * 1000)) ] ||
    fail "$1 exits within drain + close + ${slack} s = ${limit} s (took ${ELAPSED_MS} ms)"
  ok "no broker: $1 exited ${ELAPSED_MS} ms after SIGTERM (bound ${limit} s)"
  if [ "${6:-}" = or-0 ]; then
    [ "$RC" = 3 ] || [ "$RC" = 0 ] || fail "exit status is 3 (deadline) or 0, not $RC"
  else
    [ "$RC" = 3 ] || fail "exit status is 3 (stopped at the close deadline), not $RC"
  fi
  ok "exit status $RC (3: stopped at the close deadline, uncommitted inputs are delivered again)"
  if [ "$RC" = 3 ]; then
    grep -q 'close deadline passed' "$3" || fail "the deadline is logged"
    ok "the abandoned close is logged"
  fi
}

# Writes $LANDING/org=<org>/<name>.ndjson with n Patients (ids <name>-NNNNNN)
# and announces it on hl.landing.objects as hl-s3-notifier would (job <name>).
announce_patients() { # org name n
  local f=$LANDING/org=$1/$2.ndjson
  mkdir -p "$LANDING/org=$1"
  seq 1 "$3" | awk -v p="$2" '{ printf "{\"resourceType\":\"Patient\",\"id\":\"%s-%06d\",\"gender\":\"female\"}\n", p, $1 }' >"$f"
  printf 'landing/org=%s/%s.ndjson\t{"uri":"file://%s","bucket":"landing","key":"org=%s/%s.ndjson","size":%s,"event_time":"2026-11-25T00:00:00.000Z","org":"%s","job":"%s"}\n' \
    "$1" "$2" "$f" "$1" "$2" "$(stat -c %s "$f")" "$1" "$2" |
    kcat -b "$BOOTSTRAP" -P -t hl.landing.objects -K $'\t' 2>>"$TMP/kcat.err"
}

# The value of one metric series (exact name{labels}) on an admin server, or empty.
metric() { # admin series
  curl -sf "http://$1/metrics" | awk -v k="$2" '$1 == k { print $2 }'
}

# Messages appended to a topic, from hl-devbroker's control state.
topic_messages() { # topic
  curl -sf "http://$ADMIN/control/state" | jq -r --arg t "$1" '.topics[] | select(.name == $t) | .messages'
}

# Succeeds when a topic holds at least n messages.
topic_has() { # topic n
  local m
  m=$(topic_messages "$1")
  [ -n "$m" ] && [ "$m" -ge "$2" ]
}

# For a producer that has started waiting on its downstream group: HELD is
# the number of messages on topic, which must lie in [min, max] and stay the
# same 2 s later (nothing more comes out while the group is behind).
holds_between() { # topic min max what
  sleep 2
  HELD=$(topic_messages "$1")
  [ "$HELD" -ge "$2" ] && [ "$HELD" -le "$3" ] || fail "$4: $HELD messages out (expected $2..$3)"
  sleep 2
  [ "$(topic_messages "$1")" = "$HELD" ] || fail "nothing more comes out while the group is behind"
}

# Reads topic from the beginning as group (committing every 200 ms) until the
# topic holds n messages, then stops the reader.
read_until() { # group topic n
  local reader
  kcat -b "$BOOTSTRAP" -G "$1" -X auto.commit.interval.ms=200 -o beginning -q "$2" \
    >/dev/null 2>>"$TMP/kcat.err" &
  reader=$!
  PIDS+=("$reader")
  wait_for 120 topic_has "$2" "$3" || fail "all $3 messages come out once $1 reads"
  kill -TERM "$reader"
  wait "$reader" 2>/dev/null
  forget_pid "$reader"
}

http_status() { # method url [body]
  curl -s -o /dev/null -w '%{http_code}' -X "$1" ${3:+-d "$3"} "$2"
}

# Produces n messages keyed key-<i> with value value-<i> to a topic with kcat.
produce_keyed() { # topic n [first]
  local first=${3:-1}
  seq "$first" $((first + $2 - 1)) | awk '{ printf "key-%06d\tvalue-%06d\n", $1, $1 }' |
    kcat -b "$BOOTSTRAP" -P -t "$1" -K $'\t' -X enable.idempotence=true -X linger.ms=5 \
      2>>"$TMP/kcat.err"
}

# Writes the keys of every message of a topic, one a line, to a file.
consume_keys() { # topic file
  timeout 120 kcat -b "$BOOTSTRAP" -C -t "$1" -o beginning -e -q -f '%k\n' >"$2" 2>>"$TMP/kcat.err"
}

PASSTHROUGH=$BUILD/tools/passthrough/hl-passthrough

# A TCP port free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# "<partitions> <lag>" of a worker's group on a topic: how many partitions its
# admin server reports a lag for, and their sum ("0 0" while it reports none).
lag_series() { # admin topic
  curl -sf "http://$1/metrics" |
    awk -v t="topic=\"$2\"" '/^hl_consumer_lag_messages\{/ && index($0, t) { s += $2; n++ } END { print n + 0, s + 0 }'
}

# Consumer lag of a worker's group on a topic, summed over the partitions its
# admin server reports, or empty while it reports none.
worker_lag() { # admin topic
  local r
  r=$(lag_series "$1" "$2")
  [ "${r%% *}" = 0 ] || echo "${r#* }"
}

# Succeeds when a worker that is its group's only member reports a lag for
# every partition of the topic (topics.json), and all of them zero. A
# restarted worker reports no lag for a partition whose replayed records it
# is still processing (nothing stored yet) while its idle partitions already
# report 0, so the sum alone could read 0 too early (loader_snowflake_kill
# once stopped its last run there, before the replay that recounts the job).
worker_caught_up() { # admin topic
  local want
  want=$(jq -r --arg t "$2" '.topics[] | select(.name == $t) | .partitions' "$TOPICS_FILE")
  [ -n "$want" ] && [ "$(lag_series "$1" "$2")" = "$want 0" ]
}

# Waits until a topic holds every key key-000001..key-<n> (duplicates
# allowed), consuming it once a second; fails after timeout_s. The end state
# itself is the condition, so no worker metric has to be trusted.
wait_all_keys() { # topic n timeout_s
  local end=$((SECONDS + $3)) have=0
  seq 1 "$2" | awk '{ printf "key-%06d\n", $1 }' >"$TMP/want.keys"
  while :; do
    consume_keys "$1" "$TMP/poll.keys"
    have=$(sort -u "$TMP/poll.keys" | comm -12 "$TMP/want.keys" - | wc -l)
    [ "$have" = "$2" ] && return 0
    [ $SECONDS -ge $end ] && { echo "# $1 holds $have of $2 keys after $3 s"; return 1; }
    sleep 1
  done
}
