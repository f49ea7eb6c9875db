#!/usr/bin/env bash
# Faults: the same hl-synth output goes through the pipeline twice, once
# cleanly and once while hl-parser, hl-validator and hl-loader are each
# SIGKILLed twice at different points of the load. The curated tables of the
# two warehouses must be identical (checksummed), with no resource missing
# or duplicated, and RAW must hold every resource exactly once.
# 500 patients. HL_TEST_LONG=1: 20,000 patients, three kills of each worker
# and every broker taken down and up once (hl-devbroker's control API).
# HL_IT_PATIENTS overrides the patient count.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pipeline.sh"

N=${HL_IT_PATIENTS:-500}
ROUNDS=2
OUTAGE=0
if [ "${HL_TEST_LONG:-0}" = 1 ]; then
  N=${HL_IT_PATIENTS:-20000}
  ROUNDS=3
  OUTAGE=1
fi
# HL_IT_SYNTH_ARGS: extra hl-synth options, e.g. "--start 2023-01-01" for one
# simulated year (20,000 patients: 0.36M resources instead of 3.9M).
# shellcheck disable=SC2086
"$SYNTH" --patients "$N" --orgs 2 --out "$TMP/gen" --threads 1 --progress never ${HL_IT_SYNTH_ARGS:-} >"$TMP/synth.txt" 2>&1 ||
  fail "hl-synth runs"
total=$(synth_counts "$TMP/synth.txt" | sum_counts)
ok "hl-synth generated $N patients, $total resources"

# Curated rows in a stable order, without the warehouse-local raw_id.
curated_sums() { # database
  local t
  for t in $TYPES; do
    printf '%s %s\n' "$t" "$(sqlite3 "$1" "SELECT tenant, id, version_id, last_updated, resource FROM $(curated_table "$t") ORDER BY tenant, id" | sha256sum | cut -c1-16)"
  done
}

# One run: fresh broker, landing and warehouse; files copied into landing.
# With kills=1, workers are SIGKILLed as the load passes thresholds.
run() { # name kills
  LANDING=$TMP/landing
  WAREHOUSE=$TMP/$1.db
  rm -rf "$LANDING" "$TMP/notifier.db"
  mkdir -p "$LANDING"
  start_devbroker
  start_pipeline
  local w
  for w in notifier parser validator loader; do
    wait_for 60 worker_ready $w || fail "$1: $w becomes ready"
  done
  land_tree "$TMP/gen" "$LANDING" || fail "$1: land the generated files"
  local t0=$SECONDS
  if [ "$2" = 1 ]; then
    local plan=() i k
    for ((i = 0; i < ROUNDS; i++)); do plan+=(parser validator loader); done
    local steps=${#plan[@]} done_kills=0 outage_done=0
    for ((k = 0; k < steps; k++)); do
      # Kill k at (k + 1) / (steps + 2) of the resources in RAW.
      local at=$((total * (k + 1) / (steps + 2)))
      raw_past() { [ "$(sqlite3 -cmd '.timeout 5000' "$WAREHOUSE" 'SELECT count(*) FROM raw' 2>/dev/null || echo 0)" -ge "$1" ]; }
      wait_for 600 raw_past "$at" || fail "$1: the load reaches $at rows (kill $((k + 1)))"
      crash_worker "${plan[k]}"
      done_kills=$((done_kills + 1))
      echo "# kill -9 ${plan[k]} at $(sqlite3 "$WAREHOUSE" 'SELECT count(*) FROM raw') of $total rows"
      if [ $OUTAGE = 1 ] && [ $outage_done = 0 ] && [ $k -ge $((steps / 2)) ]; then
        curl -sf -XPOST "http://$ADMIN/control/broker/all/down" >/dev/null || fail "take the brokers down"
        echo "# every broker down for 5 s"
        sleep 5
        curl -sf -XPOST "http://$ADMIN/control/reset" >/dev/null || fail "bring the brokers back"
        outage_done=1
      fi
    done
    ok "$1: $done_kills workers killed with -9 during the load$([ $OUTAGE = 1 ] && echo ', one broker outage')"
  fi
  wait_for $((120 + N / 20)) all_loaded "$TMP/synth.txt" ||
    fail "$1: every resource loaded: $(diff <(synth_counts "$TMP/synth.txt" | sort) <(wh_counts | sort) | tr '\n' ' ')"
  ok "$1: every resource loaded in $((SECONDS - t0)) s"
  for w in loader validator parser notifier; do stop_worker $w; done
  kill -TERM "$DEVBROKER_PID"
  wait "$DEVBROKER_PID" 2>/dev/null
  forget_pid "$DEVBROKER_PID"
}

run clean 0
run faults 1

curated_sums "$TMP/clean.db" >"$TMP/clean.sums"
curated_sums "$TMP/faults.db" >"$TMP/faults.sums"
sed 's/^/#   /' "$TMP/faults.sums"
diff "$TMP/clean.sums" "$TMP/faults.sums" >/dev/null || fail "curated tables differ: $(diff "$TMP/clean.sums" "$TMP/faults.sums" | tr '\n' ' ')"
ok "the curated tables after the faults equal the clean run's (checksums of 9 tables)"
raw=$(sqlite3 "$TMP/faults.db" "SELECT count(*) FROM raw")
distinct=$(sqlite3 "$TMP/faults.db" "SELECT count(*) FROM (SELECT DISTINCT tenant, type, id FROM raw)")
[ "$raw" = "$total" ] && [ "$distinct" = "$total" ] || fail "RAW holds each resource once ($raw rows, $distinct distinct, $total resources)"
ok "no resource missing or duplicated: RAW $raw rows = $total resources"
done_testing
