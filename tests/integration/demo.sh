#!/usr/bin/env bash
# scripts/demo as a user runs it: started in its own process group (as from a
# terminal), it loads 40 patients, prints the summary with the org-1 counts
# answered by the API and the lines api=<base url> and token=<token>; those
# two lines work with curl (search, read, ingestion, 401 without the token);
# Ctrl-C (SIGINT to the group) stops every process, the gateway too.
. "$(dirname "$0")/lib.sh"

DEMO_OUT=$TMP/demo.log
cd "$SRC" || fail "cd $SRC"
set -m # the demo runs in its own process group, so SIGINT is not ignored there
scripts/demo --patients 40 --build "$BUILD" --dir "$TMP/demo" >"$DEMO_OUT" 2>&1 &
DEMO_PID=$!
set +m
PIDS+=("$DEMO_PID")

summary_printed() { grep -q '^token=' "$DEMO_OUT"; }
demo_alive() { kill -0 "$DEMO_PID" 2>/dev/null; }
for _ in $(seq 1 3000); do
  summary_printed && break
  demo_alive || break
  sleep 0.2
done
summary_printed || { sed 's/^/# /' "$DEMO_OUT"; tail -n 5 "$TMP"/demo/logs/*.log | sed 's/^/# /'; fail "the demo prints its summary"; }
ok "the demo loads the patients and prints its summary"
grep -q 'the API answers the loaded count of every type' "$DEMO_OUT" ||
  { sed 's/^/# /' "$DEMO_OUT"; fail "the summary shows the API's counts equal to the warehouse's"; }
ok "the summary shows the API's counts equal to the warehouse's"

API=$(sed -n 's/^api=//p' "$DEMO_OUT")
TOKEN=$(sed -n 's/^token=//p' "$DEMO_OUT")
WAREHOUSE=$(sed -n 's/^warehouse=//p' "$DEMO_OUT")
matches() { [[ $1 =~ $2 ]]; }
check "api= is an http URL on 127.0.0.1" matches "$API" '^http://127\.0\.0\.1:[0-9]+$'
check "token= is a JWT" matches "$TOKEN" '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$'

json_get() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }
auth=(-H "Authorization: Bearer $TOKEN")
want=$(sqlite3 "$WAREHOUSE" "SELECT count(*) FROM curated_patient WHERE tenant = 'org-1'")
got=$(curl -sf "${auth[@]}" "$API/v1/fhir/Patient?_summary=count" | json_get 'd["total"]')
[ "$want" -gt 0 ] && [ "$got" = "$want" ] || fail "Patient search total through api=/token= ($got) = org-1 patients in the warehouse ($want)"
ok "Patient search total through api=/token= = org-1 patients in the warehouse ($want)"

pid=$(sqlite3 "$WAREHOUSE" "SELECT id FROM curated_patient WHERE tenant = 'org-1' ORDER BY id LIMIT 1")
got=$(curl -sf "${auth[@]}" "$API/v1/fhir/Patient/$pid" | json_get 'd["resourceType"] + "/" + d["id"]')
check "read Patient/$pid through the API" [ "$got" = "Patient/$pid" ]
other=$(sqlite3 "$WAREHOUSE" "SELECT id FROM curated_patient WHERE tenant <> 'org-1' LIMIT 1")
if [ -n "$other" ]; then
  code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$API/v1/fhir/Patient/$other")
  check "another tenant's patient is a 404 for the org-1 token" [ "$code" = 404 ]
fi
code=$(curl -s -o /dev/null -w '%{http_code}' "$API/v1/fhir/Patient?_summary=count")
check "no token: 401" [ "$code" = 401 ]

# Ingestion through the API: a generated patient under a new id, carried by
# the pipeline (notifier, parser, validator, loader) into the warehouse.
NEW=demo-test-$$
head -n 1 "$TMP/demo/generated/org=org-1/Patient.ndjson" |
  python3 -c 'import json, sys; p = json.load(sys.stdin); p["id"] = sys.argv[1]; print(json.dumps(p))' "$NEW" \
  >"$TMP/new.ndjson" || fail "a patient to ingest"
loc=$(curl -sf -o /dev/null -w '%header{location}' "${auth[@]}" -H 'Content-Type: application/fhir+ndjson' \
  --data-binary @"$TMP/new.ndjson" "$API/v1/ingestion/fhir/Bundle")
check "POST NDJSON to the ingestion API: 202 with a Location" [ -n "$loc" ]
job_finished() { curl -sf "${auth[@]}" "$loc" | json_get 'd["state"]' | grep -q '^completed'; }
patient_served() { curl -sf -o /dev/null "${auth[@]}" "$API/v1/fhir/Patient/$NEW"; }
wait_for 120 job_finished || fail "the ingestion job finishes ($(curl -s "${auth[@]}" "$loc"))"
job=$(curl -sf "${auth[@]}" "$loc")
[ "$(echo "$job" | json_get 'd["state"], d["loaded"]')" = "('completed', 1)" ] || fail "the job loaded the patient: $job"
wait_for 30 patient_served || fail "the ingested patient is served"
ok "the ingested patient went through the pipeline and is served by the API"

# Ctrl-C: SIGINT to the demo's process group, as a terminal sends it. The
# broker runs in a session of its own (the workers drain while it is still
# there), so the demo stops it: it is gone with the group.
BROKER_PID=$(sed -n 's/.*hl-devbroker: pid \([0-9][0-9]*\)$/\1/p' "$DEMO_OUT")
check "the demo names the broker's pid" [ -n "$BROKER_PID" ]
PIDS=("$BROKER_PID" "${PIDS[@]}") # should the demo not stop it, cleanup does (last)
check "the broker is not in the demo's process group (Ctrl-C does not reach it)" \
  [ "$(ps -o pgid= -p "$BROKER_PID" | tr -d ' ')" != "$DEMO_PID" ]
kill -INT -- "-$DEMO_PID"
group_gone() { ! kill -0 -- "-$DEMO_PID" 2>/dev/null && ! kill -0 "$BROKER_PID" 2>/dev/null; }
# What is still running, and how each process's log ends, when the group does not go.
left_behind() {
  local pids
  pids=$( (pgrep -g "$DEMO_PID"; kill -0 "$BROKER_PID" 2>/dev/null && echo "$BROKER_PID") | paste -sd, -)
  [ -z "$pids" ] || ps -o pid=,etimes=,stat=,args= -p "$pids" | cut -c1-160 | sed 's/^/# left: /'
  for f in "$TMP"/demo/logs/*.log; do
    echo "# --- $(basename "$f")"
    tail -n 4 "$f" | cut -c1-300 | sed 's/^/#   /'
  done
}
wait_for 120 group_gone || { left_behind; fail "Ctrl-C stops the demo and every process it started"; }
wait "$DEMO_PID" 2>/dev/null
forget_pid "$DEMO_PID"
forget_pid "$BROKER_PID"
ok "Ctrl-C stops the demo and every process it started"
# Cleanly: with the broker still there, every worker commits and leaves its group.
unclean=$(grep -l -e 'final offset commit failed' -e 'close deadline passed' -e 'drain deadline passed' \
  "$TMP"/demo/logs/*.log)
[ -z "$unclean" ] || { grep -h -e 'final offset commit' -e 'deadline passed' $unclean | sed 's/^/# /'; fail "after Ctrl-C no worker gives up its final commit or leaving the group ($unclean)"; }
ok "after Ctrl-C every worker commits and leaves its group before the broker stops"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$API/readyz")
check "the gateway no longer answers" [ "$code" = 000 ]
done_testing
