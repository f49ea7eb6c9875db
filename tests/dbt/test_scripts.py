#!/usr/bin/env python3
"""scripts/snowflake-apply and scripts/snowflake-backfill against a local
SQL API v2 stand-in (127.0.0.1), TAP.

  test_scripts.py SRC_ROOT

The stand-in checks what Snowflake checks of a request (path, requestId,
headers, JSON body, the key-pair JWT: RS256 signature with the registered
public key, iss = ACCOUNT.USER.SHA256:<fingerprint>, sub, lifetime under an
hour) and answers as the SQL API does (200 with a result set, 202 with a
handle and a later 200 on GET, 401, 422 with code/sqlState/message, 503).
It executes nothing: it records what the scripts sent.
"""
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ROOT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
ACCOUNT, USER = 'xy12345.eu-west-1', 'hl_admin'


def b64d(s):
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))


class Standin:
    def __init__(self, pub_pem, fingerprint):
        self.pub_pem, self.fingerprint = pub_pem, fingerprint
        self.requests, self.executed, self.problems = [], [], []
        self.fail_on = None        # substring of a statement answered 422
        self.unavailable = set()   # substrings answered 503 on the first attempt
        self.unauthorized_once = False
        self.slow = set()          # substrings answered 202, then 202, then 200
        self.result = None         # rows for a COPY
        self.pending = {}
        self.lock = threading.Lock()

    def check_jwt(self, auth):
        if not auth.startswith('Bearer '):
            return 'no bearer token'
        parts = auth[7:].split('.')
        if len(parts) != 3:
            return 'not a JWT'
        header, claims = json.loads(b64d(parts[0])), json.loads(b64d(parts[1]))
        if header.get('alg') != 'RS256':
            return 'alg %s' % header.get('alg')
        qualified = 'XY12345.HL_ADMIN'
        if claims.get('sub') != qualified or claims.get('iss') != qualified + '.' + self.fingerprint:
            return 'iss/sub %s %s' % (claims.get('iss'), claims.get('sub'))
        now = time.time()
        if not (claims['iat'] - 60 <= now < claims['exp']) or claims['exp'] - claims['iat'] > 3600:
            return 'lifetime iat %s exp %s' % (claims['iat'], claims['exp'])
        with tempfile.TemporaryDirectory() as d:
            sig, data = os.path.join(d, 'sig'), os.path.join(d, 'data')
            with open(sig, 'wb') as f:
                f.write(b64d(parts[2]))
            with open(data, 'wb') as f:
                f.write((parts[0] + '.' + parts[1]).encode())
            p = subprocess.run(['openssl', 'dgst', '-sha256', '-verify', self.pub_pem, '-signature', sig, data],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if p.returncode != 0:
                return 'bad signature'
        return None


def handler_for(st):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def reply(self, code, doc):
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def common(self):
            if not self.headers.get('User-Agent') or self.headers.get('X-Snowflake-Authorization-Token-Type') != 'KEYPAIR_JWT':
                st.problems.append('headers: %s' % dict(self.headers))
                self.reply(400, {'message': 'bad headers'})
                return False
            err = st.check_jwt(self.headers.get('Authorization', ''))
            if err:
                st.problems.append('jwt: ' + err)
                self.reply(401, {'code': '390144', 'message': 'JWT token is invalid: ' + err})
                return False
            return True

        def do_GET(self):
            if not self.common():
                return
            m = re.fullmatch(r'/api/v2/statements/([0-9a-f-]{36})', urlparse(self.path).path)
            with st.lock:
                left = st.pending.get(m.group(1)) if m else None
                if left is None:
                    self.reply(404, {'message': 'no such statement'})
                    return
                if left > 0:
                    st.pending[m.group(1)] = left - 1
                    self.reply(202, {'statementHandle': m.group(1), 'message': 'running'})
                    return
            self.reply(200, {'statementHandle': m.group(1), 'message': 'Statement executed successfully.',
                             'resultSetMetaData': {'numRows': 1, 'rowType': [{'name': 'status'}], 'partitionInfo': [{}]},
                             'data': [['done']]})

        def do_POST(self):
            u = urlparse(self.path)
            q = parse_qs(u.query)
            if u.path != '/api/v2/statements':
                self.reply(404, {'message': 'not found'})
                return
            body = json.loads(self.rfile.read(int(self.headers.get('Content-Length', 0))) or b'{}')
            rid = (q.get('requestId') or [''])[0]
            try:
                uuid.UUID(rid)
            except ValueError:
                st.problems.append('requestId %r' % rid)
            if self.headers.get('Content-Type') != 'application/json' or 'statement' not in body:
                st.problems.append('body/content type')
            with st.lock:
                st.requests.append({'requestId': rid, 'retry': q.get('retry') == ['true'], **body})
                if st.unauthorized_once:
                    st.unauthorized_once = False
                    self.reply(401, {'code': '390318', 'message': 'token expired'})
                    return
            if not self.common():
                return
            stmt = body['statement']
            with st.lock:
                for s in list(st.unavailable):
                    if s in stmt:
                        st.unavailable.discard(s)
                        self.reply(503, {'message': 'service unavailable'})
                        return
                if any(e['requestId'] == rid for e in st.executed):
                    # retry=true of a statement that already ran: answer, do not run again.
                    self.reply(200, {'statementHandle': str(uuid.uuid4()), 'message': 'ok', 'data': []})
                    return
                if st.fail_on and st.fail_on in stmt:
                    self.reply(422, {'code': '002003', 'sqlState': '02000', 'statementHandle': str(uuid.uuid4()),
                                     'message': "SQL compilation error: Object 'X' does not exist."})
                    return
                st.executed.append({'requestId': rid, **body})
                handle = str(uuid.uuid4())
                if any(s in stmt for s in st.slow):
                    st.pending[handle] = 1
                    self.reply(202, {'statementHandle': handle, 'message': 'Asynchronous execution in progress.'})
                    return
            if stmt.lstrip().upper().startswith('COPY') and st.result is not None:
                self.reply(200, {'statementHandle': handle, 'message': 'ok',
                                 'resultSetMetaData': {'rowType': [{'name': n} for n in
                                                                   ('file', 'status', 'rows_parsed', 'rows_loaded', 'error_limit',
                                                                    'errors_seen', 'first_error')], 'partitionInfo': [{}]},
                                 'data': st.result})
                return
            self.reply(200, {'statementHandle': handle, 'message': 'Statement executed successfully.',
                             'resultSetMetaData': {'rowType': [{'name': 'status'}], 'partitionInfo': [{}]},
                             'data': [['ok']]})
    return H


def run(args, env, timeout=180):
    p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def main():
    if ROOT is None:
        print(__doc__)
        return 2
    cases = []

    def case(name, problems):
        cases.append((name, problems))

    tmp = tempfile.mkdtemp(prefix='hl-sf-scripts-')
    key, pub = os.path.join(tmp, 'key.pem'), os.path.join(tmp, 'pub.pem')
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(['openssl', 'pkey', '-in', key, '-pubout', '-out', pub], check=True)
    der = subprocess.run(['openssl', 'pkey', '-in', key, '-pubout', '-outform', 'DER'], check=True,
                         stdout=subprocess.PIPE).stdout
    fp = 'SHA256:' + base64.b64encode(hashlib.sha256(der).digest()).decode()
    st = Standin(pub, fp)
    srv = ThreadingHTTPServer(('127.0.0.1', 0), handler_for(st))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    apply_, backfill = os.path.join(ROOT, 'scripts', 'snowflake-apply'), os.path.join(ROOT, 'scripts', 'snowflake-backfill')
    env = dict(os.environ, HL_SNOWFLAKE_ACCOUNT=ACCOUNT, HL_SNOWFLAKE_USER=USER, HL_SNOWFLAKE_PRIVATE_KEY_FILE=key,
               HL_SNOWFLAKE_URL='http://127.0.0.1:%d' % srv.server_address[1],
               HL_SNOWFLAKE_S3_URL='s3://healthlake-landing/landing/',
               HL_SNOWFLAKE_S3_ROLE_ARN='arn:aws:iam::123456789012:role/healthlake-snowflake',
               HL_SNOWFLAKE_LOADER_PUBLIC_KEY=pub)
    try:
        # The plan: every statement of every file, in order, with its role.
        sys.path.insert(0, os.path.join(ROOT, 'scripts'))
        import importlib.machinery
        sa = importlib.machinery.SourceFileLoader('sa', apply_).load_module()
        ddl = os.path.join(ROOT, 'schemas', 'warehouse', 'snowflake')
        expected = []
        for f in sorted(x for x in os.listdir(ddl) if re.match(r'^\d{3}_', x)):
            text = open(os.path.join(ddl, f), encoding='utf-8').read()
            role = re.search(r'^-- role: (\w+)', text, re.M).group(1)
            expected += [(f, role, s) for s in sa.split_statements(text)]
            if f.startswith('003_'):
                expected.append((f, 'USERADMIN', 'ALTER USER HL_LOADER_SVC SET RSA_PUBLIC_KEY'))

        rc, out, err = run([apply_, '--dry-run'], env)
        p = [] if rc == 0 else ['rc %d: %s' % (rc, err)]
        if '${' in out:
            p.append('a placeholder is left in the dry run')
        n_out = len(re.findall(r';(  -- warehouse \w+)?$', out, re.M))
        if n_out != len(expected):
            p.append('dry run printed %d statements, the files hold %d' % (n_out, len(expected)))
        for f in sorted({e[0] for e in expected}):
            if '-- %s (role ' % f not in out:
                p.append('dry run does not name %s' % f)
        case('--dry-run prints every statement in order with its role and placeholders filled (%d)' % len(expected), p)

        e2 = dict(env)
        del e2['HL_SNOWFLAKE_S3_ROLE_ARN']
        rc, out, err = run([apply_, '--dry-run'], e2)
        case('a missing placeholder variable exits 2 and names it',
             [] if rc == 2 and 'HL_SNOWFLAKE_S3_ROLE_ARN' in err else ['rc %d: %s' % (rc, err)])

        rc, out, err = run([apply_, '--print-jwt'], env)
        tok = out.strip()
        p = [] if rc == 0 else ['rc %d: %s' % (rc, err)]
        if not p:
            e = st.check_jwt('Bearer ' + tok)
            if e:
                p.append(e)
            bad = tok.rsplit('.', 1)[0] + '.' + base64.urlsafe_b64encode(b'x' * 256).rstrip(b'=').decode()
            if st.check_jwt('Bearer ' + bad) != 'bad signature':
                p.append('the stand-in accepted a forged signature')
        case('--print-jwt: RS256, iss ACCOUNT.USER.SHA256:<fingerprint>, sub, < 1 h, signature verifies', p)

        # An encrypted key with its passphrase in the environment.
        key2, pub2 = os.path.join(tmp, 'key2.pem'), os.path.join(tmp, 'pub2.pem')
        subprocess.run(['openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-aes-256-cbc',
                        '-pass', 'pass:s3cret', '-out', key2], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(['openssl', 'pkey', '-in', key2, '-passin', 'pass:s3cret', '-pubout', '-out', pub2], check=True)
        der2 = subprocess.run(['openssl', 'pkey', '-in', key2, '-passin', 'pass:s3cret', '-pubout', '-outform', 'DER'],
                              check=True, stdout=subprocess.PIPE).stdout
        st2 = Standin(pub2, 'SHA256:' + base64.b64encode(hashlib.sha256(der2).digest()).decode())
        rc, out, err = run([apply_, '--print-jwt'], dict(env, HL_SNOWFLAKE_PRIVATE_KEY_FILE=key2,
                                                          HL_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE='s3cret'))
        p = ['rc %d: %s' % (rc, err)] if rc != 0 else [x for x in [st2.check_jwt('Bearer ' + out.strip())] if x]
        case('an encrypted key is used with HL_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE', p)

        # A full apply: a 503 once, a 401 once, a 202 polled.
        st.unavailable.add('CREATE SCHEMA IF NOT EXISTS HEALTHLAKE.CURATED')
        st.slow.add('CREATE STAGE')
        st.unauthorized_once = True
        rc, out, err = run([apply_], env)
        p = [] if rc == 0 else ['rc %d: %s' % (rc, err[-500:])]
        got = [(x['role'], x['statement']) for x in st.executed]
        if len(got) != len(expected):
            p.append('executed %d statements, expected %d' % (len(got), len(expected)))
        for (f, role, s), (grole, gs) in zip(expected, got):
            if role != grole or not gs.startswith(s[:40]):
                p.append('%s: sent %s as %s, expected %s as %s' % (f, gs[:40], grole, s[:40], role))
                break
        retried = [r for r in st.requests if 'HEALTHLAKE.CURATED' in r['statement'] and r['statement'].startswith('CREATE SCHEMA')]
        if len(retried) != 2 or not retried[1]['retry'] or retried[0]['requestId'] != retried[1]['requestId']:
            p.append('503: not resent once with the same requestId and retry=true: %s' % retried)
        if sum(1 for x in st.executed if x['statement'].startswith('CREATE SCHEMA IF NOT EXISTS HEALTHLAKE.CURATED')) != 1:
            p.append('503: the statement ran more than once')
        if not st.requests[0]['statement'].startswith('CREATE DATABASE') or not st.requests[1]['retry']:
            p.append('401: not retried with a new token')
        wh = {x['statement'].split()[0] for x in st.executed if x.get('warehouse')}
        if wh != {'MERGE'}:
            p.append('warehouse sent with %s (only statements that need compute)' % wh)
        p += st.problems
        case('apply: every statement once, in order, as its file\'s role; 503 retried with retry=true, 401 re-signed, 202 polled', p)

        # A failing statement stops the run, names the error, and --from resumes.
        st.executed.clear()
        st.requests.clear()
        st.fail_on = 'CREATE PIPE'
        rc, out, err = run([apply_], env)
        p = []
        if rc != 1 or '002003' not in err or '02000' not in err or 'does not exist' not in err or '--from 007' not in err:
            p.append('rc %d, stderr %s' % (rc, err[-400:]))
        if any('CREATE PIPE' in x['statement'] or x['statement'].startswith('GRANT OPERATE') for x in st.executed):
            p.append('statements after the failure were run')
        case('apply: a 422 stops the run with code, sqlState and message; nothing after it runs', p)

        st.fail_on = None
        st.executed.clear()
        rc, out, err = run([apply_, '--from', '007'], env)
        p = [] if rc == 0 else ['rc %d: %s' % (rc, err)]
        want = [' '.join(stmt.split()[:2]) for f, role, stmt in expected if f[:3] >= '007']
        if [' '.join(x['statement'].split()[:2]) for x in st.executed] != want:
            p.append('--from 007 ran %s' % [x['statement'][:30] for x in st.executed])
        case('apply --from NNN resumes at that file', p)

        # Backfill.
        st.executed.clear()
        st.result = [['s3://healthlake-landing/landing/org=org-1/Patient.ndjson', 'LOADED', '300', '300', '300', '0', None],
                     ['s3://healthlake-landing/landing/org=org-1/Observation.ndjson', 'PARTIALLY_LOADED', '9000', '8999', '9000', '1',
                      'Error parsing JSON: misplaced }']]
        rc, out, err = run([backfill, 'org=org-1/'], env)
        p = []
        if rc != 1 or 'PARTIALLY_LOADED' not in out or 'misplaced' not in out:
            p.append('rc %d out %s err %s' % (rc, out[-300:], err[-300:]))
        x = st.executed[0] if st.executed else {}
        if x.get('role') != 'HL_LOADER' or x.get('warehouse') != 'HL_LOAD_WH' or '@HEALTHLAKE.RAW.LANDING/org=org-1/)' not in x.get('statement', '') \
                or 'FORCE = FALSE' not in x.get('statement', ''):
            p.append('sent %s' % {k: str(v)[:80] for k, v in x.items()})
        case('backfill: COPY INTO for the prefix as HL_LOADER on HL_LOAD_WH; a partly loaded file exits 1 and is shown', p)

        st.executed.clear()
        st.result = [['s3://healthlake-landing/landing/org=org-1/Patient.ndjson', 'LOAD_SKIPPED', '0', '0', '0', '0', None]]
        rc, out, err = run([backfill, '--force', 'org=org-1/job=j7/'], env)
        p = [] if rc == 0 else ['rc %d: %s %s' % (rc, out, err)]
        if not st.executed or 'FORCE = TRUE' not in st.executed[0]['statement'] or 'LANDING/org=org-1/job=j7/)' not in st.executed[0]['statement']:
            p.append('--force or prefix not in the statement')
        rc2, _, err2 = run([backfill, "org=x'; DROP TABLE y; --"], env)
        if rc2 != 2:
            p.append('a prefix with a quote was accepted (rc %d)' % rc2)
        case('backfill: --force and a job prefix reach the COPY; a prefix with SQL in it is refused (exit 2)', p)
    finally:
        srv.shutdown()
        subprocess.run(['rm', '-rf', tmp])

    print('1..%d' % len(cases))
    for i, (n, p) in enumerate(cases, 1):
        print('%s %d - %s' % ('not ok' if p else 'ok', i, n))
        for x in p[:20]:
            print('# ' + str(x).replace('\n', ' ')[:400])
    return 1 if any(p for _, p in cases) else 0


if __name__ == '__main__':
    sys.exit(main())
