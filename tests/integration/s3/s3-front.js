#!/usr/bin/env node
/*
 * A signature-checking front for s3rver, used by the S3 integration tests.
 *
 * s3rver 3.7.1 checks only that the access key of a SigV4 request exists; it
 * does not verify the signature. This front re-derives every signature with
 * the algorithm AWS publishes ("Authenticating Requests (AWS Signature
 * Version 4)": header and query-string forms), independently of the C
 * signer, and refuses a mismatch with 403 SignatureDoesNotMatch, as S3 does.
 * It also checks the payload hash, the credential scope, the clock skew and
 * the expiry of presigned URLs. Accepted requests go on to s3rver with the
 * authentication removed.
 *
 * It also injects faults (for retry tests), serves container credentials
 * and an STS AssumeRoleWithWebIdentity stand-in (for the credential tests) and counts requests. It listens on
 * 127.0.0.1 only, prints {"port":N,"s3rver":M} on stdout when ready and
 * exits when its stdin closes.
 *
 * Usage: node s3-front.js --key AK --secret SK [--region R] [--bucket B]...
 */
'use strict';

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { sha256hex, uriEncode, parseAmzDate, parseAuthorization, canonicalHeaders, signature: sign,
        sameSignature } = require('./sigv4');

const args = process.argv.slice(2);
function arg(name, def) {
  const i = args.indexOf('--' + name);
  return i >= 0 ? args[i + 1] : def;
}
function argAll(name) {
  const out = [];
  args.forEach((a, i) => { if (a === '--' + name) out.push(args[i + 1]); });
  return out;
}

const modules = arg('modules', path.join(__dirname, '../../../tools/npm/node_modules'));
const S3rver = require(path.join(modules, 's3rver'));

const REGION = arg('region', 'us-east-1');
const VHOST_BASE = arg('vhost-base', 's3.localhost');
const CREDS_TOKEN = arg('creds-token', 'Bearer hl-test-token');
// Access keys the front accepts: the static pair and, once handed out, the
// temporary pair of the container credentials endpoint (with its token).
const keys = new Map([[arg('key', 'HLTESTKEY'), { secret: arg('secret', 'hl-test-secret'), token: null }]]);
const TEMP = { id: 'ASIAHLTEMPKEY', secret: 'hl-temp-secret/+=', token: 'hl-temp-token+/=' };

const WEB = { id: 'ASIAHLWEBKEY', secret: 'hl-web-secret', token: 'hl-web-token&<x>',
              role: 'arn:aws:iam::123456789012:role/hl-test', jwt: 'hl-web-identity-token' };

const stats = { requests: 0, rejected: 0, byMethod: {} };
let faults = [];
let seq = 0;

function decode(s) {
  try { return decodeURIComponent(s); } catch (e) { return null; }
}

function xmlEscape(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function sendError(res, status, code, message) {
  const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + xmlEscape(code) +
    '</Code><Message>' + xmlEscape(message) + '</Message><RequestId>hl-front-' + (++seq) +
    '</RequestId></Error>';
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body),
                          'x-amz-request-id': 'hl-front-' + seq });
  res.end(body);
}

class Reject extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

/*
 * Verifies the request's SigV4 signature. Returns { payloadHash } or throws
 * a Reject. rawQuery is the query string as sent.
 */
function verify(req, rawPath, rawQuery) {
  const pairs = rawQuery ? rawQuery.split('&').filter((p) => p.length).map((p) => {
    const i = p.indexOf('=');
    const name = decode(i < 0 ? p : p.slice(0, i));
    const value = decode(i < 0 ? '' : p.slice(i + 1));
    if (name === null || value === null) throw new Reject(400, 'InvalidArgument', 'bad query encoding');
    return [name, value];
  }) : [];
  const q = new Map(pairs);
  let cred, signedHeaders, signature, amzDate, payloadHash, presigned = false;
  const auth = req.headers['authorization'];
  if (q.has('X-Amz-Algorithm')) {
    if (auth) throw new Reject(400, 'InvalidArgument', 'Only one auth mechanism allowed');
    if (q.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256')
      throw new Reject(400, 'AuthorizationQueryParametersError', 'X-Amz-Algorithm only supports AWS4-HMAC-SHA256');
    presigned = true;
    cred = q.get('X-Amz-Credential');
    signedHeaders = q.get('X-Amz-SignedHeaders');
    signature = q.get('X-Amz-Signature');
    amzDate = q.get('X-Amz-Date');
    payloadHash = 'UNSIGNED-PAYLOAD';
    const expires = Number(q.get('X-Amz-Expires'));
    if (!cred || !signedHeaders || !signature || !amzDate || !Number.isInteger(expires))
      throw new Reject(400, 'AuthorizationQueryParametersError', 'missing X-Amz-* parameters');
    if (expires < 1 || expires > 604800)
      throw new Reject(400, 'AuthorizationQueryParametersError', 'X-Amz-Expires out of range');
    const t = parseAmzDate(amzDate);
    if (t === null) throw new Reject(400, 'AuthorizationQueryParametersError', 'bad X-Amz-Date');
    if (Date.now() > t + expires * 1000) throw new Reject(403, 'AccessDenied', 'Request has expired');
    if (t - Date.now() > 15 * 60 * 1000) throw new Reject(403, 'AccessDenied', 'Request is not valid yet');
  } else if (auth) {
    const a = parseAuthorization(auth);
    if (!a && !/^AWS4-HMAC-SHA256 /.test(auth)) throw new Reject(400, 'InvalidArgument', 'Unsupported Authorization Type');
    if (!a) throw new Reject(400, 'AuthorizationHeaderMalformed', 'the authorization header is malformed');
    ({ cred, signedHeaders, signature } = a);
    amzDate = req.headers['x-amz-date'];
    payloadHash = req.headers['x-amz-content-sha256'];
    if (!payloadHash) throw new Reject(400, 'InvalidRequest', 'Missing required header: x-amz-content-sha256');
    if (!/^(UNSIGNED-PAYLOAD|[0-9a-f]{64})$/.test(payloadHash))
      throw new Reject(400, 'InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a SHA-256');
    const t = parseAmzDate(amzDate);
    if (t === null) throw new Reject(403, 'AccessDenied', 'AWS authentication requires a valid X-Amz-Date');
    if (Math.abs(Date.now() - t) > 15 * 60 * 1000)
      throw new Reject(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
    const sh = signedHeaders.split(';');
    for (const need of ['host', 'x-amz-date', 'x-amz-content-sha256'])
      if (!sh.includes(need)) throw new Reject(403, 'AccessDenied', need + ' must be signed');
  } else {
    throw new Reject(403, 'AccessDenied', 'Access Denied');
  }

  const [akid, day, region, service, term, ...rest] = cred.split('/');
  const key = keys.get(akid);
  if (!key) throw new Reject(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
  if (rest.length || term !== 'aws4_request' || service !== 's3' || day !== amzDate.slice(0, 8))
    throw new Reject(403, 'AuthorizationHeaderMalformed', 'bad credential scope ' + cred);
  if (region !== REGION)
    throw new Reject(400, 'AuthorizationHeaderMalformed', 'the region ' + region + ' is wrong; expecting ' + REGION);
  if (key.token !== null) {
    const tok = presigned ? q.get('X-Amz-Security-Token') : req.headers['x-amz-security-token'];
    if (tok !== key.token) throw new Reject(403, 'InvalidToken', 'The provided token is malformed or otherwise invalid.');
  }

  // Canonical request, from the request as received.
  const segments = rawPath.split('/').map((s) => decode(s));
  if (segments.some((s) => s === null)) throw new Reject(400, 'InvalidURI', 'bad path encoding');
  const canonicalUri = uriEncode(segments.join('/'), true) || '/';
  const canonicalQuery = pairs.filter(([n]) => n !== 'X-Amz-Signature')
    .map(([n, v]) => [uriEncode(n, false), uriEncode(v, false)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([n, v]) => n + '=' + v).join('&');
  let canonicalHdrs;
  try {
    canonicalHdrs = canonicalHeaders(req, signedHeaders);
  } catch (why) {
    throw new Reject(403, 'SignatureDoesNotMatch', why);
  }
  const canonical = [req.method, canonicalUri, canonicalQuery, canonicalHdrs, signedHeaders, payloadHash].join('\n');
  const expected = sign(key.secret, amzDate, [day, region, service, term].join('/'), canonical);
  if (!sameSignature(signature, expected))
    throw new Reject(403, 'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
  return { payloadHash, query: pairs.filter(([n]) => !/^X-Amz-/.test(n)) };
}

function takeFault(method) {
  const f = faults.find((x) => x.count > 0 && (!x.method || x.method === method));
  if (!f) return null;
  f.count--;
  return f;
}

function control(req, res, url) {
  if (url.pathname === '/__hl/stats') {
    const body = JSON.stringify(stats);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return res.end(body);
  }
  if (url.pathname === '/__hl/reset' && req.method === 'POST') {
    faults = [];
    stats.requests = 0; stats.rejected = 0; stats.byMethod = {};
    res.writeHead(204);
    return res.end();
  }
  if (url.pathname === '/__hl/faults' && req.method === 'POST') {
    const p = url.searchParams;
    faults.push({ status: Number(p.get('status') || 503), code: p.get('code') || 'ServiceUnavailable',
      count: Number(p.get('count') || 1), method: p.get('method') || null, mode: p.get('mode') || 'status',
      after: Number(p.get('after') || 0) });
    res.writeHead(204);
    return res.end();
  }
  if (url.pathname === '/__hl/creds' && req.method === 'GET') {
    if (req.headers['authorization'] !== CREDS_TOKEN) {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      return res.end('{"message":"unauthorized"}');
    }
    keys.set(TEMP.id, { secret: TEMP.secret, token: TEMP.token });
    const body = JSON.stringify({ AccessKeyId: TEMP.id, SecretAccessKey: TEMP.secret, Token: TEMP.token,
      Expiration: new Date(Date.now() + 3600 * 1000).toISOString().replace(/\.\d+Z$/, 'Z') });
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return res.end(body);
  }
  if (url.pathname === '/__hl/sts' && req.method === 'POST') {
    // STS AssumeRoleWithWebIdentity (unsigned; the token is the proof).
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      if (form.get('Action') !== 'AssumeRoleWithWebIdentity' || form.get('Version') !== '2011-06-15' ||
          form.get('RoleArn') !== WEB.role || form.get('WebIdentityToken') !== WEB.jwt || !form.get('RoleSessionName')) {
        const body = '<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>' +
          '<Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>';
        res.writeHead(403, { 'Content-Type': 'text/xml' });
        return res.end(body);
      }
      keys.set(WEB.id, { secret: WEB.secret, token: WEB.token });
      const exp = new Date(Date.now() + 3600 * 1000).toISOString();
      const body = '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">' +
        '<AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>system:serviceaccount:hl:parser</SubjectFromWebIdentityToken>' +
        '<Credentials><SessionToken>' + xmlEscape(WEB.token) + '</SessionToken><SecretAccessKey>' + xmlEscape(WEB.secret) +
        '</SecretAccessKey><Expiration>' + exp + '</Expiration><AccessKeyId>' + WEB.id + '</AccessKeyId></Credentials>' +
        '</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>sts-1</RequestId></ResponseMetadata>' +
        '</AssumeRoleWithWebIdentityResponse>';
      res.writeHead(200, { 'Content-Type': 'text/xml' });
      res.end(body);
    });
    return;
  }
  res.writeHead(404);
  res.end();
}

function start(s3Port) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://front');
    if (url.pathname.startsWith('/__hl/')) return control(req, res, url);
    stats.requests++;
    stats.byMethod[req.method] = (stats.byMethod[req.method] || 0) + 1;
    const q = req.url.indexOf('?');
    const rawPath = q < 0 ? req.url : req.url.slice(0, q);
    const rawQuery = q < 0 ? '' : req.url.slice(q + 1);
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let checked;
      try {
        checked = verify(req, rawPath, rawQuery);
        if (checked.payloadHash !== 'UNSIGNED-PAYLOAD' && sha256hex(body) !== checked.payloadHash)
          throw new Reject(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.");
      } catch (e) {
        if (!(e instanceof Reject)) throw e;
        stats.rejected++;
        return sendError(res, e.status, e.code, e.message);
      }
      const fault = takeFault(req.method);
      if (fault && fault.mode === 'reset') return req.socket.destroy();
      if (fault && fault.mode === 'status') return sendError(res, fault.status, fault.code, 'injected fault');
      // Virtual-hosted style: bucket.<base>[:port] becomes /bucket/... for s3rver.
      const host = String(req.headers['host'] || '').replace(/:\d+$/, '');
      let fwdPath = rawPath;
      if (host.endsWith('.' + VHOST_BASE)) fwdPath = '/' + host.slice(0, -VHOST_BASE.length - 1) + rawPath;
      const fwdQuery = checked.query.map(([n, v]) => encodeURIComponent(n) + '=' + encodeURIComponent(v)).join('&');
      const headers = {};
      for (const [n, v] of Object.entries(req.headers)) {
        if (n === 'authorization' || n.startsWith('x-amz-') || n === 'host' || n === 'expect') continue;
        headers[n] = v;
      }
      headers['content-length'] = String(body.length);
      const up = http.request({ host: '127.0.0.1', port: s3Port, method: req.method, headers,
                                path: fwdPath + (fwdQuery ? '?' + fwdQuery : '') }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        if (fault && fault.mode === 'cut') {
          // Send the first `after` bytes of the body, then break the connection.
          let sent = 0;
          ur.on('data', (c) => {
            if (sent >= fault.after) return;
            const part = c.subarray(0, Math.min(c.length, fault.after - sent));
            sent += part.length;
            res.write(part);
            if (sent >= fault.after) { ur.destroy(); setTimeout(() => req.socket.destroy(), 50); }
          });
          ur.on('end', () => res.end());
          return;
        }
        ur.pipe(res);
      });
      up.on('error', (e) => sendError(res, 502, 'BadGateway', String(e)));
      up.end(body);
    });
  });
  server.keepAliveTimeout = 30000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: server.address().port, s3rver: s3Port }) + '\n');
  });
  return server;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hl-s3rver-'));
const buckets = argAll('bucket');
if (!buckets.length) buckets.push('hl-test');
const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir,
                        configureBuckets: buckets.map((name) => ({ name })) });
let cleanedUp = false;
function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  try { fs.rmSync(dir, { recursive: true, force: true }); } catch (e) { /* best effort */ }
}
process.on('exit', cleanup);
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
s3.run((err, info) => {
  if (err) {
    process.stderr.write('s3rver: ' + err + '\n');
    process.exit(1);
  }
  start(info.port);
});
