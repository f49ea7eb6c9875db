#!/usr/bin/env bash
# hl-parser's memory is flat in object size: the same NDJSON resources in a
# 50 MB and a 250 MB object, each parsed by a fresh hl-parser against
# hl-devbroker; both peaks (VmHWM) stay under 100 MiB and the large one is
# within 40 MiB of the small one: memory that grew with the object would add
# 200 MB or more. (The unacknowledged messages, bounded by
# HL_PARSER_MAX_PENDING, and the producer's batches make the peak vary by a few
# tens of MiB with the broker's pace: 28-45 MiB for the small object, 54-55 MiB
# for the large one and for 2 GiB with bench/parse BIG_GIB=2.)
source "$(dirname "$0")/lib.sh"

PARSER=$BUILD/workers/parser/hl-parser
[ -x "$PARSER" ] || skip_all "hl-parser is not built"
# AddressSanitizer's shadow memory and quarantine make RSS meaningless.
case "$(ldd "$PARSER" 2>/dev/null)" in
  *libasan*) skip_all "peak RSS is not measured under AddressSanitizer" ;;
esac
LANDING=$TMP/landing
mkdir -p "$LANDING/org=mem"
start_devbroker HL_DEVBROKER_BROKERS=1

# Writes an NDJSON object of about MB megabytes: Observations of ~1 KB, distinct ids.
make_object() { # name MB
  awk -v n=$(($2 * 1000)) -v pre="$1" 'BEGIN {
    pad = sprintf("%800s", ""); gsub(/ /, "x", pad)
    for (i = 1; i <= n; i++)
      printf "{\"resourceType\":\"Observation\",\"id\":\"%s-%07d\",\"status\":\"final\",\"code\":{\"text\":\"%s\"},\"valueQuantity\":{\"value\":%d.5,\"unit\":\"mg\"}}\n", pre, i, pad, i
  }' >"$LANDING/org=mem/$1.ndjson"
}

# Announces one object and parses it with a fresh hl-parser; prints its VmHWM in KiB.
parse_peak() { # name statuses_expected
  local f=$LANDING/org=mem/$1.ndjson
  printf 'landing/org=mem/%s.ndjson\t{"uri":"file://%s","bucket":"landing","key":"org=mem/%s.ndjson","size":%s,"event_time":"2026-11-25T00:00:00.000Z","org":"mem","job":"%s"}\n' \
    "$1" "$f" "$1" "$(stat -c %s "$f")" "$1" |
    kcat -b "$BOOTSTRAP" -P -t hl.landing.objects -K $'\t' 2>>"$TMP/kcat.err"
  HL_KAFKA_BROKERS=$BOOTSTRAP HL_KAFKA_GROUP=mem-$1 HL_PARSER_LANDING_DIR=$LANDING \
    HL_PARSER_DOWNSTREAM_GROUP= HL_ADMIN_ADDR= HL_LOG_LEVEL=warn "$PARSER" 2>>"$TMP/parser.log" &
  local pid=$!
  PIDS+=("$pid")
  wait_for 180 topic_has hl.jobs.status "$2" || return 1
  awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null
  forget_pid "$pid"
}

make_object small 50
make_object large 250
ok "objects of $(($(stat -c %s "$LANDING/org=mem/small.ndjson") / 1048576)) and $(($(stat -c %s "$LANDING/org=mem/large.ndjson") / 1048576)) MiB written"

# The second parser (its own group) reads both events: the small object again, then the large one.
small=$(parse_peak small 1) || fail "the small object parsed"
large=$(parse_peak large 3) || fail "the large object parsed"
echo "# peak RSS: $((small / 1024)) MiB for 50 MB, $((large / 1024)) MiB for 250 MB (+ the 50 MB again)"
# The status events are produced after the resources, not after their acknowledgements.
wait_for 60 topic_has hl.fhir.raw $((50000 * 2 + 250000))
[ "$(topic_messages hl.fhir.raw)" -eq $((50000 * 2 + 250000)) ] ||
  fail "every resource on hl.fhir.raw ($(topic_messages hl.fhir.raw))"
ok "every resource on hl.fhir.raw"
check "peak RSS under 100 MiB for both" [ "$small" -lt 102400 -a "$large" -lt 102400 ]
check "peak RSS flat in object size (large within 40 MiB of small)" [ "$large" -le $((small + 40960)) ]
done_testing
