'use strict';
/* Renders every model of a dbt project with nunjucks and parses the result
 * with node-sql-parser's Snowflake grammar; parses the DDL of
 * schemas/warehouse/snowflake the same way. Called by check_dbt.py, which
 * reads the YAML (python3-yaml) and passes what this needs on stdin as JSON:
 *
 *   {"project": DIR, "ddl": DIR, "sources": {"raw.fhir_resources": "DB.SCHEMA.T", ...},
 *    "folders": {"staging": "STAGING", ...}, "vars": {...}, "seeds": ["omop_concept_map"],
 *    "substitutions": {"HL_SNOWFLAKE_S3_URL": "s3://...", ...}}
 *
 * and prints one JSON object: per model its config() arguments, refs,
 * sources, rendered SQL (full and incremental), parse result and output
 * columns; per DDL statement its kind, what was parsed and how.
 *
 * The stubs behave as dbt's: ref() and source() resolve to database.schema.
 * alias and fail on an unknown name; config() records its keyword arguments;
 * is_incremental() is false in the first rendering and true in the second
 * (both are parsed); this is the model's own relation; var() reads
 * dbt_project.yml vars and fails on an unknown one; {% test %} blocks become
 * macros named test_<name>, as dbt compiles them; generate_schema_name is the
 * project's own macro.
 *
 * What node-sql-parser 5.4.0 (Snowflake) cannot parse, and what is done:
 *  - a VARIANT path on a qualified column (t.c:a.b) throws inside the parser
 *    ("column_symbol is not defined"); unqualified paths (c:a.b) parse. Each
 *    qualified path is rewritten to GET_PATH(t.c, 'a.b'), which Snowflake
 *    documents as the same expression, and counted in `rewrites`.
 *  - CREATE TABLE: VARIANT, TIMESTAMP_LTZ, AUTOINCREMENT ... and the table
 *    options after the column list (CLUSTER BY, CHANGE_TRACKING, COMMENT) are
 *    not in its grammar: they are replaced by JSON, TIMESTAMP, AUTO_INCREMENT
 *    and dropped, and listed in `rewrites`; the rest is parsed.
 *  - CREATE DATABASE/SCHEMA ... COMMENT = '...': the comment is dropped.
 *  - GRANT, CREATE ROLE/USER/WAREHOUSE/STAGE/FILE FORMAT/STORAGE INTEGRATION/
 *    PIPE, COPY INTO and MERGE are not in its grammar at all: check_dbt.py
 *    checks their shape; the SELECT inside a PIPE, COPY or MERGE is parsed
 *    here ($1 and METADATA$... become plain identifiers, a stage or
 *    TABLE(DATA_SOURCE(...)) a table name).
 */
const fs = require('fs');
const path = require('path');
const nunjucks = require('nunjucks');
const { Parser } = require('node-sql-parser');

const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const parser = new Parser();
const DIALECT = { database: 'Snowflake' };

function walk(dir, ext) {
  let out = [];
  if (!fs.existsSync(dir))
    return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory())
      out = out.concat(walk(p, ext));
    else if (e.name.endsWith(ext))
      out.push(p);
  }
  return out;
}

/* Macros: every file under macros/, {% test x(...) %} as {% macro test_x(...) %}. */
const macroText = walk(path.join(input.project, 'macros'), '.sql')
  .map((f) => fs.readFileSync(f, 'utf8')
    .replace(/\{%(-?)\s*test\s+(\w+)\s*\(/g, '{%$1 macro test_$2(')
    .replace(/\{%(-?)\s*endtest\s*(-?)%\}/g, '{%$1 endmacro $2%}'))
  .join('\n');

const env = new nunjucks.Environment(null, { autoescape: false, throwOnUndefined: true });
env.addTest('none', (v) => v === null || v === undefined);

function kwargs(args) {
  const last = args[args.length - 1];
  if (last && typeof last === 'object' && last.__keywords) {
    const o = Object.assign({}, last);
    delete o.__keywords;
    return o;
  }
  return {};
}

/* Models: name -> file, folder (first directory under models/). */
const models = {};
for (const f of walk(path.join(input.project, 'models'), '.sql')) {
  const rel = path.relative(path.join(input.project, 'models'), f);
  models[path.basename(f, '.sql')] = { file: path.relative(input.project, f), folder: rel.split(path.sep)[0] };
}

/* The stubs read the model being rendered from `cur`, so that the macros,
 * compiled once and shared by every model as dbt shares them, record the
 * refs and sources of the model that calls them. */
const cur = { info: null, incremental: false, relationOf: () => null };
const stubs = {
  config: (...a) => { Object.assign(cur.info.config, kwargs(a)); return ''; },
  ref: (n) => {
    if (typeof n !== 'string')
      throw new Error('ref() takes a model name');
    cur.info.refs.push(n);
    const r = cur.relationOf(n);
    if (!r)
      throw new Error(`ref('${n}'): no such model or seed`);
    return r;
  },
  source: (s, t) => {
    cur.info.sources.push(`${s}.${t}`);
    const r = input.sources[`${s}.${t}`];
    if (!r)
      throw new Error(`source('${s}', '${t}'): not declared in a sources YAML`);
    return r;
  },
  is_incremental: () => cur.incremental,
  var: (n, d) => {
    if (n in input.vars)
      return input.vars[n];
    if (d !== undefined)
      return d;
    throw new Error(`var('${n}'): not in dbt_project.yml`);
  },
  target: { database: 'HEALTHLAKE', schema: 'CURATED', name: 'prod', type: 'snowflake' },
  none: null,
};
for (const [k, v] of Object.entries(stubs))
  env.addGlobal(k, v);
new nunjucks.Template(macroText, env, 'macros', true).getExported({}, null, (err, macros) => {
  if (err)
    throw err;
  for (const [k, v] of Object.entries(macros))
    env.addGlobal(k, v);
});

function render(name, incremental, relationOf) {
  const m = models[name];
  const text = fs.readFileSync(path.join(input.project, m.file), 'utf8');
  const info = { config: {}, refs: [], sources: [] };
  Object.assign(cur, { info, incremental, relationOf });
  const sql = env.renderString(text, { this: relationOf(name) });
  return { sql: sql.trim(), info };
}

/* The qualified VARIANT paths the parser cannot take, as GET_PATH calls. */
const QPATH = /\b([A-Za-z_]\w*\.[A-Za-z_]\w*):((?:[A-Za-z_]\w*|"[^"]*")(?:\.(?:[A-Za-z_]\w*|"[^"]*")|\[\d+\])*)/g;
function rewriteQualifiedPaths(sql, rewrites) {
  return sql.replace(QPATH, (all, col, p) => {
    rewrites.push('qualified VARIANT path ' + all + ' -> GET_PATH');
    return `get_path(${col}, '${p}')`;
  });
}

function columnsOf(ast) {
  let sel = Array.isArray(ast) ? ast[0] : ast;
  if (!sel || sel.type !== 'select')
    return null;
  return sel.columns.map((c) => {
    if (c.as)
      return String(c.as).replace(/^"|"$/g, '');
    if (c.expr && c.expr.type === 'column_ref') {
      const col = c.expr.column;
      const v = typeof col === 'string' ? col : (col && col.expr && col.expr.value);
      return String(v);
    }
    return null; /* an expression without a name */
  });
}

function parseSql(sql) {
  const rewrites = [];
  const text = rewriteQualifiedPaths(sql, rewrites);
  try {
    const ast = parser.astify(text, DIALECT);
    return { ok: true, ast, rewrites };
  } catch (e) {
    const loc = e.location ? ` at line ${e.location.start.line} column ${e.location.start.column}` : '';
    const line = e.location ? '\n    ' + text.split('\n')[e.location.start.line - 1] : '';
    return { ok: false, error: String(e.message).slice(0, 300) + loc + line, rewrites };
  }
}

/* Two passes: configs first (aliases decide relations), then relations. */
const out = { models: {}, ddl: [] };
const configs = {};
const firstPass = (n) => (n in models || input.seeds.includes(n) ? `HEALTHLAKE.X.${n.toUpperCase()}` : null);
for (const name of Object.keys(models)) {
  try {
    configs[name] = render(name, false, firstPass).info.config;
  } catch (e) {
    configs[name] = {};
    out.models[name] = { file: models[name].file, render_error: String(e.message) };
  }
}
function schemaOf(folder) {
  const custom = input.folders[folder];
  const ctx = { target: { database: 'HEALTHLAKE', schema: 'CURATED', name: 'prod' }, none: null };
  return env.renderString(`{{ generate_schema_name(${custom ? JSON.stringify(custom) : 'none'}, none) }}`, ctx).trim();
}
const relationOf = (n) => {
  if (input.seeds.includes(n))
    return `HEALTHLAKE.${schemaOf('seeds')}.${n.toUpperCase()}`;
  if (!(n in models))
    return null;
  const alias = (configs[n] && configs[n].alias) || n;
  return `HEALTHLAKE.${schemaOf(models[n].folder)}.${alias.toUpperCase()}`;
};
for (const name of Object.keys(models)) {
  if (out.models[name])
    continue;
  const r = { file: models[name].file, folder: models[name].folder, relation: relationOf(name) };
  try {
    const full = render(name, false, relationOf);
    r.config = full.info.config;
    r.refs = [...new Set(full.info.refs)];
    r.sources = [...new Set(full.info.sources)];
    r.sql = full.sql;
    const p = parseSql(full.sql);
    r.parse_ok = p.ok;
    r.parse_error = p.error;
    r.rewrites = p.rewrites;
    r.columns = p.ok ? columnsOf(p.ast) : null;
    r.statement_type = p.ok ? (Array.isArray(p.ast) ? p.ast[0].type : p.ast.type) : null;
    r.has_qualify = p.ok && !!(Array.isArray(p.ast) ? p.ast[0] : p.ast).qualify;
    const inc = render(name, true, relationOf);
    r.sql_incremental = inc.sql;
    if (inc.sql !== full.sql) {
      const q = parseSql(inc.sql);
      r.parse_incremental_ok = q.ok;
      r.parse_incremental_error = q.error;
      r.columns_incremental = q.ok ? columnsOf(q.ast) : null;
    }
  } catch (e) {
    r.render_error = String(e.message);
  }
  out.models[name] = r;
}

/* ---- Snippets: macro calls rendered alone (for check_semantics.py) ---- */
out.snippets = {};
for (const [k, tpl] of Object.entries(input.snippets || {})) {
  out.snippets[k] = env.renderString(tpl, { none: null }).trim();
}

/* ---- DDL ---- */
function splitStatements(text) {
  const stmts = [];
  let cur = '', i = 0, q = null;
  while (i < text.length) {
    const c = text[i];
    if (q) {
      cur += c;
      if (c === q) {
        if (text[i + 1] === q) { cur += text[++i]; } else q = null;
      }
      i++;
      continue;
    }
    if (c === '-' && text[i + 1] === '-') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === "'" || c === '"') { q = c; cur += c; i++; continue; }
    if (c === ';') { if (cur.trim()) stmts.push(cur.trim()); cur = ''; i++; continue; }
    cur += c;
    i++;
  }
  if (cur.trim())
    stmts.push(cur.trim());
  return { stmts, unterminated: q !== null };
}

function substitute(sql, rewrites) {
  return sql.replace(/\$\{(\w+)\}/g, (all, v) => {
    if (!(v in input.substitutions))
      throw new Error(`unknown placeholder ${all}`);
    rewrites.push(`placeholder ${all}`);
    return input.substitutions[v];
  });
}

/* The SELECT inside "... FROM ( SELECT ... )" of a PIPE, COPY or MERGE. */
function innerSelect(sql) {
  const m = /\b(FROM|USING)\s*\(\s*SELECT\b/i.exec(sql);
  if (!m)
    return null;
  let depth = 0, start = sql.indexOf('(', m.index), q = null;
  for (let i = start; i < sql.length; i++) {
    const c = sql[i];
    if (q) { if (c === q) q = null; continue; }
    if (c === "'" || c === '"') { q = c; continue; }
    if (c === '(') depth++;
    if (c === ')' && --depth === 0)
      return sql.slice(start + 1, i);
  }
  return null;
}

function parseDdl(stmt, rewrites) {
  let s = stmt;
  const upper = s.toUpperCase();
  if (/^CREATE\s+(DATABASE|SCHEMA)\b/.test(upper)) {
    s = s.replace(/\s+COMMENT\s*=\s*'(?:[^']|'')*'/gi, () => { rewrites.push('COMMENT option dropped'); return ''; });
    return { parsed: 'statement', ...tryParse(s) };
  }
  if (/^CREATE\s+TABLE\b/.test(upper)) {
    s = s.replace(/\bVARIANT\b/gi, () => { rewrites.push('VARIANT -> JSON'); return 'JSON'; })
      .replace(/\bTIMESTAMP_LTZ\b/gi, () => { rewrites.push('TIMESTAMP_LTZ -> TIMESTAMP'); return 'TIMESTAMP'; })
      .replace(/\bAUTOINCREMENT(\s+START\s+\d+\s+INCREMENT\s+\d+)?(\s+(NO)?ORDER)?/gi, () => { rewrites.push('AUTOINCREMENT -> AUTO_INCREMENT'); return 'AUTO_INCREMENT'; });
    /* Table options after the closing parenthesis of the column list. */
    let depth = 0, end = -1, q = null;
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (q) { if (c === q) q = null; continue; }
      if (c === "'") { q = c; continue; }
      if (c === '(') depth++;
      if (c === ')' && --depth === 0) { end = i; break; }
    }
    if (end > 0 && s.slice(end + 1).trim()) {
      rewrites.push('table options dropped: ' + s.slice(end + 1).trim().replace(/\s+/g, ' ').slice(0, 60));
      s = s.slice(0, end + 1);
    }
    return { parsed: 'statement', ...tryParse(s) };
  }
  /* A SQL UDF: the header's shape is checked by check_dbt.py, its $$ body
     (one expression over the arguments) is parsed as a SELECT. Qualified
     calls of other UDFs lose their qualifier (the parser takes at most
     schema.function). */
  const fn = /^CREATE\s+OR\s+REPLACE\s+(?:SECURE\s+)?FUNCTION\s+[\w.]+\s*\(([^)]*)\)[\s\S]*?\bAS\s+\$\$([\s\S]*)\$\$\s*$/i.exec(s);
  if (fn) {
    const body = fn[2].replace(/\b\w+\.\w+\.(\w+)\s*\(/g, (a, n) => { rewrites.push(a.trim() + ' -> ' + n + '('); return n + '('; });
    return { parsed: 'function body', ...tryParse('SELECT (' + body + ') AS v FROM udf_args') };
  }
  const inner = innerSelect(s);
  if (inner) {
    let t = inner
      .replace(/\$1\b/g, () => { rewrites.push('$1 -> src_1'); return 'src_1'; })
      .replace(/METADATA\$(\w+)/gi, (a, n) => { rewrites.push(a + ' -> identifier'); return 'metadata_' + n; })
      .replace(/TABLE\s*\(\s*DATA_SOURCE\s*\([^)]*\)\s*\)/gi, () => { rewrites.push('TABLE(DATA_SOURCE(...)) -> table name'); return 'data_source_streaming'; })
      .replace(/@[\w.]+(\/[^\s)]*)?/g, () => { rewrites.push('stage reference -> table name'); return 'stage_files'; });
    t = rewriteQualifiedPaths(t, rewrites);
    return { parsed: 'inner SELECT', ...tryParse(t) };
  }
  return { parsed: 'no' };
}

function tryParse(sql) {
  try {
    let ast = parser.astify(sql, DIALECT);
    ast = Array.isArray(ast) ? ast[0] : ast;
    if (ast && ast.type === 'create' && ast.keyword === 'table') {
      const cols = (ast.create_definitions || []).filter((d) => d.resource === 'column')
        .map((d) => String(d.column.column.expr ? d.column.column.expr.value : d.column.column));
      return { ok: true, table_columns: cols };
    }
    if (ast && ast.type === 'select')
      return { ok: true, select_columns: columnsOf(ast) };
    return { ok: true };
  } catch (e) {
    return { ok: false, error: String(e.message).slice(0, 300) };
  }
}

const ddlFiles = walk(input.ddl, '.sql');
for (const f of ddlFiles) {
  const text = fs.readFileSync(f, 'utf8');
  const role = (/^--\s*role:\s*(\w+)/m.exec(text) || [])[1] || null;
  const { stmts, unterminated } = splitStatements(text);
  stmts.forEach((stmt, i) => {
    const rewrites = [];
    let r;
    try {
      r = parseDdl(substitute(stmt, rewrites), rewrites);
    } catch (e) {
      r = { parsed: 'no', ok: false, error: String(e.message) };
    }
    out.ddl.push({ file: path.relative(input.ddl, f), index: i, role, unterminated, text: stmt, rewrites, ...r });
  });
}

process.stdout.write(JSON.stringify(out));
