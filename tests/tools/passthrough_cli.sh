#!/usr/bin/env bash
# Command-line contract of hl-passthrough: --help exits 0 and lists its
# variables; bad configuration exits 2 before any work.
set -u
BIN="$1"
fail() { echo "FAIL: $*"; exit 1; }

out=$("$BIN" --help) || fail "--help exited $?"
for v in HL_PT_INPUT_TOPIC HL_PT_OUTPUT_TOPIC HL_KAFKA_BROKERS HL_KAFKA_GROUP HL_KAFKA_PROPS \
         HL_DRAIN_TIMEOUT HL_WORKER_MAX_INFLIGHT HL_LOG_LEVEL; do
  grep -q "$v" <<<"$out" || fail "--help does not list $v"
done

expect2() {
  local what="$1"; shift
  env -i PATH="$PATH" "$@" "$BIN" >/dev/null 2>"${TMPDIR:-/tmp}/pt_cli_err.$$"
  local rc=$?
  [ "$rc" -eq 2 ] || fail "$what: exit $rc, expected 2"
  [ -s "${TMPDIR:-/tmp}/pt_cli_err.$$" ] || fail "$what: no message on stderr"
  rm -f "${TMPDIR:-/tmp}/pt_cli_err.$$"
}
ok=(HL_PT_INPUT_TOPIC=a HL_PT_OUTPUT_TOPIC=b HL_KAFKA_BROKERS=127.0.0.1:1)
expect2 "missing input topic" HL_PT_OUTPUT_TOPIC=b
expect2 "batch not a number" "${ok[@]}" HL_WORKER_BATCH_MAX=abc
expect2 "drain timeout bad unit" "${ok[@]}" HL_DRAIN_TIMEOUT=5parsecs
expect2 "unknown librdkafka property" "${ok[@]}" HL_KAFKA_PROPS=no.such.property=1
expect2 "props item without =" "${ok[@]}" HL_KAFKA_PROPS=linger.ms
expect2 "same input and output" HL_PT_INPUT_TOPIC=a HL_PT_OUTPUT_TOPIC=a
env -i PATH="$PATH" "${ok[@]}" "$BIN" --bogus >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown argument did not exit 2"
echo "ok"
