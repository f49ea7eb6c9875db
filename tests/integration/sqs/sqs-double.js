#!/usr/bin/env node
/*
 * An Amazon SQS stand-in for the integration tests (no SQS server can be
 * installed here). It speaks the SQS JSON protocol as AWS documents it
 * ("Amazon SQS API Reference"; "Using the AWS JSON protocol in Amazon SQS
 * APIs"): POST / with Content-Type application/x-amz-json-1.0 and
 * X-Amz-Target AmazonSQS.<Action>, answers in JSON, errors as
 * {"__type": "...#Code", "message": ...} with status 400 (403 for
 * authentication), and:
 *
 *   - verifies the SigV4 signature of every request (service "sqs", the
 *     region given, clock skew within 5 minutes) with ../s3/sigv4.js;
 *   - ReceiveMessage: MaxNumberOfMessages 1..10, WaitTimeSeconds 0..20 (long
 *     polling: the request is held until a message is visible or the wait
 *     ends), VisibilityTimeout 0..43200 (a received message is invisible for
 *     that long, then delivered again with a new receipt handle and a higher
 *     ApproximateReceiveCount);
 *   - DeleteMessage and DeleteMessageBatch (1..10 entries, distinct ids): only
 *     the latest receipt handle of a message deletes it; an older one
 *     succeeds without deleting (as AWS documents); an unknown one fails with
 *     ReceiptHandleIsInvalid;
 *   - SendMessage.
 *
 * Test controls (unsigned, under /__hl/): POST /__hl/send (the body becomes a
 * message), GET /__hl/stats, GET /__hl/messages, POST /__hl/hold-deletes?on=1|0
 * (deletes answer 500 InternalError while held). Listens on 127.0.0.1 only,
 * prints {"port":N,"queue_url":...} when ready, exits when stdin closes.
 *
 * Usage: node sqs-double.js --key AK --secret SK [--region R] [--queue NAME]
 */
'use strict';

const crypto = require('crypto');
const http = require('http');
const path = require('path');
const { sha256hex, parseAmzDate, parseAuthorization, canonicalHeaders, signature,
        sameSignature } = require(path.join(__dirname, '../s3/sigv4'));

const args = process.argv.slice(2);
function arg(name, def) {
  const i = args.indexOf('--' + name);
  return i >= 0 ? args[i + 1] : def;
}
const KEY = arg('key', 'HLSQSKEY');
const SECRET = arg('secret', 'hl-sqs-secret');
const REGION = arg('region', 'us-east-1');
const QUEUE = arg('queue', 'hl-landing-events');
const ACCOUNT = '000000000000';
const DEFAULT_VISIBILITY = 30;

let queueUrl = null;
const messages = [];        // { id, body, md5, receiveCount, visibleAt, receipt, receipts, deleted, sentAt }
const stats = { sent: 0, receives: 0, held: 0, delivered: 0, deleted: 0, deleteCalls: 0, rejected: 0,
                errors: 0, maxWaitSeen: 0, maxBatchAsked: 0, visibilityAsked: null };
let holdDeletes = false;

class Fault extends Error {
  constructor(status, type, message) { super(message); this.status = status; this.type = type; }
}
const bad = (msg) => new Fault(400, 'com.amazonaws.sqs#InvalidParameterValue', msg);

function send(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/x-amz-json-1.0', 'Content-Length': Buffer.byteLength(body),
                          'x-amzn-RequestId': crypto.randomUUID() });
  res.end(body);
}

function fail(res, e) {
  if (!(e instanceof Fault)) throw e;
  if (e.status === 403) stats.rejected++;
  else stats.errors++;
  const code = e.type.slice(e.type.indexOf('#') + 1);
  res.setHeader('x-amzn-query-error', code + ';Sender');
  send(res, e.status, { __type: e.type, message: e.message });
}

/* Checks the SigV4 Authorization header of a request with body `body`. */
function verify(req, body) {
  const a = parseAuthorization(req.headers['authorization']);
  if (!a) throw new Fault(403, 'com.amazon.coral.service#IncompleteSignatureException', 'missing or malformed Authorization');
  const amzDate = req.headers['x-amz-date'];
  const t = parseAmzDate(amzDate);
  if (t === null) throw new Fault(403, 'com.amazon.coral.service#IncompleteSignatureException', 'X-Amz-Date is missing or malformed');
  if (Math.abs(Date.now() - t) > 5 * 60 * 1000) throw new Fault(403, 'com.amazon.coral.service#InvalidSignatureException', 'Signature expired');
  const [akid, day, region, service, term, ...rest] = a.cred.split('/');
  if (akid !== KEY) throw new Fault(403, 'com.amazon.coral.service#InvalidClientTokenId', 'The security token included in the request is invalid.');
  if (rest.length || term !== 'aws4_request' || service !== 'sqs' || region !== REGION || day !== amzDate.slice(0, 8))
    throw new Fault(403, 'com.amazon.coral.service#InvalidSignatureException', 'Credential should be scoped to a valid region and service sqs: ' + a.cred);
  const signed = a.signedHeaders.split(';');
  for (const need of ['host', 'x-amz-date', 'x-amz-target'])
    if (!signed.includes(need)) throw new Fault(403, 'com.amazon.coral.service#InvalidSignatureException', need + ' must be signed');
  let hdrs;
  try {
    hdrs = canonicalHeaders(req, a.signedHeaders);
  } catch (why) {
    throw new Fault(403, 'com.amazon.coral.service#InvalidSignatureException', why);
  }
  const q = req.url.indexOf('?');
  if (q >= 0 || req.url !== '/') throw new Fault(400, 'com.amazonaws.sqs#InvalidAddress', 'JSON requests go to /');
  const canonical = ['POST', '/', '', hdrs, a.signedHeaders, sha256hex(body)].join('\n');
  const expected = signature(SECRET, amzDate, [day, region, service, term].join('/'), canonical);
  if (!sameSignature(a.signature, expected))
    throw new Fault(403, 'com.amazon.coral.service#InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided.');
}

function intParam(p, name, min, max, def) {
  if (p[name] === undefined) return def;
  if (!Number.isInteger(p[name]) || p[name] < min || p[name] > max)
    throw bad(`Value ${JSON.stringify(p[name])} for parameter ${name} is invalid. Must be between ${min} and ${max}.`);
  return p[name];
}

function checkQueue(p) {
  if (p.QueueUrl !== queueUrl) throw new Fault(400, 'com.amazonaws.sqs#QueueDoesNotExist', 'The specified queue does not exist.');
}

function visible(now) { return messages.filter((m) => !m.deleted && m.visibleAt <= now); }

function deliver(p, max, vis) {
  const now = Date.now();
  const names = [].concat(p.AttributeNames || [], p.MessageSystemAttributeNames || []);
  const wantCount = names.includes('All') || names.includes('ApproximateReceiveCount');
  return visible(now).slice(0, max).map((m) => {
    m.receiveCount++;
    m.receipt = crypto.randomBytes(24).toString('base64');
    m.receipts.push(m.receipt);
    m.visibleAt = now + vis * 1000;
    stats.delivered++;
    const out = { MessageId: m.id, ReceiptHandle: m.receipt, MD5OfBody: m.md5, Body: m.body };
    if (wantCount) out.Attributes = { ApproximateReceiveCount: String(m.receiveCount) };
    return out;
  });
}

function receive(p, res) {
  checkQueue(p);
  const max = intParam(p, 'MaxNumberOfMessages', 1, 10, 1);
  const wait = intParam(p, 'WaitTimeSeconds', 0, 20, 0);
  const vis = intParam(p, 'VisibilityTimeout', 0, 43200, DEFAULT_VISIBILITY);
  stats.receives++;
  stats.maxWaitSeen = Math.max(stats.maxWaitSeen, wait);
  stats.maxBatchAsked = Math.max(stats.maxBatchAsked, max);
  if (p.VisibilityTimeout !== undefined) stats.visibilityAsked = vis;
  const end = Date.now() + wait * 1000;
  let counted = false;
  const attempt = () => {
    if (res.destroyed) return;
    const got = deliver(p, max, vis);
    if (got.length || Date.now() >= end) return send(res, 200, got.length ? { Messages: got } : {});
    if (!counted) { stats.held++; counted = true; }
    setTimeout(attempt, 20);
  };
  attempt();
}

function deleteOne(handle) {
  const m = messages.find((x) => x.receipts.includes(handle));
  if (!m) return 'ReceiptHandleIsInvalid';
  if (!m.deleted && m.receipt === handle) {
    m.deleted = true;
    stats.deleted++;
  }
  return null;
}

function deleteBatch(p, res) {
  checkQueue(p);
  stats.deleteCalls++;
  const entries = p.Entries;
  if (!Array.isArray(entries) || entries.length === 0)
    throw new Fault(400, 'com.amazonaws.sqs#EmptyBatchRequest', 'There should be at least one entry in the request.');
  if (entries.length > 10)
    throw new Fault(400, 'com.amazonaws.sqs#TooManyEntriesInBatchRequest', 'Maximum number of entries per request are 10.');
  const ids = new Set();
  for (const e of entries) {
    if (typeof e.Id !== 'string' || !/^[A-Za-z0-9_-]{1,80}$/.test(e.Id))
      throw new Fault(400, 'com.amazonaws.sqs#InvalidBatchEntryId', 'A batch entry id can only contain alphanumeric characters, hyphens and underscores.');
    if (ids.has(e.Id)) throw new Fault(400, 'com.amazonaws.sqs#BatchEntryIdsNotDistinct', 'Id ' + e.Id + ' repeated.');
    ids.add(e.Id);
  }
  if (holdDeletes) throw new Fault(500, 'com.amazonaws.sqs#InternalError', 'deletes are held by the test');
  const Successful = [], Failed = [];
  for (const e of entries) {
    const why = typeof e.ReceiptHandle === 'string' ? deleteOne(e.ReceiptHandle) : 'ReceiptHandleIsInvalid';
    if (why) Failed.push({ Id: e.Id, SenderFault: true, Code: why, Message: 'The input receipt handle is invalid.' });
    else Successful.push({ Id: e.Id });
  }
  send(res, 200, { Successful, Failed });
}

function enqueue(body) {
  const m = { id: crypto.randomUUID(), body, md5: crypto.createHash('md5').update(body).digest('hex'),
              receiveCount: 0, visibleAt: 0, receipt: null, receipts: [], deleted: false, sentAt: Date.now() };
  messages.push(m);
  stats.sent++;
  return m;
}

const actions = {
  ReceiveMessage: receive,
  DeleteMessageBatch: deleteBatch,
  DeleteMessage(p, res) {
    checkQueue(p);
    stats.deleteCalls++;
    if (holdDeletes) throw new Fault(500, 'com.amazonaws.sqs#InternalError', 'deletes are held by the test');
    if (typeof p.ReceiptHandle !== 'string' || deleteOne(p.ReceiptHandle))
      throw new Fault(400, 'com.amazonaws.sqs#ReceiptHandleIsInvalid', 'The input receipt handle is invalid.');
    send(res, 200, {});
  },
  SendMessage(p, res) {
    checkQueue(p);
    if (typeof p.MessageBody !== 'string' || !p.MessageBody.length || Buffer.byteLength(p.MessageBody) > 262144)
      throw bad('MessageBody must be 1 byte to 256 KiB.');
    const m = enqueue(p.MessageBody);
    send(res, 200, { MessageId: m.id, MD5OfMessageBody: m.md5 });
  },
};

function control(req, res, body) {
  const url = new URL(req.url, 'http://double');
  if (url.pathname === '/__hl/send' && req.method === 'POST') {
    const m = enqueue(body.toString('utf8'));
    return send(res, 200, { MessageId: m.id });
  }
  if (url.pathname === '/__hl/stats') {
    const now = Date.now();
    const live = messages.filter((m) => !m.deleted);
    return send(res, 200, Object.assign({}, stats, { visible: visible(now).length,
      inflight: live.filter((m) => m.visibleAt > now).length, remaining: live.length }));
  }
  if (url.pathname === '/__hl/messages')
    return send(res, 200, messages.map((m) => ({ id: m.id, receiveCount: m.receiveCount, deleted: m.deleted })));
  if (url.pathname === '/__hl/hold-deletes' && req.method === 'POST') {
    holdDeletes = url.searchParams.get('on') === '1';
    return send(res, 200, { holdDeletes });
  }
  res.writeHead(404);
  res.end();
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    if (req.url.startsWith('/__hl/')) return control(req, res, body);
    try {
      if (req.method !== 'POST') throw new Fault(400, 'com.amazonaws.sqs#InvalidAction', 'Only POST is supported');
      verify(req, body);
      if (!/^application\/x-amz-json-1\.0\b/.test(req.headers['content-type'] || ''))
        throw new Fault(400, 'com.amazon.coral.service#SerializationException', 'Content-Type must be application/x-amz-json-1.0');
      const target = req.headers['x-amz-target'] || '';
      const action = target.startsWith('AmazonSQS.') ? actions[target.slice(10)] : undefined;
      if (!action) throw new Fault(400, 'com.amazon.coral.service#UnknownOperationException', 'unknown operation ' + target);
      let p;
      try {
        p = JSON.parse(body.toString('utf8'));
      } catch (e) {
        throw new Fault(400, 'com.amazon.coral.service#SerializationException', 'the body is not JSON');
      }
      if (!p || typeof p !== 'object' || Array.isArray(p))
        throw new Fault(400, 'com.amazon.coral.service#SerializationException', 'the body is not a JSON object');
      action(p, res);
    } catch (e) {
      fail(res, e);
    }
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  queueUrl = `http://127.0.0.1:${port}/${ACCOUNT}/${QUEUE}`;
  process.stdout.write(JSON.stringify({ port, queue_url: queueUrl }) + '\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
