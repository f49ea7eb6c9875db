#!/usr/bin/env bash
# Bad input end to end: a landing batch mixing good files with a file of
# good resources, malformed lines, schema- and profile-invalid resources and
# an oversized line. Every good resource is loaded; every bad one is in
# hl.dlq with its stage, code and an OperationOutcome; per job, received =
# loaded + rejected exactly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pipeline.sh"

LANDING=$TMP/landing
WAREHOUSE=$TMP/warehouse.db
mkdir -p "$LANDING"
start_devbroker
start_pipeline HL_PARSER_MAX_LINE=64KiB
for w in notifier parser validator loader; do
  wait_for 60 worker_ready $w || fail "$w becomes ready"
done
ok "devbroker and the four workers are ready"

"$SYNTH" --patients 40 --out "$TMP/gen" --threads 1 --progress never >"$TMP/synth.txt" 2>&1 ||
  fail "hl-synth runs"
good=$(synth_counts "$TMP/synth.txt" | sum_counts)

# The mixed file: 3 good Patients (new ids), then one bad record of each kind.
P=$TMP/gen/org=org-1/Patient.ndjson
B=$TMP/mixed.ndjson
for i in 1 2 3; do sed -n "${i}p" "$P" | sed -E "s/\"id\":\"[^\"]+\"/\"id\":\"mixed-good-$i\"/"; done >"$B"
echo '{"resourceType":"Patient","id":"malformed-1","gender":' >>"$B"                         # not JSON
sed -n 4p "$P" | sed -E 's/"id":"[^"]+"/"id":"unknown-element","favouriteColour":"blue"/' >>"$B" # schema
sed -n 5p "$P" | sed -E 's/"id":"[^"]+"/"id":"bad-gender"/; s/"gender":"[a-z]+"/"gender":"sometimes"/' >>"$B" # enum
sed -n 6p "$P" | sed -E 's/"id":"[^"]+"/"id":"bad-date"/; s/"birthDate":"[0-9-]+"/"birthDate":"2021-02-29"/' >>"$B" # profile
sed -n 7p "$P" | sed -E 's/"id":"[^"]+"/"id":"no-gender"/; s/"gender":"[a-z]+",?//' >>"$B"  # profile: required
python3 -c 'import json; print(json.dumps({"resourceType": "Patient", "id": "oversized", "text": {"status": "generated", "div": "x" * 100000}}))' >>"$B"
nbad=6
ngood=3

# Good files first, then the mixed file, all in one landing batch.
land_tree "$TMP/gen/org=org-1" "$LANDING/org=org-1" || fail "land org-1's files"
mkdir -p "$LANDING/org=org-2"
cp "$B" "$LANDING/org=org-2/mixed.ndjson.tmp" && mv "$LANDING/org=org-2/mixed.ndjson.tmp" "$LANDING/org=org-2/mixed.ndjson"
ok "landed $good good resources in 9 files and a mixed file ($ngood good, $nbad bad records)"

mixed_done() {
  [ "$(sqlite3 "$WAREHOUSE" "SELECT state FROM jobs WHERE uri LIKE '%mixed.ndjson'" 2>/dev/null)" = completed-with-errors ]
}
WH_TENANT=org-1 wait_for 180 all_loaded "$TMP/synth.txt" || fail "every good file loaded: $(wh_counts | tr '\n' ' ')"
wait_for 120 mixed_done || fail "the mixed file's job completes with errors: $(sqlite3 "$WAREHOUSE" "SELECT * FROM jobs WHERE uri LIKE '%mixed%'")"
ok "every resource of the good files is loaded"
mixed=$(sqlite3 "$WAREHOUSE" "SELECT count(*) FROM curated_patient WHERE tenant = 'org-2'")
[ "$mixed" = $ngood ] || fail "the $ngood good resources of the mixed file are loaded ($mixed)"
ok "the $ngood good resources of the mixed file are loaded, nothing else of it"

read -r received loaded rejected < <(sqlite3 -separator ' ' "$WAREHOUSE" \
  "SELECT received, loaded, rejected FROM jobs WHERE uri LIKE '%mixed.ndjson'")
[ "$received" = $((ngood + nbad)) ] && [ "$loaded" = $ngood ] && [ "$rejected" = $nbad ] ||
  fail "mixed job: received $received loaded $loaded rejected $rejected"
ok "mixed job: received $received = loaded $loaded + rejected $rejected"
bad_jobs=$(sqlite3 "$WAREHOUSE" "SELECT count(*) FROM jobs WHERE received <> loaded + rejected")
[ "$bad_jobs" = 0 ] || fail "received = loaded + rejected for every job ($bad_jobs differ)"
ok "received = loaded + rejected exactly for every job ($(sqlite3 "$WAREHOUSE" "SELECT count(*) FROM jobs") jobs)"

wait_for 60 topic_has hl.dlq $nbad || fail "hl.dlq receives the $nbad bad records"
timeout 60 kcat -b "$BOOTSTRAP" -C -t hl.dlq -o beginning -e -q -J >"$TMP/dlq.json" 2>>"$TMP/kcat.err"
jq -c '{key, stage: (.headers | index("hl-error-stage") as $i | .[$i + 1]),
        code: (.headers | index("hl-error-code") as $i | .[$i + 1]),
        detail: (.headers | index("hl-error-detail") as $i | .[$i + 1])}' "$TMP/dlq.json" >"$TMP/dlq.lines"
sed 's/^/# /; s/\(.\{300\}\).*/\1.../' "$TMP/dlq.lines"
[ "$(wc -l <"$TMP/dlq.lines")" = $nbad ] || fail "hl.dlq holds exactly the $nbad bad records"
ok "hl.dlq holds exactly $nbad records"
n_parse=$(jq -s '[.[] | select(.stage == "parse")] | length' "$TMP/dlq.lines")
n_val=$(jq -s '[.[] | select(.stage == "validate")] | length' "$TMP/dlq.lines")
[ "$n_parse" = 2 ] && [ "$n_val" = 4 ] || fail "2 parse and 4 validate dead letters ($n_parse, $n_val)"
ok "2 dead letters from the parser (malformed, oversized), 4 from the validator"
oo_ok=$(jq -s '[.[] | select(.code != null and (.detail | fromjson | .resourceType == "OperationOutcome" and (.issue | length) >= 1))] | length' "$TMP/dlq.lines")
[ "$oo_ok" = $nbad ] || fail "every dead letter has a code and an OperationOutcome detail ($oo_ok)"
ok "every dead letter carries a code and an OperationOutcome"
for want in 'unknown-element favouriteColour' 'bad-gender gender' 'bad-date birthDate' 'no-gender gender'; do
  set -- $want
  jq -e -s --arg id "$1" --arg el "$2" 'any(.[]; (.key | endswith($id)) and (.detail | fromjson | any(.issue[]; (.expression // []) | any(contains($el)))))' \
    "$TMP/dlq.lines" >/dev/null || fail "the dead letter of $1 names the element $2"
done
ok "each validator dead letter locates the bad element (Patient.favouriteColour, .gender, .birthDate)"

# Regression: the parser's job events once carried "code":null / "detail":null,
# which schemas/events/job-status.schema.json forbids.
timeout 60 kcat -b "$BOOTSTRAP" -C -t hl.jobs.status -o beginning -e -q -f '%s\n' >"$TMP/jobs.lines" 2>>"$TMP/kcat.err"
n_events=$(grep -c . "$TMP/jobs.lines")
n_null=$(jq -s '[.[] | select(.stage == "parse") | to_entries[] | select(.value == null)] | length' "$TMP/jobs.lines")
[ "$n_events" -gt 0 ] && [ "$n_null" = 0 ] || fail "parse job events carry no null members ($n_null nulls in $n_events events)"
ok "parse job events carry no null members ($n_events events)"
done_testing
