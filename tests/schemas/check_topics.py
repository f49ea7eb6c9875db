#!/usr/bin/env python3
"""Checks schemas/topics/topics.json against topics.schema.json (JSON Schema
2020-12) and checks that the schema plus the two rules a JSON Schema cannot
express (unique topic names, min_insync_replicas <= replication_factor) refuse
every file in tests/data/topics/bad, as libstream's hl_topics does (see
tests/unit/test_topics.c). Exits 77 (skipped) when python3-jsonschema is
missing."""
import glob
import json
import os
import sys

try:
    import jsonschema
except ImportError:
    print("python3-jsonschema is not installed (scripts/bootstrap installs it)")
    sys.exit(77)

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
schema = json.load(open(os.path.join(root, "schemas/topics/topics.schema.json")))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)


def problems(doc):
    errs = [e.message for e in validator.iter_errors(doc)]
    if errs:
        return errs
    names = [t["name"] for t in doc["topics"]]
    errs += [f"topic {n} defined twice" for n in set(names) if names.count(n) > 1]
    errs += [f"topic {t['name']}: min_insync_replicas > replication_factor"
             for t in doc["topics"] if t["min_insync_replicas"] > t["replication_factor"]]
    return errs


failed = 0
for path in ["schemas/topics/topics.json", "tests/data/topics/good.json"]:
    p = problems(json.load(open(os.path.join(root, path))))
    print(("ok   " if not p else "FAIL ") + path + ("" if not p else ": " + "; ".join(p)))
    failed += bool(p)
bad = sorted(glob.glob(os.path.join(root, "tests/data/topics/bad/*.json")))
if len(bad) < 19:
    print(f"FAIL only {len(bad)} bad examples found")
    failed += 1
for path in bad:
    p = problems(json.load(open(path)))
    print(("ok   refused " if p else "FAIL accepted ") + os.path.relpath(path, root))
    failed += not p
print(f"{failed} failures")
sys.exit(1 if failed else 0)
