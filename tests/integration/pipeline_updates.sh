#!/usr/bin/env bash
# Updates: the same people go through the whole pipeline three times, as
# three landings of hl-synth output with the same seed:
#   1. version 1 of every resource (hl-synth --version 1),
#   2. version 2 of every resource (--version 2: same ids, versionId 2,
#      lastUpdated one hour later, Patients active, Observations amended),
#   3. version 1 again (the old files landed once more, as a new job).
# After each pass: exactly one curated row per resource in every curated
# table, and it is the newest version seen (its values included); RAW keeps
# every version that arrived; the hl.load.committed counts say applied for
# new versions and stale for the old replay; the OMOP views still equal
# hl-synth's CSV (the side tables followed the versions); every job completed.
# 150 patients in 2 orgs; 1,000 with HL_TEST_LONG=1 (HL_IT_PATIENTS overrides).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pipeline.sh"

N=${HL_IT_PATIENTS:-150}
[ "${HL_TEST_LONG:-0}" = 1 ] && N=${HL_IT_PATIENTS:-1000}
LANDING=$TMP/landing
WAREHOUSE=$TMP/warehouse.db
mkdir -p "$LANDING"

for v in 1 2; do
  "$SYNTH" --patients "$N" --orgs 2 --version $v --out "$TMP/v$v" --omop "$TMP/omop$v" --threads 1 \
    --progress never >"$TMP/synth$v.txt" 2>&1 || fail "hl-synth --version $v runs"
done
total=$(synth_counts "$TMP/synth1.txt" | sum_counts)
cmp -s <(synth_counts "$TMP/synth1.txt") <(synth_counts "$TMP/synth2.txt") ||
  fail "both versions hold the same resources per type"
diff -r "$TMP/omop1" "$TMP/omop2" >/dev/null || fail "the OMOP output does not depend on --version"
diff -q "$TMP/v1/org=org-1/Patient.ndjson" "$TMP/v2/org=org-1/Patient.ndjson" >/dev/null &&
  fail "version 2 differs from version 1"
ok "hl-synth wrote $N patients ($total resources) as version 1 and version 2, same ids"

start_devbroker
start_pipeline
for w in notifier parser validator loader; do
  wait_for 60 worker_ready $w || fail "$w becomes ready"
done
ok "devbroker and the four workers are up and ready"

q() { sqlite3 -cmd '.timeout 5000' "$WAREHOUSE" "$1"; }
raw_has() { [ -f "$WAREHOUSE" ] && [ "$(q 'SELECT count(*) FROM raw' 2>/dev/null)" = "$1" ]; }
jobs_done() { # expected number of jobs
  [ "$(q "SELECT count(*) FROM jobs WHERE state = 'completed'")" = "$1" ] &&
    [ "$(q 'SELECT count(*) FROM jobs')" = "$1" ]
}

# Lands one generated directory under landing/<pass>/ (the path keeps its
# org=<id> segment, so the tenant is the same; the object uris are new).
land() { # pass dir
  land_tree "$2" "$LANDING/$1" || fail "land $2"
}

# The checks after a pass: every curated table holds one row per resource,
# all of version want_v (with that version's values), RAW holds raw_rows rows.
check_current() { # pass want_v raw_rows
  local pass=$1 v=$2 t table n want lu
  lu="2024-01-01T0$((v - 1)):00:00Z"
  for t in $TYPES; do
    table=$(curated_table "$t")
    want=$(synth_counts "$TMP/synth1.txt" | awk -v t="$t" '$1 == t { print $2 }')
    read -r n distinct newest < <(q "SELECT count(*), count(DISTINCT tenant || '/' || id),
        sum(version_id = '$v' AND last_updated = '$lu') FROM $table" | tr '|' ' ')
    [ "$n" = "$want" ] && [ "$distinct" = "$want" ] ||
      fail "$pass: $table holds one row per resource ($n rows, $distinct resources, $want expected)"
    [ "$newest" = "$want" ] || fail "$pass: every $table row is version $v ($newest of $want)"
    # The curated row is the RAW row of that version, byte for byte.
    n=$(q "SELECT count(*) FROM $table c JOIN raw r ON r.raw_id = c.raw_id
           WHERE r.version_id = '$v' AND r.resource = c.resource AND r.id = c.id AND r.tenant = c.tenant")
    [ "$n" = "$want" ] || fail "$pass: every $table row is its RAW version $v row ($n of $want)"
  done
  local active amended
  active=$(q "SELECT count(*) FROM curated_patient WHERE active IS $([ "$v" = 2 ] && echo 1 || echo NULL)")
  amended=$(q "SELECT count(*) FROM curated_observation WHERE status = '$([ "$v" = 2 ] && echo amended || echo final)'")
  [ "$active" = "$(q 'SELECT count(*) FROM curated_patient')" ] ||
    fail "$pass: the search column active follows version $v ($active patients)"
  [ "$amended" = "$(q 'SELECT count(*) FROM curated_observation')" ] ||
    fail "$pass: the search column status follows version $v ($amended observations)"
  n=$(q 'SELECT count(*) FROM raw')
  [ "$n" = "$3" ] || fail "$pass: RAW holds $3 rows ($n)"
  python3 "$SRC/tests/integration/omop_compare.py" "$WAREHOUSE" "$TMP/omop1" person visit_occurrence \
    condition_occurrence measurement >"$TMP/omop.txt" 2>&1 ||
    { sed 's/^/# /' "$TMP/omop.txt"; fail "$pass: the OMOP views equal hl-synth's CSV"; }
  ok "$pass: one curated row per resource in every table, version $v with its values; RAW $n rows; OMOP views = hl-synth's CSV"
}

# Sum of one count over every hl.load.committed event so far.
committed_sum() { # field (applied, stale, duplicate, ...)
  timeout 60 kcat -b "$BOOTSTRAP" -C -t hl.load.committed -o beginning -e -q -f '%s\n' 2>>"$TMP/kcat.err" |
    jq -s --arg f "$1" '[.[].counts[][$f]] | add // 0'
}

njobs=$(find "$TMP/v1" -type f | wc -l)

land pass1 "$TMP/v1"
wait_for 300 raw_has "$total" || fail "pass 1: RAW reaches $total rows ($(q 'SELECT count(*) FROM raw' 2>&1))"
wait_for 120 all_loaded "$TMP/synth1.txt" || fail "pass 1: every resource curated"
check_current "pass 1 (version 1)" 1 "$total"

land pass2 "$TMP/v2"
wait_for 300 raw_has $((2 * total)) || fail "pass 2: RAW reaches $((2 * total)) rows ($(q 'SELECT count(*) FROM raw'))"
check_current "pass 2 (version 2)" 2 $((2 * total))

land pass3 "$TMP/v1"
wait_for 300 raw_has $((3 * total)) || fail "pass 3: RAW reaches $((3 * total)) rows ($(q 'SELECT count(*) FROM raw'))"
check_current "pass 3 (version 1 replayed)" 2 $((3 * total))

# RAW keeps every version: per resource, version 1 twice (two landings) and version 2 once.
n=$(q "SELECT count(*) FROM (SELECT tenant, type, id FROM raw GROUP BY tenant, type, id
       HAVING sum(version_id = '1') = 2 AND sum(version_id = '2') = 1 AND count(*) = 3)")
[ "$n" = "$total" ] || fail "RAW keeps every version of every resource ($n of $total resources)"
ok "RAW keeps version 1 (twice) and version 2 of all $total resources"

wait_for 60 jobs_done $((3 * njobs)) ||
  fail "every job completed: $(q "SELECT uri, state, received, valid, loaded, rejected FROM jobs WHERE state <> 'completed' LIMIT 3")"
ok "$((3 * njobs)) jobs completed"

applied=$(committed_sum applied)
stale=$(committed_sum stale)
dup=$(committed_sum duplicate)
[ "$applied" = $((2 * total)) ] && [ "$stale" = "$total" ] && [ "$dup" = 0 ] ||
  fail "hl.load.committed: applied $applied (want $((2 * total))), stale $stale (want $total), duplicate $dup"
ok "hl.load.committed: $applied applied (versions 1 and 2), $stale stale (the old replay)"

dlq=$(topic_messages hl.dlq)
[ "${dlq:-0}" = 0 ] || fail "hl.dlq is empty ($dlq messages)"
ok "nothing in hl.dlq"

for w in loader validator parser notifier; do stop_worker $w; done
ok "every worker stops cleanly on SIGTERM"
done_testing
