#!/usr/bin/env python3
"""The dbt macros that decide values, evaluated and compared with libstream (TAP).

  check_semantics.py SRC_ROOT HL_WH_ORACLE

hl_newest_first() (staging dedup), hl_ref_id() and hl_normalize() are
rendered from dbt/snowflake/macros exactly as the models use them, and the
resulting SQL is run on SQLite with Python stand-ins for the Snowflake
functions it calls (IFF, REGEXP_LIKE, TRY_TO_TIMESTAMP_TZ, STARTSWITH,
SPLIT_PART, REGEXP_SUBSTR, TRANSLATE; the rest is SQL both engines share:
ROW_NUMBER, NULLS LAST, COALESCE, NULLIF, LTRIM, SUBSTR, LENGTH, REPLACE).
The answers are compared, case by case, with libstream's own functions
(hl_wh_version_cmp, hl_wh_reference_id, hl_wh_normalize) through the
hl-wh-oracle program. The stand-ins follow Snowflake's documented behaviour
for the inputs used here (ISO 8601 instants, POSIX classes); they are not
Snowflake, so this shows the macros' logic agrees with the C rules, not that
Snowflake runs them identically.

The SQL functions HL_LO / HL_HI (schemas/warehouse/snowflake/008_api_functions.sql)
are evaluated the same way (stand-ins for TRY_TO_TIMESTAMP_TZ with the
session TIMEZONE 'UTC', DATE_PART(EPOCH_MILLISECOND), DATEADD, REGEXP_LIKE,
REGEXP_SUBSTR with 'e') and compared with hl-api-gateway's hl_api_date_range,
which gives the same [lo, hi) on SQLite.
"""
import datetime
import os
import random
import re
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_dbt  # noqa: E402  (render.js driver)


class Oracle:
    def __init__(self, path):
        self.p = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, *fields):
        enc = ['~' if f is None else f.encode('utf-8').hex() for f in fields[1:]]
        self.p.stdin.write(('\t'.join([fields[0]] + enc) + '\n').encode())
        self.p.stdin.flush()
        ans = self.p.stdout.readline().decode().strip()
        if ans == 'error':
            raise RuntimeError('oracle refused %r' % (fields,))
        return ans

    def cmp(self, a, b):
        return int(self.ask('cmp', a[0], a[1], b[0], b[1]))

    def text(self, op, s):
        ans = self.ask(op, s)
        return None if ans == '~' else bytes.fromhex(ans).decode('utf-8')

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


# ---- Snowflake function stand-ins -----------------------------------------------------
ISO = re.compile(r'(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$')


def try_to_timestamp_tz(s, fmt=None):
    """Nanoseconds since the epoch (UTC) of an ISO 8601 instant, else NULL."""
    if s is None:
        return None
    m = ISO.match(s)
    if not m:
        return None
    y, mo, d, h, mi, se = (int(m.group(i)) for i in range(1, 7))
    try:
        base = datetime.datetime(y, mo, d, h, mi, se, tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    frac = int((m.group(7) or '0')[:9].ljust(9, '0'))
    off = 0
    if m.group(8) != 'Z':
        sign = -1 if m.group(8)[0] == '-' else 1
        off = sign * (int(m.group(8)[1:3]) * 3600 + int(m.group(8)[4:6]) * 60)
    secs = int(base.timestamp()) - off
    return str(secs * 10**9 + frac).rjust(22, '0') if secs >= 0 else None  # text: SQLite ints stop at 2^63


def translate(s, src, dst):
    if s is None or src is None or dst is None:
        return None
    table = {}
    for i, c in enumerate(src):
        table.setdefault(c, dst[i] if i < len(dst) else '')
    return ''.join(table.get(c, c) for c in s)


def regexp_substr(s, pattern):
    if s is None:
        return None
    m = re.search(pattern, s)
    return m.group(0) if m else None


def connect():
    db = sqlite3.connect(':memory:')
    db.create_function('iff', 3, lambda c, a, b: a if c else b, deterministic=True)
    db.create_function('regexp_like', 2, lambda s, p: None if s is None else int(re.fullmatch(p, s) is not None),
                       deterministic=True)
    db.create_function('try_to_timestamp_tz', 2, try_to_timestamp_tz, deterministic=True)
    db.create_function('startswith', 2, lambda s, p: None if s is None else int(s.startswith(p)), deterministic=True)
    db.create_function('split_part', 3, lambda s, d, n: None if s is None else (s.split(d) + [''] * n)[n - 1],
                       deterministic=True)
    db.create_function('regexp_substr', 2, regexp_substr, deterministic=True)
    db.create_function('translate', 3, translate, deterministic=True)
    return db


# ---- HL_LO / HL_HI ------------------------------------------------------------------------
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
TS = re.compile(r'(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?$')


def ts_micros(s):
    """TRY_TO_TIMESTAMP_TZ(s) as microseconds since the epoch, for ISO 8601
    date-times (seconds and zone optional; no zone is the session's UTC)."""
    if s is None:
        return None
    m = TS.match(s)
    if not m:
        return None
    try:
        t = datetime.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)),
                              int(m.group(6) or 0), tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    z = m.group(8)
    off = 0 if z in (None, 'Z') else (-1 if z[0] == '-' else 1) * (int(z[1:3]) * 60 + int(z[4:6]))
    if z not in (None, 'Z') and (int(z[1:3]) > 14 or int(z[4:6]) > 59):
        return None
    frac = int((m.group(7) or '0').ljust(9, '0')[:6])
    return (t - EPOCH) // datetime.timedelta(microseconds=1) - off * 60 * 10**6 + frac


def dateadd(unit, n, us):
    if us is None:
        return None
    t = EPOCH + datetime.timedelta(microseconds=us)
    if unit.upper() == 'DAY':
        t += datetime.timedelta(days=n)
    else:
        months = t.month - 1 + n * (12 if unit.upper() == 'YEAR' else 1)
        try:
            t = t.replace(year=t.year + months // 12, month=months % 12 + 1)
        except ValueError:
            return None
    return (t - EPOCH) // datetime.timedelta(microseconds=1)


def udf_connect():
    db = sqlite3.connect(':memory:')
    db.create_function('try_to_timestamp_tz', 1, ts_micros, deterministic=True)
    db.create_function('sf_epoch_ms', 1, lambda us: None if us is None else us // 1000, deterministic=True)
    db.create_function('sf_dateadd', 3, dateadd, deterministic=True)
    db.create_function('regexp_like', 2, lambda s, p: None if s is None else int(re.fullmatch(p, s) is not None),
                       deterministic=True)

    def substr(s, p, pos, occ, params):
        m = None if s is None else re.search(p, s[pos - 1:])
        return None if m is None else (m.group(1) if 'e' in params else m.group(0))
    db.create_function('regexp_substr', 5, substr, deterministic=True)
    return db


def udf_bodies(root):
    """{name: body as SQLite SQL} of the SQL functions of 008_api_functions.sql."""
    with open(os.path.join(root, 'schemas', 'warehouse', 'snowflake', '008_api_functions.sql'), encoding='utf-8') as f:
        text = f.read()
    bodies = {}
    for name, body in re.findall(r'FUNCTION HEALTHLAKE\.API\.(\w+)\(S VARCHAR\).*?AS \$\$(.*?)\$\$', text, re.S):
        body = re.sub(r'DATE_PART\(\s*EPOCH_MILLISECOND\s*,', 'sf_epoch_ms(', body)
        body = re.sub(r'DATEADD\(\s*(\w+)\s*,', r"sf_dateadd('\1',", body)
        # Snowflake reads a backslash escape in a string literal: '\\.' is the regex \.
        bodies[name] = body.replace('\\\\', '\\')
    for name in bodies:
        for other, b in bodies.items():
            bodies[name] = bodies[name].replace('HEALTHLAKE.API.%s(S)' % other, '(%s)' % b)
    return bodies


def fhir_dates(rng):
    fixed = ['2020', '1970', '2024-02', '2020-12', '2024-02-29', '2021-12-31', '1999-12-31',
             '2020-01-01T10:00Z', '2020-01-01T10:00+05:30', '2020-01-01T10:00', '2020-01-01T23:59:59Z',
             '2020-01-01T10:00:00-08:00', '2020-01-01T10:00:00.1Z', '2020-01-01T10:00:00.12+01:00',
             '2020-01-01T10:00:00.123Z', '2020-01-01T10:00:00.123456789Z', '2020-06-30T23:59:59.999-14:00',
             '2020-01-01T10:00:00', '2020-01-01T10:00:00.5',
             '', 'abc', '2020-13', '2021-02-29', '2020-01-32', '20200101', '2020-01-01T25:00:00Z', '2020-1-1']
    out = list(fixed)
    for _ in range(400):
        t = datetime.datetime(1971, 1, 1) + datetime.timedelta(seconds=rng.randrange(0, 60 * 365 * 86400))
        prec = rng.randrange(0, 6)
        s = t.strftime(['%Y', '%Y-%m', '%Y-%m-%d', '%Y-%m-%dT%H:%M', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%dT%H:%M:%S'][prec])
        if prec == 5:
            s += '.' + ''.join(rng.choice('0123456789') for _ in range(rng.randint(1, 9)))
        if prec >= 3:
            s += rng.choice(['Z', 'Z', '', '+00:00', '+05:30', '-08:00', '+14:00', '-03:45'])
        out.append(s)
    return out


# ---- Corpora ------------------------------------------------------------------------------
def instant(rng):
    t = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=rng.randrange(0, 3 * 86400))
    off = rng.choice([0, 0, 60, -300, 330])
    local = t + datetime.timedelta(minutes=off)
    frac = rng.choice(['', '.5', '.123', '.123456789', '.1234567891'])
    zone = 'Z' if off == 0 and rng.random() < 0.7 else '%s%02d:%02d' % ('+' if off >= 0 else '-', abs(off) // 60, abs(off) % 60)
    return local.strftime('%Y-%m-%dT%H:%M:%S') + frac + zone


def version_sets(rng, n):
    digits = ['1', '2', '3', '9', '10', '010', '0', '00', '11', '99', '100', '123456789012345678901234567890', '0123456789012345678901234567891']
    words = ['a', 'b', 'A', 'v1', 'v10', 'v9', '1a', 'W/"2"', 'zz', 'a1']
    sets = []
    for i in range(n):
        pool = digits if i % 2 == 0 else words
        k = rng.randint(1, 6)
        rows = []
        for _ in range(k):
            r = rng.random()
            vid = None if r < 0.12 else ('' if r < 0.17 else rng.choice(pool))
            lu = None if rng.random() < 0.2 else ('' if rng.random() < 0.05 else instant(rng))
            rows.append((vid, lu))
        if rng.random() < 0.3 and rows:
            rows.append(rows[0])  # the same version again (a replay)
        sets.append(rows)
    # Hand-made cases: equal instants written in two zones, fractions, ties.
    sets += [[('1', '2020-01-01T10:00:00+02:00'), ('1', '2020-01-01T08:00:00Z')],
             [('1', '2020-01-01T08:00:00.1Z'), ('1', '2020-01-01T08:00:00.10Z')],
             [('2', None), ('10', None), ('9', None)],
             [('007', None), ('7', '2020-01-01T00:00:00Z')],
             [(None, '2020-01-02T00:00:00Z'), (None, '2020-01-01T00:00:00Z'), ('1', None)],
             [('b', None), ('a', '2030-01-01T00:00:00Z')]]
    return sets


def references(rng):
    fixed = ['Patient/123', 'Patient/123/_history/2', 'http://example.org/fhir/Patient/abc/_history/7',
             'urn:uuid:4f6a-11', 'urn:oid:1.2.3.4', 'urn:uuid:', 'urn:uuid:x', 'urn:oid:1', 'urn:oid:12',
             '#contained', 'Patient/', '', 'abc', 'a/b/_history/', '/_history/1', 'Patient/x/_history/1/_history/2',
             'Practitioner/Ünïcødé', 'Organization/a/b/c']
    parts = ['a', 'Patient', '/', '/_history/', '#', 'urn:uuid:', 'urn:oid:', ':', '1', 'é']
    return fixed + [''.join(rng.choice(parts) for _ in range(rng.randint(1, 6))) for _ in range(400)]


def texts(rng):
    chars = ([chr(c) for c in range(0x20, 0x7f)] + [chr(c) for c in range(0xc0, 0x180)] +
             [chr(c) for c in range(0x300, 0x370)] + ['\u00aa', '\u00b5', '\u00d7', '\u00f7', '\u0391', '\u0410',
                                                      '\u1e9e', '\u00df', '\U0001f600', '\u0180', '\u0250'])
    fixed = ['Müller', 'ÆSIR', 'Þórr', 'Straße', 'ĲSSEL', 'Œuvre', 'José', 'Jose\u0301', 'ΑΒΓ', 'ſ', 'ı', 'ĸ', 'ŉ', '']
    return fixed + [''.join(rng.choice(chars) for _ in range(rng.randint(0, 12))) for _ in range(600)]


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    root, oracle_path = os.path.abspath(sys.argv[1]), sys.argv[2]
    check_dbt.ROOT = root
    if not check_dbt.tools_present(root):
        print('1..0 # SKIP node or tools/npm/node_modules (nunjucks, node-sql-parser) missing: run scripts/bootstrap')
        return 0
    snippets = {'newest': '{{ hl_newest_first() }}', 'ref': "{{ hl_ref_id('x') }}", 'norm': "{{ hl_normalize('x') }}"}
    out = check_dbt.run_render(os.path.join(root, 'dbt', 'snowflake'), os.path.join(root, 'schemas', 'warehouse', 'snowflake'),
                               {}, {}, {}, [], snippets)
    sn = out['snippets']
    rng = random.Random(20261125)
    oracle = Oracle(oracle_path)
    db = connect()
    cases = []

    # ---- newest version -----------------------------------------------------------------------
    sets = version_sets(rng, 600)
    db.execute('CREATE TABLE v (tenant TEXT, id TEXT, version_id TEXT, last_updated TEXT, raw_id INTEGER)')
    raw_id, expected = 0, {}
    for i, rows in enumerate(sets):
        best = None
        for vid, lu in rows:
            raw_id += 1
            db.execute('INSERT INTO v VALUES (?, ?, ?, ?, ?)', ('t', 'r%d' % i, vid, lu, raw_id))
            # SQLite loader: a row replaces the current one only when strictly newer.
            if best is None or oracle.cmp((vid, lu), best[1]) > 0:
                best = (raw_id, (vid, lu))
        expected['r%d' % i] = best[0]

    def winners(order_sql):
        q = 'SELECT id, raw_id FROM (SELECT id, raw_id, %s AS rn FROM v) WHERE rn = 1' % order_sql
        return dict(db.execute(q).fetchall())

    got = winners(sn['newest'])
    bad = [(k, [r for r in db.execute('SELECT version_id, last_updated, raw_id FROM v WHERE id = ?', (k,))], expected[k], got.get(k))
           for k in sorted(expected) if got.get(k) != expected[k]]
    cases.append(('hl_newest_first() picks the version hl_wh_version_cmp picks (%d resources, %d rows)' % (len(sets), raw_id),
                  ['%s rows %s: C keeps raw_id %s, macro %s' % b for b in bad[:10]]))
    naive = winners('row_number() over (partition by tenant, id order by version_id desc, last_updated desc, raw_id asc)')
    cases.append(('the corpus tells a naive ORDER BY version_id DESC apart from the rule',
                  [] if any(naive.get(k) != expected[k] for k in expected) else ['the naive order agrees everywhere']))

    # ---- references ------------------------------------------------------------------------------
    bad = []
    refs = references(rng)
    for r in refs:
        want = oracle.text('ref', r)
        have = db.execute('WITH t(x) AS (SELECT ?) SELECT %s FROM t' % sn['ref'], (r,)).fetchone()[0]
        if have != want:
            bad.append('%r: C %r, macro %r' % (r, want, have))
    cases.append(('hl_ref_id() = hl_wh_reference_id on %d references' % len(refs), bad[:10]))

    # ---- normalize -------------------------------------------------------------------------------
    bad = []
    corpus = texts(rng)
    for s in corpus:
        want = oracle.text('norm', s)
        have = db.execute('WITH t(x) AS (SELECT ?) SELECT %s FROM t' % sn['norm'], (s,)).fetchone()[0]
        if have != want:
            bad.append('%r: C %r, macro %r' % (s, want, have))
    cases.append(('hl_normalize() = hl_wh_normalize on %d strings (Latin-1, Latin Extended-A, combining marks, others)'
                  % len(corpus), bad[:10]))
    # ---- HL_LO / HL_HI ----------------------------------------------------------------------------
    bodies = udf_bodies(root)
    udb = udf_connect()
    dates = fhir_dates(rng)
    bad = [] if set(bodies) >= {'HL_LO', 'HL_HI'} else ['008_api_functions.sql defines %s' % sorted(bodies)]
    for d in dates if not bad else []:
        ans = oracle.ask('range', d)
        want = (None, None) if ans == '~' else tuple(int(x) for x in ans.split())
        have = tuple(udb.execute('WITH t(S) AS (SELECT ?) SELECT %s FROM t' % bodies[n], (d,)).fetchone()[0]
                     for n in ('HL_LO', 'HL_HI'))
        if have != want:
            bad.append('%r: C [%s, %s), SQL [%s, %s)' % ((d,) + want + have))
    cases.append(('HL_LO / HL_HI = hl_api_date_range (the SQLite hl_lo / hl_hi) on %d FHIR dates and non-dates'
                  % len(dates), bad[:10]))
    oracle.close()

    print('1..%d' % len(cases))
    for i, (n, p) in enumerate(cases, 1):
        print('%s %d - %s' % ('not ok' if p else 'ok', i, n))
        for x in p:
            print('# ' + x.replace('\n', ' ')[:300])
    return 1 if any(p for _, p in cases) else 0


if __name__ == '__main__':
    sys.exit(main())
