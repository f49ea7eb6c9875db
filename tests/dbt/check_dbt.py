#!/usr/bin/env python3
"""Offline checks of the Snowflake dbt project and DDL (suite 'dbt').

  check_dbt.py check SRC_ROOT       every check on dbt/snowflake and
                                    schemas/warehouse/snowflake, TAP
  check_dbt.py mutations SRC_ROOT   the same checks on broken copies: each
                                    breakage must be reported, TAP

YAML is read with python3-yaml; the models are rendered (nunjucks, dbt-like
stubs) and parsed (node-sql-parser, Snowflake) by render.js next to this
file. What the checks prove and what they cannot: docs/snowflake-warehouse.md
("Offline checks").
"""
import copy
import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))

# Example values for the ${...} placeholders of the DDL (scripts/snowflake-apply
# takes them from the environment).
SUBSTITUTIONS = {
    'HL_SNOWFLAKE_S3_URL': 's3://healthlake-landing/landing/',
    'HL_SNOWFLAKE_S3_ROLE_ARN': 'arn:aws:iam::123456789012:role/healthlake-snowflake',
    'PREFIX': 'org=org-1/',
    'FORCE': 'FALSE',
}

OMOP_TABLES = ['person', 'observation_period', 'visit_occurrence', 'condition_occurrence',
               'measurement', 'drug_exposure', 'procedure_occurrence', 'death',
               'location', 'care_site', 'provider']

# Statements the SQL parser has no grammar for: their documented shape.
IDENT = r'[A-Za-z_][\w$]*(?:\.[A-Za-z_][\w$]*)*'
SHAPES = [
    ('CREATE WAREHOUSE', r'CREATE WAREHOUSE IF NOT EXISTS ' + IDENT + r'(\s+\w+\s*=\s*(\'[^\']*\'|\w+))+'),
    ('CREATE ROLE', r'CREATE ROLE IF NOT EXISTS ' + IDENT + r"(\s+COMMENT\s*=\s*'[^']*')?"),
    ('CREATE USER', r'CREATE USER IF NOT EXISTS ' + IDENT + r"(\s+\w+\s*=\s*('[^']*'|\w+))+"),
    ('CREATE STORAGE INTEGRATION', r'CREATE STORAGE INTEGRATION IF NOT EXISTS ' + IDENT
     + r"(\s+\w+\s*=\s*('[^']*'|\w+|\(\s*'[^']*'(\s*,\s*'[^']*')*\s*\)))+"),
    ('CREATE FILE FORMAT', r'CREATE FILE FORMAT IF NOT EXISTS ' + IDENT + r"(\s+\w+\s*=\s*('[^']*'|\w+))+"),
    ('CREATE STAGE', r'CREATE STAGE IF NOT EXISTS ' + IDENT + r"(\s+\w+\s*=\s*('[^']*'|" + IDENT + r'))+'),
    ('CREATE PIPE', r'CREATE PIPE IF NOT EXISTS ' + IDENT + r"(\s+\w+\s*=\s*('[^']*'|\w+))*\s+AS\s+COPY INTO\s.+"),
    ('CREATE OR REPLACE FUNCTION', r'CREATE OR REPLACE (SECURE )?FUNCTION ' + IDENT + r'\((\w+ \w+(\(\d+(,\d+)?\))?(\s*,\s*\w+ \w+(\(\d+(,\d+)?\))?)*)?\)'
     r'\s+RETURNS \w+(\(\d+(,\d+)?\))?(\s+NOT NULL)?(\s+LANGUAGE SQL)?(\s+(IMMUTABLE|VOLATILE))?(\s+COMMENT\s*=\s*\'[^\']*\')?\s+AS \$\$.+\$\$'),
    ('GRANT USAGE ON FUNCTION', r'GRANT USAGE ON FUNCTION ' + IDENT + r'\((\w+(\s*,\s*\w+)*)?\) TO ROLE ' + IDENT),
    ('GRANT ROLE', r'GRANT ROLE ' + IDENT + r' TO (ROLE|USER) ' + IDENT),
    ('GRANT', r'GRANT (\w+( \w+)*)(\s*,\s*\w+( \w+)*)* ON (FUTURE |ALL )?(WAREHOUSE|DATABASE|SCHEMA|TABLE|TABLES|VIEWS|INTEGRATION|FILE FORMAT|STAGE|PIPE)'
     r'( IN SCHEMA)? ' + IDENT + r' TO ROLE ' + IDENT + r'( COPY CURRENT GRANTS)?'),
    ('MERGE', r'MERGE INTO ' + IDENT + r' \w+\s+USING \(.+\) \w+\s+ON .+ WHEN NOT MATCHED THEN INSERT \([^)]*\) VALUES \([^)]*\)'),
    ('COPY INTO', r'COPY INTO ' + IDENT + r' \([^)]*\)\s+FROM \(.+\)(\s+\w+\s*=\s*(\(.+?\)|\'[^\']*\'|\w+))+'),
]


# Snowflake's reserved keywords (docs.snowflake.com/en/sql-reference/reserved-keywords):
# not usable as unquoted column names or aliases.
RESERVED = set('''ALL ALTER AND ANY AS BETWEEN BY CASE CAST CHECK COLUMN CONNECT CONSTRAINT CREATE CROSS
CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DELETE DISTINCT DROP ELSE EXISTS FALSE
FOLLOWING FOR FROM FULL GRANT GROUP HAVING ILIKE IN INCREMENT INNER INSERT INTERSECT INTO IS JOIN LATERAL
LEFT LIKE LOCALTIME LOCALTIMESTAMP MINUS NATURAL NOT NULL OF ON OR ORDER QUALIFY REGEXP REVOKE RIGHT RLIKE
ROW ROWS SAMPLE SELECT SET SOME START TABLE TABLESAMPLE THEN TO TRIGGER TRUE TRY_CAST UNION UNIQUE UPDATE
USING VALUES WHEN WHENEVER WHERE WITH'''.split())


class Results:
    def __init__(self):
        self.cases = []

    def add(self, name, problems):
        self.cases.append((name, list(problems)))

    def failed(self):
        return [(n, p) for n, p in self.cases if p]


def load_yaml(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def tools_present(root):
    nm = os.path.join(root, 'tools', 'npm', 'node_modules')
    return shutil.which('node') is not None and os.path.isdir(os.path.join(nm, 'node-sql-parser')) \
        and os.path.isdir(os.path.join(nm, 'nunjucks'))


def run_render(project, ddl, sources, folders, vars_, seeds, snippets=None):
    node_modules = os.path.join(ROOT, 'tools', 'npm', 'node_modules')
    env = dict(os.environ, NODE_PATH=node_modules)
    inp = json.dumps({'project': project, 'ddl': ddl, 'sources': sources, 'folders': folders,
                      'vars': vars_, 'seeds': seeds, 'substitutions': SUBSTITUTIONS, 'snippets': snippets or {}})
    p = subprocess.run(['node', os.path.join(HERE, 'render.js')], input=inp.encode(), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if p.returncode != 0:
        raise RuntimeError('render.js failed: ' + p.stderr.decode(errors='replace')[-2000:])
    return json.loads(p.stdout)


def sqlite_omop_columns(root):
    """Column names of the SQLite OMOP views and RAW tables, from the real migrations."""
    db = sqlite3.connect(':memory:')
    # Migration 009 calls the warehouse's hl_token_terms (registered by
    # libstream) on existing token rows; this database has none, so the
    # function is only needed to prepare the statement.
    db.create_function('hl_token_terms', 3, lambda tenant, type_, tokens: '')
    d = os.path.join(root, 'schemas', 'warehouse', 'sqlite')
    for f in sorted(os.listdir(d)):
        if f.endswith('.sql'):
            with open(os.path.join(d, f), encoding='utf-8') as fh:
                db.executescript(fh.read())
    cols = {}
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"):
        cols[name] = [r[1] for r in db.execute('PRAGMA table_info("%s")' % name)]
    rows = db.execute('SELECT domain, system, code, concept_id, display FROM omop_concept_map').fetchall()
    db.close()
    return cols, rows


def c_fold_tables(root):
    with open(os.path.join(root, 'libstream', 'src', 'warehouse.c'), encoding='utf-8') as f:
        src = f.read()
    c0 = re.search(r'fold_c0\[\] = "([^"]*)"', src).group(1)
    m = re.search(r'fold_100\[\] =\s*((?:"[^"]*"\s*)+);', src)
    f100 = ''.join(re.findall(r'"([^"]*)"', m.group(1)))
    single, multi = {}, {}
    rep = {'A': 'ae', 'T': 'th', 'S': 'ss', 'J': 'ij', 'O': 'oe'}
    for base, table in ((0xc0, c0), (0x100, f100)):
        for i, f in enumerate(table):
            if f == '*':
                continue
            if f in rep:
                multi[chr(base + i)] = rep[f]
            else:
                single[chr(base + i)] = f
    for a in range(26):
        single[chr(ord('A') + a)] = chr(ord('a') + a)
    return single, multi, {chr(c) for c in range(0x300, 0x370)}

def gateway_reads(root):
    """{table: columns} that hl-api-gateway's Snowflake store reads (fhirtypes.c, store_snowflake.c, sqlgen.c)."""
    gw = os.path.join(root, 'workers', 'api-gateway')
    with open(os.path.join(gw, 'fhirtypes.c'), encoding='utf-8') as f:
        ft = f.read()
    st = re.sub(r'"\s*\n\s*"', '', gateway_sql_sources(root))
    row = r'\{"[^"]+",\s*HL_SP_(\w+),\s*HL_SP_(\w+),\s*"([\w-]+)",\s*(?:NULL|"(\w+)"),\s*(?:NULL|"[^"]*"|\w+),\s*(?:NULL|"\w+"),\s*(true|false)'
    blocks = {m.group(1): m.group(2) for m in re.finditer(r'hl_api_param_def (\w+)\[\] = \{(.*?)\n\};', ft, re.S)}
    common = set(re.search(r'"SELECT (t\.\w+(?:, t\.\w+)*), "', st).group(1).replace('t.', '').split(', '))
    common |= {'tenant'}
    for kind, store, col, end, sortable in re.findall(row, blocks.get('hl_api_common_params', '')):
        common |= {col} | ({end} if end else set())
    if len(re.findall(row, ft)) != len(re.findall(r'\{"[^"]+",\s*HL_SP_', ft)):
        raise ValueError('fhirtypes.c: a search parameter row of an unknown shape')
    need = {}
    for table, pcol, params in re.findall(r'T\("\w+", "(\w+)", (?:NULL|"(\w+)"), (\w+)\)', ft):
        cols = set(common) | ({pcol} if pcol else set())
        for kind, store, col, end, sortable in re.findall(row, blocks.get(params, '')):
            if store == 'COLUMN' or sortable == 'true':
                cols |= {col} | ({end} if end else set())
                if kind == 'QUANTITY':
                    cols |= set(re.findall(r'" AND t\.(\w+) = "', st))
        need[table] = cols
    side = {'curated_token': r'" AND (system|code) = "', 'curated_string': r'"\(?(value) (?:LIKE|<|>=) "'}
    for t, rx in side.items():
        need[t] = {'tenant', 'type', 'id', 'param'} | set(re.findall(rx, st))
    for m in re.finditer(r'"SELECT ((?:\w+, )*\w+) FROM "\)[;,]?\s*(?:hl_sqlb_put\(&b, [^;]*;\s*)?hl_sqlb_table\(&?\w+, "(\w+)"\)', st):
        tail = st[m.end():m.end() + 400].split('run_stmt')[0]
        cols = set(m.group(1).split(', ')) | set(re.findall(r'" (?:WHERE|AND) (\w+) = "', tail))
        for o in re.findall(r'ORDER BY ((?:\w+, )*\w+)', tail):
            cols |= set(o.split(', '))
        need.setdefault(m.group(2), set()).update(cols)
    return need

def gateway_sql_sources(root):
    """The C sources of the Snowflake store's SQL: store_snowflake.c and the
    search SQL it shares with the SQLite store (sqlgen.c)."""
    gw = os.path.join(root, 'workers', 'api-gateway')
    text = ''
    for name in ('store_snowflake.c', 'sqlgen.c'):
        with open(os.path.join(gw, name), encoding='utf-8') as f:
            text += f.read() + '\n'
    return text

def gateway_udfs(root):
    """Names of the SQL functions the Snowflake store calls (HL_LO, HL_HI)."""
    return set(re.findall(r'"[^"\n]*\b(HL_[A-Z0-9_]+)\(', gateway_sql_sources(root)))



def check(root, project, ddl):
    res = Results()
    # ---- YAML -----------------------------------------------------------------
    yml_files = []
    for d, _, files in os.walk(project):
        yml_files += [os.path.join(d, f) for f in files if f.endswith(('.yml', '.yaml'))]
    docs, problems = {}, []
    for f in sorted(yml_files):
        try:
            docs[os.path.relpath(f, project)] = load_yaml(f)
        except yaml.YAMLError as e:
            problems.append('%s: %s' % (os.path.relpath(f, project), str(e).replace('\n', ' ')))
    res.add('YAML files parse (%d files)' % len(yml_files), problems)
    if problems:
        return res

    proj = docs.get('dbt_project.yml') or {}
    problems = []
    for k in ('name', 'profile', 'model-paths', 'macro-paths', 'seed-paths'):
        if k not in proj:
            problems.append('dbt_project.yml: no %s' % k)
    if proj.get('config-version') != 2:
        problems.append('dbt_project.yml: config-version is not 2')
    prof = docs.get('profiles.example.yml') or {}
    out = ((prof.get(proj.get('profile')) or {}).get('outputs') or {})
    if not out:
        problems.append('profiles.example.yml: no outputs for profile %r' % proj.get('profile'))
    for name, o in out.items():
        if o.get('type') != 'snowflake' or o.get('authenticator') != 'snowflake_jwt':
            problems.append('profile %s: not snowflake key-pair (authenticator snowflake_jwt)' % name)
        if 'password' in o:
            problems.append('profile %s: has a password' % name)
        for k, var in (('account', 'SNOWFLAKE_ACCOUNT'), ('user', 'SNOWFLAKE_USER'),
                       ('private_key_path', 'SNOWFLAKE_PRIVATE_KEY_PATH')):
            if "env_var('%s'" % var not in str(o.get(k, '')):
                problems.append('profile %s: %s not from env_var(%s)' % (name, k, var))
    res.add('dbt_project.yml and profiles.example.yml (key-pair auth from environment)', problems)

    # Schema entries, sources, seeds.
    entries, sources, seeds_yml = {}, {}, {}
    problems = []
    for f, d in docs.items():
        if not isinstance(d, dict) or f in ('dbt_project.yml', 'profiles.example.yml'):
            continue
        for m in d.get('models') or []:
            if m['name'] in entries:
                problems.append('model %s documented twice' % m['name'])
            entries[m['name']] = m
        for s in d.get('seeds') or []:
            seeds_yml[s['name']] = s
        for s in d.get('sources') or []:
            for t in s.get('tables') or []:
                sources['%s.%s' % (s['name'], t['name'])] = (s, t)
    folders = {}
    for folder, cfg in ((proj.get('models') or {}).get(proj['name']) or {}).items():
        if isinstance(cfg, dict) and '+schema' in cfg:
            folders[folder] = cfg['+schema']
    folders['seeds'] = ((proj.get('seeds') or {}).get(proj['name']) or {}).get('+schema')
    seed_files = sorted(f[:-4] for f in os.listdir(os.path.join(project, 'seeds')) if f.endswith('.csv'))
    src_rel = {k: '%s.%s.%s' % (s.get('database', 'HEALTHLAKE'), s.get('schema', s['name']), t.get('identifier', t['name']))
               for k, (s, t) in sources.items()}

    out = run_render(project, ddl, src_rel, folders, proj.get('vars') or {}, seed_files)
    models = out['models']

    missing = sorted(set(models) - set(entries))
    extra = sorted(set(entries) - set(models))
    problems += ['model %s has no schema entry' % m for m in missing]
    problems += ['schema entry %s has no model file' % m for m in extra]
    problems += ['seed %s has no schema entry' % s for s in sorted(set(seed_files) - set(seeds_yml))]
    problems += ['seed entry %s has no CSV' % s for s in sorted(set(seeds_yml) - set(seed_files))]
    res.add('every model and seed has a schema entry and every entry a file (%d models)' % len(models), problems)

    # ---- Render and parse, per model -------------------------------------------
    for name in sorted(models):
        m = models[name]
        p = []
        if m.get('render_error'):
            p.append('render: ' + m['render_error'])
        else:
            if not m.get('parse_ok'):
                p.append('parse: ' + str(m.get('parse_error')))
            elif m.get('statement_type') != 'select':
                p.append('not a SELECT')
            if m.get('parse_incremental_ok') is False:
                p.append('parse (is_incremental): ' + str(m.get('parse_incremental_error')))
        note = ''
        if m.get('rewrites'):
            note = ' [%d qualified VARIANT paths as GET_PATH]' % len(m['rewrites'])
        res.add('%s renders and parses as Snowflake SQL%s%s' % (
            name, ' (full and incremental)' if 'parse_incremental_ok' in m else '', note), p)

    # ---- Columns: schema entry == SELECT list ----------------------------------
    problems = []
    for name in sorted(set(models) & set(entries)):
        m, e = models[name], entries[name]
        if not m.get('columns'):
            problems.append('%s: output columns unknown (not parsed)' % name)
            continue
        cols = [c.lower() if c else c for c in m['columns']]
        if None in cols or '*' in cols:
            problems.append('%s: a SELECT item without a name (or *): %s' % (name, cols))
        doc = [c['name'].lower() for c in e.get('columns') or []]
        for c in cols:
            if c not in doc:
                problems.append('%s: column %s in the SELECT is not documented' % (name, c))
        for c in doc:
            if c not in cols:
                problems.append('%s: documented column %s is not in the SELECT' % (name, c))
        if set(cols) == set(doc) and cols != doc:
            problems.append('%s: documented order differs from the SELECT' % name)
        if m.get('columns_incremental') and [c.lower() for c in m['columns_incremental']] != cols:
            problems.append('%s: incremental SELECT has other columns' % name)
    res.add('documented columns equal each model\'s SELECT columns (names and order)', problems)

    # ---- Docs ------------------------------------------------------------------
    problems = []
    for name, e in sorted(entries.items()):
        if not (e.get('description') or '').strip():
            problems.append('%s: no description' % name)
        for c in e.get('columns') or []:
            if not (c.get('description') or '').strip():
                problems.append('%s.%s: no description' % (name, c['name']))
    res.add('every model and column has a description', problems)

    # ---- Contracts == curated_contract.json ------------------------------------
    with open(os.path.join(root, 'schemas', 'warehouse', 'curated_contract.json'), encoding='utf-8') as f:
        contract = json.load(f)
    types = {k: v['snowflake'] for k, v in contract['types'].items()}
    want = {}
    for t in contract['tables']:
        want[t['table']] = (contract['common_columns'] + t['columns'], contract['primary_key'], True)
    for t in contract['side_tables']:
        want[t['table']] = (t['columns'], t['primary_key'], False)
    problems = []
    enforced = {n for n, e in entries.items() if ((e.get('config') or {}).get('contract') or {}).get('enforced')
                or ((models.get(n) or {}).get('config') or {}).get('contract', {}).get('enforced')}
    for n in sorted(set(want) - enforced):
        problems.append('contract table %s: no dbt model with an enforced contract' % n)
    for n in sorted(enforced - set(want)):
        problems.append('model %s: enforced contract but not in curated_contract.json' % n)
    for n in sorted(set(want) & enforced):
        cols, pk, incremental = want[n]
        e, m = entries[n], models.get(n) or {}
        cfg_m = m.get('config') or {}
        if not (cfg_m.get('contract') or {}).get('enforced') or not ((e.get('config') or {}).get('contract') or {}).get('enforced'):
            problems.append('%s: contract not enforced in both config() and YAML' % n)
        dcols = e.get('columns') or []
        if [c['name'] for c in dcols] != [c['name'] for c in cols]:
            problems.append('%s: columns %s != contract %s' % (n, [c['name'] for c in dcols], [c['name'] for c in cols]))
        for dc, cc in zip(dcols, cols):
            if str(dc.get('data_type', '')).upper().replace(' ', '') != types[cc['type']].upper().replace(' ', ''):
                problems.append('%s.%s: data_type %s, contract %s (%s)' % (n, cc['name'], dc.get('data_type'), types[cc['type']], cc['type']))
            nn = any((k.get('type') == 'not_null') for k in dc.get('constraints') or [])
            if nn != (not cc['nullable']):
                problems.append('%s.%s: not_null constraint %s, contract nullable %s' % (n, cc['name'], nn, cc['nullable']))
        pks = [k.get('columns') for k in e.get('constraints') or [] if k.get('type') == 'primary_key']
        if pks != [pk]:
            problems.append('%s: primary_key constraint %s, contract %s' % (n, pks, pk))
        mat = cfg_m.get('materialized') or ('incremental' if m.get('folder') == 'curated' else None)
        if incremental:
            if mat != 'incremental':
                problems.append('%s: not incremental' % n)
            if sorted(cfg_m.get('unique_key') or []) != sorted(pk):
                problems.append('%s: unique_key %s != primary key %s' % (n, cfg_m.get('unique_key'), pk))
            if cfg_m.get('on_schema_change') not in ('fail', 'append_new_columns'):
                problems.append('%s: on_schema_change must be fail or append_new_columns with a contract' % n)
    res.add('enforced contracts equal schemas/warehouse/curated_contract.json (names, order, types, NOT NULL, keys)', problems)

    # ---- Staging: one per resource type, deduplicated with QUALIFY --------------
    problems = []
    for t in contract['tables']:
        stg = 'stg_fhir__' + t['table'][len('curated_'):]
        m = models.get(stg)
        if not m or m.get('render_error'):
            problems.append('%s: no staging model %s' % (t['resourceType'], stg))
            continue
        sql = re.sub(r'\s+', ' ', m.get('sql', '').lower())
        if not m.get('has_qualify'):
            problems.append('%s: no QUALIFY clause' % stg)
        if not re.search(r'qualify row_number\(\) over \( partition by tenant, id order by .*raw_id asc \) = 1', sql):
            problems.append('%s: QUALIFY is not the newest-version rule (hl_newest_first() = 1)' % stg)
        if "where type = '%s'" % t['resourceType'].lower() not in sql:
            problems.append('%s: does not select type %s' % (stg, t['resourceType']))
        if 'curated_%s' % stg[len('stg_fhir__'):] not in models or stg not in (models['curated_%s' % stg[len('stg_fhir__'):]].get('refs') or []):
            problems.append('%s: the curated model does not read it' % stg)
    res.add('a staging model per resource type, newest version per (tenant, id) by QUALIFY', problems)

    # ---- Tests ------------------------------------------------------------------
    kinds, problems = set(), []

    def test_names(tests):
        for t in tests or []:
            yield (t if isinstance(t, str) else next(iter(t))), (None if isinstance(t, str) else next(iter(t.values())))

    all_nodes = list(entries.items()) + list(seeds_yml.items())
    for name, e in all_nodes:
        n_tests = 0
        for k, arg in test_names(e.get('data_tests') or e.get('tests')):
            kinds.add(k)
            n_tests += 1
            if k == 'unique_combination':
                doc = {c['name'] for c in e.get('columns') or []}
                for c in arg.get('columns') or []:
                    if c not in doc:
                        problems.append('%s: unique_combination on unknown column %s' % (name, c))
        for c in e.get('columns') or []:
            for k, arg in test_names(c.get('data_tests') or c.get('tests')):
                kinds.add(k)
                n_tests += 1
                if k == 'relationships':
                    mm = re.match(r"ref\('(\w+)'\)", arg.get('to', ''))
                    if not mm or mm.group(1) not in models:
                        problems.append('%s.%s: relationships to unknown %s' % (name, c['name'], arg.get('to')))
                    elif arg.get('field') not in [x['name'] for x in (entries.get(mm.group(1)) or {}).get('columns') or []]:
                        problems.append('%s.%s: relationships field %s not in %s' % (name, c['name'], arg.get('field'), mm.group(1)))
                if k == 'accepted_values' and not arg.get('values'):
                    problems.append('%s.%s: accepted_values without values' % (name, c['name']))
        if n_tests == 0:
            problems.append('%s: no data tests' % name)
    for k in ('unique', 'not_null', 'relationships', 'accepted_values', 'unique_combination'):
        if k not in kinds:
            problems.append('no %s test anywhere' % k)
    with open(os.path.join(project, 'macros', 'tests', 'unique_combination.sql'), encoding='utf-8') as f:
        if '{% test unique_combination(' not in f.read():
            problems.append('generic test unique_combination is not defined')
    res.add('data tests: every model and seed has some; unique, not_null, relationships, accepted_values used and well-formed', problems)

    # ---- Sources ------------------------------------------------------------------
    problems = []
    s, t = sources.get('raw.fhir_resources', ({}, {}))
    fresh = t.get('freshness', s.get('freshness')) or {}
    if not (t.get('loaded_at_field') or s.get('loaded_at_field')) or 'warn_after' not in fresh or 'error_after' not in fresh:
        problems.append('raw.fhir_resources: no freshness (loaded_at_field, warn_after, error_after)')
    res.add('sources over RAW with freshness', problems)

    # ---- OMOP marts agree with the SQLite views -----------------------------------
    sqlite_cols, concept_rows = sqlite_omop_columns(root)
    problems = []
    for t in OMOP_TABLES:
        n = 'omop_' + t
        m = models.get(n)
        if not m:
            problems.append('no model %s' % n)
            continue
        if (m.get('config') or {}).get('alias') != t:
            problems.append('%s: alias is not %s' % (n, t))
        got = [c.lower() for c in m.get('columns') or [] if c]
        if got != sqlite_cols.get(n):
            problems.append('%s: columns %s != SQLite view %s' % (n, got, sqlite_cols.get(n)))
    for v in sorted(x for x in sqlite_cols if x.startswith('omop_') and x != 'omop_concept_map'):
        if v[len('omop_'):] not in OMOP_TABLES:
            problems.append('SQLite view %s has no dbt mart' % v)
    res.add('OMOP CDM marts (%d: %s) have the SQLite views\' columns in order' % (len(OMOP_TABLES), ', '.join(OMOP_TABLES)), problems)

    problems = []
    with open(os.path.join(project, 'seeds', 'omop_concept_map.csv'), encoding='utf-8') as f:
        rows = [(r['domain'], r['system'], r['code'], int(r['concept_id']), r['display']) for r in csv.DictReader(f)]
    if sorted(rows) != sorted(concept_rows):
        problems.append('seed omop_concept_map differs from 004_omop_concepts.sql: %d vs %d rows, %s'
                        % (len(rows), len(concept_rows), sorted(set(rows) ^ set(concept_rows))[:3]))
    res.add('seed omop_concept_map equals the SQLite concept map', problems)

    # ---- Text transforms agree with libstream ---------------------------------------
    problems = []
    with open(os.path.join(project, 'macros', 'hl_text.sql'), encoding='utf-8') as f:
        text = f.read()
    mm = re.search(r"\{% macro hl_normalize\(expr\) -%\}\s*translate\(([^\n]*?)\{\{ expr \}\}([^\n]*),\n\s*'([^']*)',\n\s*'([^']*)'\)", text)
    if not mm:
        problems.append('hl_normalize: translate(replace(...)) form not found')
    else:
        single, multi, marks = c_fold_tables(root)
        reps = dict(re.findall(r", '(.)', '(\w\w)'\)", mm.group(2)))
        src, dst = mm.group(3), mm.group(4)
        if reps != multi:
            problems.append('hl_normalize: ligatures %s != warehouse.c %s' % (reps, multi))
        got_single = dict(zip(src[:len(dst)], dst))
        if got_single != single:
            diff = sorted(set(got_single.items()) ^ set(single.items()))[:5]
            problems.append('hl_normalize: single folds differ from warehouse.c: %s' % diff)
        if set(src[len(dst):]) != marks:
            problems.append('hl_normalize: dropped characters are not exactly U+0300..U+036F')
    res.add('hl_normalize folds exactly as hl_wh_normalize (warehouse.c tables)', problems)

    # ---- API views: secure, tenant-scoped, only what the gateway reads -------------------
    problems = []
    api_cfg = ((proj.get('models') or {}).get(proj['name']) or {}).get('api') or {}
    if api_cfg.get('+secure') is not True or api_cfg.get('+materialized') != 'view':
        problems.append('api folder: not +secure: true views')
    api_models = [n for n, m in models.items() if m.get('folder') == 'api']
    for n in sorted(api_models):
        m = models[n]
        sql = re.sub(r'\s+', ' ', m.get('sql', '').lower())
        if 'is_role_in_session(a.role_name)' not in sql or 'healthlake.governance.tenant_access' not in sql:
            problems.append('%s: no tenant filter (hl_tenant_filter)' % n)
        for r in m.get('refs') or []:
            if models.get(r, {}).get('folder') != 'curated':
                problems.append('%s: reads %s, not a curated model' % (n, r))
    needed = set(want) | {'jobs', 'load_reject'}
    have = {(models[n].get('config') or {}).get('alias') for n in api_models}
    for n in sorted(needed - have):
        problems.append('no API view %s' % n)
    res.add('API views are secure, tenant-scoped and cover every table hl-api-gateway reads', problems)

    # Every column the gateway's Snowflake store reads is in the API view of that name.
    problems = []
    try:
        reads = gateway_reads(root)
    except (OSError, ValueError, AttributeError) as e:
        reads = {}
        problems.append('cannot read the gateway sources: %s' % e)
    by_alias = {(models[n].get('config') or {}).get('alias'): n for n in api_models}
    for t, cols in sorted(reads.items()):
        n = by_alias.get(t)
        if n is None:
            problems.append('no API view %s for the gateway' % t)
            continue
        miss = sorted(cols - set(c.lower() for c in models[n].get('columns') or []))
        if miss:
            problems.append('%s (API.%s) lacks columns the gateway reads: %s' % (n, t.upper(), miss))
    res.add('API views hold every column hl-api-gateway\'s Snowflake store reads (%d tables)' % len(reads), problems)

    # ---- Reserved words ---------------------------------------------------------------
    problems = []
    for name in sorted(models):
        for c in models[name].get('columns') or []:
            if c and c.upper() in RESERVED:
                problems.append('%s: column %s is a reserved word' % (name, c))
        for mm in re.finditer(r'(?<=[\w"\]]):(?!:)((?:\w+|"[^"]*")(?:\.(?:\w+|"[^"]*")|\[\d+\])*)', models[name].get('sql') or ''):
            for part in re.findall(r'(?<!")\b([A-Za-z_]\w*)\b(?!")', mm.group(1)):
                if part.upper() in RESERVED:
                    problems.append('%s: VARIANT path %s has the reserved word %s unquoted' % (name, mm.group(0), part))
    for st in out['ddl']:
        if re.match(r'\s*CREATE TABLE', st['text'], re.I):
            for mm in re.finditer(r'^\s+([A-Za-z_]\w*)\s+(NUMBER|VARCHAR|VARIANT|TIMESTAMP_\w+|BOOLEAN|FLOAT)', st['text'], re.M):
                if mm.group(1).upper() in RESERVED:
                    problems.append('%s: column %s is a reserved word (quote it)' % (st['file'], mm.group(1)))
    res.add('no Snowflake reserved word as an unquoted column name or VARIANT path element', problems)

    # ---- DDL ----------------------------------------------------------------------
    ddl_checks(res, out['ddl'], sqlite_cols, gateway_udfs(root))
    return res


def ddl_checks(res, stmts, sqlite_cols, udfs=()):
    problems, parsed, shaped = [], 0, 0
    files = sorted({s['file'] for s in stmts})
    numbered = [f for f in files if re.match(r'^\d{3}_\w+\.sql$', f)]
    if [f[:3] for f in numbered] != ['%03d' % (i + 1) for i in range(len(numbered))]:
        problems.append('DDL files are not numbered 001.. without gaps: %s' % numbered)
    for s in stmts:
        where = '%s#%d' % (s['file'], s['index'] + 1)
        if s.get('unterminated'):
            problems.append('%s: unterminated quote' % s['file'])
        if s['file'] in numbered and not s.get('role'):
            problems.append('%s: no "-- role:" header' % s['file'])
        flat = re.sub(r'\$\{(\w+)\}', lambda v: SUBSTITUTIONS.get(v.group(1), v.group(0)), re.sub(r'\s+', ' ', s['text']).strip())
        up = flat.upper()
        if s['parsed'] != 'no':
            if s.get('ok'):
                parsed += 1
            else:
                problems.append('%s: does not parse (%s): %s' % (where, s['parsed'], s.get('error')))
        if up.startswith('CREATE OR REPLACE TABLE') or up.startswith('DROP ') or ' TRUNCATE ' in ' ' + up:
            problems.append('%s: destroys data on a re-run' % where)
        if up.startswith('CREATE') and 'IF NOT EXISTS' not in up and not up.startswith('CREATE OR REPLACE'):
            problems.append('%s: CREATE without IF NOT EXISTS / OR REPLACE is not re-runnable' % where)
        if s['parsed'] != 'statement':
            ok = False
            for kind, rx in SHAPES:
                if up.startswith(kind) or (kind == 'GRANT' and up.startswith('GRANT ')):
                    if re.fullmatch(rx, flat, re.I | re.S):
                        ok = True
                        shaped += 1
                        break
            if not ok:
                problems.append('%s: neither parsed nor of a known documented shape: %s' % (where, flat[:100]))
    res.add('DDL re-runnable and valid: %d statements parsed (or their SELECT), %d of the others match documented shapes'
            % (parsed, shaped), problems)

    # Objects exist before they are used, roles are the three plus system ones.
    problems = []
    created = {'ROLE': {'SYSADMIN', 'SECURITYADMIN', 'USERADMIN', 'ACCOUNTADMIN', 'PUBLIC'}}
    for s in stmts:
        flat = re.sub(r'\s+', ' ', s['text']).strip()
        where = '%s#%d' % (s['file'], s['index'] + 1)
        mm = re.match(r'CREATE (?:OR REPLACE )?(?:SECURE )?(DATABASE|SCHEMA|TABLE|WAREHOUSE|ROLE|USER|STORAGE INTEGRATION|FILE FORMAT|STAGE|PIPE|VIEW|FUNCTION) (?:IF NOT EXISTS )?([\w.]+)', flat, re.I)
        if mm:
            kind = mm.group(1).upper().replace('STORAGE ', '')
            created.setdefault(kind, set()).add(mm.group(2).upper())
            for ref in re.findall(r'(?:DEFAULT_ROLE|DEFAULT_WAREHOUSE|STORAGE_INTEGRATION)\s*=\s*([\w.]+)', flat, re.I):
                if not any(ref.upper() in v for v in created.values()):
                    problems.append('%s: uses %s before it is created' % (where, ref))
            continue
        mm = re.match(r'GRANT (.+?) ON (FUTURE |ALL )?(WAREHOUSE|DATABASE|SCHEMA|TABLE|TABLES|VIEWS|INTEGRATION|FILE FORMAT|STAGE|PIPE|FUNCTION)( IN SCHEMA)? ([\w.]+)(?:\([^)]*\))? TO ROLE (\w+)', flat, re.I)
        if mm:
            kind = mm.group(3).upper()
            kind = 'SCHEMA' if mm.group(4) else kind
            obj = mm.group(5).upper()
            if obj not in created.get(kind, set()):
                problems.append('%s: grant on %s %s that no earlier statement creates' % (where, kind, obj))
            if mm.group(6).upper() not in created['ROLE']:
                problems.append('%s: grant to unknown role %s' % (where, mm.group(6)))
            continue
        mm = re.match(r'GRANT ROLE (\w+) TO (ROLE|USER) (\w+)', flat, re.I)
        if mm:
            if mm.group(1).upper() not in created['ROLE']:
                problems.append('%s: unknown role %s' % (where, mm.group(1)))
            if mm.group(3).upper() not in created.get(mm.group(2).upper(), set()):
                problems.append('%s: unknown %s %s' % (where, mm.group(2).lower(), mm.group(3)))
    res.add('DDL creates every object before granting or using it', problems)

    # Least privilege: who may write what.
    problems = []
    grants = [re.sub(r'\s+', ' ', s['text']).upper() for s in stmts if s['text'].upper().startswith('GRANT ')]
    for g in grants:
        mm = re.match(r'GRANT (.+?) ON (?:FUTURE |ALL )?(\w+(?: FORMAT)?)(?: IN SCHEMA)? ([\w.]+)(?:\([^)]*\))? TO ROLE (\w+)', g)
        if not mm:
            continue
        privs, kind, obj, role = [x.strip() for x in mm.group(1).split(',')], mm.group(2), mm.group(3), mm.group(4)
        writes = {'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'OWNERSHIP', 'ALL', 'ALL PRIVILEGES'}
        if role == 'HL_API_READER':
            if obj.startswith('HEALTHLAKE.') and obj not in ('HEALTHLAKE', 'HEALTHLAKE.API') and not obj.startswith('HEALTHLAKE.API.'):
                problems.append('HL_API_READER gets %s on %s (only the API schema is allowed)' % (privs, obj))
            if set(privs) & writes:
                problems.append('HL_API_READER may write: %s' % g)
        if role == 'HL_LOADER' and set(privs) & writes and not obj.startswith('HEALTHLAKE.RAW.'):
            problems.append('HL_LOADER writes outside RAW: %s' % g)
        if role == 'HL_LOADER' and obj.startswith('HEALTHLAKE.') and obj not in ('HEALTHLAKE', 'HEALTHLAKE.RAW') \
                and not obj.startswith('HEALTHLAKE.RAW.'):
            problems.append('HL_LOADER gets access outside RAW: %s' % g)
        if role == 'HL_TRANSFORMER' and obj.startswith('HEALTHLAKE.RAW') and set(privs) & writes:
            problems.append('HL_TRANSFORMER may write RAW: %s' % g)
    for schema in ('STAGING', 'CURATED', 'OMOP', 'API'):
        if not any(re.match(r'GRANT OWNERSHIP ON SCHEMA HEALTHLAKE\.%s TO ROLE HL_TRANSFORMER' % schema, g) for g in grants):
            problems.append('HL_TRANSFORMER does not own %s' % schema)
    res.add('roles: LOADER writes RAW only, TRANSFORMER reads RAW and owns the dbt schemas, API_READER reads API only', problems)

    # The SQL functions the gateway calls: in API (the schema it reads), owned
    # by HL_TRANSFORMER (the owner of API), usable by HL_API_READER.
    problems = []
    funcs = {}
    for s in stmts:
        flat = re.sub(r'\s+', ' ', s['text']).strip().upper()
        mm = re.match(r'CREATE (?:OR REPLACE )?(?:SECURE )?FUNCTION ([\w.]+)', flat)
        if mm:
            funcs[mm.group(1)] = s
            if (s.get('role') or '').upper() != 'HL_TRANSFORMER':
                problems.append('%s: function %s created as %s, not HL_TRANSFORMER' % (s['file'], mm.group(1), s.get('role')))
    for name in sorted(udfs):
        fq = 'HEALTHLAKE.API.' + name
        if fq not in funcs:
            problems.append('no function %s (hl-api-gateway calls %s)' % (fq, name))
        if not any(re.match(r'GRANT USAGE ON FUNCTION %s\([^)]*\) TO ROLE HL_API_READER$' % re.escape(fq), g.strip()) for g in grants):
            problems.append('HL_API_READER has no USAGE on %s' % fq)
    res.add('SQL functions hl-api-gateway calls (%s) are in API, owned by HL_TRANSFORMER, usable by HL_API_READER'
            % ', '.join(sorted(udfs)), problems)

    # RAW tables carry the SQLite RAW and job columns.
    problems = []
    tables = {}
    for s in stmts:
        mm = re.match(r'CREATE TABLE IF NOT EXISTS ([\w.]+)', re.sub(r'\s+', ' ', s['text']), re.I)
        if mm and s.get('table_columns'):
            tables[mm.group(1).upper()] = [c.lower() for c in s['table_columns']]
    for sf, sq in (('HEALTHLAKE.RAW.FHIR_RESOURCES', 'raw'), ('HEALTHLAKE.RAW.JOBS', 'jobs'),
                   ('HEALTHLAKE.RAW.LOAD_REJECT', 'load_reject'), ('HEALTHLAKE.RAW.LOAD_BATCH', 'load_batch'),
                   ('HEALTHLAKE.RAW.JOB_EVENT_SEEN', 'job_event_seen')):
        got = tables.get(sf)
        if got is None:
            problems.append('no table %s' % sf)
            continue
        miss = [c for c in sqlite_cols.get(sq, []) if c not in got]
        if miss:
            problems.append('%s lacks the SQLite %s columns %s' % (sf, sq, miss))
    raw = tables.get('HEALTHLAKE.RAW.FHIR_RESOURCES') or []
    for s in stmts:
        flat = re.sub(r'\s+', ' ', s['text'])
        mm = re.search(r'COPY INTO HEALTHLAKE\.RAW\.FHIR_RESOURCES \(([^)]*)\)', flat, re.I)
        if not mm:
            continue
        cols = [c.strip().lower() for c in mm.group(1).split(',')]
        for c in cols:
            if c not in raw:
                problems.append('%s: COPY column %s not in RAW.FHIR_RESOURCES' % (s['file'], c))
        if s.get('select_columns') is not None and len(s['select_columns']) != len(cols):
            problems.append('%s: COPY lists %d columns but its SELECT gives %d' % (s['file'], len(cols), len(s['select_columns'])))
        for c in ('tenant', 'type', 'id', 'resource', 'ingested_at'):
            if c not in cols:
                problems.append('%s: COPY does not fill NOT NULL column %s' % (s['file'], c))
    res.add('RAW tables hold the SQLite RAW/job columns; pipe and backfill COPY fill RAW column for column', problems)


def tap(res, skip_note=None):
    print('1..%d' % len(res.cases))
    for i, (name, problems) in enumerate(res.cases, 1):
        print('%s %d - %s' % ('not ok' if problems else 'ok', i, name))
        for p in problems[:40]:
            print('# ' + p.replace('\n', ' ')[:400])
    return 1 if res.failed() else 0


# ---- Broken copies -----------------------------------------------------------------------
def edit(path, old, new, count=1):
    with open(path, encoding='utf-8') as f:
        s = f.read()
    if old not in s:
        raise RuntimeError('mutation does not apply: %r not in %s' % (old[:60], path))
    with open(path, 'w', encoding='utf-8') as f:
        f.write(s.replace(old, new, count))


def edit_yaml(path, fn):
    d = load_yaml(path)
    fn(d)
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(d, f, sort_keys=False)


def model_entry(d, name):
    return next(m for m in d['models'] if m['name'] == name)


MUTATIONS = [
    ('a curated model loses a contract column from its SELECT', 'documented columns equal',
     r'curated_observation: documented column value_unit is not in the SELECT',
     lambda p, d: edit(os.path.join(p, 'models/curated/curated_observation.sql'), ',\n    s.value_unit', '')),
    ('the YAML contract of a column has another type', 'enforced contracts equal',
     r'curated_patient\.birthdate: data_type DATE, contract VARCHAR',
     lambda p, d: edit_yaml(os.path.join(p, 'models/curated/_curated.yml'),
                            lambda y: next(c for c in model_entry(y, 'curated_patient')['columns'] if c['name'] == 'birthdate').update(data_type='DATE'))),
    ('a contract column is dropped from model and YAML alike', 'enforced contracts equal',
     r"curated_condition: columns .* != contract",
     lambda p, d: (edit(os.path.join(p, 'models/curated/curated_condition.sql'), ',\n    s.recorded_date', ''),
                   edit_yaml(os.path.join(p, 'models/curated/_curated.yml'),
                             lambda y: model_entry(y, 'curated_condition').update(
                                 columns=[c for c in model_entry(y, 'curated_condition')['columns'] if c['name'] != 'recorded_date'])))),
    ('a curated model and its YAML gain a column the contract lacks', 'enforced contracts equal',
     r"curated_practitioner: columns .*'org_name'.* != contract",
     lambda p, d: (edit(os.path.join(p, 'models/curated/curated_practitioner.sql'), '    s.given\n', '    s.given,\n    s.resource:name[0].text::varchar as org_name\n'),
                   edit_yaml(os.path.join(p, 'models/curated/_curated.yml'),
                             lambda y: model_entry(y, 'curated_practitioner')['columns'].append(
                                 {'name': 'org_name', 'description': 'x', 'data_type': 'VARCHAR'})))),
    ('a model gains an undocumented column', 'documented columns equal',
     r'omop_death: column extra_col in the SELECT is not documented',
     lambda p, d: edit(os.path.join(p, 'models/omop/omop_death.sql'), '  p.tenant,\n', '  p.tenant,\n  1 as extra_col,\n')),
    ('a SQL syntax error', 'omop_measurement renders and parses', r'parse:',
     lambda p, d: edit(os.path.join(p, 'models/omop/omop_measurement.sql'), '  part.tenant,\n', '  part.tenant,,\n')),
    ('a ref() to a model that does not exist', 'omop_death renders and parses', r"ref\('curated_patients'\): no such model",
     lambda p, d: edit(os.path.join(p, 'models/omop/omop_death.sql'), "ref('curated_patient')", "ref('curated_patients')")),
    ('a model without a schema entry', 'every model and seed has a schema entry',
     r'model stg_fhir__encounter has no schema entry',
     lambda p, d: edit_yaml(os.path.join(p, 'models/staging/_staging.yml'),
                            lambda y: y.update(models=[m for m in y['models'] if m['name'] != 'stg_fhir__encounter']))),
    ('a staging model without QUALIFY', 'a staging model per resource type', r'stg_fhir__procedure: no QUALIFY clause',
     lambda p, d: edit(os.path.join(p, 'models/staging/stg_fhir__procedure.sql'), 'qualify {{ hl_newest_first() }} = 1', '')),
    ('an API view without the tenant filter', 'API views are secure', r'api_curated_token: no tenant filter',
     lambda p, d: edit(os.path.join(p, 'models/api/api_curated_token.sql'), "where {{ hl_tenant_filter('x.tenant') }}", '')),
    ('invalid YAML', 'YAML files parse', r'_omop\.yml',
     lambda p, d: edit(os.path.join(p, 'models/omop/_omop.yml'), 'models:\n', 'models:\n  - [unclosed\n')),
    ('a DDL CREATE that is not re-runnable', 'DDL re-runnable', r'CREATE without IF NOT EXISTS',
     lambda p, d: edit(os.path.join(d, '002_raw.sql'), 'CREATE TABLE IF NOT EXISTS HEALTHLAKE.RAW.JOBS', 'CREATE TABLE HEALTHLAKE.RAW.JOBS')),
    ('the API reader granted SELECT on RAW', 'roles:', r'HL_API_READER gets',
     lambda p, d: edit(os.path.join(d, '004_grants.sql'), 'GRANT USAGE ON WAREHOUSE HL_API_WH',
                       'GRANT SELECT ON TABLE HEALTHLAKE.RAW.JOBS TO ROLE HL_API_READER;\nGRANT USAGE ON WAREHOUSE HL_API_WH')),
    ('a grant to a role no file creates', 'DDL creates every object', r'grant to unknown role HL_NOBODY',
     lambda p, d: edit(os.path.join(d, '004_grants.sql'), 'TO ROLE HL_API_READER;', 'TO ROLE HL_NOBODY;')),
    ('a DDL statement that does not parse', 'DDL re-runnable', r'002_raw\.sql#1: does not parse',
     lambda p, d: edit(os.path.join(d, '002_raw.sql'), 'tenant          VARCHAR', 'tenant          VARCHAR VARCHAR')),
    ('the streaming pipe lists a column RAW does not have', 'RAW tables hold', r'COPY column batch_no not in RAW',
     lambda p, d: edit(os.path.join(d, '007_streaming_pipe.sql'), 'ingested_at, batch_id, dedup_key)', 'ingested_at, batch_no, dedup_key)')),
    ('a reserved word as a column name', 'no Snowflake reserved word', r'LOAD_BATCH|column rows is a reserved',
     lambda p, d: edit(os.path.join(d, '002_raw.sql'), '"ROWS"       NUMBER', 'rows         NUMBER')),
    ('a reserved word unquoted in a VARIANT path', 'no Snowflake reserved word', r'reserved word start unquoted',
     lambda p, d: edit(os.path.join(p, 'models/staging/stg_fhir__encounter.sql'), 'period."start"', 'period.start')),
    ('a SQL function body that does not parse', 'DDL re-runnable', r'008_api_functions\.sql#2: does not parse',
     lambda p, d: edit(os.path.join(d, '008_api_functions.sql'), 'WHEN 7 THEN DATE_PART(', 'WHEN 7 THEN DATE_PART((')),
    ('a gateway function created outside API', 'SQL functions', r'no function HEALTHLAKE\.API\.HL_HI',
     lambda p, d: edit(os.path.join(d, '008_api_functions.sql'), 'FUNCTION HEALTHLAKE.API.HL_HI(S', 'FUNCTION HEALTHLAKE.CURATED.HL_HI(S')),
    ('the API reader without USAGE on a gateway function', 'SQL functions', r'no USAGE on HEALTHLAKE\.API\.HL_LO',
     lambda p, d: edit(os.path.join(d, '008_api_functions.sql'), 'GRANT USAGE ON FUNCTION HEALTHLAKE.API.HL_LO(VARCHAR) TO ROLE HL_API_READER;', '')),
    ('the gateway functions created by the wrong role', 'SQL functions', r'created as SYSADMIN',
     lambda p, d: edit(os.path.join(d, '008_api_functions.sql'), '-- role: HL_TRANSFORMER', '-- role: SYSADMIN')),
    ('the API reader granted a function outside API', 'roles:', r'HL_API_READER gets .*HEALTHLAKE\.CURATED\.HL_LO',
     lambda p, d: edit(os.path.join(d, '008_api_functions.sql'), 'ON FUNCTION HEALTHLAKE.API.HL_LO(VARCHAR)', 'ON FUNCTION HEALTHLAKE.CURATED.HL_LO(VARCHAR)')),
    ('an API view without a column the gateway reads', 'API views hold every column', r"api_curated_patient .*lacks .*'family'",
     lambda p, d: edit(os.path.join(p, 'models/api/api_curated_patient.sql'), '  x.family,\n', '')),
    ('the seed loses a concept', 'seed omop_concept_map equals', r'differs from 004',
     lambda p, d: edit(os.path.join(p, 'seeds/omop_concept_map.csv'), 'Drug,http://www.nlm.nih.gov/research/umls/rxnorm,6809,1503297,metformin\n', '')),
    ('an OMOP mart drifts from the SQLite view', 'OMOP CDM marts', r'omop_visit_occurrence: columns',
     lambda p, d: (edit(os.path.join(p, 'models/omop/omop_visit_occurrence.sql'), '  0 as visit_source_concept_id,\n', ''),
                   edit_yaml(os.path.join(p, 'models/omop/_omop.yml'),
                             lambda y: model_entry(y, 'omop_visit_occurrence').update(
                                 columns=[c for c in model_entry(y, 'omop_visit_occurrence')['columns'] if c['name'] != 'visit_source_concept_id'])))),
]


def mutations(root):
    project = os.path.join(root, 'dbt', 'snowflake')
    ddl = os.path.join(root, 'schemas', 'warehouse', 'snowflake')
    res = Results()
    base = check(root, project, ddl)
    res.add('the unbroken project passes every check', ['baseline: %s: %s' % (n, p[:2]) for n, p in base.failed()])
    for title, case_prefix, pattern, mutate in MUTATIONS:
        tmp = tempfile.mkdtemp(prefix='hl-dbt-mut-')
        try:
            p, d = os.path.join(tmp, 'dbt'), os.path.join(tmp, 'ddl')
            shutil.copytree(project, p, ignore=shutil.ignore_patterns('target', 'dbt_packages', 'logs'))
            shutil.copytree(ddl, d)
            mutate(p, d)
            r = check(root, p, d)
            hits = [(n, x) for n, probs in r.failed() for x in probs if n.startswith(case_prefix) and re.search(pattern, x)]
            problems = [] if hits else ['not reported by "%s..." as /%s/; failures: %s'
                                        % (case_prefix, pattern, [(n, pp[:2]) for n, pp in r.failed()])]
            res.add('broken copy reported: %s' % title, problems)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return res


def main():
    global ROOT
    if len(sys.argv) != 3 or sys.argv[1] not in ('check', 'mutations'):
        print(__doc__, file=sys.stderr)
        return 2
    ROOT = os.path.abspath(sys.argv[2])
    if not tools_present(ROOT):
        print('1..0 # SKIP node or tools/npm/node_modules (nunjucks, node-sql-parser) missing: run scripts/bootstrap')
        return 0
    if sys.argv[1] == 'check':
        return tap(check(ROOT, os.path.join(ROOT, 'dbt', 'snowflake'), os.path.join(ROOT, 'schemas', 'warehouse', 'snowflake')))
    return tap(mutations(ROOT))


ROOT = None
if __name__ == '__main__':
    sys.exit(main())
