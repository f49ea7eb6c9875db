#!/usr/bin/env node
// Validates every FHIR resource under a directory (NDJSON files and Bundle
// JSON files, gzip or not) against the official FHIR R4 JSON Schema, and
// checks that every reference resolves inside the output: "Type/id" to a
// resource of the output, "urn:uuid:x" to an entry of the same Bundle.
// Exit 0 when all pass, 1 on any failure, 77 when the npm packages are missing.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const npm = path.join(__dirname, '..', '..', 'tools', 'npm', 'node_modules');
let Ajv, schema;
try {
  Ajv = require(path.join(npm, 'ajv'));
  schema = require(path.join(npm, '@asymmetrik', 'fhir-json-schema-validator', 'fhir.schema.json'));
} catch (e) {
  console.log('SKIP: npm packages missing (run scripts/bootstrap): ' + e.message);
  process.exit(77);
}
const ajv = new Ajv({ logger: false, allErrors: false });
ajv.addMetaSchema(require(path.join(npm, 'ajv', 'lib', 'refs', 'json-schema-draft-06.json')));
const validate = ajv.compile(schema);

// The validator must reject a malformed resource, or the test proves nothing.
if (validate({ resourceType: 'Patient', id: 'x', birthDate: '1980-13-45', gender: 'male' })) {
  console.log('FAIL: the schema accepted an invalid birthDate');
  process.exit(1);
}
const dir = process.argv[2];
const resources = [];   // [file, resource, bundleIndex]
const known = new Set();
const bundles = [];
function walk(d) {
  for (const name of fs.readdirSync(d).sort()) {
    const p = path.join(d, name);
    if (fs.statSync(p).isDirectory()) { walk(p); continue; }
    if (name.startsWith('.')) { console.log('FAIL: temporary file left: ' + p); process.exitCode = 1; continue; }
    let text = fs.readFileSync(p);
    if (name.endsWith('.gz')) text = zlib.gunzipSync(text);
    text = text.toString('utf8');
    if (/\.ndjson(\.gz)?$/.test(name)) {
      for (const line of text.split('\n')) if (line) resources.push([p, JSON.parse(line), -1]);
    } else if (/\.json(\.gz)?$/.test(name)) {
      const b = JSON.parse(text);
      const bi = bundles.length;
      bundles.push(new Set(b.entry.map(e => e.fullUrl)));
      resources.push([p, b, -1]);
      for (const e of b.entry) resources.push([p, e.resource, bi]);
    }
  }
}
walk(dir);
for (const [, r, bi] of resources) if (r.resourceType !== 'Bundle') known.add(r.resourceType + '/' + r.id);

let bad = 0, refs = 0, dangling = 0;
const counts = {};
function checkRefs(o, bi, where) {
  if (Array.isArray(o)) { for (const x of o) checkRefs(x, bi, where); return; }
  if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) {
      if (k === 'reference' && typeof v === 'string') {
        refs++;
        const ok = v.startsWith('urn:uuid:') ? bi >= 0 && bundles[bi].has(v) : known.has(v);
        if (!ok) { dangling++; if (dangling <= 10) console.log('FAIL: dangling reference ' + v + ' in ' + where); }
      } else checkRefs(v, bi, where);
    }
  }
}
for (const [file, r, bi] of resources) {
  counts[r.resourceType] = (counts[r.resourceType] || 0) + 1;
  if (!validate(r)) {
    bad++;
    if (bad <= 10) console.log('FAIL: ' + file + ' ' + r.resourceType + '/' + r.id + ': ' + JSON.stringify(validate.errors.slice(0, 3)));
  }
  if (!r.meta || !r.meta.versionId || !r.meta.lastUpdated) {
    if (r.resourceType !== 'Bundle') { bad++; console.log('FAIL: no meta.versionId/lastUpdated: ' + r.id); }
  }
  if (r.resourceType !== 'Bundle') checkRefs(r, bi, file + ' ' + r.resourceType + '/' + r.id);
}
console.log('resources ' + resources.length + ' ' + JSON.stringify(counts));
console.log('schema failures ' + bad + ', references ' + refs + ', dangling ' + dangling);
if (resources.length === 0) { console.log('FAIL: no resources'); process.exit(1); }
process.exit(bad || dangling || process.exitCode ? 1 : 0);
