#!/usr/bin/env node
/*
 * Generates the differential-test corpus of hl-validator: varied valid FHIR
 * R4 resources (Organization, Practitioner, Patient, Encounter, Condition,
 * Observation with components, MedicationRequest, Procedure, Immunization,
 * plus edge cases: contained resources, extensions, "_element" twins,
 * escapes, unusual member order and spacing) and mutations of them (wrong
 * JSON types, removed elements, unknown elements, bad codes and enums, bad
 * primitive formats, wrong resourceType, array/scalar swaps, ...).
 *
 * Usage: node gen_corpus.js OUTDIR [--valid N] [--mutants M] [--seed S]
 * Writes OUTDIR/base.ndjson (N valid resources) and OUTDIR/mutants.ndjson
 * (M mutants). Deterministic for a given seed.
 */
'use strict';
const fs = require('fs');
const path = require('path');

const args = process.argv.slice(2);
const outDir = args[0];
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const NVALID = opt('--valid', 300);
const NMUT = opt('--mutants', 3000);
let seed = opt('--seed', 42) >>> 0;

function rnd() {
  /* mulberry32 */
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];
const maybe = (p) => rnd() < p;
const pad = (n, w) => String(n).padStart(w, '0');

const hex = (n) => Array.from({ length: n }, () => '0123456789abcdef'[ri(16)]).join('');
const uuid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`;
const id = () => (maybe(0.5) ? uuid() : `${pick(['p', 'x', 'res'])}${ri(100000)}`);
function date() {
  const y = 1930 + ri(90), m = 1 + ri(12), d = 1 + ri(28);
  const r = ri(10);
  if (r === 0) return `${y}`;
  if (r === 1) return `${y}-${pad(m, 2)}`;
  return `${y}-${pad(m, 2)}-${pad(d, 2)}`;
}
function dateTime() {
  const y = 2000 + ri(24), m = 1 + ri(12), d = 1 + ri(28);
  const base = `${y}-${pad(m, 2)}-${pad(d, 2)}`;
  if (maybe(0.15)) return base;
  const t = `T${pad(ri(24), 2)}:${pad(ri(60), 2)}:${pad(ri(60), 2)}`;
  const frac = maybe(0.3) ? '.' + pad(ri(1000), 3) : '';
  const tz = pick(['Z', '+01:00', '-05:00', '+14:00', '-13:30', 'Z']);
  return base + t + frac + tz;
}
const instant = () => {
  const v = dateTime();
  return v.length === 10 ? v + 'T00:00:00Z' : v;
};

const FAMILY = ['Smith', 'Müller', 'García', "O'Brien", 'Nguyen', 'Kowalski', 'Rossi', 'Ivanova', '山田', 'Dubois'];
const GIVEN = ['Anna', 'Jean-Luc', 'María José', 'Li', 'Olumide', 'Zoë', 'Søren', 'Ahmed', 'Ewa', 'Tomás'];
const CITY = ['Springfield', 'Lyon', 'São Paulo', 'Kraków', 'Boston', 'Zürich'];

function coding(system, code, display) {
  const c = { system, code };
  if (display && maybe(0.8)) c.display = display;
  return c;
}
function cc(system, code, display, text) {
  const r = { coding: [coding(system, code, display)] };
  if (text && maybe(0.5)) r.text = text;
  return r;
}
const ref = (type, rid) => {
  const r = { reference: `${type}/${rid || id()}` };
  if (maybe(0.2)) r.display = `${type} ${ri(1000)}`;
  if (maybe(0.1)) r.type = type;
  return r;
};
const narrative = (txt) => ({
  status: pick(['generated', 'extensions', 'additional']),
  div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${txt}</p></div>`,
});
function meta() {
  const m = { versionId: String(1 + ri(5)), lastUpdated: instant() };
  if (maybe(0.2)) m.source = `urn:healthlake:synth:${ri(100)}`;
  if (maybe(0.2)) m.profile = ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'];
  return m;
}
function identifier(system) {
  const i = { system: system || pick(['urn:oid:2.16.840.1.113883.4.1', 'https://healthlake.example/mrn']), value: String(ri(1e9)) };
  if (maybe(0.3)) i.use = pick(['usual', 'official', 'secondary']);
  if (maybe(0.3)) i.type = cc('http://terminology.hl7.org/CodeSystem/v2-0203', 'MR', 'Medical record number');
  return i;
}
function humanName() {
  const n = { family: pick(FAMILY), given: [pick(GIVEN)] };
  if (maybe(0.3)) n.given.push(pick(GIVEN));
  if (maybe(0.5)) n.use = pick(['official', 'usual', 'maiden', 'nickname']);
  if (maybe(0.1)) n.prefix = ['Dr.'];
  return n;
}
function address() {
  const a = { line: [`${1 + ri(999)} ${pick(['Main St', 'Rue de la Paix', 'Elm Ave'])}`], city: pick(CITY) };
  if (maybe(0.6)) a.postalCode = pad(ri(100000), 5);
  if (maybe(0.5)) a.country = pick(['US', 'FR', 'BR', 'PL']);
  if (maybe(0.3)) a.use = pick(['home', 'work']);
  if (maybe(0.2)) a.period = { start: date() };
  return a;
}
const telecom = () => ({ system: pick(['phone', 'email', 'fax']), value: `+1-555-${pad(ri(10000), 4)}`, use: pick(['home', 'work', 'mobile']) });
function extension() {
  const e = { url: pick(['http://hl7.org/fhir/StructureDefinition/patient-birthPlace', 'https://healthlake.example/ext/score']) };
  const r = ri(6);
  if (r === 0) e.valueString = 'some text';
  else if (r === 1) e.valueCode = 'abc';
  else if (r === 2) e.valueDecimal = Math.round(rnd() * 10000) / 100;
  else if (r === 3) e.valueBoolean = maybe(0.5);
  else if (r === 4) e.valueAddress = address();
  else e.valueInteger = ri(100);
  return e;
}

const LOINC = [
  ['8867-4', 'Heart rate', 'beats/min', '/min', 60, 100],
  ['29463-7', 'Body weight', 'kg', 'kg', 40, 120],
  ['8302-2', 'Body height', 'cm', 'cm', 140, 200],
  ['39156-5', 'BMI', 'kg/m2', 'kg/m2', 17, 40],
  ['2339-0', 'Glucose', 'mg/dL', 'mg/dL', 70, 200],
  ['8310-5', 'Body temperature', 'Cel', 'Cel', 36, 40],
  ['718-7', 'Hemoglobin', 'g/dL', 'g/dL', 10, 17],
  ['4548-4', 'Hemoglobin A1c', '%', '%', 4, 10],
  ['2093-3', 'Cholesterol', 'mg/dL', 'mg/dL', 120, 280],
];
const SNOMED = [['44054006', 'Diabetes mellitus type 2'], ['38341003', 'Hypertension'], ['195662009', 'Acute viral pharyngitis'], ['10509002', 'Acute bronchitis']];
const quantity = (v, unit, code) => ({ value: v, unit, system: 'http://unitsofmeasure.org', code });

function patient() {
  const p = { resourceType: 'Patient', id: id() };
  if (maybe(0.7)) p.meta = meta();
  if (maybe(0.3)) p.text = narrative('Patient summary');
  p.identifier = [identifier()];
  if (maybe(0.5)) p.active = true;
  p.name = [humanName()];
  if (maybe(0.6)) p.telecom = [telecom()];
  p.gender = pick(['male', 'female', 'other', 'unknown']);
  p.birthDate = date();
  if (maybe(0.1)) p.deceasedDateTime = dateTime();
  else if (maybe(0.1)) p.deceasedBoolean = false;
  if (maybe(0.7)) p.address = [address()];
  if (maybe(0.3)) p.maritalStatus = cc('http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', pick(['M', 'S', 'D']), 'Married');
  if (maybe(0.2)) p.multipleBirthInteger = 1 + ri(3);
  if (maybe(0.3)) p.communication = [{ language: cc('urn:ietf:bcp:47', pick(['en', 'fr', 'pt-BR'])), preferred: true }];
  if (maybe(0.3)) p.extension = [extension()];
  if (maybe(0.3)) p.managingOrganization = ref('Organization');
  if (maybe(0.2)) p.generalPractitioner = [ref('Practitioner')];
  if (maybe(0.1)) p._birthDate = { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: dateTime() }] };
  if (maybe(0.1)) {
    p.contained = [organization()];
    p.managingOrganization = { reference: '#' + p.contained[0].id };
  }
  return p;
}
function organization() {
  const o = { resourceType: 'Organization', id: id() };
  if (maybe(0.5)) o.meta = meta();
  o.identifier = [identifier('http://hl7.org/fhir/sid/us-npi')];
  o.active = true;
  if (maybe(0.6)) o.type = [cc('http://terminology.hl7.org/CodeSystem/organization-type', 'prov', 'Healthcare Provider')];
  o.name = pick(['General Hospital', 'Clinique Saint-Jean', 'Hospital São Lucas', 'Family Practice']);
  if (maybe(0.5)) o.telecom = [telecom()];
  if (maybe(0.6)) o.address = [address()];
  if (maybe(0.1)) o.alias = ['GH'];
  return o;
}
function practitioner() {
  const p = { resourceType: 'Practitioner', id: id() };
  if (maybe(0.5)) p.meta = meta();
  p.identifier = [identifier('http://hl7.org/fhir/sid/us-npi')];
  p.active = maybe(0.9);
  p.name = [humanName()];
  if (maybe(0.5)) p.telecom = [telecom()];
  if (maybe(0.5)) p.address = [address()];
  if (maybe(0.7)) p.gender = pick(['male', 'female']);
  if (maybe(0.3)) p.birthDate = date();
  if (maybe(0.3)) p.qualification = [{ code: cc('http://terminology.hl7.org/CodeSystem/v2-0360', 'MD', 'Doctor of Medicine'), period: { start: date() } }];
  return p;
}
function encounter() {
  const e = { resourceType: 'Encounter', id: id() };
  if (maybe(0.5)) e.meta = meta();
  if (maybe(0.4)) e.identifier = [identifier()];
  e.status = pick(['planned', 'arrived', 'in-progress', 'finished', 'cancelled']);
  e.class = coding('http://terminology.hl7.org/CodeSystem/v3-ActCode', pick(['AMB', 'IMP', 'EMER']), 'ambulatory');
  if (maybe(0.7)) e.type = [cc('http://snomed.info/sct', '185349003', 'Encounter for check up')];
  e.subject = ref('Patient');
  if (maybe(0.6)) e.participant = [{ individual: ref('Practitioner'), type: [cc('http://terminology.hl7.org/CodeSystem/v3-ParticipationType', 'PPRF')] }];
  const start = dateTime();
  e.period = maybe(0.7) ? { start, end: start } : { start };
  if (maybe(0.4)) e.reasonCode = [cc('http://snomed.info/sct', ...pick(SNOMED))];
  if (maybe(0.5)) e.serviceProvider = ref('Organization');
  if (maybe(0.2)) e.length = { value: 30, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' };
  return e;
}
function condition() {
  const c = { resourceType: 'Condition', id: id() };
  if (maybe(0.5)) c.meta = meta();
  c.clinicalStatus = cc('http://terminology.hl7.org/CodeSystem/condition-clinical', pick(['active', 'resolved']));
  if (maybe(0.7)) c.verificationStatus = cc('http://terminology.hl7.org/CodeSystem/condition-ver-status', 'confirmed');
  if (maybe(0.5)) c.category = [cc('http://terminology.hl7.org/CodeSystem/condition-category', 'encounter-diagnosis')];
  c.code = cc('http://snomed.info/sct', ...pick(SNOMED));
  c.subject = ref('Patient');
  if (maybe(0.6)) c.encounter = ref('Encounter');
  if (maybe(0.7)) c.onsetDateTime = dateTime();
  if (maybe(0.3)) c.abatementDateTime = dateTime();
  if (maybe(0.6)) c.recordedDate = dateTime();
  if (maybe(0.2)) c.note = [{ text: 'Patient reports\nsymptoms since "last week".' }];
  return c;
}
function observation() {
  const o = { resourceType: 'Observation', id: id() };
  if (maybe(0.5)) o.meta = meta();
  o.status = pick(['final', 'amended', 'preliminary']);
  o.category = [cc('http://terminology.hl7.org/CodeSystem/observation-category', pick(['vital-signs', 'laboratory']))];
  if (maybe(0.25)) {
    o.code = cc('http://loinc.org', '85354-9', 'Blood pressure panel');
    o.component = [
      { code: cc('http://loinc.org', '8480-6', 'Systolic blood pressure'), valueQuantity: quantity(100 + ri(60), 'mmHg', 'mm[Hg]') },
      { code: cc('http://loinc.org', '8462-4', 'Diastolic blood pressure'), valueQuantity: quantity(60 + ri(40), 'mmHg', 'mm[Hg]') },
    ];
    if (maybe(0.2)) o.component[0].interpretation = [cc('http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', 'N')];
  } else {
    const l = pick(LOINC);
    o.code = cc('http://loinc.org', l[0], l[1], l[1]);
    if (maybe(0.85)) o.valueQuantity = quantity(Math.round((l[4] + rnd() * (l[5] - l[4])) * 10) / 10, l[2], l[3]);
    else o.valueCodeableConcept = cc('http://snomed.info/sct', '260385009', 'Negative');
    if (maybe(0.3)) o.referenceRange = [{ low: quantity(l[4], l[2], l[3]), high: quantity(l[5], l[2], l[3]) }];
  }
  o.subject = ref('Patient');
  if (maybe(0.7)) o.encounter = ref('Encounter');
  o.effectiveDateTime = dateTime();
  if (maybe(0.5)) o.issued = instant();
  if (maybe(0.2)) o.performer = [ref('Practitioner')];
  if (maybe(0.1)) o.note = [{ text: 'Measured at rest.' }];
  return o;
}
function medicationRequest() {
  const m = { resourceType: 'MedicationRequest', id: id() };
  if (maybe(0.5)) m.meta = meta();
  m.status = pick(['active', 'completed', 'stopped']);
  m.intent = pick(['order', 'plan']);
  m.medicationCodeableConcept = cc('http://www.nlm.nih.gov/research/umls/rxnorm', pick(['860975', '197361', '314076']), 'metformin');
  m.subject = ref('Patient');
  if (maybe(0.6)) m.encounter = ref('Encounter');
  m.authoredOn = dateTime();
  if (maybe(0.6)) m.requester = ref('Practitioner');
  if (maybe(0.7))
    m.dosageInstruction = [{
      sequence: 1,
      text: 'Take 1 tablet twice daily',
      timing: { repeat: { frequency: 2, period: 1, periodUnit: 'd' } },
      doseAndRate: [{ doseQuantity: quantity(1, 'tablet', '{tbl}') }],
    }];
  if (maybe(0.2)) m.dispenseRequest = { numberOfRepeatsAllowed: 3, quantity: quantity(60, 'tablet', '{tbl}') };
  return m;
}
function procedure() {
  const p = { resourceType: 'Procedure', id: id() };
  if (maybe(0.5)) p.meta = meta();
  p.status = pick(['completed', 'in-progress']);
  p.code = cc('http://snomed.info/sct', pick(['80146002', '73761001']), 'Appendectomy');
  p.subject = ref('Patient');
  if (maybe(0.6)) p.encounter = ref('Encounter');
  if (maybe(0.5)) p.performedPeriod = { start: dateTime(), end: dateTime() };
  else p.performedDateTime = dateTime();
  if (maybe(0.4)) p.performer = [{ actor: ref('Practitioner') }];
  if (maybe(0.3)) p.bodySite = [cc('http://snomed.info/sct', '66754008', 'Appendix')];
  return p;
}
function immunization() {
  const i = { resourceType: 'Immunization', id: id() };
  if (maybe(0.5)) i.meta = meta();
  i.status = 'completed';
  i.vaccineCode = cc('http://hl7.org/fhir/sid/cvx', pick(['140', '208', '115']), 'Influenza vaccine');
  i.patient = ref('Patient');
  if (maybe(0.6)) i.encounter = ref('Encounter');
  i.occurrenceDateTime = dateTime();
  i.primarySource = true;
  if (maybe(0.4)) i.lotNumber = `LOT${ri(10000)}`;
  if (maybe(0.3)) i.doseQuantity = quantity(0.5, 'mL', 'mL');
  if (maybe(0.2)) i.protocolApplied = [{ doseNumberPositiveInt: 1 + ri(3) }];
  return i;
}
const GENS = [patient, organization, practitioner, encounter, condition, observation, medicationRequest, procedure, immunization];

/* Serialization with occasional edge cases: resourceType last, spacing, \u escapes. */
function serialize(obj) {
  let o = obj;
  if (maybe(0.1) && o.resourceType) {
    const { resourceType, ...rest } = o;
    o = { ...rest, resourceType };
  }
  let s = maybe(0.1) ? JSON.stringify(o, null, 1).replace(/\n/g, ' ') : JSON.stringify(o);
  if (maybe(0.1)) {
    /* Escape one letter of some string as \u00XX (keys included at times). */
    s = s.replace(/"([A-Za-z])([a-z]+)"/, (m, a, b) => `"\\u00${a.charCodeAt(0).toString(16)}${b}"`);
  }
  return s;
}

/* ---- Mutations ---------------------------------------------------------------- */

/* All [parent, key] slots of the tree (key is a member name or an index). */
function slots(node, out = [], parent = null, key = null) {
  if (parent !== null) out.push([parent, key]);
  if (Array.isArray(node)) node.forEach((v, i) => slots(v, out, node, i));
  else if (node && typeof node === 'object') for (const k of Object.keys(node)) slots(node[k], out, node, k);
  return out;
}
const objects = (root) => [root, ...slots(root).map(([p, k]) => p[k]).filter((v) => v && typeof v === 'object' && !Array.isArray(v))];
const stringSlots = (root) => slots(root).filter(([p, k]) => typeof p[k] === 'string');

const BAD_STRINGS = [
  '', ' ', 'a  b', ' lead', 'trail ', 'x\u00a0y', 'x\u2003y', '\u3000', 'tab\there', 'line\nbreak', 'form\ffeed', 'v\u000bt',
  '2020-13-01', '2020-02-30', '2020-1-1', '20200101', '0000-01-01', '2020-01-01T10:00:00', '2020-01-01T25:00:00Z',
  '2020-01-01T10:00Z', '2020-01-01T10:00:00+15:00', '2020-01-01T10:00:00.Z', '2020-01-01T10:00:60Z', '10:61:00', '24:00:00',
  'has space', 'bad id!', 'x'.repeat(65), 'x'.repeat(64), 'urn:oid:3.1', 'urn:oid:1.2.03', 'urn:uuid:ABCDEF00-0000-0000-0000-000000000000',
  'urn:uuid:abcdef00-0000-0000-0000-000000000000', '1.5', '-0', '01', '1e3', 'true', 'false', 'null', 'unknown-x', 'Male', 'FINAL',
  'Patient', 'Organization/', '/Patient/1', 'Patient/1 ', 'aGVsbG8=', 'aGVs bG8=', 'aGVsbG8', '\u00e9t\u00e9', '\ud83d\ude00 emoji',
  '\u0001ctrl', '#frag', 'http://a.b/c d', 'final', 'male', 'active', 'completed', 'order',
];
const BAD_VALUES = () => pick([0, 1, -1, 1.5, 1e21, -0.0, 3, true, false, null, {}, [], ['x'], { a: 1 }, { value: 1 }, [{}], 'str', '', ['']]);

const MUTATORS = [
  /* wrong JSON type for any element */
  (r) => { const s = pick(slots(r)); if (s) s[0][s[1]] = BAD_VALUES(); },
  /* bad primitive format / code / enum value */
  (r) => { const s = pick(stringSlots(r)); if (s) s[0][s[1]] = pick(BAD_STRINGS); },
  /* remove an element (sometimes a required one) */
  (r) => {
    const o = pick(objects(r)); const ks = Object.keys(o);
    if (ks.length) delete o[pick(ks)];
  },
  (r) => { for (const k of ['resourceType', 'subject', 'code', 'class', 'patient', 'vaccineCode', 'div']) for (const o of objects(r)) if (k in o && maybe(0.5)) delete o[k]; },
  /* unknown element */
  (r) => { const o = pick(objects(r)); o[pick(['foo', 'Name', 'given_', 'resourcetype', '_unknown', 'valueFoo', 'extension2'])] = pick(['x', 1, {}, []]); },
  /* wrong resourceType */
  (r) => { r.resourceType = pick(['Patien', 'patient', 'Bundle', 'Observation', 'Foo', '', 5, null, ['Patient'], 'Patient ']); },
  /* array <-> scalar */
  (r) => {
    const arr = slots(r).filter(([p, k]) => Array.isArray(p[k]) && p[k].length);
    const sc = slots(r).filter(([p, k]) => !Array.isArray(p) && !Array.isArray(p[k]));
    if (maybe(0.5) && arr.length) { const [p, k] = pick(arr); p[k] = p[k][0]; }
    else if (sc.length) { const [p, k] = pick(sc); p[k] = [p[k]]; }
  },
  /* a numeric element gets another number */
  (r) => {
    const ns = slots(r).filter(([p, k]) => typeof p[k] === 'number');
    if (ns.length) { const [p, k] = pick(ns); p[k] = pick([-1, 0, 1.5, 2147483648, -3.25, 1e-7]); }
  },
  /* a contained resource goes wrong */
  (r) => { r.contained = [pick([{ resourceType: 'Foo' }, { id: 'x' }, 'Patient', { resourceType: 'Organization', name: 5 }, { resourceType: 'Organization', id: 'ok1' }])]; },
  /* several mutations at once */
  (r) => { for (let i = 0; i < 3; i++) pick(MUTATORS.slice(0, 8))(r); },
];

function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const base = [];
  for (let i = 0; i < NVALID; i++) base.push(GENS[i % GENS.length]());
  fs.writeFileSync(path.join(outDir, 'base.ndjson'), base.map(serialize).join('\n') + '\n');
  const mutants = [];
  for (let i = 0; i < NMUT; i++) {
    const r = JSON.parse(JSON.stringify(pick(base)));
    pick(MUTATORS)(r);
    mutants.push(serialize(r));
  }
  fs.writeFileSync(path.join(outDir, 'mutants.ndjson'), mutants.join('\n') + '\n');
}
main();
