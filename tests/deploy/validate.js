#!/usr/bin/env node
/*
 * Validates Kubernetes objects offline, refusing unknown fields.
 * Usage: node validate.js OBJECTS.json CRD_DIR   (OBJECTS.json: an array)
 * Prints TAP: one case per object.
 *
 * Core kinds: the validators of npm kubernetes-models. They are compiled ajv
 * functions whose schemas allow extra properties, so unknown fields are found
 * by running the validator on a Proxy that records every property the
 * validator reads: a compiled validator reads each property its schema knows,
 * so a property never read is unknown to the schema (as kubectl
 * --validate=strict would refuse it).
 * Custom resources: the CRD schemas in CRD_DIR (<group>/<kind>_<version>.json)
 * with ajv, after setting additionalProperties: false on every object schema
 * that lists properties and does not preserve unknown fields (the structural
 * schema rule the API server prunes by); metadata with the ObjectMeta validator.
 */
"use strict";
const fs = require("fs");
const path = require("path");
const npm = path.join(__dirname, "../../tools/npm/node_modules");
const Ajv = require(path.join(npm, "ajv"));

const [, , objectsFile, crdDir] = process.argv;
const objects = JSON.parse(fs.readFileSync(objectsFile, "utf8"));

function tracked(value, where, seen) {
  if (value === null || typeof value !== "object") return value;
  return new Proxy(value, {
    get(target, prop, recv) {
      if (typeof prop === "string" && Object.prototype.hasOwnProperty.call(target, prop))
        seen.add(where + "/" + prop);
      const v = Reflect.get(target, prop, recv);
      if (typeof prop === "string" && v !== null && typeof v === "object")
        return tracked(v, where + "/" + prop, seen);
      return v;
    },
  });
}

function unread(value, where, seen, out) {
  if (value === null || typeof value !== "object") return;
  for (const k of Object.keys(value)) {
    const p = where + "/" + k;
    if (!seen.has(p)) out.push(p);
    else unread(value[k], p, seen, out);
  }
}

/* Runs a compiled kubernetes-models validator; returns a list of problems. */
function runCompiled(validate, obj) {
  const seen = new Set();
  const ok = validate(tracked(obj, "", seen));
  const problems = ok ? [] : (validate.errors || []).map((e) => `${e.instancePath} ${e.message}`);
  const unknown = [];
  unread(obj, "", seen, unknown);
  for (const u of unknown) problems.push(`${u}: unknown field`);
  return problems;
}

function schemaModule(name) {
  return require(path.join(npm, "kubernetes-models/_schemas", name + ".js")).validate;
}

function coreValidator(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const dir = group ? `${group}/${version}` : version;
  let mod;
  try {
    mod = require(path.join(npm, "kubernetes-models", dir, kind + ".js"));
  } catch (e) {
    return null;
  }
  const parts = group ? group.replace(/\.k8s\.io$/, "").split(".") : ["core"];
  const group1 = parts.map((p) => p[0].toUpperCase() + p.slice(1)).join("");
  const ver = version[0].toUpperCase() + version.slice(1);
  const name = `IoK8sApi${group1}${ver}${kind}`;
  try {
    return schemaModule(name);
  } catch (e) {
    return mod && null;
  }
}

function strictify(s) {
  if (Array.isArray(s)) return s.forEach(strictify);
  if (!s || typeof s !== "object") return;
  /* Go's inline flag (?i) is not JavaScript: checked case-sensitively (stricter). */
  if (typeof s.pattern === "string" && s.pattern.includes("(?i)")) s.pattern = s.pattern.replace("(?i)", "");
  if (s.properties && s.additionalProperties === undefined && !s["x-kubernetes-preserve-unknown-fields"])
    s.additionalProperties = false;
  for (const v of Object.values(s)) strictify(v);
}

const ajv = new Ajv({ allErrors: true, schemaId: "auto" });
ajv.addFormat("int32", (v) => Number.isInteger(v) && v >= -2147483648 && v <= 2147483647);
ajv.addFormat("int64", (v) => Number.isInteger(v));
ajv.addFormat("int-or-string", () => true);
const crdCache = new Map();
function crdValidator(apiVersion, kind) {
  const [group, version] = apiVersion.split("/");
  const file = path.join(crdDir, group, `${kind.toLowerCase()}_${version}.json`);
  if (!crdCache.has(file)) {
    if (!fs.existsSync(file)) return null;
    const schema = JSON.parse(fs.readFileSync(file, "utf8"));
    delete schema.$schema;
    strictify(schema);
    if (schema.properties && schema.properties.metadata) schema.properties.metadata = { type: "object" };
    crdCache.set(file, ajv.compile(schema));
  }
  return crdCache.get(file);
}
const objectMeta = require(path.join(npm, "@kubernetes-models/apimachinery/_schemas/IoK8sApimachineryPkgApisMetaV1ObjectMeta.js")).validate;

let n = 0, failed = 0;
console.log("TAP version 13");
for (const obj of objects) {
  n++;
  const id = `${obj.kind} ${obj.metadata && obj.metadata.name} (${obj.apiVersion})`;
  let problems;
  const core = coreValidator(obj.apiVersion, obj.kind);
  if (core) {
    problems = runCompiled(core, obj);
  } else {
    const v = crdValidator(obj.apiVersion, obj.kind);
    if (!v) {
      problems = ["no schema for this kind: neither kubernetes-models nor " + crdDir + " knows it"];
    } else {
      problems = v(obj) ? [] : v.errors.map((e) => `${e.dataPath} ${e.message} ${JSON.stringify(e.params)}`);
      problems = problems.concat(runCompiled(objectMeta, obj.metadata || {}).map((p) => "metadata" + p));
    }
  }
  if (problems.length) {
    failed++;
    console.log(`not ok ${n} - ${id}`);
    for (const p of problems.slice(0, 20)) console.log(`# ${p}`);
  } else {
    console.log(`ok ${n} - ${id} validates (unknown fields refused)`);
  }
}
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
