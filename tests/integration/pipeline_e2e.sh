#!/usr/bin/env bash
# End to end: hl-synth writes N patients into a landing directory watched by
# hl-s3-notifier; hl-parser, hl-validator and hl-loader carry every resource
# into the SQLite warehouse. Checks: curated counts per type = hl-synth's
# counts, the OMOP views = hl-synth's OMOP CSV row for row (person,
# visit_occurrence, condition_occurrence, measurement), nothing in hl.dlq,
# every job completed, lag back to zero, every worker stops cleanly.
# 300 patients; 2,000 with HL_TEST_LONG=1 (HL_IT_PATIENTS overrides).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pipeline.sh"

N=${HL_IT_PATIENTS:-300}
[ "${HL_TEST_LONG:-0}" = 1 ] && N=${HL_IT_PATIENTS:-2000}
LANDING=$TMP/landing
WAREHOUSE=$TMP/warehouse.db
mkdir -p "$LANDING"

start_devbroker
start_pipeline
for w in notifier parser validator loader; do
  wait_for 60 worker_ready $w || fail "$w becomes ready"
done
ok "devbroker and the four workers are up and ready"

t0=$SECONDS
"$SYNTH" --patients "$N" --orgs 2 --out "$LANDING" --omop "$TMP/omop" --threads 1 --progress never \
  >"$TMP/synth.txt" 2>"$TMP/synth.log" || fail "hl-synth runs"
total=$(synth_counts "$TMP/synth.txt" | sum_counts)
ok "hl-synth wrote $N patients, $total resources into the landing directory"

wait_for 300 all_loaded "$TMP/synth.txt" ||
  fail "every resource loaded: $(diff <(synth_counts "$TMP/synth.txt" | sort) <(wh_counts | sort) | tr '\n' ' ')"
ok "curated counts per type equal hl-synth's ($total resources in $((SECONDS - t0)) s)"
synth_counts "$TMP/synth.txt" | sed 's/^/#   /'

python3 "$SRC/tests/integration/omop_compare.py" "$WAREHOUSE" "$TMP/omop" person visit_occurrence \
  condition_occurrence measurement >"$TMP/omop.txt" 2>&1
rc=$?
sed 's/^/# /' "$TMP/omop.txt"
[ $rc = 0 ] || fail "the OMOP views equal hl-synth's CSV"
ok "omop person, visit_occurrence, condition_occurrence, measurement = hl-synth's CSV row for row"

raw=$(sqlite3 "$WAREHOUSE" "SELECT count(*) FROM raw")
[ "$raw" = "$total" ] || fail "RAW holds each resource once ($raw rows for $total resources)"
ok "RAW holds $raw rows, one per resource"

jobs_done() {
  [ "$(sqlite3 "$WAREHOUSE" "SELECT count(*) FROM jobs WHERE state <> 'completed'")" = 0 ] &&
    [ "$(sqlite3 "$WAREHOUSE" "SELECT count(*) FROM jobs")" -gt 0 ]
}
wait_for 60 jobs_done || fail "every job completed: $(sqlite3 "$WAREHOUSE" "SELECT uri, state, received, valid, loaded, rejected FROM jobs WHERE state <> 'completed' LIMIT 3")"
read -r njobs received valid loaded rejected < <(sqlite3 -separator ' ' "$WAREHOUSE" \
  "SELECT count(*), sum(received), sum(valid), sum(loaded), sum(rejected) FROM jobs")
[ "$received" = "$total" ] && [ "$loaded" = "$total" ] && [ "$valid" = "$total" ] && [ "$rejected" = 0 ] ||
  fail "job counters: received $received valid $valid loaded $loaded rejected $rejected for $total"
ok "$njobs jobs completed: received = valid = loaded = $total, rejected 0"

dlq=$(topic_messages hl.dlq)
[ "${dlq:-0}" = 0 ] || fail "hl.dlq is empty ($dlq messages)"
ok "nothing in hl.dlq"

committed=$(timeout 60 kcat -b "$BOOTSTRAP" -C -t hl.load.committed -o beginning -e -q -f '%s\n' 2>>"$TMP/kcat.err" |
  jq -s '[.[].loaded] | add')
[ "$committed" = "$total" ] || fail "hl.load.committed events count $committed loaded rows for $total"
ok "hl.load.committed events add up to $committed loaded rows"

wait_for 60 worker_caught_up "$ADMIN_loader" hl.fhir.valid || fail "loader lag back to zero"
wait_for 60 worker_caught_up "$ADMIN_validator" hl.fhir.raw || fail "validator lag back to zero"
ok "consumer lag back to zero"

for w in loader validator parser notifier; do stop_worker $w; done
ok "every worker stops cleanly on SIGTERM"
done_testing
