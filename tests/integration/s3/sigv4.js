/*
 * AWS Signature Version 4 primitives for the test stand-ins (s3-front.js,
 * sqs/sqs-double.js), written from AWS's published description
 * ("Authenticating Requests (AWS Signature Version 4)"), independently of the
 * C signer they check.
 */
'use strict';

const crypto = require('crypto');

function sha256hex(data) { return crypto.createHash('sha256').update(data).digest('hex'); }
function hmac(key, data) { return crypto.createHmac('sha256', key).update(data).digest(); }

/* AWS's UriEncode: every byte but A-Z a-z 0-9 - _ . ~ as %XX (upper case). */
function uriEncode(str, keepSlash) {
  let out = '';
  for (const b of Buffer.from(str, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/* Milliseconds of an X-Amz-Date (YYYYMMDDTHHMMSSZ), or null. */
function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return null;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

/* Splits "AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…"; null when malformed. */
function parseAuthorization(auth) {
  const m = /^AWS4-HMAC-SHA256 (.*)$/.exec(auth || '');
  if (!m) return null;
  const parts = new Map(m[1].split(',').map((s) => s.trim()).map((s) => {
    const i = s.indexOf('=');
    return [s.slice(0, i), s.slice(i + 1)];
  }));
  const cred = parts.get('Credential'), signedHeaders = parts.get('SignedHeaders');
  const signature = parts.get('Signature');
  if (!cred || !signedHeaders || !signature || parts.size !== 3) return null;
  return { cred, signedHeaders, signature };
}

/*
 * The canonical headers block of the signed header names (sorted, host
 * included), or throws the reason as a string.
 */
function canonicalHeaders(req, signedHeaders) {
  const names = signedHeaders.split(';');
  const sorted = [...names].sort();
  if (names.join(';') !== sorted.join(';') || !names.includes('host'))
    throw 'SignedHeaders must be sorted and include host';
  let out = '';
  for (const n of names) {
    const v = req.headers[n];
    if (v === undefined) throw 'signed header ' + n + ' is missing';
    out += n + ':' + String(v).trim().replace(/\s+/g, ' ') + '\n';
  }
  return out;
}

/* The expected signature (hex) of a canonical request. */
function signature(secret, amzDate, scope, canonical) {
  const [day, region, service, term] = scope.split('/');
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(canonical)].join('\n');
  const kSigning = hmac(hmac(hmac(hmac('AWS4' + secret, day), region), service), term);
  return hmac(kSigning, stringToSign).toString('hex');
}

function sameSignature(a, b) {
  return a.length === b.length && crypto.timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

module.exports = { sha256hex, hmac, uriEncode, parseAmzDate, parseAuthorization, canonicalHeaders,
                   signature, sameSignature };
