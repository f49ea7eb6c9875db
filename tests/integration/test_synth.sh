#!/usr/bin/env bash
# Integration tests of hl-synth (meson suite 'integration'):
#   cli          bad options exit 2 before any output; unwritable/full output dirs fail cleanly
#   determinism  byte-identical output for --threads 1 and 2; patient k the same for N and a larger N;
#                --version 2 keeps ids and OMOP output, changes meta
#   schema       every resource validates against the FHIR R4 JSON Schema; every reference resolves
#   verify       verify passes on generated output and fails on a deleted, altered or extra row
# Usage: test_synth.sh HL_SYNTH_BINARY CASE
set -uo pipefail
BIN="$1"; CASE="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
T="$(mktemp -d)"
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

case "$CASE" in
cli)
  for args in "--patients 0 --out $T/a" "--patients x --out $T/a" "--out $T/a --format xml" \
              "--out $T/a --start 2020-01-01 --end 2019-01-01" "--out $T/a --start 2020-02-30" \
              "--out $T/a --orgs 0" "--out $T/a --threads 999" "--patients 5" "--out $T/a --bogus 1" \
              "--out $T/a --format bundle --split 10" "--out $T/a --patients 5 --patients 6" \
              "--out $T/a --version 0" "--out $T/a --version x"; do
    # shellcheck disable=SC2086
    "$BIN" $args >"$T/out" 2>"$T/err"; rc=$?
    [ $rc -eq 2 ] || fail "'$args' exited $rc, expected 2"
    grep -q "hl-synth: " "$T/err" || fail "'$args' gave no message"
    [ ! -e "$T/a" ] || fail "'$args' wrote output before failing"
  done
  "$BIN" --help | grep -q -- "--patients N" || fail "--help"
  # A directory holding earlier output is refused before anything is written.
  "$BIN" --patients 3 --out "$T/prev" >/dev/null || fail "first run"
  "$BIN" --patients 3 --out "$T/prev" >/dev/null 2>"$T/err"; [ $? -eq 2 ] || fail "reused dir not refused"
  if [ "$(id -u)" != 0 ]; then
    mkdir "$T/ro"; chmod a-w "$T/ro"
    "$BIN" --patients 3 --out "$T/ro/x" >/dev/null 2>&1; [ $? -eq 2 ] || fail "unwritable dir"
  fi
  # A full disk (here: a file size limit) fails with status 1 and leaves no file that looks complete.
  ( ulimit -f 512; exec "$BIN" --patients 300 --out "$T/full" --omop "$T/fullo" >/dev/null 2>"$T/err" ); rc=$?
  [ $rc -eq 1 ] || fail "full disk exited $rc, expected 1: $(cat "$T/err")"
  grep -q "File too large\|No space" "$T/err" || fail "full disk message: $(cat "$T/err")"
  left=$(find "$T/full" "$T/fullo" -type f | wc -l)
  [ "$left" -eq 0 ] || fail "files left after a failed run: $(find "$T/full" "$T/fullo" -type f)"
  echo "cli: ok"
  ;;
determinism)
  "$BIN" --patients 300 --orgs 2 --seed 9 --threads 1 --split 500 --out "$T/t1" --omop "$T/o1" >/dev/null || fail "run t1"
  "$BIN" --patients 300 --orgs 2 --seed 9 --threads 2 --split 500 --out "$T/t2" --omop "$T/o2" >/dev/null || fail "run t2"
  (cd "$T/t1" && find . -type f | sort | xargs sha256sum) >"$T/s1"
  (cd "$T/t2" && find . -type f | sort | xargs sha256sum) >"$T/s2"
  cmp -s "$T/s1" "$T/s2" || fail "FHIR output differs between --threads 1 and 2"
  diff -r "$T/o1" "$T/o2" >/dev/null || fail "OMOP output differs between --threads 1 and 2"
  [ "$(wc -l <"$T/s1")" -gt 10 ] || fail "too few files"
  # Regression: a worker descheduled between claiming a chunk and taking its
  # ring slot once lost the slot to a later chunk and the run hung. The test
  # hook stalls the worker of chunk 3 for 300 ms; the run must still finish
  # and write the same bytes.
  HL_SYNTH_TEST_STALL_CHUNK=3 timeout 60 "$BIN" --patients 300 --orgs 2 --seed 9 --threads 2 --split 500 \
    --out "$T/t3" --omop "$T/o3" >/dev/null || fail "run with a stalled worker (hang or error: $?)"
  (cd "$T/t3" && find . -type f | sort | xargs sha256sum) >"$T/s3"
  cmp -s "$T/s1" "$T/s3" || fail "FHIR output differs with a stalled worker"
  # Patient k is the same whatever N: the output for N=100 is a prefix of the output for N=160.
  "$BIN" --patients 100 --seed 9 --out "$T/n100" --omop "$T/m100" >/dev/null || fail "run n100"
  "$BIN" --patients 160 --seed 9 --out "$T/n160" --omop "$T/m160" >/dev/null || fail "run n160"
  for f in "$T"/n100/org=org-1/*.ndjson "$T"/m100/org=org-1/*.csv; do
    g="${f/n100/n160}"; g="${g/m100/m160}"
    n=$(stat -c %s "$f")
    cmp -s -n "$n" "$f" "$g" || fail "$(basename "$f"): N=100 is not a prefix of N=160"
    [ "$(stat -c %s "$g")" -ge "$n" ] || fail "$(basename "$f") shrank"
  done
  cmp -s "$T/n100/org=org-1/Organization.ndjson" "$T/n160/org=org-1/Organization.ndjson" || fail "Organization differs"
  # --version 2: the same resources (ids, order, OMOP) as version 2, one hour later.
  "$BIN" --patients 100 --seed 9 --version 2 --out "$T/v2" --omop "$T/mv2" >/dev/null || fail "run --version 2"
  diff -r "$T/m100" "$T/mv2" >/dev/null || fail "--version changed the OMOP output"
  for f in "$T"/n100/org=org-1/*.ndjson; do
    g="$T/v2/org=org-1/$(basename "$f")"
    cmp -s <(jq -r '.id' "$f") <(jq -r '.id' "$g") || fail "$(basename "$f"): --version 2 changed the ids"
    [ "$(jq -r '.meta.versionId + " " + .meta.lastUpdated' "$g" | sort -u)" = "2 2024-01-01T01:00:00Z" ] ||
      fail "$(basename "$f"): --version 2 meta"
    cmp -s "$f" "$g" && fail "$(basename "$f"): --version 2 wrote version 1"
  done
  # A different seed gives different output.
  "$BIN" --patients 100 --seed 10 --out "$T/s10" >/dev/null || fail "run s10"
  cmp -s "$T/n100/org=org-1/Patient.ndjson" "$T/s10/org=org-1/Patient.ndjson" && fail "seed ignored"
  echo "determinism: ok"
  ;;
schema)
  command -v node >/dev/null || { echo "SKIP: node missing"; exit 77; }
  [ -d "$HERE/../../tools/npm/node_modules/ajv" ] || { echo "SKIP: npm packages missing (scripts/bootstrap)"; exit 77; }
  "$BIN" --patients 200 --orgs 2 --out "$T/nd" >/dev/null || fail "ndjson run"
  node "$HERE/fhir_schema_check.js" "$T/nd" || fail "ndjson schema/references"
  "$BIN" --patients 60 --orgs 2 --format bundle --gzip --out "$T/bu" >/dev/null || fail "bundle run"
  node "$HERE/fhir_schema_check.js" "$T/bu" || fail "bundle schema/references"
  echo "schema: ok"
  ;;
verify)
  "$BIN" --patients 150 --orgs 2 --split 1000 --out "$T/f" --omop "$T/o" >/dev/null || fail "run"
  "$BIN" verify --fhir "$T/f" --omop "$T/o" >"$T/rep" || { cat "$T/rep"; fail "verify failed on generated output"; }
  grep -q "verify: OK" "$T/rep" || fail "no OK line"
  "$BIN" --patients 40 --format bundle --gzip --out "$T/bf" --omop "$T/bo" >/dev/null || fail "bundle run"
  "$BIN" verify --fhir "$T/bf" --omop "$T/bo" >"$T/rep" || { cat "$T/rep"; fail "verify failed on bundles"; }
  M="$T/o/org=org-1/measurement.csv"
  for mutation in delete alter extra drug_alter person_delete; do
    rm -rf "$T/m"; cp -r "$T/o" "$T/m"
    case $mutation in
      delete) sed -i '5d' "$T/m/org=org-1/measurement.csv" ;;
      alter) awk -F, 'BEGIN{OFS=","} NR==7{$9=$9+1} {print}' "$M" >"$T/m/org=org-1/measurement.csv" ;;
      extra) sed -n '3p' "$T/o/org=org-1/visit_occurrence.csv" | sed 's/^[0-9]*/999999999/' >>"$T/m/org=org-1/visit_occurrence.csv" ;;
      drug_alter) awk -F, 'BEGIN{OFS=","} NR==4{$4="1999-01-01"} {print}' "$T/o/org=org-1/drug_exposure.csv" >"$T/m/org=org-1/drug_exposure.csv" ;;
      person_delete) sed -i '2d' "$T/m/org=org-2/person.csv" ;;
    esac
    "$BIN" verify --fhir "$T/f" --omop "$T/m" >"$T/rep"; rc=$?
    [ $rc -eq 1 ] || { cat "$T/rep"; fail "verify exited $rc after '$mutation'"; }
    grep -q "MISMATCH" "$T/rep" || fail "no MISMATCH line after '$mutation'"
  done
  # A FHIR-side change is caught too: drop one Observation line.
  rm -rf "$T/g"; cp -r "$T/f" "$T/g"
  f=$(ls "$T"/g/org=org-1/Observation.*.ndjson | head -1); sed -i '1d' "$f"
  "$BIN" verify --fhir "$T/g" --omop "$T/o" >"$T/rep"; [ $? -eq 1 ] || fail "FHIR deletion not caught"
  echo "verify: ok"
  ;;
*) fail "unknown case $CASE" ;;
esac
