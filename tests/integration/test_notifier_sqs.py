#!/usr/bin/env python3
"""hl-s3-notifier's s3-events source from SQS, by long polling, exactly once.

The queue is tests/integration/sqs/sqs-double.js (an SQS stand-in speaking
the SQS JSON protocol, checking SigV4, with long polling, visibility
timeouts and redelivery). Phase 1: S3 notifications (bare and in SNS
envelopes, with a test event, a removal and two unparseable bodies) go to
the queue; every created object is announced once on hl.landing.objects and
every parseable message is deleted, while the unparseable ones stay and are
received again. Phase 2: deletes are held (the double answers 500), new
notifications are announced, the notifier is killed with SIGKILL between
announce and delete; after a restart the messages come back after their
visibility timeout, are deleted, and nothing is announced twice. A notifier
with a wrong secret is refused by the double and deletes nothing.

usage: test_notifier_sqs.py HL_S3_NOTIFIER MOCKBROKER
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

TOPIC = "hl.landing.objects"
HERE = os.path.dirname(os.path.abspath(__file__))
AK, SK = "HLSQSKEY", "hl-sqs-secret"
VISIBILITY = 3


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def http(url, body=None):
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read().decode() or "null")


def s3_record(key, etag, size=10, name="ObjectCreated:Put", bucket="lake"):
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": "2026-11-25T16:00:00.000Z",
            "eventName": name, "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket},
                                      "object": {"key": key, "size": size, "eTag": etag}}}


def wait_for(what, cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    fail(f"timed out waiting for {what}")


def main():
    notifier_bin, broker_bin = sys.argv[1], sys.argv[2]
    if not shutil.which("kcat"):
        print("SKIP: kcat not installed")
        sys.exit(77)
    if not shutil.which("node"):
        print("SKIP: node not installed")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="hl-notifier-sqs-")
    broker = subprocess.Popen([broker_bin, f"{TOPIC}:16"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    brokers = broker.stdout.readline().strip()
    double = subprocess.Popen(["node", os.path.join(HERE, "sqs", "sqs-double.js"), "--key", AK,
                               "--secret", SK, "--region", "eu-west-1", "--queue", "landing-events"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    info = json.loads(double.stdout.readline())
    base = f"http://127.0.0.1:{info['port']}"
    env = dict(os.environ, HL_NOTIFIER_SQS_QUEUE_URL=info["queue_url"], HL_NOTIFIER_SQS_WAIT="5",
               HL_NOTIFIER_SQS_MAX_MESSAGES="10", HL_NOTIFIER_SQS_VISIBILITY_TIMEOUT=str(VISIBILITY),
               AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_REGION="eu-west-1",
               HL_NOTIFIER_STATE=os.path.join(work, "state.db"), HL_NOTIFIER_DEFAULT_ORG="dflt",
               HL_KAFKA_BROKERS=brokers, HL_KAFKA_PROPS="log_level=3", HL_ADMIN_ADDR="",
               HL_LOG_LEVEL="info")
    log = open(os.path.join(work, "notifier.log"), "w")
    procs = []

    def start(extra=None):
        p = subprocess.Popen([notifier_bin], env=dict(env, **(extra or {})), stdout=log, stderr=log)
        procs.append(p)
        return p

    def announced():
        out = subprocess.run(["kcat", "-C", "-b", brokers, "-t", TOPIC, "-o", "beginning", "-e", "-q",
                              "-X", "log_level=0", "-f", "%k\n"], capture_output=True, text=True,
                             timeout=60).stdout
        return out.split()

    def stats():
        return http(base + "/__hl/stats")

    def send(obj):
        http(base + "/__hl/send", (obj if isinstance(obj, str) else json.dumps(obj)).encode())

    try:
        # Phase 1: notifications of every shape, two bodies that are not notifications.
        want = set()
        for i in range(24):
            recs = [s3_record(f"org%3Dacme/in/f-{i:03d}.ndjson", f"e{i}", 100 + i)]
            want.add(f"lake/org=acme/in/f-{i:03d}.ndjson")
            if i % 6 == 0:  # two objects in one message
                recs.append(s3_record(f"plain/g-{i:03d}.ndjson.gz", f"g{i}"))
                want.add(f"lake/plain/g-{i:03d}.ndjson.gz")
            send({"Records": recs})
        for i in range(4):
            inner = json.dumps({"Records": [s3_record(f"org%3Dbeta/sns-{i}.json", f"s{i}")]})
            send({"Type": "Notification", "MessageId": f"sns-{i}", "TopicArn": "arn:aws:sns:eu-west-1:1:t",
                  "Message": inner})
            want.add(f"lake/org=beta/sns-{i}.json")
        send({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "lake"})
        send({"Records": [s3_record("gone.ndjson", "x", name="ObjectRemoved:Delete")]})
        send("this is not JSON")
        send({"hello": "not an S3 notification"})
        parseable = 24 + 4 + 2
        p = start()
        wait_for("every object announced", lambda: set(announced()) >= want, 60)
        wait_for("every parseable message deleted", lambda: stats()["deleted"] >= parseable, 30)
        # The unparseable two are left: received again after their visibility timeout.
        wait_for("the unparseable messages received again",
                 lambda: sorted(m["receiveCount"] for m in http(base + "/__hl/messages")
                                if not m["deleted"])[:1] >= [2], 30)
        s = stats()
        if s["remaining"] != 2 or s["deleted"] != parseable:
            fail(f"after phase 1: {s}")
        if s["maxWaitSeen"] != 5 or s["maxBatchAsked"] != 10 or s["visibilityAsked"] != VISIBILITY:
            fail(f"ReceiveMessage parameters: {s}")
        if s["held"] < 1:
            fail("no ReceiveMessage was held by long polling")
        if s["rejected"] != 0 or s["errors"] != 0:
            fail(f"requests refused by the double: {s}")
        keys = announced()
        if len(keys) != len(set(keys)) or set(keys) != want:
            fail(f"phase 1 announced {len(keys)} ({len(set(keys))} distinct), expected {len(want)}")
        print(f"ok: phase 1, {len(want)} objects from {parseable} messages announced once and deleted;"
              f" 2 unparseable left for redrive", flush=True)

        # Phase 2: kill -9 between the announcement and the delete.
        http(base + "/__hl/hold-deletes?on=1", b"")
        want2 = set()
        for i in range(10):
            send({"Records": [s3_record(f"org%3Dgamma/k-{i}.ndjson", f"k{i}")]})
            want2.add(f"lake/org=gamma/k-{i}.ndjson")
        wait_for("phase 2 announced", lambda: set(announced()) >= want | want2, 60)
        wait_for("a held delete attempt", lambda: stats()["errors"] >= 1, 30)
        p.send_signal(signal.SIGKILL)
        p.wait()
        s = stats()
        if s["deleted"] != parseable:
            fail(f"messages were deleted while deletes were held: {s}")
        http(base + "/__hl/hold-deletes?on=0", b"")
        p = start()
        wait_for("the redelivered messages deleted", lambda: stats()["deleted"] >= parseable + 10, 60)
        redelivered = [m for m in http(base + "/__hl/messages") if m["deleted"] and m["receiveCount"] >= 2]
        if len(redelivered) < 10:
            fail(f"only {len(redelivered)} messages were received twice")
        time.sleep(1.5)
        keys = announced()
        if len(keys) != len(set(keys)):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            fail(f"announced twice after kill -9: {dup[:5]}")
        if set(keys) != want | want2:
            fail(f"announced {sorted(set(keys) ^ (want | want2))[:5]} unexpectedly")
        p.send_signal(signal.SIGTERM)
        t0 = time.time()
        if p.wait(timeout=30) != 0:
            fail(f"SIGTERM: exit status {p.returncode}")
        if time.time() - t0 > 8:
            fail("SIGTERM did not interrupt the long poll promptly")
        print(f"ok: phase 2, kill -9 between announce and delete: 10 messages redelivered, deleted,"
              f" nothing announced twice ({len(keys)} announcements)", flush=True)

        # A wrong secret: every call refused by the double, nothing deleted.
        before = stats()
        send({"Records": [s3_record("org%3Dacme/late.ndjson", "late")]})
        p = start({"AWS_SECRET_ACCESS_KEY": "wrong-secret"})
        wait_for("a refused call", lambda: stats()["rejected"] > before["rejected"], 30)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        s = stats()
        if s["deleted"] != before["deleted"] or "lake/org=acme/late.ndjson" in announced():
            fail(f"a notifier with a wrong secret got through: {s}")
        print("ok: a wrong secret is refused (SignatureDoesNotMatch), nothing received", flush=True)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        double.stdin.close()
        double.wait(timeout=30)
        broker.stdin.close()
        broker.wait(timeout=30)
        log.close()
        if os.environ.get("HL_IT_KEEP") == "1":
            print(f"# kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
