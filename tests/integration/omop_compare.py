#!/usr/bin/env python3
"""Compares the warehouse's OMOP views with hl-synth's OMOP CSV, row for row.

usage: omop_compare.py DATABASE OMOP_DIR TABLE...
For every org=<tenant> directory of OMOP_DIR and every TABLE, the rows of
view omop_<TABLE> for that tenant (the CSV's columns, in its order) must
equal the CSV's rows, keyed by the first column; numbers compare with a
relative tolerance of 1e-9. Prints one line per (tenant, table) and exits 1
on the first difference set.
"""
import csv
import glob
import os
import sqlite3
import sys


def same(a, b):
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return abs(x - y) <= 1e-9 * (abs(x) + abs(y) + 1)


def cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def main():
    db, omop, tables = sys.argv[1], sys.argv[2], sys.argv[3:]
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    bad = 0
    for tdir in sorted(glob.glob(os.path.join(omop, "org=*"))):
        tenant = os.path.basename(tdir)[4:]
        for table in tables:
            with open(os.path.join(tdir, table + ".csv"), newline="") as f:
                rows = list(csv.reader(f))
            header, want = rows[0], rows[1:]
            cols = ", ".join(f'"{c}"' for c in header)
            got = con.execute(f"SELECT {cols} FROM omop_{table} WHERE tenant = ?", (tenant,)).fetchall()
            got = {cell(r[0]): [cell(v) for v in r] for r in got}
            missing = differing = 0
            notes = []
            seen = set()
            for r in want:
                g = got.get(r[0])
                if g is None:
                    missing += 1
                    notes.append(f"row {r[0]} missing")
                    continue
                seen.add(r[0])
                for i, (a, b) in enumerate(zip(r, g)):
                    if not same(a, b):
                        differing += 1
                        notes.append(f"row {r[0]} column {header[i]}: view {b!r}, CSV {a!r}")
                        break
            extra = len(set(got) - seen)
            ok = not missing and not differing and not extra and len(want) > 0
            print(f"{'same' if ok else 'DIFFERENT'} {tenant} {table}: {len(want)} CSV rows, "
                  f"{len(got)} view rows, missing {missing}, differing {differing}, extra {extra}")
            for n in notes[:5]:
                print(f"  {n}")
            bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
